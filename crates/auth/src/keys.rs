//! Ed25519 signing keys, their JWKS form, and the verifier that holds the published keys.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Claims, ISSUER, Principal};

/// Why a token was refused. The message is safe to show a client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
}

/// A public key as published in the JWKS (RFC 7517 / RFC 8037 OKP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kid: String,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
}

impl Jwk {
    pub const KTY: &'static str = "OKP";
    pub const CRV: &'static str = "Ed25519";
    pub const ALG: &'static str = "EdDSA";
    pub const USE: &'static str = "sig";
}

/// A private Ed25519 key with its id. `Debug` never prints the key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    public: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("pkcs8", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh key from the OS random generator.
    pub fn generate(kid: impl Into<String>) -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_dalek(kid.into(), &key)
    }

    /// Rebuilds a stored key from its PKCS#8 DER.
    pub fn from_pkcs8(kid: impl Into<String>, der: &[u8]) -> Result<Self, TokenError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| TokenError::Malformed)?;
        Ok(Self::from_dalek(kid.into(), &key))
    }

    fn from_dalek(kid: String, key: &ed25519_dalek::SigningKey) -> Self {
        // Encoding an in-memory Ed25519 key as PKCS#8 only fails on allocation.
        let pkcs8 = key
            .to_pkcs8_der()
            .expect("an Ed25519 key encodes as PKCS#8")
            .as_bytes()
            .to_vec();
        SigningKey {
            kid,
            pkcs8,
            public: key.verifying_key().to_bytes(),
        }
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kid: self.kid.clone(),
            x: URL_SAFE_NO_PAD.encode(self.public),
        }
    }

    /// Signs claims as a compact JWS with `alg: EdDSA` and this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .map_err(|_| TokenError::Invalid)
    }
}

/// Verifies access tokens against the published keys. Cheap to share; keys are replaced
/// wholesale when a fresh JWKS arrives.
#[derive(Default)]
pub struct Verifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the known keys with this JWKS; returns how many were accepted.
    pub fn set_keys(&self, jwks: &[Jwk]) -> usize {
        let keys: HashMap<_, _> = jwks
            .iter()
            .filter_map(|j| Some((j.kid.clone(), DecodingKey::from_ed_components(&j.x).ok()?)))
            .collect();
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        n
    }

    /// Whether any key is loaded (a verifier without keys refuses everything).
    pub fn knows_any(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(kid)
    }

    /// The `kid` of a token, without verifying it (to decide whether to refetch the JWKS).
    pub fn kid_of(token: &str) -> Result<String, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        header.kid.ok_or(TokenError::Malformed)
    }

    /// Verifies signature, algorithm (EdDSA only: `none` and HMAC tricks fail here), issuer and
    /// expiry, and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        Ok(data.claims.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenKind;

    fn claims(exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: ISSUER.into(),
            sub: "u1".into(),
            platform: "mr-mentor".into(),
            role: "ADMIN".into(),
            caps: vec!["FINANCE".into()],
            jti: "j1".into(),
            iat: now,
            exp: now + exp_in,
            act: None,
            kind: TokenKind::Access,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_published_key() {
        let key = SigningKey::generate("k1");
        let verifier = Verifier::new();
        verifier.set_keys(&[key.jwk()]);
        let p = verifier.verify(&key.sign(&claims(60)).unwrap()).unwrap();
        assert_eq!(p.subject, "u1");
        assert_eq!(p.role, mas_proto::Role::Admin);
        assert_eq!(p.capabilities, [mas_proto::Capability::Finance]);
    }

    #[test]
    fn wrong_key_expired_unknown_kid_and_alg_none_are_refused() {
        let key = SigningKey::generate("k1");
        let impostor = SigningKey::generate("k1");
        let verifier = Verifier::new();
        verifier.set_keys(&[key.jwk()]);
        assert_eq!(
            verifier.verify(&impostor.sign(&claims(60)).unwrap()),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verifier.verify(&key.sign(&claims(-120)).unwrap()),
            Err(TokenError::Expired)
        );
        let other = SigningKey::generate("k2");
        assert_eq!(
            verifier.verify(&other.sign(&claims(60)).unwrap()),
            Err(TokenError::UnknownKey)
        );
        // alg none: header {"alg":"none","kid":"k1"}, valid claims, empty signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(60)).unwrap())
        );
        assert!(verifier.verify(&none).is_err());
    }

    #[test]
    fn a_stored_key_round_trips_through_pkcs8() {
        let key = SigningKey::generate("k1");
        let back = SigningKey::from_pkcs8("k1", key.pkcs8()).unwrap();
        assert_eq!(back.jwk(), key.jwk());
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.pkcs8())));
    }
}
