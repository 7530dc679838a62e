//! Razorpay's metrics: payments by the state they reach, webhook outcomes, the reconciliation
//! (its lag and results), the grants made, refunds and how they settled, and mentor payouts.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::flow::State;

#[derive(Clone)]
pub struct PaymentMetrics {
    /// `finance_payments_total{state}`: payments entering each state.
    pub payments: IntCounterVec,
    /// `finance_razorpay_webhooks_total{outcome}`: verified, duplicate, refused, mismatch, ignored.
    pub webhooks: IntCounterVec,
    /// `finance_payments_stuck`: payments past RAZORPAY_RECONCILE_AFTER_SECONDS not yet
    /// captured, at the last reconciliation.
    pub stuck: IntGauge,
    /// `finance_payments_oldest_stuck_seconds`: the oldest of them (0: none).
    pub oldest_stuck: IntGauge,
    /// `finance_reconciliations_total{result}`: changed, unchanged, failed.
    pub reconciliations: IntCounterVec,
    /// `finance_payment_grants_total{kind}`: token_pack, course.
    pub grants: IntCounterVec,
    /// `finance_invoices_issued_total`: tax invoices issued.
    pub invoices: prometheus::IntCounter,
    /// `finance_refunds_total`: refunds Razorpay accepted (each with its credit note).
    pub refunds: prometheus::IntCounter,
    /// `finance_refunds_settled_total{status}`: refunds Razorpay reported processed or failed.
    pub refunds_settled: IntCounterVec,
    /// `finance_payout_runs_total{result}`: opened, failed (no payout moved, or the monthly
    /// run could not be made).
    pub payout_runs: IntCounterVec,
    /// `finance_payouts_total{state}`: payouts entering in_transit, paid, failed.
    pub payouts: IntCounterVec,
    /// `finance_pipeline_costs_total{service}`: pipeline cost entries recorded.
    pub costs: IntCounterVec,
    /// `finance_pipeline_cost_paise_total{service}`: their amount in INR paise.
    pub cost_paise: IntCounterVec,
}

impl PaymentMetrics {
    pub fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("literal metric")
        };
        let m = PaymentMetrics {
            payments: counter(
                "finance_payments_total",
                "Payments entering each state (created, failed, authorized, captured)",
                "state",
            ),
            webhooks: counter(
                "finance_razorpay_webhooks_total",
                "Razorpay webhook deliveries by outcome (verified, duplicate, refused, mismatch, ignored)",
                "outcome",
            ),
            stuck: IntGauge::new(
                "finance_payments_stuck",
                "Payments past the reconciliation threshold and not yet captured",
            )
            .expect("literal metric"),
            oldest_stuck: IntGauge::new(
                "finance_payments_oldest_stuck_seconds",
                "Age of the oldest payment past the reconciliation threshold and not captured (0: none)",
            )
            .expect("literal metric"),
            reconciliations: counter(
                "finance_reconciliations_total",
                "Payments looked up in Razorpay's API by result (changed, unchanged, failed)",
                "result",
            ),
            grants: counter(
                "finance_payment_grants_total",
                "Captured payments whose product was granted, by kind (token_pack, course)",
                "kind",
            ),
            refunds: prometheus::IntCounter::new(
                "finance_refunds_total",
                "Refunds Razorpay accepted, each with its GST credit note",
            )
            .expect("literal metric"),
            refunds_settled: counter(
                "finance_refunds_settled_total",
                "Refunds Razorpay reported by webhook, by status (processed, failed)",
                "status",
            ),
            payout_runs: counter(
                "finance_payout_runs_total",
                "Mentor payout runs by result (opened, failed)",
                "result",
            ),
            payouts: counter(
                "finance_payouts_total",
                "Mentor payouts entering each state (in_transit, paid, failed)",
                "state",
            ),
            costs: counter(
                "finance_pipeline_costs_total",
                "Pipeline cost entries recorded, by the service that recorded them",
                "service",
            ),
            cost_paise: counter(
                "finance_pipeline_cost_paise_total",
                "Pipeline costs recorded in INR paise, by service",
                "service",
            ),
            invoices: prometheus::IntCounter::new(
                "finance_invoices_issued_total",
                "GST tax invoices issued (one per captured payment)",
            )
            .expect("literal metric"),
        };
        m.register(registry);
        m.seed();
        m
    }

    fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.payments.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.webhooks.clone()),
            Box::new(self.stuck.clone()),
            Box::new(self.oldest_stuck.clone()),
            Box::new(self.reconciliations.clone()),
            Box::new(self.grants.clone()),
            Box::new(self.invoices.clone()),
            Box::new(self.refunds.clone()),
            Box::new(self.refunds_settled.clone()),
            Box::new(self.payout_runs.clone()),
            Box::new(self.payouts.clone()),
            Box::new(self.costs.clone()),
            Box::new(self.cost_paise.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
    }

    /// Every series exists from the start, so a rate over it is never empty.
    fn seed(&self) {
        for s in ["created", "failed", "authorized", "captured"] {
            self.payments.with_label_values(&[s]);
        }
        for o in ["verified", "duplicate", "refused", "mismatch", "ignored"] {
            self.webhooks.with_label_values(&[o]);
        }
        for r in ["changed", "unchanged", "failed"] {
            self.reconciliations.with_label_values(&[r]);
        }
        for k in ["token_pack", "course"] {
            self.grants.with_label_values(&[k]);
        }
        for s in ["processed", "failed"] {
            self.refunds_settled.with_label_values(&[s]);
        }
        for r in ["opened", "failed"] {
            self.payout_runs.with_label_values(&[r]);
        }
        for s in ["in_transit", "paid", "failed"] {
            self.payouts.with_label_values(&[s]);
        }
        // The services that record pipeline costs (their service accounts).
        for service in ["hire", "crm", "lms"] {
            self.costs.with_label_values(&[service]);
            self.cost_paise.with_label_values(&[service]);
        }
    }

    pub fn entered(&self, state: State) {
        self.payments.with_label_values(&[state.as_str()]).inc();
    }
}
