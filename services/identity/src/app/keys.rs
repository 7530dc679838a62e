//! The signing key ring. Keys live in identity's table so every replica signs with the same key.
//! Rotation publishes a new key in the JWKS `key_publish_lead` before it signs, so verifiers
//! that refresh their JWKS in that time never meet an unknown `kid`; an old key stays published
//! until every token it signed has expired, so nobody is logged out.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use mas_kit::auth::{Jwk, SigningKey, Verifier};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};

use super::{new_id, now};
use crate::error::{AppError, AppResult};
use crate::store::signing_key;

#[derive(Clone)]
struct Published {
    key: SigningKey,
    signs_from: DateTime<Utc>,
}

pub struct KeyRing {
    keys: RwLock<Vec<Published>>,
    verifier: Arc<Verifier>,
}

impl KeyRing {
    /// Loads the published keys, creating the first one on a fresh database.
    pub async fn load(db: &DatabaseConnection, verifier: Arc<Verifier>) -> AppResult<Self> {
        let ring = KeyRing {
            keys: RwLock::new(Vec::new()),
            verifier,
        };
        ring.reload(db).await?;
        if ring.read().is_empty() {
            insert(db, now()).await?;
            ring.reload(db).await?;
        }
        Ok(ring)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Published>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the table (another replica may have rotated) and updates the verifier.
    pub async fn reload(&self, db: &DatabaseConnection) -> AppResult<()> {
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAt.is_null())
            .order_by_asc(signing_key::Column::SignsFrom)
            .all(db)
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let der = STANDARD.decode(&row.private_pkcs8).map_err(|e| {
                AppError::Internal(format!("signing key {} is corrupt: {e}", row.kid))
            })?;
            let key = SigningKey::from_pkcs8(&row.kid, &der)
                .map_err(|e| AppError::Internal(format!("signing key {}: {e}", row.kid)))?;
            keys.push(Published {
                key,
                signs_from: row.signs_from,
            });
        }
        let jwks: Vec<Jwk> = keys.iter().map(|p| p.key.jwk()).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        self.verifier.set_keys(&jwks);
        Ok(())
    }

    /// The key that signs now: the newest whose time has come.
    pub fn signer(&self) -> AppResult<SigningKey> {
        let t = now();
        let keys = self.read();
        keys.iter()
            .rev()
            .find(|p| p.signs_from <= t)
            .or_else(|| keys.first())
            .map(|p| p.key.clone())
            .ok_or_else(|| AppError::Internal("no signing key".into()))
    }

    /// Every published key, including one that has not started signing yet.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.read().iter().map(|p| p.key.jwk()).collect()
    }

    /// Publishes a new key that signs from `now + lead`.
    pub async fn rotate(
        &self,
        db: &DatabaseConnection,
        lead: std::time::Duration,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let signs_from = now() + ChronoDuration::from_std(lead).unwrap_or_default();
        let kid = insert(db, signs_from).await?;
        self.reload(db).await?;
        tracing::info!(kid = %kid, signs_from = %signs_from, "signing key published");
        Ok((kid, signs_from))
    }

    /// Rotates when the signing key is older than `every`, and retires keys whose tokens have
    /// all expired (their successor has signed for longer than `token_ttl`).
    pub async fn maintain(
        &self,
        db: &DatabaseConnection,
        every: std::time::Duration,
        lead: std::time::Duration,
        token_ttl: std::time::Duration,
    ) -> AppResult<()> {
        self.reload(db).await?;
        let t = now();
        let keys: Vec<Published> = self.read().clone();
        let pending = keys.iter().any(|p| p.signs_from > t);
        let every = ChronoDuration::from_std(every).unwrap_or_default();
        let due = keys
            .iter()
            .rev()
            .find(|p| p.signs_from <= t)
            .is_some_and(|current| t - current.signs_from > every);
        if due && !pending {
            self.rotate(db, lead).await?;
        }
        let ttl =
            ChronoDuration::from_std(token_ttl).unwrap_or_default() + ChronoDuration::minutes(1);
        for pair in keys.windows(2) {
            let (old, next) = (&pair[0], &pair[1]);
            if next.signs_from <= t && t - next.signs_from > ttl {
                signing_key::Entity::update_many()
                    .col_expr(
                        signing_key::Column::RetiredAt,
                        sea_orm::sea_query::Expr::value(t),
                    )
                    .filter(signing_key::Column::Kid.eq(old.key.kid.clone()))
                    .exec(db)
                    .await?;
                tracing::info!(kid = %old.key.kid, "signing key retired");
            }
        }
        self.reload(db).await
    }
}

async fn insert(db: &DatabaseConnection, signs_from: DateTime<Utc>) -> AppResult<String> {
    let kid = new_id();
    let key = SigningKey::generate(&kid);
    signing_key::Entity::insert(signing_key::ActiveModel {
        kid: Set(kid.clone()),
        private_pkcs8: Set(STANDARD.encode(key.pkcs8())),
        created_at: Set(now()),
        signs_from: Set(signs_from),
        retired_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(kid)
}
