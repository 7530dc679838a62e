//! identity's rules, free of I/O: what a valid email, password, platform slug and role change
//! are. Types here can only hold valid values (parse, don't validate).

use mas_kit::auth::claims::rank;
use mas_kit::proto::{Capability, Role};

use crate::error::{AppError, AppResult};

/// A lowercase, trimmed email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let e = raw.trim().to_lowercase();
        let valid = e.len() <= 254
            && !e.chars().any(char::is_whitespace)
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if e.is_empty() {
            return Err(AppError::invalid("email", "is required"));
        }
        if !valid {
            return Err(AppError::invalid("email", "is not a valid email address"));
        }
        Ok(Email(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 8 to 128 characters.
pub struct Password(String);

impl Password {
    pub fn parse(field: &'static str, raw: &str) -> AppResult<Self> {
        let n = raw.chars().count();
        if n == 0 {
            return Err(AppError::invalid(field, "is required"));
        }
        if n < 8 {
            return Err(AppError::invalid(field, "must be at least 8 characters"));
        }
        if n > 128 {
            return Err(AppError::invalid(field, "must be at most 128 characters"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A platform slug as used in `X-Platform`: lowercase letters, digits and dashes.
pub fn parse_platform_id(raw: &str) -> AppResult<String> {
    let ok = (2..=48).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(AppError::invalid(
            "id",
            "use 2-48 lowercase letters, digits and dashes",
        ))
    }
}

/// A name without the white space around it. Only ASCII white space is trimmed, the same set
/// as the proto's not-blank pattern `[^\t\n\f\r ]`, so a value the schema accepts is never
/// refused here as blank.
pub fn parse_name(field: &'static str, raw: &str, required: bool) -> AppResult<String> {
    let v = raw.trim_ascii();
    if required && v.is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    if v.chars().count() > 200 {
        return Err(AppError::invalid(field, "must be at most 200 characters"));
    }
    Ok(v.to_owned())
}

pub fn parse_role(raw: i32) -> AppResult<Role> {
    match Role::try_from(raw) {
        Ok(Role::Unspecified) | Err(_) => Err(AppError::invalid("role", "is not a valid role")),
        Ok(r) => Ok(r),
    }
}

pub fn parse_capabilities(raw: &[i32]) -> AppResult<Vec<Capability>> {
    let mut caps = Vec::new();
    for v in raw {
        match Capability::try_from(*v) {
            Ok(Capability::Unspecified) | Err(_) => {
                return Err(AppError::invalid(
                    "capabilities",
                    "holds an unknown capability",
                ));
            }
            Ok(c) if !caps.contains(&c) => caps.push(c),
            Ok(_) => {}
        }
    }
    Ok(caps)
}

pub fn caps_to_column(caps: &[Capability]) -> String {
    caps.iter()
        .map(|c| c.as_str_name())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn caps_from_column(col: &str) -> Vec<Capability> {
    col.split(',')
        .filter_map(Capability::from_str_name)
        .collect()
}

/// May `actor` (by role) manage a user holding `target`, and give it `new_role`?
/// Only a SUPERADMIN grants or removes ADMIN or SUPERADMIN; an ADMIN manages users ranked below it.
pub fn may_manage(actor: Role, target: Role, new_role: Option<Role>) -> AppResult<()> {
    let privileged = |r: Role| matches!(r, Role::Admin | Role::Superadmin);
    if actor == Role::Superadmin {
        return Ok(());
    }
    if privileged(target) || new_role.is_some_and(privileged) {
        return Err(AppError::Forbidden(
            "only a SUPERADMIN grants, removes or manages ADMIN and SUPERADMIN".into(),
        ));
    }
    if rank(actor) <= rank(target) {
        return Err(AppError::Forbidden(
            "you may only manage users ranked below you".into(),
        ));
    }
    Ok(())
}

/// May a SUPERADMIN act as a user holding `target`? Never an equal or higher one.
pub fn may_impersonate(target: Role) -> AppResult<()> {
    if rank(target) >= rank(Role::Superadmin) {
        return Err(AppError::Forbidden(
            "master login is only for users ranked below you".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in ["", "alice", "a@b", "a b@c.d", "@c.d", "a@.c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "long enough").is_ok());
        assert!(!format!("{:?}", Password::parse("p", "long enough").unwrap()).contains("long"));
    }

    #[test]
    fn ranking_rules() {
        assert!(may_manage(Role::Admin, Role::User, Some(Role::Expert)).is_ok());
        assert!(may_manage(Role::Admin, Role::User, Some(Role::Admin)).is_err());
        assert!(may_manage(Role::Admin, Role::Admin, None).is_err());
        assert!(may_manage(Role::Superadmin, Role::Admin, Some(Role::User)).is_ok());
        assert!(may_manage(Role::Expert, Role::User, None).is_err());
        assert!(may_impersonate(Role::Admin).is_ok());
        assert!(may_impersonate(Role::Superadmin).is_err());
    }

    #[test]
    fn platform_slugs() {
        assert!(parse_platform_id("mr-mentor").is_ok());
        assert!(parse_platform_id("Mr Mentor").is_err());
        assert!(parse_platform_id("-x").is_err());
    }
}
