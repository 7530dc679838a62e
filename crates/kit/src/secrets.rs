//! Secret fields at rest: credentials and tokens a service must read back (a vendor's API key, a
//! third party's OAuth refresh token) are stored sealed with an envelope key from the environment,
//! never in clear. ChaCha20-Poly1305 from `ring` (already what rustls uses), a random nonce per
//! value, and the key id in each sealed value, so keys rotate: `SECRET_KEYS=kid1:<base64>,kid0:
//! <base64>` seals new values with the first key and still opens values sealed with the others;
//! [`SecretKeys::reseal`] moves an old value to the current key.
//!
//! The associated data binds a value to where it is stored (table, column, row id): a sealed
//! value copied into another row does not open there.
//!
//! ```
//! use mas_kit::secrets::SecretKeys;
//!
//! // 32 random bytes, base64: `openssl rand -base64 32`.
//! let keys = SecretKeys::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
//! let sealed = keys.seal("sk_live_123", b"vendor_credentials.api_key:42").unwrap();
//! assert!(!sealed.as_str().contains("sk_live"));
//! let open = keys.open(&sealed, b"vendor_credentials.api_key:42").unwrap();
//! assert_eq!(open.expose(), "sk_live_123");
//! assert_eq!(format!("{open:?}"), "[redacted]");
//! ```

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{ConfigError, Env, Secret};

/// The variable that holds the key list.
pub const SECRET_KEYS: &str = "SECRET_KEYS";
/// Bytes of each key (256 bits).
pub const KEY_LEN: usize = 32;
/// The format of a sealed value: `v1.<kid>.<base64url(nonce | ciphertext | tag)>`.
const VERSION: &str = "v1";

/// Why a value could not be sealed or opened. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{SECRET_KEYS}: {0}")]
    Keys(&'static str),
    #[error("the sealed value is not in the v1 format")]
    Malformed,
    #[error("the value was sealed with key {0:?}, which SECRET_KEYS no longer holds")]
    UnknownKey(String),
    /// The tag did not verify: the value, its associated data or the key is not the one it was
    /// sealed with.
    #[error("the sealed value does not open: tampered with, moved, or the wrong key")]
    Tampered,
    #[error("the system random number generator failed")]
    Random,
}

impl From<SecretsError> for crate::error::AppError {
    fn from(e: SecretsError) -> Self {
        crate::error::AppError::Internal(e.to_string())
    }
}

/// A value as stored: safe to write to the database and to print (it shows only its key id).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// A value read back from storage.
    pub fn new(stored: impl Into<String>) -> Self {
        Sealed(stored.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> Option<&str> {
        parts(&self.0).map(|(kid, _)| kid)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({})", self.key_id().unwrap_or("?"))
    }
}

fn parts(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix(VERSION)?.strip_prefix('.')?;
    rest.split_once('.')
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The envelope keys, newest first. Never empty: [`SecretKeys::parse`] refuses a list without a
/// key, so `keys[0]` (the current key) always exists.
pub struct SecretKeys {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SecretKeys").field("ids", &ids).finish()
    }
}

impl SecretKeys {
    /// `kid:base64key` pairs separated by commas, the key that seals first. Ids are 1 to 32
    /// letters, digits, `-` or `_`; keys are 32 bytes in base64 (standard or URL-safe).
    pub fn parse(list: &str) -> Result<SecretKeys, SecretsError> {
        let mut keys: Vec<Key> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry
                .split_once(':')
                .ok_or(SecretsError::Keys("each entry is kid:base64key"))?;
            let valid_id = !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(SecretsError::Keys(
                    "a key id is 1 to 32 letters, digits, - or _",
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SecretsError::Keys("a key id appears twice"));
            }
            let raw = STANDARD
                .decode(b64.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim()))
                .map_err(|_| SecretsError::Keys("a key is not base64"))?;
            if raw.len() != KEY_LEN {
                return Err(SecretsError::Keys("a key is not 32 bytes"));
            }
            let unbound = UnboundKey::new(&CHACHA20_POLY1305, &raw)
                .map_err(|_| SecretsError::Keys("a key is not 32 bytes"))?;
            keys.push(Key {
                id: id.to_owned(),
                key: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            return Err(SecretsError::Keys("holds no key"));
        }
        Ok(SecretKeys {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The keys from `SECRET_KEYS`, or `None` when it is unset; a malformed list is an error
    /// that names the variable.
    pub fn from_env(env: &Env) -> Result<Option<SecretKeys>, ConfigError> {
        env.secret(SECRET_KEYS)
            .map(|list| {
                SecretKeys::parse(list.expose())
                    .map_err(|e| ConfigError::new(SECRET_KEYS, e.to_string()))
            })
            .transpose()
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plain` with the current key, bound to `aad` (where the value is stored).
    pub fn seal(&self, plain: &str, aad: &[u8]) -> Result<Sealed, SecretsError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let mut buf = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound(&key.id, aad)),
                &mut buf,
            )
            .map_err(|_| SecretsError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(Sealed(format!(
            "{VERSION}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(out)
        )))
    }

    /// Opens a value sealed with any of the keys, given the `aad` it was sealed with.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Secret, SecretsError> {
        let (kid, body) = parts(&sealed.0).ok_or(SecretsError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| SecretsError::UnknownKey(kid.to_owned()))?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretsError::Malformed)?;
        if raw.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(SecretsError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[..NONCE_LEN]);
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound(kid, aad)),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| SecretsError::Tampered)?;
        let plain = String::from_utf8(plain.to_vec()).map_err(|_| SecretsError::Tampered)?;
        Ok(Secret::new(plain))
    }

    /// The value sealed with the current key, or `None` when it already is (nothing to write).
    pub fn reseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Option<Sealed>, SecretsError> {
        if sealed.key_id() == Some(self.current_id()) {
            return Ok(None);
        }
        let plain = self.open(sealed, aad)?;
        self.seal(plain.expose(), aad).map(Some)
    }
}

/// The associated data: the format version and key id (so neither can be swapped), then the
/// caller's context.
fn bound(kid: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = format!("{VERSION}.{kid}.").into_bytes();
    v.extend_from_slice(aad);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn keys(list: &[(&str, u8)]) -> SecretKeys {
        let s: Vec<String> = list
            .iter()
            .map(|(id, b)| format!("{id}:{}", key(*b)))
            .collect();
        SecretKeys::parse(&s.join(",")).unwrap()
    }

    const AAD: &[u8] = b"credentials.token:row-1";

    #[test]
    fn a_sealed_value_round_trips_and_never_shows_in_clear() {
        let k = keys(&[("k1", 1)]);
        let a = k.seal("refresh-token-xyz", AAD).unwrap();
        let b = k.seal("refresh-token-xyz", AAD).unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(a.as_str().starts_with("v1.k1."));
        assert!(!a.as_str().contains("refresh-token"));
        assert_eq!(format!("{a:?}"), "Sealed(k1)");
        let open = k.open(&a, AAD).unwrap();
        assert_eq!(open.expose(), "refresh-token-xyz");
        assert_eq!(format!("{open:?} {open}"), "[redacted] [redacted]");
        assert_eq!(k.open(&k.seal("", AAD).unwrap(), AAD).unwrap().expose(), "");
    }

    #[test]
    fn tampering_with_any_part_is_detected() {
        let k = keys(&[("k1", 1), ("k0", 2)]);
        let sealed = k.seal("secret", AAD).unwrap();
        let (_, body) = parts(sealed.as_str()).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let forged = Sealed::new(format!("v1.k1.{}", URL_SAFE_NO_PAD.encode(&raw)));
            assert!(
                matches!(k.open(&forged, AAD), Err(SecretsError::Tampered)),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        // Moved to another row, or relabelled with another key id.
        assert!(matches!(
            k.open(&sealed, b"credentials.token:row-2"),
            Err(SecretsError::Tampered)
        ));
        let relabelled = Sealed::new(sealed.as_str().replacen("v1.k1.", "v1.k0.", 1));
        assert!(matches!(
            k.open(&relabelled, AAD),
            Err(SecretsError::Tampered)
        ));
        for bad in [
            "",
            "v1",
            "v1.k1",
            "v2.k1.AAAA",
            "v1.k1.not base64",
            "v1.k1.AAAA",
        ] {
            assert!(
                matches!(k.open(&Sealed::new(bad), AAD), Err(SecretsError::Malformed)),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = keys(&[("k0", 2)]);
        let sealed_old = old.seal("vendor-key", AAD).unwrap();
        let rotated = keys(&[("k1", 1), ("k0", 2)]);
        assert_eq!(rotated.current_id(), "k1");
        assert_eq!(
            rotated.open(&sealed_old, AAD).unwrap().expose(),
            "vendor-key"
        );
        let new = rotated
            .reseal(&sealed_old, AAD)
            .unwrap()
            .expect("moved to k1");
        assert_eq!(new.key_id(), Some("k1"));
        assert_eq!(rotated.reseal(&new, AAD).unwrap(), None, "already current");
        // Once k0 is retired, only the resealed value opens.
        let retired = keys(&[("k1", 1)]);
        assert_eq!(retired.open(&new, AAD).unwrap().expose(), "vendor-key");
        assert!(
            matches!(retired.open(&sealed_old, AAD), Err(SecretsError::UnknownKey(id)) if id == "k0")
        );
    }

    #[test]
    fn the_wrong_key_under_the_same_id_does_not_open() {
        let sealed = keys(&[("k1", 1)]).seal("secret", AAD).unwrap();
        let other = keys(&[("k1", 9)]);
        assert!(matches!(
            other.open(&sealed, AAD),
            Err(SecretsError::Tampered)
        ));
    }

    #[test]
    fn a_bad_key_list_is_refused_with_the_variable_named() {
        for bad in [
            "",
            "k1",
            &format!(":{}", key(1)),
            "k1:not-base64!",
            &format!("k1:{}", STANDARD.encode([1u8; 16])),
            &format!("k1:{},k1:{}", key(1), key(2)),
            &format!("k 1:{}", key(1)),
        ] {
            let e = SecretKeys::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("SECRET_KEYS: "), "{bad}: {e}");
            assert!(
                !e.to_string().contains(&key(1)),
                "no key material in the error"
            );
        }
        let k = SecretKeys::parse(&format!(
            " k1:{} , k0:{} ",
            key(1),
            URL_SAFE_NO_PAD.encode([2u8; 32])
        ))
        .unwrap();
        assert_eq!(format!("{k:?}"), r#"SecretKeys { ids: ["k1", "k0"] }"#);
    }
}
