//! Paid enrollment: finance's `finance.payment.captured.v1` for a course product enrols its
//! buyer, in the consumer's own transaction (the inbox's), so a redelivery finds the message
//! handled and a second event for the same purchase finds the enrollment there.

use std::sync::Arc;

use async_trait::async_trait;
use mas_bus::{EventHandler, HandlerError, Incoming};
use mas_kit::events::{self, Event};
use mas_kit::proto::mas::finance::v1::PaymentCaptured;
use mas_kit::proto::mas::lms::v1::{CourseStatus, EnrollmentSource};
use sea_orm::DatabaseTransaction;

use super::{App, access, enrollments};

/// The events bound to lms's payment queue (declared in proto/mas/lms/v1/events.proto).
pub const EVENTS: [&str; 1] = [PaymentCaptured::ROUTING_KEY];

/// The product kind of a course in finance's event.
pub const COURSE: &str = "course";

pub struct PaymentEnrollments {
    pub app: Arc<App>,
}

#[async_trait]
impl EventHandler for PaymentEnrollments {
    async fn handle(&self, msg: &Incoming, tx: &DatabaseTransaction) -> Result<(), HandlerError> {
        let paid: PaymentCaptured = events::decode(msg)?;
        if paid.product_kind != COURSE {
            return Ok(());
        }
        let platform = &msg.platform;
        let fail = |reason: &'static str, why: String| {
            self.app
                .metrics
                .paid_failed
                .with_label_values(&[reason])
                .inc();
            tracing::error!(platform, payment = %paid.payment_id, course = %paid.course_id, user = %paid.user_id, reason, "paid enrollment failed");
            HandlerError::permanent(format!("payment {}: {why}", paid.payment_id))
        };
        let course = access::find(tx, platform, &paid.course_id)
            .await
            .map_err(|e| HandlerError::new(format!("reading course {}: {e}", paid.course_id)))?;
        let Some(course) = course else {
            return Err(fail(
                "unknown_course",
                format!(
                    "no course {} on {platform}: fix the product, then retry",
                    paid.course_id
                ),
            ));
        };
        if course.status == CourseStatus::Archived as i32 {
            return Err(fail(
                "archived_course",
                format!(
                    "course {} is archived: publish it again, then retry",
                    course.id
                ),
            ));
        }
        let (_, created) = enrollments::insert(
            tx,
            &course,
            &paid.user_id,
            EnrollmentSource::Payment,
            &paid.payment_id,
        )
        .await
        .map_err(|e| {
            HandlerError::new(format!("enrolling for payment {}: {e}", paid.payment_id))
        })?;
        if created {
            self.app
                .metrics
                .enrollments
                .with_label_values(&["payment"])
                .inc();
        }
        Ok(())
    }
}
