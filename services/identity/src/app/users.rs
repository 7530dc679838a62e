//! Users: the profile a user edits, and administration by ADMINs and SUPERADMINs of their own
//! platform, following the role ranking (crate::domain::may_manage).

use mas_kit::auth::Principal;
use mas_kit::proto::mas::identity::v1 as pb;
use mas_kit::proto::{Capability, Role};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};

use mas_kit::paging::Page;

use super::{App, new_id, now, timestamp};
use crate::domain::{self, Email, Password, caps_from_column, caps_to_column};
use crate::error::{AppError, AppResult, DbFailure};
use crate::store::{refresh_token, user};

pub fn to_pb(u: &user::Model) -> pb::User {
    pb::User {
        id: u.id.clone(),
        platform: u.platform.clone(),
        email: u.email.clone(),
        full_name: u.full_name.clone(),
        phone: u.phone.clone(),
        role: Role::from_str_name(&u.role).unwrap_or_default() as i32,
        capabilities: caps_from_column(&u.capabilities)
            .into_iter()
            .map(|c| c as i32)
            .collect(),
        active: u.active,
        created_at: Some(timestamp(u.created_at)),
        updated_at: Some(timestamp(u.updated_at)),
    }
}

pub fn role_of(u: &user::Model) -> Role {
    Role::from_str_name(&u.role).unwrap_or_default()
}

/// A user of `platform` by id; other platforms' users do not exist from here.
pub async fn find(app: &App, platform: &str, id: &str) -> AppResult<user::Model> {
    user::Entity::find_by_id(id.to_owned())
        .filter(user::Column::Platform.eq(platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Most ids one `GetContacts` call resolves.
const MAX_CONTACTS: usize = 100;

/// Email, name and phone of the given users of a platform (for notifications); unknown ids are
/// left out.
pub async fn contacts(app: &App, r: pb::GetContactsRequest) -> AppResult<pb::GetContactsResponse> {
    if r.platform.trim().is_empty() {
        return Err(AppError::invalid("platform", "is required"));
    }
    if r.user_ids.is_empty() || r.user_ids.len() > MAX_CONTACTS {
        return Err(AppError::invalid(
            "userIds",
            format!("1 to {MAX_CONTACTS} user ids"),
        ));
    }
    if r.user_ids.iter().any(|id| id.is_empty() || id.len() > 64) {
        return Err(AppError::invalid("userIds", "ids are 1 to 64 characters"));
    }
    let rows = user::Entity::find()
        .filter(user::Column::Platform.eq(r.platform.trim()))
        .filter(user::Column::Id.is_in(r.user_ids))
        .all(&app.db)
        .await?;
    Ok(pb::GetContactsResponse {
        contacts: rows
            .into_iter()
            .map(|u| pb::Contact {
                id: u.id,
                email: u.email,
                full_name: u.full_name,
                phone: u.phone,
                active: u.active,
            })
            .collect(),
    })
}

pub async fn find_by_email(
    app: &App,
    platform: &str,
    email: &Email,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Platform.eq(platform))
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&app.db)
        .await?)
}

/// Inserts a user; a duplicate email on the platform is a conflict.
/// A user about to be stored, with its password already hashed.
pub struct NewUser<'a> {
    pub platform: &'a str,
    pub email: &'a Email,
    pub password_hash: String,
    pub full_name: String,
    pub phone: String,
    pub role: Role,
    pub caps: &'a [Capability],
}

pub async fn insert(app: &App, new: NewUser<'_>) -> AppResult<user::Model> {
    let NewUser {
        platform,
        email,
        password_hash,
        full_name,
        phone,
        role,
        caps,
    } = new;
    if find_by_email(app, platform, email).await?.is_some() {
        return Err(AppError::AlreadyExists(
            "a user with this email already exists".into(),
        ));
    }
    let t = now();
    let model = user::ActiveModel {
        id: Set(new_id()),
        platform: Set(platform.to_owned()),
        email: Set(email.as_str().to_owned()),
        full_name: Set(full_name),
        phone: Set(phone),
        role: Set(role.as_str_name().to_owned()),
        capabilities: Set(caps_to_column(caps)),
        password_hash: Set(password_hash),
        active: Set(true),
        created_at: Set(t),
        updated_at: Set(t),
    };
    match model.insert(&app.db).await {
        Ok(m) => Ok(m),
        // Lost a race with another sign-up of the same email: the unique index decided.
        Err(e) if DbFailure::of(&e) == Some(DbFailure::Unique) => Err(AppError::AlreadyExists(
            "a user with this email already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn update_me(app: &App, me: &Principal, req: pb::UpdateMeRequest) -> AppResult<pb::User> {
    let u = find(app, &me.platform, &me.subject).await?;
    let mut m = u.into_active_model();
    if let Some(name) = req.full_name {
        m.full_name = Set(domain::parse_name("fullName", &name, true)?);
    }
    if let Some(phone) = req.phone {
        m.phone = Set(domain::parse_name("phone", &phone, false)?);
    }
    m.updated_at = Set(now());
    Ok(to_pb(&m.update(&app.db).await?))
}

pub async fn list(
    app: &App,
    platform: &str,
    req: pb::ListUsersRequest,
) -> AppResult<pb::ListUsersResponse> {
    let page = Page::parse(req.page_size, &req.page_token)?;
    let mut q = user::Entity::find().filter(user::Column::Platform.eq(platform));
    let query = req.query.trim().to_lowercase();
    if !query.is_empty() {
        let pattern = format!("%{}%", query.replace(['\\', '%', '_'], ""));
        q = q.filter(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(user::Column::Email))).like(pattern.clone()))
                .add(Expr::expr(Func::lower(Expr::col(user::Column::FullName))).like(pattern)),
        );
    }
    if req.role != 0 {
        let role = domain::parse_role(req.role)?;
        q = q.filter(user::Column::Role.eq(role.as_str_name()));
    }
    let rows = q
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListUsersResponse {
        next_page_token,
        users: rows.iter().map(to_pb).collect(),
    })
}

pub async fn create(
    app: &App,
    actor: &Principal,
    req: pb::CreateUserRequest,
) -> AppResult<pb::User> {
    let email = Email::parse(&req.email)?;
    let password = Password::parse("password", &req.password)?;
    let full_name = domain::parse_name("fullName", &req.full_name, true)?;
    let phone = domain::parse_name("phone", &req.phone, false)?;
    let role = if req.role == 0 {
        Role::User
    } else {
        domain::parse_role(req.role)?
    };
    let caps = domain::parse_capabilities(&req.capabilities)?;
    domain::may_manage(actor.role, Role::User, Some(role))?;
    let hash = app.hasher.hash(password.expose()).await?;
    let u = insert(
        app,
        NewUser {
            platform: &actor.platform,
            email: &email,
            password_hash: hash,
            full_name,
            phone,
            role,
            caps: &caps,
        },
    )
    .await?;
    tracing::info!(target_user = %u.id, role = %u.role, "user created");
    Ok(to_pb(&u))
}

pub async fn update(
    app: &App,
    actor: &Principal,
    req: pb::UpdateUserRequest,
) -> AppResult<pb::User> {
    let u = find(app, &actor.platform, &req.id).await?;
    let new_role = req.role.map(domain::parse_role).transpose()?;
    if u.id == actor.subject && (new_role.is_some() || req.active == Some(false)) {
        return Err(AppError::Forbidden(
            "you cannot change your own role or deactivate yourself".into(),
        ));
    }
    domain::may_manage(actor.role, role_of(&u), new_role)?;
    let mut m = u.clone().into_active_model();
    if let Some(name) = req.full_name {
        m.full_name = Set(domain::parse_name("fullName", &name, true)?);
    }
    if let Some(phone) = req.phone {
        m.phone = Set(domain::parse_name("phone", &phone, false)?);
    }
    if let Some(role) = new_role {
        m.role = Set(role.as_str_name().to_owned());
    }
    if let Some(caps) = req.capabilities {
        m.capabilities = Set(caps_to_column(&domain::parse_capabilities(&caps.values)?));
    }
    if let Some(active) = req.active {
        m.active = Set(active);
    }
    m.updated_at = Set(now());
    let updated = m.update(&app.db).await?;
    tracing::info!(target_user = %updated.id, role = %updated.role, capabilities = %updated.capabilities, active = updated.active, "user updated");
    Ok(to_pb(&updated))
}

pub async fn delete(app: &App, actor: &Principal, id: &str) -> AppResult<()> {
    let u = find(app, &actor.platform, id).await?;
    if u.id == actor.subject {
        return Err(AppError::Forbidden("you cannot delete yourself".into()));
    }
    domain::may_manage(actor.role, role_of(&u), None)?;
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::UserId.eq(u.id.clone()))
        .exec(&app.db)
        .await?;
    user::Entity::delete_by_id(u.id.clone())
        .exec(&app.db)
        .await?;
    tracing::info!(target_user = %u.id, "user deleted");
    Ok(())
}
