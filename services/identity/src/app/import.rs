//! `mas import users <file>`: moves users off the monolith with their bcrypt hashes. Such a user
//! logs in with the old password and is rehashed to argon2id on that login.
//!
//! The file is JSON Lines, one user per line:
//! `{"platform":"mr-mentor","email":"a@b.c","fullName":"A","passwordHash":"$2b$10$...","role":"USER","phone":""}`

use mas_kit::proto::Role;
use serde::Deserialize;

use super::{App, platforms, users};
use crate::domain::{self, Email};
use crate::error::{AppError, AppResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Record {
    platform: String,
    email: String,
    full_name: String,
    password_hash: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub imported: usize,
    pub skipped_existing: usize,
    /// `(line number, reason)` of each rejected line; nothing is written for them.
    pub rejected: Vec<(usize, String)>,
}

fn is_bcrypt(h: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| h.starts_with(p)) && h.len() == 60
}

pub async fn import_users(app: &App, jsonl: &str) -> AppResult<Report> {
    let mut report = Report::default();
    for (i, line) in jsonl.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                report.rejected.push((n, format!("invalid JSON: {e}")));
                continue;
            }
        };
        match import_one(app, rec).await {
            Ok(true) => report.imported += 1,
            Ok(false) => report.skipped_existing += 1,
            Err(AppError::Invalid { field, message }) => {
                report.rejected.push((n, format!("{field}: {message}")))
            }
            Err(e) => return Err(e),
        }
    }
    tracing::info!(
        imported = report.imported,
        skipped = report.skipped_existing,
        rejected = report.rejected.len(),
        "user import finished"
    );
    Ok(report)
}

async fn import_one(app: &App, rec: Record) -> AppResult<bool> {
    if !platforms::exists(app, &rec.platform).await? {
        return Err(AppError::invalid("platform", "names no known platform"));
    }
    let email = Email::parse(&rec.email)?;
    if !is_bcrypt(&rec.password_hash) {
        return Err(AppError::invalid("passwordHash", "is not a bcrypt hash"));
    }
    let role = match rec.role.as_deref() {
        None | Some("") => Role::User,
        Some(r) => match Role::from_str_name(r) {
            Some(Role::Unspecified) | None => {
                return Err(AppError::invalid("role", "is not a valid role"));
            }
            Some(r) => r,
        },
    };
    let full_name = domain::parse_name("fullName", &rec.full_name, true)?;
    let phone = domain::parse_name("phone", rec.phone.as_deref().unwrap_or(""), false)?;
    match users::insert(
        app,
        users::NewUser {
            platform: &rec.platform,
            email: &email,
            password_hash: rec.password_hash,
            full_name,
            phone,
            role,
            caps: &[],
        },
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(AppError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
