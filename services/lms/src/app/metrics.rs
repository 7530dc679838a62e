//! lms's own metrics (the kit adds the gRPC, queue and pool ones). Every labelled series exists
//! from the start, so rates and alerts never read an absent series as no data.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct LmsMetrics {
    /// `lms_enrollments_total{source}`: new enrollments (free, admin, payment, sync).
    pub enrollments: IntCounterVec,
    /// `lms_paid_enrollments_failed_total{reason}`: captured payments for a course lms cannot
    /// enrol into (unknown_course, archived_course); the event is dead-lettered.
    pub paid_failed: IntCounterVec,
    /// `lms_attempts_graded_total{result}`: passed, failed.
    pub graded: IntCounterVec,
    /// `lms_late_submissions_total`: submissions refused past their attempt's deadline.
    pub late: IntCounter,
    /// `lms_badges_awarded_total`: badges awarded (each once per student).
    pub badges: IntCounter,
    /// `lms_students_at_risk`: enrollments at or above RISK_THRESHOLD at the last risk run.
    pub at_risk: IntGauge,
}

pub const SOURCES: [&str; 4] = ["free", "admin", "payment", "sync"];
pub const PAID_FAILURES: [&str; 2] = ["unknown_course", "archived_course"];
pub const RESULTS: [&str; 2] = ["passed", "failed"];

impl LmsMetrics {
    pub fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("literal metric")
        };
        let m = LmsMetrics {
            enrollments: counter(
                "lms_enrollments_total",
                "New enrollments by how the student came (free, admin, payment, sync)",
                "source",
            ),
            paid_failed: counter(
                "lms_paid_enrollments_failed_total",
                "Captured course payments lms could not enrol (unknown_course, archived_course)",
                "reason",
            ),
            graded: counter(
                "lms_attempts_graded_total",
                "Quiz attempts graded, by result (passed, failed)",
                "result",
            ),
            late: IntCounter::new(
                "lms_late_submissions_total",
                "Quiz submissions refused because the attempt's deadline had passed",
            )
            .expect("literal metric"),
            badges: IntCounter::new("lms_badges_awarded_total", "Badges awarded to students")
                .expect("literal metric"),
            at_risk: IntGauge::new(
                "lms_students_at_risk",
                "Enrollments at or above RISK_THRESHOLD at the last lms.risk-scores run",
            )
            .expect("literal metric"),
        };
        for (vec, labels) in [
            (&m.enrollments, &SOURCES[..]),
            (&m.paid_failed, &PAID_FAILURES[..]),
            (&m.graded, &RESULTS[..]),
        ] {
            for l in labels {
                vec.with_label_values(&[*l]);
            }
        }
        for c in [&m.enrollments, &m.paid_failed, &m.graded] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
        }
        for c in [&m.late, &m.badges] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
        }
        registry
            .register(Box::new(m.at_risk.clone()))
            .expect("metric names are unique");
        m
    }
}
