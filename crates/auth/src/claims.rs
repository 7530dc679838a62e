//! The claims our access tokens carry and the typed principal a verified token becomes.

use mas_proto::{Capability, Role};
use serde::{Deserialize, Serialize};

/// What a token is for: a user's session, a master-login impersonation, or a service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Service,
}

/// RFC 8693 actor: who is really acting when a SUPERADMIN impersonates a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
}

/// JWT claims, as signed by identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// A user id, or `service:<name>` for a service account.
    pub sub: String,
    /// The tenant the token was minted for; `*` for service accounts.
    pub platform: String,
    /// Role name as in `mas.Role` (`ADMIN`, ...).
    pub role: String,
    #[serde(default)]
    pub caps: Vec<String>,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    pub kind: TokenKind,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub subject: String,
    pub platform: String,
    pub role: Role,
    pub capabilities: Vec<Capability>,
    pub jti: String,
    pub expires_at: i64,
    /// The impersonating SUPERADMIN's id, for master-login tokens.
    pub actor: Option<String>,
    pub kind: TokenKind,
}

impl Principal {
    pub fn is_service(&self) -> bool {
        self.kind == TokenKind::Service
    }

    pub fn is_impersonated(&self) -> bool {
        self.actor.is_some()
    }

    pub fn has_capability(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

impl From<Claims> for Principal {
    fn from(c: Claims) -> Self {
        Principal {
            role: Role::from_str_name(&c.role).unwrap_or(Role::Unspecified),
            capabilities: c
                .caps
                .iter()
                .filter_map(|s| Capability::from_str_name(s))
                .collect(),
            subject: c.sub,
            platform: c.platform,
            jti: c.jti,
            expires_at: c.exp,
            actor: c.act.map(|a| a.sub),
            kind: c.kind,
        }
    }
}

/// Rank of a role: SUPERADMIN > ADMIN > {EXPERT, SALES, USER}.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Superadmin => 3,
        Role::Admin => 2,
        Role::Expert | Role::Sales | Role::User => 1,
        Role::Unspecified => 0,
    }
}
