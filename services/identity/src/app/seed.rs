//! Idempotent seed at start: the platforms, and a SUPERADMIN on each whose password comes from
//! configuration (never hard-coded). Existing rows are left as they are.

use mas_kit::proto::Role;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::{App, now, platforms, users};
use crate::domain::{Email, Password};
use crate::error::AppResult;
use crate::store::platform;

pub const PLATFORMS: &[(&str, &str)] = &[
    ("mr-mentor", "Mr. Mentor"),
    ("my-analytics-school", "My Analytics School"),
];

pub async fn run(app: &App) -> AppResult<()> {
    for (id, name) in PLATFORMS {
        if !platforms::exists(app, id).await? {
            let res = platform::Entity::insert(platform::ActiveModel {
                id: Set((*id).to_owned()),
                name: Set((*name).to_owned()),
                created_at: Set(now()),
            })
            .exec(&app.db)
            .await;
            // Another replica seeding at the same moment is fine.
            if let Err(e) = res
                && !platforms::exists(app, id).await?
            {
                return Err(e.into());
            }
            tracing::info!(seeded_platform = id, "platform seeded");
        }
    }
    let Some(password) = &app.cfg.seed_admin_password else {
        tracing::warn!("SEED_ADMIN_PASSWORD is not set: no SUPERADMIN seeded");
        return Ok(());
    };
    let email = Email::parse(&app.cfg.seed_admin_email)?;
    let password = Password::parse("SEED_ADMIN_PASSWORD", password.expose())?;
    for (id, _) in PLATFORMS {
        if users::find_by_email(app, id, &email).await?.is_none() {
            let hash = app.hasher.hash_at_startup(password.expose()).await?;
            match users::insert(
                app,
                users::NewUser {
                    platform: id,
                    email: &email,
                    password_hash: hash,
                    full_name: "Super Admin".into(),
                    phone: String::new(),
                    role: Role::Superadmin,
                    caps: &[],
                },
            )
            .await
            {
                Ok(_) | Err(crate::error::AppError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(seeded_platform = id, "SUPERADMIN seeded");
        }
    }
    Ok(())
}
