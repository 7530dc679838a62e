//! The `mas.access` check, shared by the gateway (to answer early) and every service (so the
//! network is never trusted).

use mas_proto::AccessPolicy;

use crate::Principal;

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No valid credential where one is needed (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid credential that is not allowed here (403).
    #[error("{0}")]
    Forbidden(&'static str),
}

/// Checks a caller against a policy. `principal` is the verified token, if any; `api_key` whether
/// a vendor key was verified for this call.
pub fn check(
    policy: &AccessPolicy,
    principal: Option<&Principal>,
    api_key: bool,
) -> Result<(), Denied> {
    // A webhook is public to the policy: its handler verifies the caller's signature itself.
    if policy.public || policy.webhook {
        return Ok(());
    }
    if policy.api_key {
        return if api_key {
            Ok(())
        } else {
            Err(Denied::Unauthenticated("a valid X-API-Key is required"))
        };
    }
    let closed = !policy.authenticated
        && !policy.service
        && policy.roles.is_empty()
        && policy.capabilities.is_empty();
    if closed {
        return Err(Denied::Forbidden("this operation is not available"));
    }
    let Some(p) = principal else {
        return Err(Denied::Unauthenticated("a valid access token is required"));
    };
    if policy.service {
        return if p.is_service() {
            Ok(())
        } else {
            Err(Denied::Forbidden("this operation is internal"))
        };
    }
    if p.is_service() {
        return Err(Denied::Forbidden(
            "service tokens cannot call user operations",
        ));
    }
    if policy.sensitive && p.is_impersonated() {
        return Err(Denied::Forbidden(
            "this operation is refused to impersonated sessions",
        ));
    }
    if policy.roles.is_empty() && policy.capabilities.is_empty() {
        return Ok(());
    }
    let role_ok = policy.roles().any(|r| r == p.role);
    let cap_ok = policy.capabilities().any(|c| p.has_capability(c));
    if role_ok || cap_ok {
        Ok(())
    } else {
        Err(Denied::Forbidden("your role does not allow this operation"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenKind;
    use mas_proto::{Capability, Role};

    fn user(role: Role, caps: &[Capability]) -> Principal {
        Principal {
            subject: "u".into(),
            platform: "p".into(),
            role,
            capabilities: caps.to_vec(),
            jti: "j".into(),
            expires_at: 0,
            actor: None,
            kind: TokenKind::Access,
        }
    }

    fn roles(r: &[Role]) -> AccessPolicy {
        AccessPolicy {
            roles: r.iter().map(|r| *r as i32).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn roles_and_capabilities() {
        let admin_only = roles(&[Role::Admin, Role::Superadmin]);
        assert!(check(&admin_only, Some(&user(Role::Admin, &[])), false).is_ok());
        assert_eq!(
            check(&admin_only, Some(&user(Role::User, &[])), false),
            Err(Denied::Forbidden("your role does not allow this operation"))
        );
        assert!(matches!(
            check(&admin_only, None, false),
            Err(Denied::Unauthenticated(_))
        ));
        let mut finance = roles(&[Role::Admin]);
        finance.capabilities = vec![Capability::Finance as i32];
        assert!(
            check(
                &finance,
                Some(&user(Role::User, &[Capability::Finance])),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn sensitive_refuses_impersonation_and_service_is_internal() {
        let sensitive = AccessPolicy {
            authenticated: true,
            sensitive: true,
            ..Default::default()
        };
        let mut u = user(Role::User, &[]);
        assert!(check(&sensitive, Some(&u), false).is_ok());
        u.actor = Some("boss".into());
        assert!(matches!(
            check(&sensitive, Some(&u), false),
            Err(Denied::Forbidden(_))
        ));

        let internal = AccessPolicy {
            service: true,
            ..Default::default()
        };
        assert!(matches!(
            check(&internal, Some(&user(Role::Superadmin, &[])), false),
            Err(Denied::Forbidden(_))
        ));
        let mut svc = user(Role::Unspecified, &[]);
        svc.kind = TokenKind::Service;
        assert!(check(&internal, Some(&svc), false).is_ok());
    }

    #[test]
    fn an_empty_policy_is_closed() {
        assert!(
            check(
                &AccessPolicy::default(),
                Some(&user(Role::Superadmin, &[])),
                false
            )
            .is_err()
        );
    }
}
