//! Assessments: the platform's question bank, quizzes assembled from it, and attempts the
//! server holds to their deadline. An attempt's deadline is its start plus the quiz's time limit
//! by the server's clock; a submission received after it (and SUBMIT_GRACE_SECONDS for the
//! network) is refused and the attempt expires. Grading is the domain's; the graded attempt and
//! its `lms.attempt.graded.v1` event commit together, once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mas_kit::events;
use mas_kit::paging::Page;
use mas_kit::proto::mas::lms::v1 as pb;
use pb::{AttemptState, QuestionKind};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{App, Caller, access, from_json, new_id, to_json};
use crate::domain::{self, Given, Key};
use crate::error::{AppError, AppResult};
use crate::store::entities::{attempt, candidate_link, question, quiz, quiz_question};

fn kind_of(v: i32) -> QuestionKind {
    QuestionKind::try_from(v).unwrap_or(QuestionKind::Unspecified)
}

fn question_pb(q: &question::Model) -> AppResult<pb::Question> {
    Ok(pb::Question {
        id: q.id.clone(),
        kind: q.kind,
        prompt: q.prompt.clone(),
        options: from_json("questions.options", &q.options)?,
        correct_options: from_json("questions.correct_options", &q.correct_options)?,
        accepted_answers: from_json("questions.accepted_answers", &q.accepted_answers)?,
        points: q.points,
        tags: from_json("questions.tags", &q.tags)?,
        created_at: Some(mas_kit::timestamp(q.created_at)),
    })
}

fn key_of(q: &pb::Question) -> Key {
    Key {
        kind: kind_of(q.kind),
        options: q.options.len(),
        correct_options: q.correct_options.clone(),
        accepted_answers: q.accepted_answers.clone(),
        points: q.points,
    }
}

/// Adds a question to the bank after checking its answer key against its kind.
pub async fn create_question(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::CreateQuestionRequest,
) -> AppResult<pb::Question> {
    let q = pb::Question {
        id: new_id(),
        kind: r.kind,
        prompt: r.prompt.trim().to_owned(),
        options: r.options.clone(),
        correct_options: r.correct_options.clone(),
        accepted_answers: r
            .accepted_answers
            .iter()
            .map(|a| a.trim().to_owned())
            .collect(),
        points: r.points,
        tags: r.tags.clone(),
        created_at: Some(mas_kit::timestamp(Utc::now())),
    };
    domain::check_question(&key_of(&q)).map_err(|(field, why)| AppError::invalid(field, why))?;
    question::Entity::insert(question::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(q.id.clone()),
        kind: Set(q.kind),
        prompt: Set(q.prompt.clone()),
        options: Set(to_json(&q.options)?),
        correct_options: Set(to_json(&q.correct_options)?),
        accepted_answers: Set(to_json(&q.accepted_answers)?),
        tags: Set(to_json(&q.tags)?),
        points: Set(q.points),
        created_by: Set(actor.to_owned()),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(&app.db)
    .await?;
    Ok(q)
}

/// The bank's questions, newest first.
pub async fn list_questions(
    app: &App,
    platform: &str,
    r: &pb::ListQuestionsRequest,
) -> AppResult<pb::ListQuestionsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let mut q = question::Entity::find().filter(question::Column::Platform.eq(platform));
    if r.kind != 0 {
        q = q.filter(question::Column::Kind.eq(r.kind));
    }
    let rows = q
        .order_by_desc(question::Column::CreatedAt)
        .order_by_desc(question::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListQuestionsResponse {
        questions: rows.iter().map(question_pb).collect::<AppResult<_>>()?,
        next_page_token,
    })
}

fn quiz_pb(q: &quiz::Model) -> pb::Quiz {
    pb::Quiz {
        id: q.id.clone(),
        course_id: q.course_id.clone(),
        title: q.title.clone(),
        time_limit_seconds: q.time_limit_seconds,
        pass_percent: q.pass_percent,
        question_count: q.question_count,
        total_points: q.total_points,
        created_at: Some(mas_kit::timestamp(q.created_at)),
        max_attempts: q.max_attempts,
    }
}

/// Assembles a quiz of a course from the bank's questions, in the order given.
pub async fn create_quiz(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::CreateQuizRequest,
) -> AppResult<pb::Quiz> {
    access::find(&app.db, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let found: HashMap<String, question::Model> = question::Entity::find()
        .filter(question::Column::Platform.eq(platform))
        .filter(question::Column::Id.is_in(r.question_ids.clone()))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|q| (q.id.clone(), q))
        .collect();
    if let Some(missing) = r.question_ids.iter().find(|id| !found.contains_key(*id)) {
        return Err(AppError::invalid(
            "questionIds",
            format!("{missing} is not a question of this platform's bank"),
        ));
    }
    let row = quiz::Model {
        platform: platform.to_owned(),
        id: new_id(),
        course_id: r.course_id.clone(),
        title: r.title.trim().to_owned(),
        time_limit_seconds: r.time_limit_seconds,
        pass_percent: r.pass_percent,
        max_attempts: r.max_attempts,
        question_count: i32::try_from(r.question_ids.len()).unwrap_or(i32::MAX),
        total_points: r.question_ids.iter().map(|id| found[id].points).sum(),
        created_by: actor.to_owned(),
        created_at: Utc::now(),
    };
    let txn = app.db.begin().await?;
    quiz::Entity::insert(quiz::ActiveModel::from(row.clone()))
        .exec_without_returning(&txn)
        .await?;
    for (id, position) in r.question_ids.iter().zip(1..) {
        quiz_question::Entity::insert(quiz_question::ActiveModel {
            platform: Set(platform.to_owned()),
            quiz_id: Set(row.id.clone()),
            position: Set(position),
            question_id: Set(id.clone()),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    tracing::info!(platform, quiz = %row.id, course = %row.course_id, questions = row.question_count, "quiz created");
    Ok(quiz_pb(&row))
}

/// A course's quizzes, for its students and staff.
pub async fn list_quizzes(
    app: &App,
    caller: &Caller,
    course_id: &str,
) -> AppResult<pb::ListQuizzesResponse> {
    let (c, _) = access::course(&app.db, caller, course_id).await?;
    let rows = quiz::Entity::find()
        .filter(quiz::Column::Platform.eq(&c.platform))
        .filter(quiz::Column::CourseId.eq(&c.id))
        .order_by_asc(quiz::Column::CreatedAt)
        .all(&app.db)
        .await?;
    Ok(pb::ListQuizzesResponse {
        quizzes: rows.iter().map(quiz_pb).collect(),
    })
}

/// A quiz's questions in order, with their keys.
pub(crate) async fn questions_of<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    quiz_id: &str,
) -> AppResult<Vec<pb::Question>> {
    let order = quiz_question::Entity::find()
        .filter(quiz_question::Column::Platform.eq(platform))
        .filter(quiz_question::Column::QuizId.eq(quiz_id))
        .order_by_asc(quiz_question::Column::Position)
        .all(db)
        .await?;
    let ids: Vec<String> = order.iter().map(|o| o.question_id.clone()).collect();
    let by_id: HashMap<String, question::Model> = question::Entity::find()
        .filter(question::Column::Platform.eq(platform))
        .filter(question::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|q| (q.id.clone(), q))
        .collect();
    order
        .iter()
        .filter_map(|o| by_id.get(&o.question_id))
        .map(question_pb)
        .collect()
}

/// What an attempt records of each question's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    question_id: String,
    correct: bool,
    points_awarded: i32,
    points: i32,
}

/// An attempt as its student sees it: the questions without their keys until it is graded.
pub fn attempt_pb(a: &attempt::Model, questions: &[pb::Question]) -> AppResult<pb::Attempt> {
    let graded = a.state == AttemptState::Graded as i32;
    let stored: Vec<Stored> = if graded {
        from_json("attempts.results", &a.results)?
    } else {
        Vec::new()
    };
    let keys: HashMap<&str, &pb::Question> = questions.iter().map(|q| (q.id.as_str(), q)).collect();
    Ok(pb::Attempt {
        id: a.id.clone(),
        quiz_id: a.quiz_id.clone(),
        course_id: a.course_id.clone(),
        user_id: a.user_id.clone(),
        state: a.state,
        started_at: Some(mas_kit::timestamp(a.started_at)),
        deadline: Some(mas_kit::timestamp(a.deadline)),
        submitted_at: a.submitted_at.map(mas_kit::timestamp),
        questions: questions
            .iter()
            .map(|q| pb::AttemptQuestion {
                question_id: q.id.clone(),
                kind: q.kind,
                prompt: q.prompt.clone(),
                options: q.options.clone(),
                points: q.points,
            })
            .collect(),
        score: a.score,
        max_score: a.max_score,
        passed: a.passed,
        results: stored
            .iter()
            .map(|s| {
                let key = keys.get(s.question_id.as_str());
                pb::QuestionResult {
                    question_id: s.question_id.clone(),
                    correct: s.correct,
                    points_awarded: s.points_awarded,
                    points: s.points,
                    correct_options: key.map(|k| k.correct_options.clone()).unwrap_or_default(),
                    accepted_answers: key.map(|k| k.accepted_answers.clone()).unwrap_or_default(),
                }
            })
            .collect(),
    })
}

/// The last moment a submission of `a` is taken.
pub(crate) fn closes_at(app: &App, a: &attempt::Model) -> DateTime<Utc> {
    a.deadline + chrono::Duration::from_std(app.cfg.submit_grace).unwrap_or_default()
}

/// Marks an attempt in progress expired (no-op when it is not in progress any more).
pub(crate) async fn expire<C: ConnectionTrait>(db: &C, a: &attempt::Model) -> AppResult<()> {
    attempt::Entity::update_many()
        .col_expr(
            attempt::Column::State,
            sea_orm::sea_query::Expr::value(AttemptState::Expired as i32),
        )
        .filter(attempt::Column::Platform.eq(&a.platform))
        .filter(attempt::Column::Id.eq(&a.id))
        .filter(attempt::Column::State.eq(AttemptState::InProgress as i32))
        .exec(db)
        .await?;
    Ok(())
}

async fn in_progress<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    quiz_id: &str,
    user: &str,
) -> AppResult<Option<attempt::Model>> {
    Ok(attempt::Entity::find()
        .filter(attempt::Column::Platform.eq(platform))
        .filter(attempt::Column::QuizId.eq(quiz_id))
        .filter(attempt::Column::UserId.eq(user))
        .filter(attempt::Column::State.eq(AttemptState::InProgress as i32))
        .one(db)
        .await?)
}

/// Starts an attempt (or answers the one in progress) at a quiz of a course the caller may
/// see; the quiz's attempt limit counts every attempt started.
pub async fn start_attempt(app: &App, caller: &Caller, quiz_id: &str) -> AppResult<pb::Attempt> {
    let (platform, user) = (caller.platform.as_str(), caller.user.clone());
    let q = quiz::Entity::find_by_id((platform.to_owned(), quiz_id.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("quiz"))?;
    access::course(&app.db, caller, &q.course_id).await?;
    let questions = questions_of(&app.db, platform, &q.id).await?;
    let now = Utc::now();
    if let Some(a) = in_progress(&app.db, platform, &q.id, &user).await? {
        if now <= a.deadline {
            return attempt_pb(&a, &questions);
        }
        expire(&app.db, &a).await?;
    }
    if q.max_attempts > 0 {
        let started = attempt::Entity::find()
            .filter(attempt::Column::Platform.eq(platform))
            .filter(attempt::Column::QuizId.eq(&q.id))
            .filter(attempt::Column::UserId.eq(&user))
            .count(&app.db)
            .await?;
        if started >= u64::try_from(q.max_attempts).unwrap_or(0) {
            return Err(AppError::Precondition(
                format!("this quiz allows {} attempts, all taken", q.max_attempts).into(),
            ));
        }
    }
    let row = new_attempt(&q, &user, now);
    let inserted = attempt::Entity::insert(attempt::ActiveModel::from(row.clone()))
        .exec_without_returning(&app.db)
        .await;
    match inserted {
        Ok(_) => {
            tracing::info!(platform, quiz = %q.id, attempt = %row.id, user, "attempt started");
            attempt_pb(&row, &questions)
        }
        // Two starts at once: the unique index kept one; both answer it.
        Err(e) if mas_kit::error::DbFailure::of(&e) == Some(mas_kit::error::DbFailure::Unique) => {
            let a = in_progress(&app.db, platform, &q.id, &user)
                .await?
                .ok_or_else(|| {
                    AppError::Conflict("the attempt changed meanwhile; try again".into())
                })?;
            attempt_pb(&a, &questions)
        }
        Err(e) => Err(e.into()),
    }
}

/// A new attempt at `q` by `user`, started `now`: its deadline is the quiz's time limit on.
pub(crate) fn new_attempt(q: &quiz::Model, user: &str, now: DateTime<Utc>) -> attempt::Model {
    attempt::Model {
        platform: q.platform.clone(),
        id: new_id(),
        quiz_id: q.id.clone(),
        course_id: q.course_id.clone(),
        user_id: user.to_owned(),
        state: AttemptState::InProgress as i32,
        started_at: now,
        deadline: now + chrono::Duration::seconds(i64::from(q.time_limit_seconds)),
        submitted_at: None,
        score: 0,
        max_score: q.total_points,
        passed: false,
        answers: "[]".into(),
        results: "[]".into(),
    }
}

/// The caller's attempt (staff: anyone's).
async fn own_attempt(app: &App, caller: &Caller, id: &str) -> AppResult<attempt::Model> {
    attempt::Entity::find_by_id((caller.platform.clone(), id.to_owned()))
        .one(&app.db)
        .await?
        .filter(|a| a.user_id == caller.user || caller.staff)
        .ok_or(AppError::NotFound("attempt"))
}

pub async fn get_attempt(app: &App, caller: &Caller, id: &str) -> AppResult<pb::Attempt> {
    let a = own_attempt(app, caller, id).await?;
    let questions = questions_of(&app.db, &a.platform, &a.quiz_id).await?;
    attempt_pb(&a, &questions)
}

/// The answers by question, refusing answers to questions not in the quiz or given twice.
pub(crate) fn answers_by_question(
    questions: &[pb::Question],
    answers: &[pb::Answer],
) -> AppResult<HashMap<String, Given>> {
    let ids: HashSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    let mut by = HashMap::new();
    for (i, a) in answers.iter().enumerate() {
        if !ids.contains(a.question_id.as_str()) {
            return Err(AppError::invalid(
                "answers",
                format!(
                    "answers[{i}]: {} is not a question of this quiz",
                    a.question_id
                ),
            ));
        }
        let given = Given {
            choices: a.choices.clone(),
            text: a.text.clone(),
        };
        if by.insert(a.question_id.clone(), given).is_some() {
            return Err(AppError::invalid(
                "answers",
                format!("answers[{i}]: {} is answered twice", a.question_id),
            ));
        }
    }
    Ok(by)
}

/// Submits and grades an attempt, or refuses it past its deadline by the server's clock.
pub async fn submit(
    app: &App,
    caller: &Caller,
    r: &pb::SubmitAttemptRequest,
) -> AppResult<pb::Attempt> {
    let received = Utc::now();
    let a = own_attempt(app, caller, &r.id).await?;
    if a.user_id != caller.user {
        return Err(AppError::Forbidden(
            "only its student submits an attempt".into(),
        ));
    }
    let questions = questions_of(&app.db, &a.platform, &a.quiz_id).await?;
    match AttemptState::try_from(a.state).unwrap_or(AttemptState::Unspecified) {
        AttemptState::Graded => return attempt_pb(&a, &questions),
        AttemptState::InProgress => {}
        _ => {
            return Err(AppError::Precondition(
                "this attempt expired: start a new one".into(),
            ));
        }
    }
    if received > closes_at(app, &a) {
        expire(&app.db, &a).await?;
        app.metrics.late.inc();
        tracing::info!(platform = %a.platform, attempt = %a.id, deadline = %a.deadline, %received, "late submission refused");
        return Err(AppError::Precondition(
            format!(
                "the attempt's time ran out at {}: the submission arrived too late",
                a.deadline
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
            .into(),
        ));
    }
    let given = answers_by_question(&questions, &r.answers)?;
    grade(app, a, &questions, &given, received, Taker::Student).await
}

/// Who took an attempt: its grading publishes their event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Taker<'a> {
    /// An enrolled student (or staff): `lms.attempt.graded.v1`.
    Student,
    /// hire's candidate by this link, used up with the grading: `lms.candidate_attempt.graded.v1`.
    Candidate(&'a candidate_link::Model),
}

/// Grades an attempt in progress; the graded row, the taker's event (and a candidate's link
/// used up) commit together, once. A submission that lost the race answers the winner's.
pub(crate) async fn grade(
    app: &App,
    a: attempt::Model,
    questions: &[pb::Question],
    given: &HashMap<String, Given>,
    received: DateTime<Utc>,
    taker: Taker<'_>,
) -> AppResult<pb::Attempt> {
    let quiz = quiz::Entity::find_by_id((a.platform.clone(), a.quiz_id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("quiz"))?;
    let stored: Vec<Stored> = questions
        .iter()
        .map(|q| {
            let m = domain::mark(&key_of(q), given.get(&q.id));
            Stored {
                question_id: q.id.clone(),
                correct: m.correct,
                points_awarded: m.points_awarded,
                points: q.points,
            }
        })
        .collect();
    let score: i32 = stored.iter().map(|s| s.points_awarded).sum();
    let passed = domain::passes(score, a.max_score, quiz.pass_percent);
    let answers: Vec<(&String, &Given)> = given.iter().collect();
    let txn = app.db.begin().await?;
    let graded = attempt::Entity::update_many()
        .set(attempt::ActiveModel {
            state: Set(AttemptState::Graded as i32),
            submitted_at: Set(Some(received)),
            score: Set(score),
            passed: Set(passed),
            answers: Set(to_json(&answers)?),
            results: Set(to_json(&stored)?),
            ..Default::default()
        })
        .filter(attempt::Column::Platform.eq(&a.platform))
        .filter(attempt::Column::Id.eq(&a.id))
        .filter(attempt::Column::State.eq(AttemptState::InProgress as i32))
        .exec(&txn)
        .await?;
    if graded.rows_affected == 1 {
        publish_graded(&txn, &a, taker, score, passed, received).await?;
    }
    txn.commit().await?;
    if graded.rows_affected == 1 {
        app.bus.wake();
        let result = if passed { "passed" } else { "failed" };
        app.metrics.graded.with_label_values(&[result]).inc();
        tracing::info!(platform = %a.platform, attempt = %a.id, score, max = a.max_score, passed, "attempt graded");
    }
    // Graded here or by a submission that won the race: answer what the row holds.
    let a = attempt::Entity::find_by_id((a.platform.clone(), a.id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("attempt"))?;
    attempt_pb(&a, questions)
}

/// The taker's event for a graded attempt (and a candidate's link used up), in the grading's
/// transaction.
async fn publish_graded(
    txn: &sea_orm::DatabaseTransaction,
    a: &attempt::Model,
    taker: Taker<'_>,
    score: i32,
    passed: bool,
    received: DateTime<Utc>,
) -> AppResult<()> {
    let submitted_at = Some(mas_kit::timestamp(received));
    match taker {
        Taker::Student => {
            events::publish(
                txn,
                &a.platform,
                &pb::AttemptGraded {
                    attempt_id: a.id.clone(),
                    quiz_id: a.quiz_id.clone(),
                    course_id: a.course_id.clone(),
                    user_id: a.user_id.clone(),
                    score,
                    max_score: a.max_score,
                    passed,
                    submitted_at,
                },
            )
            .await?;
        }
        Taker::Candidate(link) => {
            super::candidates::use_up(txn, link, received).await?;
            events::publish(
                txn,
                &a.platform,
                &pb::CandidateAttemptGraded {
                    link_id: link.id.clone(),
                    attempt_id: a.id.clone(),
                    quiz_id: a.quiz_id.clone(),
                    candidate_ref: link.candidate_ref.clone(),
                    score,
                    max_score: a.max_score,
                    passed,
                    submitted_at,
                },
            )
            .await?;
        }
    }
    Ok(())
}
