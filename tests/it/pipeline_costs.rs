//! The pipeline cost ledger: a service account (here hire's) records what its pipelines spent
//! through finance's internal `RecordCosts`, in INR or a currency with a rate; retries are
//! duplicates, the same id with other fields refuses the whole batch, bad entries are refused
//! with nothing written, and users cannot call it. Finance staff read the costs per pipeline
//! and month of India's calendar through the gateway, for their own platform only.

use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::identity::v1 as ipb;
use mas_testkit::{Backend, PLATFORM, TestStack};
use pb::finance_client::FinanceClient;
use tonic::Code;

use crate::paid_bookings::int;

on_both!(; with: pipeline_costs_are_recorded_once_and_reported_per_month);

const HIRE_SECRET: &str = "hire-service-account-secret-for-tests";

fn entry(id: &str, pipeline: &str, amount_minor: i64, currency: &str, at: &str) -> pb::CostEntry {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    pb::CostEntry {
        id: id.into(),
        pipeline: pipeline.into(),
        kind: "ai_call".into(),
        amount_minor,
        currency: currency.into(),
        quantity: 1200,
        occurred_at: Some(mas_kit::timestamp(t.with_timezone(&chrono::Utc))),
        detail: "gpt-4o-mini".into(),
    }
}

fn request<T>(msg: T, token: &str, platform: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r.metadata_mut()
        .insert("x-platform", platform.parse().unwrap());
    r
}

async fn hire_token(s: &TestStack) -> String {
    let mut identity = ipb::identity_client::IdentityClient::connect(format!(
        "http://{}",
        s.stack.identity_grpc_addr
    ))
    .await
    .unwrap();
    identity
        .issue_service_token(ipb::IssueServiceTokenRequest {
            service: "hire".into(),
            secret: HIRE_SECRET.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn pipeline_costs_are_recorded_once_and_reported_per_month(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.service_accounts.push(("hire".into(), HIRE_SECRET.into()));
        o.set("finance", "COST_FX_RATES", "USD:84.50");
    })
    .await
    else {
        return;
    };
    let hire = hire_token(&s).await;
    let mut finance = FinanceClient::connect(format!("http://{}", s.stack.finance_grpc_addr))
        .await
        .unwrap();
    let record = |entries: Vec<pb::CostEntry>| pb::RecordCostsRequest { entries };
    // 30 November 20:00 UTC is 1 December in India.
    let batch = vec![
        entry(
            "call-1",
            "resume-screening",
            120,
            "USD",
            "2026-11-15T10:00:00Z",
        ),
        entry(
            "call-2",
            "resume-screening",
            1,
            "USD",
            "2026-11-30T20:00:00Z",
        ),
        entry(
            "call-3",
            "course-plans",
            5_000,
            "INR",
            "2026-12-02T10:00:00Z",
        ),
    ];
    let r = finance
        .record_costs(request(record(batch.clone()), &hire, PLATFORM))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.recorded, r.duplicates), (3, 0));
    // A retry: all duplicates, nothing counted twice.
    let r = finance
        .record_costs(request(record(batch.clone()), &hire, PLATFORM))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.recorded, r.duplicates), (0, 3));
    // The same id with other fields refuses the whole batch: call-4 is not written either.
    let mut changed = batch[0].clone();
    changed.amount_minor = 999;
    let e = finance
        .record_costs(request(
            record(vec![
                entry(
                    "call-4",
                    "resume-screening",
                    7,
                    "USD",
                    "2026-11-16T10:00:00Z",
                ),
                changed,
            ]),
            &hire,
            PLATFORM,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    // Bad entries: a currency without a rate, a bad kind, a negative amount, no time, none.
    let mut no_time = entry("call-5", "x", 1, "INR", "2026-11-16T10:00:00Z");
    no_time.occurred_at = None;
    let mut bad_kind = entry("call-6", "x", 1, "INR", "2026-11-16T10:00:00Z");
    bad_kind.kind = "coffee".into();
    for bad in [
        vec![entry("call-7", "x", 1, "EUR", "2026-11-16T10:00:00Z")],
        vec![bad_kind],
        vec![entry("call-8", "x", -1, "INR", "2026-11-16T10:00:00Z")],
        vec![entry("call 9", "x", 1, "INR", "2026-11-16T10:00:00Z")],
        vec![no_time],
        vec![],
    ] {
        let e = finance
            .record_costs(request(record(bad), &hire, PLATFORM))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    // A user's token does not record costs, even an admin's.
    let admin = s.admin_token(PLATFORM).await;
    let e = finance
        .record_costs(request(record(batch.clone()), &admin, PLATFORM))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Another platform's costs stay there.
    finance
        .record_costs(request(
            record(vec![entry(
                "call-1",
                "resume-screening",
                100_000,
                "INR",
                "2026-11-15T10:00:00Z",
            )]),
            &hire,
            mas_testkit::OTHER_PLATFORM,
        ))
        .await
        .unwrap();

    let r = s
        .get(
            "/api/finance/reports/pipeline-costs?from=2026-11&to=2027-01",
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // 120 cents at 84.50: 101.40 rupees; 1 cent: 84.5 paise, rounded up to 85.
    let rows = r.body["rows"].as_array().unwrap();
    let got: Vec<(String, String, String, i64, i64, i64)> = rows
        .iter()
        .map(|row| {
            (
                row["month"].as_str().unwrap().to_owned(),
                row["service"].as_str().unwrap().to_owned(),
                row["pipeline"].as_str().unwrap().to_owned(),
                int(&row["entries"]),
                int(&row["quantity"]),
                int(&row["amountPaise"]),
            )
        })
        .collect();
    let row = |m: &str, p: &str, n, q, a| (m.to_owned(), "hire".to_owned(), p.to_owned(), n, q, a);
    assert_eq!(
        got,
        vec![
            row("2026-11", "resume-screening", 1, 1200, 10_140),
            row("2026-12", "course-plans", 1, 1200, 5_000),
            row("2026-12", "resume-screening", 1, 1200, 85),
        ]
    );
    let months: Vec<(String, i64)> = r.body["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_owned(),
                int(&m["amountPaise"]),
            )
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2026-11".into(), 10_140),
            ("2026-12".into(), 5_085),
            ("2027-01".into(), 0)
        ]
    );
    assert_eq!(int(&r.body["totalPaise"]), 15_225);
    // Bad ranges, and a user who is not finance staff.
    for q in [
        "from=2026-12&to=2026-11",
        "from=2020-01&to=2026-01",
        "from=2026-13",
    ] {
        s.get(&format!("/api/finance/reports/pipeline-costs?{q}"), &admin)
            .await
            .problem(400);
    }
    let (_, user) = s.new_user().await;
    s.get(
        "/api/finance/reports/pipeline-costs",
        user["accessToken"].as_str().unwrap(),
    )
    .await
    .problem(403);
    s.stop().await;
}
