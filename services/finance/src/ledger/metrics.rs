//! The ledger's metrics: transfers by outcome (and refusal), the size of each group commit, and
//! the pending transfers still holding money.

use mas_kit::proto::mas::finance::v1::Refusal;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use super::apply::Applied;

#[derive(Clone)]
pub struct LedgerMetrics {
    /// `finance_transfers_total{outcome, refusal}`.
    pub transfers: IntCounterVec,
    /// `finance_ledger_batch_transfers`: transfers per transaction.
    pub batch_size: Histogram,
    /// `finance_holds_pending`: pending transfers not yet posted or voided (the expiry schedule
    /// counts them).
    pub holds_pending: IntGauge,
    /// `finance_holds_oldest_overdue_seconds`: how long past its timeout the oldest unvoided
    /// pending transfer is (0: none).
    pub holds_overdue: IntGauge,
    /// `finance_booking_settlements_total{result}`: paid bookings posted, voided, or left
    /// unpaid (the hold expired and the wallet no longer covered it).
    pub bookings_settled: IntCounterVec,
    /// `finance_booking_holds_past_end_seconds`: how long after its meeting's end the oldest
    /// unsettled booking hold is (0: none).
    pub bookings_past_end: IntGauge,
    /// `finance_ledger_phase_seconds{phase}`: each step of a ledger transaction (begin, open,
    /// pendings, lock, transfers, resolutions, apply, write, commit), so a slow batch says where.
    pub phase: HistogramVec,
}

/// The steps of one ledger transaction, in order.
pub const PHASES: [&str; 9] = [
    "begin",
    "open",
    "pendings",
    "lock",
    "transfers",
    "resolutions",
    "apply",
    "write",
    "commit",
];

impl LedgerMetrics {
    pub fn new(registry: &Registry) -> Self {
        let m = LedgerMetrics {
            transfers: IntCounterVec::new(
                Opts::new(
                    "finance_transfers_total",
                    "Ledger transfers by outcome (created, exists, refused) and refusal",
                ),
                &["outcome", "refusal"],
            )
            .expect("literal metric"),
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "finance_ledger_batch_transfers",
                    "Transfers committed per ledger transaction (group commit)",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ]),
            )
            .expect("literal metric"),
            holds_pending: IntGauge::new(
                "finance_holds_pending",
                "Pending transfers (holds) not yet posted or voided",
            )
            .expect("literal metric"),
            holds_overdue: IntGauge::new(
                "finance_holds_oldest_overdue_seconds",
                "Seconds past its timeout of the oldest pending transfer not yet voided",
            )
            .expect("literal metric"),
            bookings_settled: IntCounterVec::new(
                Opts::new(
                    "finance_booking_settlements_total",
                    "Paid bookings settled, by result (posted, voided, unpaid)",
                ),
                &["result"],
            )
            .expect("literal metric"),
            bookings_past_end: IntGauge::new(
                "finance_booking_holds_past_end_seconds",
                "Seconds since its meeting ended of the oldest booking hold not yet settled",
            )
            .expect("literal metric"),
            phase: HistogramVec::new(
                HistogramOpts::new(
                    "finance_ledger_phase_seconds",
                    "Time of each step of a ledger transaction (group commit)",
                )
                .buckets(vec![
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                    0.128, 0.5,
                ]),
                &["phase"],
            )
            .expect("literal metric"),
        };
        for c in [
            Box::new(m.transfers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.phase.clone()),
            Box::new(m.batch_size.clone()),
            Box::new(m.holds_pending.clone()),
            Box::new(m.holds_overdue.clone()),
            Box::new(m.bookings_settled.clone()),
            Box::new(m.bookings_past_end.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for result in ["posted", "voided", "unpaid"] {
            m.bookings_settled.with_label_values(&[result]);
        }
        for p in PHASES {
            m.phase.with_label_values(&[p]);
        }
        m
    }

    pub fn count(&self, results: &[Applied]) {
        for r in results {
            let (outcome, refusal) = match r {
                Applied::Created(_) => ("created", ""),
                Applied::Exists(_) => ("exists", ""),
                Applied::Refused(why, _) => ("refused", refusal_name(*why)),
            };
            self.transfers.with_label_values(&[outcome, refusal]).inc();
        }
    }
}

fn refusal_name(r: Refusal) -> &'static str {
    r.as_str_name()
}
