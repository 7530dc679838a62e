//! Candidate quizzes for hire: a link to one attempt at a quiz, by an unguessable token (32
//! random bytes, base64url) that is the candidate's only credential. lms keeps the token's
//! SHA-256, never the token. The first open starts the attempt (its deadline runs from then), a
//! reload answers it again, the submission is graded by the server's clock as a student's, and
//! the link is used up with it: opened or submitted again, it is refused. The result goes to hire
//! as `lms.candidate_attempt.graded.v1` in the grading's transaction; the candidate sees that it
//! is graded, not the score or the key.

use base64::Engine;
use chrono::{DateTime, Utc};
use mas_kit::proto::mas::lms::v1 as pb;
use pb::AttemptState;
use ring::rand::SecureRandom;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::quizzes::{self, Taker};
use super::{App, new_id};
use crate::error::{AppError, AppResult};
use crate::store::entities::{attempt, candidate_link, quiz};

/// The only service account that may create candidate links.
pub const HIRE: &str = "service:hire";

fn hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn new_token() -> AppResult<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::internal("the system's random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// hire asks for a link to an attempt at one of the platform's quizzes.
pub async fn create(
    app: &App,
    platform: &str,
    caller: &str,
    r: &pb::CreateCandidateAttemptRequest,
) -> AppResult<pb::CandidateLink> {
    if caller != HIRE {
        return Err(AppError::Forbidden(
            "candidate quizzes are hire's: only its service account creates them".into(),
        ));
    }
    let q = quiz::Entity::find_by_id((platform.to_owned(), r.quiz_id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("quiz"))?;
    let token = new_token()?;
    let now = Utc::now();
    let row = candidate_link::Model {
        platform: platform.to_owned(),
        id: new_id(),
        token_hash: hash(&token),
        quiz_id: q.id.clone(),
        candidate_ref: r.candidate_ref.clone(),
        created_by: caller.to_owned(),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(i64::from(r.valid_for_seconds)),
        attempt_id: None,
        used_at: None,
    };
    candidate_link::Entity::insert(candidate_link::ActiveModel::from(row.clone()))
        .exec_without_returning(&app.db)
        .await?;
    tracing::info!(platform, link = %row.id, quiz = %q.id, candidate = %row.candidate_ref, "candidate link created");
    Ok(pb::CandidateLink {
        link_id: row.id,
        token,
        quiz_id: row.quiz_id,
        candidate_ref: row.candidate_ref,
        expires_at: Some(mas_kit::timestamp(row.expires_at)),
    })
}

/// The link a token opens on `platform`; an unknown token is 404 and says nothing more.
async fn link<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    token: &str,
) -> AppResult<candidate_link::Model> {
    candidate_link::Entity::find()
        .filter(candidate_link::Column::TokenHash.eq(hash(token)))
        .filter(candidate_link::Column::Platform.eq(platform))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("quiz link"))
}

fn used() -> AppError {
    AppError::Precondition("this quiz link was used: its attempt is over".into())
}

/// The attempt as the candidate sees it: graded, without the score or the answer key.
fn candidate_view(mut a: pb::Attempt) -> pb::Attempt {
    a.user_id = String::new();
    a.score = 0;
    a.passed = false;
    a.results.clear();
    a
}

async fn attempt_of<C: ConnectionTrait>(
    db: &C,
    l: &candidate_link::Model,
) -> AppResult<Option<attempt::Model>> {
    let Some(id) = &l.attempt_id else {
        return Ok(None);
    };
    Ok(
        attempt::Entity::find_by_id((l.platform.clone(), id.clone()))
            .one(db)
            .await?,
    )
}

/// Marks the link used up at `at` (with its attempt's grading or expiry).
pub(crate) async fn use_up<C: ConnectionTrait>(
    db: &C,
    l: &candidate_link::Model,
    at: DateTime<Utc>,
) -> AppResult<()> {
    candidate_link::Entity::update_many()
        .col_expr(candidate_link::Column::UsedAt, Expr::value(at))
        .filter(candidate_link::Column::Platform.eq(&l.platform))
        .filter(candidate_link::Column::Id.eq(&l.id))
        .filter(candidate_link::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Opens the quiz: starts the link's attempt, or answers the one in progress.
pub async fn open(app: &App, platform: &str, token: &str) -> AppResult<pb::Attempt> {
    let l = link(&app.db, platform, token).await?;
    if l.used_at.is_some() {
        return Err(used());
    }
    let questions = quizzes::questions_of(&app.db, platform, &l.quiz_id).await?;
    let now = Utc::now();
    if let Some(a) = attempt_of(&app.db, &l).await? {
        if a.state == AttemptState::InProgress as i32 && now <= a.deadline {
            return quizzes::attempt_pb(&a, &questions).map(candidate_view);
        }
        return Err(used());
    }
    if now > l.expires_at {
        return Err(AppError::Precondition(
            format!(
                "this quiz link expired at {}",
                l.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
            .into(),
        ));
    }
    let q = quiz::Entity::find_by_id((platform.to_owned(), l.quiz_id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("quiz"))?;
    let row = quizzes::new_attempt(&q, &format!("candidate:{}", l.id), now);
    let txn = app.db.begin().await?;
    // The link starts one attempt: of two opens at once, the second finds it taken.
    let claimed = candidate_link::Entity::update_many()
        .col_expr(
            candidate_link::Column::AttemptId,
            Expr::value(row.id.clone()),
        )
        .filter(candidate_link::Column::Platform.eq(platform))
        .filter(candidate_link::Column::Id.eq(&l.id))
        .filter(candidate_link::Column::AttemptId.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        txn.rollback().await?;
        let l = link(&app.db, platform, token).await?;
        return match attempt_of(&app.db, &l).await? {
            Some(a) if a.state == AttemptState::InProgress as i32 => {
                quizzes::attempt_pb(&a, &questions).map(candidate_view)
            }
            _ => Err(used()),
        };
    }
    attempt::Entity::insert(attempt::ActiveModel::from(row.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(platform, link = %l.id, attempt = %row.id, "candidate quiz opened");
    quizzes::attempt_pb(&row, &questions).map(candidate_view)
}

/// Submits the candidate's answers: graded once by the server's clock, the link used up.
pub async fn submit(
    app: &App,
    platform: &str,
    r: &pb::SubmitCandidateQuizRequest,
) -> AppResult<pb::Attempt> {
    let received = Utc::now();
    let l = link(&app.db, platform, &r.token).await?;
    if l.used_at.is_some() {
        return Err(used());
    }
    let a = attempt_of(&app.db, &l)
        .await?
        .ok_or_else(|| AppError::Precondition("open the quiz before submitting it".into()))?;
    if a.state != AttemptState::InProgress as i32 {
        return Err(used());
    }
    let questions = quizzes::questions_of(&app.db, platform, &a.quiz_id).await?;
    if received > quizzes::closes_at(app, &a) {
        let txn = app.db.begin().await?;
        quizzes::expire(&txn, &a).await?;
        use_up(&txn, &l, received).await?;
        txn.commit().await?;
        app.metrics.late.inc();
        tracing::info!(platform, link = %l.id, attempt = %a.id, deadline = %a.deadline, %received, "late candidate submission refused");
        return Err(AppError::Precondition(
            "the quiz's time ran out: the submission arrived too late".into(),
        ));
    }
    let given = quizzes::answers_by_question(&questions, &r.answers)?;
    quizzes::grade(app, a, &questions, &given, received, Taker::Candidate(&l))
        .await
        .map(candidate_view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_kept_as_hashes() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
    }
}
