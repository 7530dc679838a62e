//! lms's rules, without I/O: which moves a course's state may make, what a well-formed question
//! is, and how an attempt is graded.

use mas_kit::proto::mas::lms::v1::{CourseStatus, QuestionKind};

/// The moves a course's state may make, declared once: a draft is published, a published
/// course archived, an archived one published again. Nothing returns to draft: its students and
/// links exist.
pub const COURSE_MOVES: [(CourseStatus, CourseStatus); 3] = [
    (CourseStatus::Draft, CourseStatus::Published),
    (CourseStatus::Published, CourseStatus::Archived),
    (CourseStatus::Archived, CourseStatus::Published),
];

/// Whether a course in `from` may move to `to` (staying put always may).
pub fn may_move(from: CourseStatus, to: CourseStatus) -> bool {
    from == to || COURSE_MOVES.contains(&(from, to))
}

/// A question's answer key, as the bank keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub kind: QuestionKind,
    pub options: usize,
    pub correct_options: Vec<i32>,
    pub accepted_answers: Vec<String>,
    pub points: i32,
}

/// Why a question is not well formed: the field, as the client spells it, and the reason.
pub type Malformed = (&'static str, String);

/// Checks a new question's answer key against its kind: a choice question has 2 to 10
/// options and right options among them (exactly one for single choice), a short answer has
/// accepted answers and no options.
pub fn check_question(key: &Key) -> Result<(), Malformed> {
    let bad = |field, why: &str| Err((field, why.to_owned()));
    match key.kind {
        QuestionKind::SingleChoice | QuestionKind::MultipleChoice => {
            if !(2..=10).contains(&key.options) {
                return bad("options", "a choice question has 2 to 10 options");
            }
            if !key.accepted_answers.is_empty() {
                return bad("acceptedAnswers", "only a short-answer question has them");
            }
            let mut seen = key.correct_options.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != key.correct_options.len() {
                return bad("correctOptions", "an option is listed twice");
            }
            if key
                .correct_options
                .iter()
                .any(|&i| usize::try_from(i).map_or(true, |i| i >= key.options))
            {
                return bad(
                    "correctOptions",
                    "names an option the question does not have",
                );
            }
            match (key.kind, key.correct_options.len()) {
                (_, 0) => bad("correctOptions", "at least one option is right"),
                (QuestionKind::SingleChoice, n) if n > 1 => bad(
                    "correctOptions",
                    "a single-choice question has one right option",
                ),
                _ => Ok(()),
            }
        }
        QuestionKind::ShortAnswer => {
            if key.options > 0 || !key.correct_options.is_empty() {
                return bad("options", "a short-answer question has no options");
            }
            if key.accepted_answers.is_empty() {
                return bad(
                    "acceptedAnswers",
                    "a short-answer question accepts at least one answer",
                );
            }
            Ok(())
        }
        QuestionKind::Unspecified => bad("kind", "is required"),
    }
}

/// One answer as submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Given {
    pub choices: Vec<i32>,
    pub text: String,
}

/// One question's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub correct: bool,
    pub points_awarded: i32,
}

/// Grades one answer against its key: all or nothing (a multiple-choice answer must be exactly
/// the right set; a short answer must equal an accepted one, ignoring case and surrounding
/// space). No answer scores nothing.
pub fn mark(key: &Key, given: Option<&Given>) -> Mark {
    let correct = given.is_some_and(|g| match key.kind {
        QuestionKind::SingleChoice | QuestionKind::MultipleChoice => {
            let mut chosen = g.choices.clone();
            chosen.sort_unstable();
            chosen.dedup();
            let mut right = key.correct_options.clone();
            right.sort_unstable();
            chosen == right
        }
        QuestionKind::ShortAnswer => {
            let text = g.text.trim().to_lowercase();
            !text.is_empty()
                && key
                    .accepted_answers
                    .iter()
                    .any(|a| a.trim().to_lowercase() == text)
        }
        QuestionKind::Unspecified => false,
    });
    Mark {
        correct,
        points_awarded: if correct { key.points } else { 0 },
    }
}

/// Whether `score` of `max` passes at `pass_percent` (integer arithmetic: 7 of 10 passes 70).
pub fn passes(score: i32, max: i32, pass_percent: i32) -> bool {
    i64::from(score) * 100 >= i64::from(max) * i64::from(pass_percent)
}

/// Completed lessons of `count`, in whole percent (rounded down; none: 0).
pub fn progress_percent(done: i32, count: i32) -> i32 {
    if count <= 0 {
        return 0;
    }
    i32::try_from((i64::from(done.min(count)) * 100) / i64::from(count)).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: QuestionKind, options: usize, correct: &[i32], accepted: &[&str]) -> Key {
        Key {
            kind,
            options,
            correct_options: correct.to_vec(),
            accepted_answers: accepted.iter().map(|s| (*s).to_owned()).collect(),
            points: 3,
        }
    }

    #[test]
    fn a_course_moves_only_forward_or_back_to_published() {
        use CourseStatus::*;
        assert!(may_move(Draft, Published));
        assert!(may_move(Published, Archived));
        assert!(may_move(Archived, Published));
        assert!(may_move(Draft, Draft));
        assert!(!may_move(Published, Draft));
        assert!(!may_move(Draft, Archived));
        assert!(!may_move(Archived, Draft));
    }

    #[test]
    fn questions_are_checked_against_their_kind() {
        use QuestionKind::*;
        assert!(check_question(&key(SingleChoice, 3, &[1], &[])).is_ok());
        assert!(check_question(&key(MultipleChoice, 4, &[0, 2], &[])).is_ok());
        assert!(check_question(&key(ShortAnswer, 0, &[], &["Paris"])).is_ok());
        let field = |k: Key| check_question(&k).unwrap_err().0;
        assert_eq!(field(key(SingleChoice, 3, &[0, 1], &[])), "correctOptions");
        assert_eq!(field(key(SingleChoice, 1, &[0], &[])), "options");
        assert_eq!(field(key(SingleChoice, 3, &[3], &[])), "correctOptions");
        assert_eq!(field(key(MultipleChoice, 3, &[], &[])), "correctOptions");
        assert_eq!(
            field(key(MultipleChoice, 3, &[1, 1], &[])),
            "correctOptions"
        );
        assert_eq!(
            field(key(MultipleChoice, 3, &[1], &["x"])),
            "acceptedAnswers"
        );
        assert_eq!(field(key(ShortAnswer, 2, &[], &["x"])), "options");
        assert_eq!(field(key(ShortAnswer, 0, &[], &[])), "acceptedAnswers");
        assert_eq!(field(key(Unspecified, 0, &[], &[])), "kind");
    }

    #[test]
    fn answers_score_all_or_nothing() {
        use QuestionKind::*;
        let given = |choices: &[i32], text: &str| Given {
            choices: choices.to_vec(),
            text: text.to_owned(),
        };
        let single = key(SingleChoice, 3, &[1], &[]);
        assert!(mark(&single, Some(&given(&[1], ""))).correct);
        assert_eq!(mark(&single, Some(&given(&[1], ""))).points_awarded, 3);
        assert!(!mark(&single, Some(&given(&[0], ""))).correct);
        assert!(!mark(&single, None).correct);
        let multi = key(MultipleChoice, 4, &[0, 2], &[]);
        assert!(mark(&multi, Some(&given(&[2, 0], ""))).correct);
        assert!(!mark(&multi, Some(&given(&[0], ""))).correct);
        assert!(!mark(&multi, Some(&given(&[0, 1, 2], ""))).correct);
        let short = key(ShortAnswer, 0, &[], &["Paris", "paris, france"]);
        assert!(mark(&short, Some(&given(&[], "  PARIS "))).correct);
        assert!(!mark(&short, Some(&given(&[], "Lyon"))).correct);
        assert!(!mark(&short, Some(&given(&[], "  "))).correct);
    }

    #[test]
    fn passing_and_progress_are_integer_percentages() {
        assert!(passes(7, 10, 70));
        assert!(!passes(6, 10, 70));
        assert!(passes(0, 10, 0));
        assert_eq!(progress_percent(1, 3), 33);
        assert_eq!(progress_percent(3, 3), 100);
        assert_eq!(progress_percent(4, 3), 100);
        assert_eq!(progress_percent(0, 0), 0);
    }
}

/// The streak: days in a row with activity up to `today`, or up to the day before while today
/// has none yet (a streak lasts until a whole day passes without).
pub fn streak(
    active: &std::collections::BTreeSet<chrono::NaiveDate>,
    today: chrono::NaiveDate,
) -> i32 {
    let mut day = if active.contains(&today) {
        today
    } else {
        match today.pred_opt() {
            Some(d) => d,
            None => return 0,
        }
    };
    let mut n = 0;
    while active.contains(&day) {
        n += 1;
        match day.pred_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod streak_tests {
    use std::collections::BTreeSet;

    use chrono::NaiveDate;

    use super::streak;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, day).unwrap()
    }

    #[test]
    fn a_streak_counts_days_in_a_row_and_survives_today_until_it_ends() {
        let active: BTreeSet<_> = [d(3), d(4), d(5), d(7)].into();
        assert_eq!(streak(&active, d(7)), 1);
        assert_eq!(
            streak(&active, d(6)),
            3,
            "today has nothing yet: yesterday's streak holds"
        );
        assert_eq!(streak(&active, d(8)), 1);
        assert_eq!(streak(&active, d(9)), 0);
        assert_eq!(streak(&BTreeSet::new(), d(9)), 0);
    }
}

/// What a student's at-risk score is made of, for one course (the 30 days before the run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RiskInputs {
    /// Live classes of the course that ended in the window after the student enrolled, and how
    /// many of them the student attended.
    pub classes: u32,
    pub attended: u32,
    /// Graded attempts in the window: their scores as fractions of the points possible.
    pub quiz_scores: Vec<f64>,
    /// Whole days since the student's last activity in the course (or their enrollment).
    pub idle_days: i64,
}

/// The weights of the factors (any non-negative integers; they are shares of their sum) and
/// the days of inactivity that count as fully inactive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskWeights {
    pub attendance: u32,
    pub quizzes: u32,
    pub inactivity: u32,
    pub idle_days_full: u32,
}

impl Default for RiskWeights {
    fn default() -> Self {
        RiskWeights {
            attendance: 40,
            quizzes: 35,
            inactivity: 25,
            idle_days_full: 14,
        }
    }
}

/// One factor of a score: how bad it is (0-100), its weight, the points it adds to the score,
/// and why, in words.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RiskFactor {
    pub name: String,
    pub value_percent: i32,
    pub weight: i32,
    pub points: i32,
    pub reason: String,
}

/// The explainable score (0-100, higher is more at risk): each factor with data contributes its
/// badness times its weight's share of the weights of the factors that have data. A factor
/// without data (no classes yet, no quiz taken) is listed with 0 points and says so.
pub fn risk(inputs: &RiskInputs, w: &RiskWeights) -> (i32, Vec<RiskFactor>) {
    let attendance = (inputs.classes > 0).then(|| {
        let missed = inputs.classes.saturating_sub(inputs.attended);
        (
            f64::from(missed) / f64::from(inputs.classes),
            format!("missed {missed} of {} live classes", inputs.classes),
        )
    });
    let quizzes = (!inputs.quiz_scores.is_empty()).then(|| {
        let avg = inputs.quiz_scores.iter().sum::<f64>() / inputs.quiz_scores.len() as f64;
        (
            (1.0 - avg).clamp(0.0, 1.0),
            format!(
                "average quiz score {:.0}% over {} attempts",
                avg * 100.0,
                inputs.quiz_scores.len()
            ),
        )
    });
    let full = f64::from(w.idle_days_full.max(1));
    let idle = inputs.idle_days.max(0);
    let inactivity = Some((
        (idle as f64 / full).min(1.0),
        format!("no activity for {idle} days"),
    ));
    let parts = [
        ("attendance", w.attendance, attendance, "no live class yet"),
        ("quizzes", w.quizzes, quizzes, "no quiz taken yet"),
        ("inactivity", w.inactivity, inactivity, ""),
    ];
    let total: u32 = parts
        .iter()
        .filter(|(_, _, v, _)| v.is_some())
        .map(|(_, weight, _, _)| weight)
        .sum();
    let mut score = 0.0;
    let factors = parts
        .iter()
        .map(|(name, weight, v, none)| {
            let (value, reason) = v.clone().unwrap_or((0.0, (*none).to_owned()));
            let points = if v.is_some() && total > 0 {
                value * 100.0 * f64::from(*weight) / f64::from(total)
            } else {
                0.0
            };
            score += points;
            RiskFactor {
                name: (*name).to_owned(),
                value_percent: (value * 100.0).round() as i32,
                weight: i32::try_from(*weight).unwrap_or(i32::MAX),
                points: points.round() as i32,
                reason,
            }
        })
        .collect();
    (score.round().clamp(0.0, 100.0) as i32, factors)
}

#[cfg(test)]
mod risk_tests {
    use super::*;

    #[test]
    fn the_score_is_the_weighted_share_of_the_factors_with_data() {
        let w = RiskWeights::default();
        // Missed 3 of 4 classes, quizzes at 40%, idle 7 of 14 days.
        let inputs = RiskInputs {
            classes: 4,
            attended: 1,
            quiz_scores: vec![0.3, 0.5],
            idle_days: 7,
        };
        let (score, factors) = risk(&inputs, &w);
        // 0.75*40 + 0.6*35 + 0.5*25 = 30 + 21 + 12.5 = 63.5
        assert_eq!(score, 64);
        assert_eq!(factors[0].reason, "missed 3 of 4 live classes");
        assert_eq!((factors[1].value_percent, factors[1].points), (60, 21));
        assert_eq!(factors[2].reason, "no activity for 7 days");
        // Without classes or quizzes, inactivity alone is the score.
        let (score, factors) = risk(
            &RiskInputs {
                idle_days: 14,
                ..Default::default()
            },
            &w,
        );
        assert_eq!(score, 100);
        assert_eq!(
            (factors[0].points, factors[0].reason.as_str()),
            (0, "no live class yet")
        );
        let (score, _) = risk(
            &RiskInputs {
                idle_days: 0,
                classes: 2,
                attended: 2,
                quiz_scores: vec![1.0],
            },
            &w,
        );
        assert_eq!(score, 0);
    }
}
