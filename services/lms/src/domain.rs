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
