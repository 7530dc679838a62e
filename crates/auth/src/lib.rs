//! Access tokens and who may call what.
//!
//! identity signs short-lived EdDSA JWTs with rotating keys; the gateway and every service verify
//! them locally from a cached JWKS ([`Verifier`]), check a pushed revocation set
//! ([`Revocations`]) and enforce the `mas.access` policy of the RPC ([`policy::check`]). Nothing
//! here does I/O: fetching keys and watching revocations are the kit's job.

pub mod claims;
pub mod keys;
pub mod policy;
pub mod revocations;

pub use claims::{Actor, Claims, Principal, TokenKind};
pub use keys::{Jwk, SigningKey, TokenError, Verifier};
pub use policy::Denied;
pub use revocations::Revocations;

/// The `iss` of every token identity signs.
pub const ISSUER: &str = "mas-identity";
