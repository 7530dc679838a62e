//! Buying tokens and courses with Razorpay, through the gateway, against a local fake Razorpay
//! (tests/it/razorpay_fake.rs): the checkout callback, webhooks delivered twice, out of order,
//! forged or for another amount, a missed webhook reconciled on demand and by the schedule, and
//! the product granted once (tokens in the wallet, or `finance.payment.captured.v1` for a
//! course). The fake's signatures are checked with the official `razorpay` npm package.

use std::time::Duration;

use mas_testkit::{Backend, PLATFORM, Reply, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

use super::razorpay_fake::{self as fake, Fake};

on_both!(; with:
    a_token_pack_bought_at_the_checkout_is_credited_once,
    webhooks_out_of_order_forged_or_for_another_amount_change_nothing_wrong,
    a_payment_nobody_reported_is_reconciled_on_demand_and_a_course_announced,
    concurrent_captures_get_consecutive_invoice_numbers_and_gst_splits_by_state,
    refunds_take_tokens_back_pro_rata_with_credit_notes_and_never_overdraw,
    a_refund_is_settled_once_by_razorpay_s_webhook,
    the_schedule_reconciles_a_missed_webhook_and_an_outage_changes_nothing,
    bad_requests_and_callers_without_the_right_are_refused,
);

async fn stack(backend: Backend, fake: &Fake, extra: &[(&str, &str)]) -> Option<TestStack> {
    let url = fake.url.clone();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    mas_testkit::spawn_with(backend, move |o| {
        o.set("finance", "RAZORPAY_API_URL", &url);
        for (k, v) in &extra {
            o.set("finance", k, v);
        }
    })
    .await
}

async fn call(s: &TestStack, method: Method, path: &str, token: &str, body: Value) -> Reply {
    s.call(method, path, Some(PLATFORM), Some(token), Some(body))
        .await
}

/// The platform as a supplier registered in Karnataka.
fn gst_settings() -> Value {
    json!({"legalName": "MAS Learning Pvt Ltd", "gstin": "29AAGCB7383J1Z4", "stateCode": "29",
           "address": "12 MG Road, Bengaluru 560001", "invoicePrefix": "MM", "sacCode": "999293"})
}

/// A buyer in Karnataka (CGST + SGST), as a consumer.
fn billing() -> Value {
    json!({"name": "Asha Rao", "stateCode": "29"})
}

async fn configure(s: &TestStack, admin: &str) {
    let r = call(
        s,
        Method::PUT,
        "/api/finance/gst-settings",
        admin,
        gst_settings(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        s,
        Method::PUT,
        "/api/finance/razorpay",
        admin,
        json!({"keyId": fake::KEY_ID, "keySecret": fake::KEY_SECRET, "webhookSecret": fake::WEBHOOK_SECRET}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["keyId"].as_str(),
            r.body["keySecretSet"].as_bool(),
            r.body["webhookSecretSet"].as_bool()
        ),
        (Some(fake::KEY_ID), Some(true), Some(true))
    );
    let shown = s.get("/api/finance/razorpay", admin).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let text = shown.body.to_string();
    assert!(
        !text.contains(fake::KEY_SECRET) && !text.contains(fake::WEBHOOK_SECRET),
        "{text}"
    );
}

async fn product(s: &TestStack, admin: &str, body: Value) -> String {
    let r = s.post("/api/finance/products", Some(admin), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn pack_body() -> Value {
    json!({"kind": "TOKEN_PACK", "name": "50 tokens", "pricePaise": 49900, "gstRatePercent": 18, "tokens": 50})
}

async fn order(s: &TestStack, buyer: &str, product: &str) -> Value {
    order_billed(s, buyer, product, billing()).await
}

async fn order_billed(s: &TestStack, buyer: &str, product: &str, billing: Value) -> Value {
    let r = s
        .post(
            "/api/finance/orders",
            Some(buyer),
            json!({"productId": product, "billing": billing}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "CREATED");
    r.body
}

async fn webhook(
    s: &TestStack,
    body: &[u8],
    signature: Option<&str>,
    event_id: Option<&str>,
) -> Reply {
    let mut req = s
        .http
        .post(s.url("/api/finance/webhooks/razorpay"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-Razorpay-Signature", sig);
    }
    if let Some(e) = event_id {
        req = req.header("X-Razorpay-Event-Id", e);
    }
    mas_testkit::reply(req.send().await.unwrap()).await
}

fn int(v: &Value) -> i64 {
    v.as_str().unwrap_or("0").parse().unwrap()
}

async fn balance(s: &TestStack, token: &str) -> i64 {
    let w = s.get("/api/finance/wallet", token).await;
    assert_eq!(w.status, 200, "{}", w.body);
    int(&w.body["balance"])
}

/// The payment once its product is granted (the grant is a job).
async fn granted(s: &TestStack, token: &str, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let r = s.get(&format!("/api/finance/payments/{id}"), token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["grantedAt"].is_string() {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the payment was never granted: {last}");
}

async fn payment(s: &TestStack, token: &str, id: &str) -> Value {
    let r = s.get(&format!("/api/finance/payments/{id}"), token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The `finance.payment.captured.v1` events finance's outbox holds for `payment`.
async fn captured_events(s: &TestStack, payment: &str) -> Vec<Value> {
    use mas_kit::db::sea_orm::{ConnectionTrait, Statement};
    let db = mas_kit::db::connect(&s.stack.finance_config.common.database)
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT body FROM mas_outbox WHERE dest = 'finance.payment.captured.v1'",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str::<Value>(&r.try_get::<String>("", "body").unwrap()).unwrap())
        .filter(|b| b["paymentId"] == payment)
        .collect()
}

/// This financial year, as invoice numbers spell it (`26-27`), in India's time.
fn financial_year() -> String {
    use chrono::Datelike;
    let now = chrono::Utc::now() + chrono::Duration::minutes(330);
    let start = if now.month() >= 4 {
        now.year()
    } else {
        now.year() - 1
    };
    format!("{:02}-{:02}", start % 100, (start + 1) % 100)
}

/// This month of India's calendar (`2026-12`).
fn this_month() -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(330))
        .format("%Y-%m")
        .to_string()
}

/// The text of an invoice's PDF, as pdftotext (poppler, from make test-deps) extracts it.
async fn pdf_text(s: &TestStack, token: &str, invoice: &str) -> String {
    let res = s
        .http
        .get(s.url(&format!("/api/finance/invoices/{invoice}/pdf")))
        .header("X-Platform", PLATFORM)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("invoice.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let out = tokio::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .await
        .expect("pdftotext runs (make test-deps installs poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// finance's database refuses to change or remove a row of gst_audit_log.
async fn audit_log_refuses_changes(s: &TestStack) {
    use mas_kit::db::sea_orm::ConnectionTrait;
    let db = mas_kit::db::connect(&s.stack.finance_config.common.database)
        .await
        .unwrap();
    for sql in [
        "UPDATE gst_audit_log SET new_value = 'MM/26-27/999999' WHERE field = 'number'",
        "DELETE FROM gst_audit_log",
    ] {
        let e = db.execute_unprepared(sql).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
}

/// An INR account of the platform by kind: (debits posted, credits posted).
async fn inr(s: &TestStack, admin: &str, kind: &str) -> (i64, i64) {
    let r = s.get("/api/finance/accounts?pageSize=200", admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ledger"] == "INR" && a["kind"] == kind)
        .cloned()
        .unwrap_or_default();
    (int(&a["debitsPosted"]), int(&a["creditsPosted"]))
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn a_token_pack_bought_at_the_checkout_is_credited_once(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, buyer_id) = s.new_session().await;
    let listed = s.get("/api/finance/products", &buyer).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == pack)
    );

    let o = order_billed(
        &s,
        &buyer,
        &pack,
        json!({"name": "Asha Rao", "stateCode": "29", "email": "asha.rao@example.com"}),
    )
    .await;
    // 499.00 with 18% GST inside: 422.88 taxable, 76.12 GST.
    assert_eq!(
        (
            int(&o["amountPaise"]),
            int(&o["taxablePaise"]),
            int(&o["gstPaise"])
        ),
        (49_900, 42_288, 7_612)
    );
    assert_eq!(o["keyId"], fake::KEY_ID);
    let (id, order_id) = (
        o["id"].as_str().unwrap(),
        o["razorpayOrderId"].as_str().unwrap(),
    );
    assert_eq!(
        fake.state.orders.lock().unwrap()[order_id]["amount"],
        49_900
    );

    // The buyer pays; the checkout hands the page Razorpay's ids and signature.
    let paid = fake.pay(order_id, "captured", None);
    let verify = format!("/api/finance/payments/{id}/verify");
    // A signature over another payment is refused and changes nothing.
    let forged = Fake::checkout_signature(order_id, "pay_SomeoneElse01");
    let r = call(
        &s,
        Method::POST,
        &verify,
        &buyer,
        json!({"razorpayPaymentId": paid, "razorpaySignature": forged}),
    )
    .await;
    assert!(r.problem(400).contains("razorpaySignature"), "{}", r.body);
    assert_eq!(payment(&s, &buyer, id).await["state"], "CREATED");
    assert_eq!(balance(&s, &buyer).await, 0);

    let sig = Fake::checkout_signature(order_id, &paid);
    let r = call(
        &s,
        Method::POST,
        &verify,
        &buyer,
        json!({"razorpayPaymentId": paid, "razorpaySignature": sig}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["state"].as_str(),
            r.body["razorpayPaymentId"].as_str()
        ),
        (Some("CAPTURED"), Some(paid.as_str()))
    );
    granted(&s, &buyer, id).await;
    assert_eq!(balance(&s, &buyer).await, 50);

    // Razorpay's webhook for the same capture, then the same delivery again: nothing more.
    let (body, sig) = Fake::webhook("payment.captured", &fake.payment(&paid));
    let r = webhook(&s, &body, Some(&sig), Some("evt_capture_1")).await;
    assert_eq!(
        (r.status.as_u16(), r.body["outcome"].as_str()),
        (200, Some("verified")),
        "{}",
        r.body
    );
    let r = webhook(&s, &body, Some(&sig), Some("evt_capture_1")).await;
    assert_eq!(
        (r.status.as_u16(), r.body["outcome"].as_str()),
        (200, Some("duplicate")),
        "{}",
        r.body
    );
    // The callback repeated: answered, nothing granted twice.
    let r = call(&s, Method::POST, &verify, &buyer, json!({"razorpayPaymentId": paid, "razorpaySignature": Fake::checkout_signature(order_id, &paid)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(balance(&s, &buyer).await, 50);
    assert_eq!(captured_events(&s, id).await.len(), 1);
    let e = &captured_events(&s, id).await[0];
    assert_eq!(
        (
            e["userId"].as_str(),
            e["productKind"].as_str(),
            e["tokens"].as_str()
        ),
        (Some(buyer_id.as_str()), Some("token_pack"), Some("50"))
    );

    // The money: Razorpay's clearing account owes the price, split into revenue and GST.
    assert_eq!(inr(&s, &admin, "RAZORPAY_CLEARING").await, (49_900, 0));
    assert_eq!(inr(&s, &admin, "REVENUE").await, (0, 42_288));
    assert_eq!(inr(&s, &admin, "GST_PAYABLE").await, (0, 7_612));

    // The tax invoice: this financial year's series, CGST and SGST halves (Karnataka to
    // Karnataka), a PDF whose text says so, and every field in the audit log.
    let p = payment(&s, &buyer, id).await;
    let number = p["invoiceNumber"].as_str().unwrap().to_owned();
    assert!(
        number.starts_with(&format!("MM/{}/", financial_year())) && number.len() <= 16,
        "{number}"
    );
    let invoice = s
        .get(
            &format!("/api/finance/invoices/{}", p["invoiceId"].as_str().unwrap()),
            &buyer,
        )
        .await;
    assert_eq!(invoice.status, 200, "{}", invoice.body);
    let i = &invoice.body;
    assert_eq!(
        (
            int(&i["taxablePaise"]),
            int(&i["cgstPaise"]),
            int(&i["sgstPaise"]),
            int(&i["igstPaise"]),
            int(&i["totalPaise"])
        ),
        (42_288, 3_806, 3_806, 0, 49_900)
    );
    assert_eq!(
        (i["buyerName"].as_str(), i["b2b"].as_bool().unwrap_or(false)),
        (Some("Asha Rao"), false)
    );
    let text = pdf_text(&s, &buyer, i["id"].as_str().unwrap()).await;
    for want in [
        "TAX INVOICE",
        number.as_str(),
        "29AAGCB7383J1Z4",
        "Asha Rao",
        "Karnataka (29)",
        "CGST @ 9%: INR 38.06",
        "SGST @ 9%: INR 38.06",
        "Taxable value: INR 422.88",
        "Total: INR 499.00",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    let log = s
        .get(
            &format!("/api/finance/gst-audit-log?paymentId={id}"),
            &admin,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let entries = log.body["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "create"
            && e["field"] == "number"
            && e["newValue"] == number.as_str()),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "issue"),
        "{entries:?}"
    );
    audit_log_refuses_changes(&s).await;
    // The invoice is emailed to the billing address through notifier, once.
    let mut emailed = Vec::new();
    for _ in 0..200 {
        let r = s.get("/api/admin/deliveries?pageSize=200", &admin).await;
        emailed = r.body["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["template"] == "invoice")
            .collect();
        if !emailed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(emailed.len(), 1, "{emailed:?}");
    assert_eq!(
        emailed[0]["recipient"], "asha.rao@example.com",
        "{emailed:?}"
    );
    s.get(
        &format!("/api/finance/gst-audit-log?paymentId={id}"),
        &buyer,
    )
    .await
    .problem(403);

    // Another user does not see the payment or its invoice; finance staff do.
    let (other, _) = s.new_session().await;
    s.get(&format!("/api/finance/payments/{id}"), &other)
        .await
        .problem(404);
    s.get(
        &format!("/api/finance/invoices/{}", i["id"].as_str().unwrap()),
        &other,
    )
    .await
    .problem(404);
    let all = s
        .get(
            &format!("/api/finance/payments?state=CAPTURED&userId={buyer_id}"),
            &admin,
        )
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["payments"].as_array().unwrap().len(), 1);
    s.get("/api/finance/payments", &buyer).await.problem(403);
    s.stop().await;
    fake.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn webhooks_out_of_order_forged_or_for_another_amount_change_nothing_wrong(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, _) = s.new_session().await;
    let o = order(&s, &buyer, &pack).await;
    let (id, order_id) = (
        o["id"].as_str().unwrap(),
        o["razorpayOrderId"].as_str().unwrap(),
    );

    // A first attempt fails: the payment is failed, which is not final.
    let first = fake.pay(order_id, "failed", None);
    let (failed_body, failed_sig) = Fake::webhook("payment.failed", &fake.payment(&first));
    let r = webhook(&s, &failed_body, Some(&failed_sig), Some("evt_failed_1")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    let p = payment(&s, &buyer, id).await;
    assert_eq!(p["state"], "FAILED");
    assert!(p["failureReason"].as_str().unwrap().contains("UPI"), "{p}");

    // A forged delivery, a tampered body, no signature, a signature from elsewhere: 400, and
    // nothing changes.
    let second = fake.pay(order_id, "authorized", None);
    let (body, sig) = Fake::webhook("payment.authorized", &fake.payment(&second));
    let other = fake::hmac_hex("not-the-webhook-secret", &body);
    for (b, sg) in [
        (body.clone(), Some(other.as_str())),
        ([body.as_slice(), b" "].concat(), Some(sig.as_str())),
        (body.clone(), None),
        (body.clone(), Some("zz")),
    ] {
        let r = webhook(&s, &b, sg, Some("evt_forged")).await;
        assert!(
            r.problem(400).contains("X-Razorpay-Signature"),
            "{}",
            r.body
        );
    }
    assert_eq!(payment(&s, &buyer, id).await["state"], "FAILED");
    // A signed delivery without its event id cannot be deduplicated: refused.
    webhook(&s, &body, Some(&sig), None).await.problem(400);

    // The late authorization: finance captures it through Razorpay's API.
    let r = webhook(&s, &body, Some(&sig), Some("evt_auth_2")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    assert_eq!(fake.payment(&second)["status"], "captured");
    assert_eq!(payment(&s, &buyer, id).await["state"], "CAPTURED");
    // The first attempt's failure, delivered again late under a new event id: out of order,
    // changes nothing.
    let r = webhook(&s, &failed_body, Some(&failed_sig), Some("evt_failed_late")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    let p = granted(&s, &buyer, id).await;
    assert_eq!(
        (p["state"].as_str(), p["razorpayPaymentId"].as_str()),
        (Some("CAPTURED"), Some(second.as_str()))
    );
    assert_eq!(balance(&s, &buyer).await, 50);

    // A payment for another amount than its order's: recorded, nothing changes.
    let o2 = order(&s, &buyer, &pack).await;
    let (id2, order2) = (
        o2["id"].as_str().unwrap(),
        o2["razorpayOrderId"].as_str().unwrap(),
    );
    let short = fake.pay(order2, "captured", Some(100));
    let (b, sg) = Fake::webhook("payment.captured", &fake.payment(&short));
    let r = webhook(&s, &b, Some(&sg), Some("evt_short")).await;
    assert_eq!(
        (r.status.as_u16(), r.body["outcome"].as_str()),
        (200, Some("mismatch")),
        "{}",
        r.body
    );
    assert_eq!(payment(&s, &buyer, id2).await["state"], "CREATED");
    // An event finance does not act on, and a payment of an order that is not ours.
    let (b, sg) = Fake::webhook("refund.created", &fake.payment(&second));
    assert_eq!(
        webhook(&s, &b, Some(&sg), Some("evt_refund")).await.body["outcome"],
        "ignored"
    );
    let mut stranger = fake.payment(&second);
    stranger["order_id"] = "order_NotOurs00001".into();
    let (b, sg) = Fake::webhook("payment.captured", &stranger);
    assert_eq!(
        webhook(&s, &b, Some(&sg), Some("evt_stranger")).await.body["outcome"],
        "ignored"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(balance(&s, &buyer).await, 50);

    // The outcomes are counted.
    let metrics = finance_metrics(&s).await;
    for (outcome, at_least) in [
        ("refused", 4),
        ("mismatch", 1),
        ("verified", 3),
        ("ignored", 2),
    ] {
        let series = format!("finance_razorpay_webhooks_total{{outcome=\"{outcome}\"}} ");
        let n = counter(&metrics, &series);
        assert!(n >= f64::from(at_least), "{series}{n}");
    }
    s.stop().await;
    fake.stop().await;
}

/// The statuses of a payment's refunds, as finance staff list them.
async fn refund_statuses(s: &TestStack, admin: &str, payment: &Value) -> Vec<String> {
    let id = payment["id"].as_str().unwrap();
    let r = s
        .get(&format!("/api/finance/payments/{id}/refunds"), admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap().to_owned())
        .collect()
}

/// finance's /metrics, as Prometheus scrapes it.
async fn finance_metrics(s: &TestStack) -> String {
    reqwest::get(format!("http://{}/metrics", s.stack.finance_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (its name and labels, then a space) in a /metrics text.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} series"))
}

/// Refund events that are not applied: another amount (after refund 1 of the fake's), a refund
/// of our payment not recorded yet, and a refund of another system's payment.
async fn unapplied_refund_events(s: &TestStack, fake: &Fake) {
    // Another amount: recorded as a mismatch, not applied.
    let mut other = fake.state.refunds.lock().unwrap()[1].clone();
    other["amount"] = 1.into();
    fake.state.refunds.lock().unwrap().push(other.clone());
    let (b, sg) = fake.refund_webhook("refund.failed", 2);
    let r = webhook(s, &b, Some(&sg), Some("evt_rf_amount")).await;
    assert_eq!(r.body["outcome"], "mismatch", "{}", r.body);
    // A refund of our payment that is not recorded (yet: Razorpay may report an instant refund
    // before its answer is stored) is 503 and not recorded, so Razorpay delivers it again.
    other["amount"] = 100.into();
    other["id"] = "rfnd_NotYet0000001".into();
    fake.state.refunds.lock().unwrap().push(other.clone());
    let (b, sg) = fake.refund_webhook("refund.processed", 3);
    for _ in 0..2 {
        // Delivered again, it is still not a duplicate: the first was not recorded.
        webhook(s, &b, Some(&sg), Some("evt_rf_early"))
            .await
            .problem(503);
    }
    // Another system's payment's refund (on the same Razorpay account): ignored.
    let mut foreign = fake.payment(other["payment_id"].as_str().unwrap());
    foreign["id"] = "pay_NotOurs0000001".into();
    fake.state
        .payments
        .lock()
        .unwrap()
        .insert("pay_NotOurs0000001".into(), foreign);
    other["id"] = "rfnd_NotOurs000001".into();
    other["payment_id"] = "pay_NotOurs0000001".into();
    fake.state.refunds.lock().unwrap().push(other);
    let (b, sg) = fake.refund_webhook("refund.failed", 4);
    let r = webhook(s, &b, Some(&sg), Some("evt_rf_stranger")).await;
    assert_eq!(r.body["outcome"], "ignored", "{}", r.body);
}

/// Razorpay answers a refund `pending` and reports by webhook whether the money reached the
/// buyer: `processed` and `failed` are each final, a redelivery or a contradicting late event
/// changes nothing, a refund for another amount or of another system's is not applied, one of
/// ours not recorded yet is delivered again, and a failure is counted for its alert.
async fn a_refund_is_settled_once_by_razorpay_s_webhook(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, _) = s.new_session().await;
    let a = bought(&s, &fake, &buyer, &pack).await;
    for (tokens, why) in [(10, "first"), (10, "second")] {
        let r = refund(&s, &admin, &a, json!({"tokens": tokens, "reason": why})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["status"], "pending", "{}", r.body);
    }
    assert_eq!(
        refund_statuses(&s, &admin, &a).await,
        ["pending", "pending"]
    );

    // The first is processed; delivered again, and contradicted later, it stays processed.
    let (b, sg) = fake.refund_webhook("refund.processed", 0);
    let r = webhook(&s, &b, Some(&sg), Some("evt_rf_1")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    let r = webhook(&s, &b, Some(&sg), Some("evt_rf_1")).await;
    assert_eq!(r.body["outcome"], "duplicate", "{}", r.body);
    let (b, sg) = fake.refund_webhook("refund.failed", 0);
    let r = webhook(&s, &b, Some(&sg), Some("evt_rf_1_late")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    // Forged: refused, nothing changes.
    let (b, _) = fake.refund_webhook("refund.failed", 1);
    webhook(&s, &b, Some(&"0".repeat(64)), Some("evt_rf_forged"))
        .await
        .problem(400);
    unapplied_refund_events(&s, &fake).await;
    assert_eq!(
        refund_statuses(&s, &admin, &a).await,
        ["processed", "pending"]
    );

    // The second fails: recorded, and counted for FinanceRefundFailed.
    let (b, sg) = fake.refund_webhook("refund.failed", 1);
    let r = webhook(&s, &b, Some(&sg), Some("evt_rf_2")).await;
    assert_eq!(r.body["outcome"], "verified", "{}", r.body);
    assert_eq!(
        refund_statuses(&s, &admin, &a).await,
        ["processed", "failed"]
    );
    let metrics = finance_metrics(&s).await;
    assert_eq!(
        counter(
            &metrics,
            "finance_refunds_settled_total{status=\"processed\"} "
        ),
        1.0
    );
    assert_eq!(
        counter(
            &metrics,
            "finance_refunds_settled_total{status=\"failed\"} "
        ),
        1.0
    );
    s.stop().await;
    fake.stop().await;
}

async fn a_payment_nobody_reported_is_reconciled_on_demand_and_a_course_announced(
    backend: Backend,
) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let course = product(
        &s,
        &admin,
        json!({"kind": "COURSE", "name": "Rust for backends", "pricePaise": 999_900, "gstRatePercent": 18, "courseId": "course-rust-101"}),
    )
    .await;
    let (buyer, buyer_id) = s.new_session().await;
    let o = order(&s, &buyer, &course).await;
    let (id, order_id) = (
        o["id"].as_str().unwrap(),
        o["razorpayOrderId"].as_str().unwrap(),
    );
    // Paid and authorized at Razorpay; the browser closed before the callback and the webhook
    // never came.
    let paid = fake.pay(order_id, "authorized", None);
    let path = format!("/api/finance/payments/{id}/reconcile");
    // Buyers cannot reconcile.
    call(&s, Method::POST, &path, &buyer, json!({}))
        .await
        .problem(403);
    let r = call(&s, Method::POST, &path, &admin, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "CAPTURED");
    assert_eq!(fake.payment(&paid)["status"], "captured");
    granted(&s, &buyer, id).await;
    // A course grants no tokens; lms hears of it once.
    assert_eq!(balance(&s, &buyer).await, 0);
    let again = call(&s, Method::POST, &path, &admin, json!({})).await;
    assert_eq!(again.body["state"], "CAPTURED", "{}", again.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = captured_events(&s, id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0]["productKind"].as_str(),
            events[0]["courseId"].as_str(),
            events[0]["userId"].as_str(),
            events[0]["amountPaise"].as_str()
        ),
        (
            Some("course"),
            Some("course-rust-101"),
            Some(buyer_id.as_str()),
            Some("999900")
        )
    );
    s.stop().await;
    fake.stop().await;
}

async fn concurrent_captures_get_consecutive_invoice_numbers_and_gst_splits_by_state(
    backend: Backend,
) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, _) = s.new_session().await;
    // A business in Maharashtra: B2B, and IGST (another state than the supplier's).
    let b2b = order_billed(
        &s,
        &buyer,
        &pack,
        json!({"name": "Acme Tutors LLP", "stateCode": "27", "gstin": "27AAPFU0939F1ZV"}),
    )
    .await;
    let mut orders = vec![b2b];
    for _ in 1..100 {
        orders.push(order(&s, &buyer, &pack).await);
    }
    // Razorpay reports all 100 captures at once.
    let deliveries = orders.iter().enumerate().map(|(n, o)| {
        let paid = fake.pay(o["razorpayOrderId"].as_str().unwrap(), "captured", None);
        let (body, sig) = Fake::webhook("payment.captured", &fake.payment(&paid));
        let s = &s;
        async move {
            let r = webhook(s, &body, Some(&sig), Some(&format!("evt_many_{n}"))).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    });
    futures::future::join_all(deliveries).await;
    let listed = s
        .get(
            &format!(
                "/api/finance/invoices?pageSize=200&financialYear={}",
                financial_year()
            ),
            &admin,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let invoices = listed.body["invoices"].as_array().unwrap();
    let mut numbers: Vec<String> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=100)
        .map(|n| format!("MM/{}/{n:06}", financial_year()))
        .collect();
    assert_eq!(numbers, expected);
    let first = invoices
        .iter()
        .find(|i| i["paymentId"] == orders[0]["id"])
        .unwrap();
    assert_eq!(
        (
            first["b2b"].as_bool(),
            int(&first["igstPaise"]),
            int(&first["cgstPaise"]),
            first["placeOfSupply"].as_str()
        ),
        (Some(true), 7_612, 0, Some("27"))
    );
    let text = pdf_text(&s, &buyer, first["id"].as_str().unwrap()).await;
    for want in [
        "Buyer GSTIN: 27AAPFU0939F1ZV",
        "IGST @ 18%: INR 76.12",
        "Maharashtra (27)",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }

    reports_match_the_invoices(&s, &admin, &buyer).await;
    s.stop().await;
    fake.stop().await;
}

/// A token pack bought and captured through the checkout; the payment once granted.
async fn bought(s: &TestStack, fake: &Fake, buyer: &str, product: &str) -> Value {
    let o = order(s, buyer, product).await;
    let (id, order_id) = (
        o["id"].as_str().unwrap(),
        o["razorpayOrderId"].as_str().unwrap(),
    );
    let paid = fake.pay(order_id, "captured", None);
    let sig = Fake::checkout_signature(order_id, &paid);
    let r = call(
        s,
        Method::POST,
        &format!("/api/finance/payments/{id}/verify"),
        buyer,
        json!({"razorpayPaymentId": paid, "razorpaySignature": sig}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    granted(s, buyer, id).await
}

async fn refund(s: &TestStack, token: &str, payment: &Value, body: Value) -> Reply {
    let id = payment["id"].as_str().unwrap();
    call(
        s,
        Method::POST,
        &format!("/api/finance/payments/{id}/refunds"),
        token,
        body,
    )
    .await
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn refunds_take_tokens_back_pro_rata_with_credit_notes_and_never_overdraw(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, _) = s.new_session().await;
    let a = bought(&s, &fake, &buyer, &pack).await;
    let b = bought(&s, &fake, &buyer, &pack).await;
    assert_eq!(balance(&s, &buyer).await, 100);

    // 20 of A's 50 tokens: 40% of 499.00 back, and a credit note in its own series.
    let r = refund(
        &s,
        &admin,
        &a,
        json!({"tokens": 20, "reason": "asked within 7 days"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (
            int(&r.body["amountPaise"]),
            int(&r.body["taxablePaise"]),
            int(&r.body["gstPaise"]),
            int(&r.body["tokens"])
        ),
        (19_960, 16_915, 3_045, 20)
    );
    let note = r.body["creditNoteNumber"].as_str().unwrap().to_owned();
    assert_eq!(note, format!("CMM/{}/00001", financial_year()));
    assert_eq!(balance(&s, &buyer).await, 80);
    assert_eq!(fake.state.refunds.lock().unwrap()[0]["amount"], 19_960);
    let cn = s
        .get(
            &format!(
                "/api/finance/invoices/{}",
                r.body["creditNoteId"].as_str().unwrap()
            ),
            &buyer,
        )
        .await;
    assert_eq!(cn.status, 200, "{}", cn.body);
    assert_eq!(
        (
            cn.body["kind"].as_str(),
            int(&cn.body["cgstPaise"]),
            int(&cn.body["sgstPaise"]),
            int(&cn.body["totalPaise"])
        ),
        (Some("credit_note"), 1_522, 1_523, 19_960)
    );
    let text = pdf_text(&s, &buyer, cn.body["id"].as_str().unwrap()).await;
    assert!(
        text.contains("CREDIT NOTE") && text.contains(&note),
        "{text}"
    );

    // Bad refunds: more tokens than are left, paise for a pack, another role, no reason.
    refund(&s, &admin, &a, json!({"tokens": 31, "reason": "x"}))
        .await
        .problem(400);
    refund(&s, &admin, &a, json!({"amountPaise": 1000, "reason": "x"}))
        .await
        .problem(400);
    refund(&s, &buyer, &a, json!({"tokens": 1, "reason": "x"}))
        .await
        .problem(403);
    refund(&s, &admin, &a, json!({"tokens": 1}))
        .await
        .problem(400);

    // B's tokens are spent (reversed here, as a spend would take them): refunding B now would
    // take the wallet below zero, so it is refused with the reason and nothing is refunded.
    let spent = call(
        &s,
        Method::POST,
        &format!(
            "/api/finance/transfers/payment:{}:tokens/reverse",
            b["id"].as_str().unwrap()
        ),
        &admin,
        json!({"reason": "spent on bookings"}),
    )
    .await;
    assert_eq!(spent.status, 201, "{}", spent.body);
    assert_eq!(balance(&s, &buyer).await, 30);
    // The rest of A: what is left, so the two refunds add up to the payment.
    let r = refund(&s, &admin, &a, json!({"reason": "the rest"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (int(&r.body["amountPaise"]), int(&r.body["tokens"])),
        (29_940, 30)
    );
    assert_eq!(balance(&s, &buyer).await, 0);
    refund(&s, &admin, &a, json!({"reason": "again"}))
        .await
        .problem(400);
    let r = refund(&s, &admin, &b, json!({"reason": "not possible"})).await;
    assert!(r.problem(400).contains("wallet has 0 tokens"), "{}", r.body);
    assert_eq!(fake.state.refunds.lock().unwrap().len(), 2);
    let listed = s
        .get(
            &format!(
                "/api/finance/payments/{}/refunds",
                a["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(
        listed.body["refunds"].as_array().unwrap().len(),
        2,
        "{}",
        listed.body
    );

    // Razorpay down: the holds void, the wallet is as it was; then the refund goes through, and
    // a retry with the same Idempotency-Key answers it again.
    let c = bought(&s, &fake, &buyer, &pack).await;
    fake.state
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    refund(&s, &admin, &c, json!({"tokens": 10, "reason": "outage"}))
        .await
        .problem(503);
    fake.state
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let w = s.get("/api/finance/wallet", &buyer).await;
    assert_eq!(
        (int(&w.body["balance"]), int(&w.body["available"])),
        (50, 50),
        "{}",
        w.body
    );
    let keyed = || {
        s.http
            .post(s.url(&format!(
                "/api/finance/payments/{}/refunds",
                c["id"].as_str().unwrap()
            )))
            .header("X-Platform", PLATFORM)
            .bearer_auth(&admin)
            .header("Idempotency-Key", "refund-c-1")
            .json(&json!({"tokens": 10, "reason": "after the outage"}))
            .send()
    };
    let first = mas_testkit::reply(keyed().await.unwrap()).await;
    let again = mas_testkit::reply(keyed().await.unwrap()).await;
    assert_eq!(
        (first.status.as_u16(), again.status.as_u16()),
        (201, 201),
        "{}",
        first.body
    );
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(balance(&s, &buyer).await, 40);
    assert_eq!(fake.state.refunds.lock().unwrap().len(), 3);

    // The ledger still balances: every refund's INR came back out of revenue and GST payable.
    let (clearing_dr, clearing_cr) = inr(&s, &admin, "RAZORPAY_CLEARING").await;
    assert_eq!(
        clearing_dr - clearing_cr,
        3 * 49_900 - 19_960 - 29_940 - 9_980
    );
    let audit = s
        .get(
            &format!(
                "/api/finance/gst-audit-log?paymentId={}",
                a["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    let kinds: Vec<&str> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "kind")
        .filter_map(|e| e["newValue"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["invoice", "credit_note", "credit_note"],
        "{}",
        audit.body
    );
    s.stop().await;
    fake.stop().await;
}

/// The reports after `concurrent_captures_...`: 100 packs of one buyer, one of them B2B.
#[allow(
    clippy::too_many_lines,
    reason = "each report checked in turn against the same 100 invoices"
)]
async fn reports_match_the_invoices(s: &TestStack, admin: &str, buyer: &str) {
    // Every grant done (they are jobs), then the reports: this month's GST in GSTR-1's shape,
    // revenue, what the wallets hold, the journal as CSV.
    for _ in 0..600 {
        if balance(s, buyer).await == 5_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let month = this_month();
    let g = s
        .get(
            &format!("/api/finance/reports/gst-summary?month={month}"),
            admin,
        )
        .await;
    assert_eq!(g.status, 200, "{}", g.body);
    let b2b = g.body["b2b"].as_array().unwrap();
    assert_eq!(b2b.len(), 1, "{}", g.body);
    assert_eq!(
        (
            b2b[0]["buyerGstin"].as_str(),
            int(&b2b[0]["totals"]["igstPaise"])
        ),
        (Some("27AAPFU0939F1ZV"), 7_612)
    );
    let b2c = g.body["b2c"].as_array().unwrap();
    assert_eq!(b2c.len(), 1, "{}", g.body);
    assert_eq!(
        (
            b2c[0]["placeOfSupply"].as_str(),
            b2c[0]["documents"].as_i64(),
            int(&b2c[0]["totals"]["taxablePaise"]),
            int(&b2c[0]["totals"]["cgstPaise"])
        ),
        (Some("29"), Some(99), 99 * 42_288, 99 * 3_806)
    );
    let rev = s
        .get(
            &format!("/api/finance/reports/revenue?from={month}&to={month}"),
            admin,
        )
        .await;
    assert_eq!(rev.status, 200, "{}", rev.body);
    assert_eq!(
        (
            rev.body["months"][0]["invoices"].as_i64(),
            int(&rev.body["totals"]["totalPaise"])
        ),
        (Some(100), 100 * 49_900)
    );
    s.get(
        &format!("/api/finance/reports/revenue?from={month}&to=2000-01"),
        admin,
    )
    .await
    .problem(400);
    s.get("/api/finance/reports/gst-summary?month=2026-13", admin)
        .await
        .problem(400);
    s.get(
        &format!("/api/finance/reports/gst-summary?month={month}"),
        buyer,
    )
    .await
    .problem(403);
    let l = s.get("/api/finance/reports/wallet-liability", admin).await;
    assert_eq!(
        (int(&l.body["tokens"]), int(&l.body["paise"])),
        (5_000, 500_000),
        "{}",
        l.body
    );
    let res = s
        .http
        .get(s.url("/api/finance/reports/ledger.csv"))
        .header("X-Platform", PLATFORM)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/csv");
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("created_at,id,ledger,kind,"), "{csv}");
    // 100 payments of three transfers each.
    assert_eq!(
        csv.lines().filter(|l| l.contains(",payment:")).count(),
        300,
        "{csv}"
    );
    // No report crosses tenants: the other platform's staff see none of it.
    let other = s.admin_token(mas_testkit::OTHER_PLATFORM).await;
    let theirs = |path: String| {
        let (s, other) = (s, &other);
        async move {
            s.call(
                Method::GET,
                &path,
                Some(mas_testkit::OTHER_PLATFORM),
                Some(other),
                None,
            )
            .await
        }
    };
    let l = theirs("/api/finance/reports/wallet-liability".into()).await;
    assert_eq!(
        (l.status.as_u16(), int(&l.body["tokens"])),
        (200, 0),
        "{}",
        l.body
    );
    let g = theirs(format!("/api/finance/reports/gst-summary?month={month}")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert!(
        g.body["b2c"].as_array().is_none_or(Vec::is_empty),
        "{}",
        g.body
    );
    assert!(
        g.body["b2b"].as_array().is_none_or(Vec::is_empty),
        "{}",
        g.body
    );
}

async fn the_schedule_reconciles_a_missed_webhook_and_an_outage_changes_nothing(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(
        backend,
        &fake,
        &[
            ("RAZORPAY_RECONCILE_AFTER_SECONDS", "1"),
            ("RAZORPAY_RECONCILE_EVERY_SECONDS", "1"),
        ],
    )
    .await
    else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    configure(&s, &admin).await;
    let pack = product(&s, &admin, pack_body()).await;
    let (buyer, _) = s.new_session().await;

    // Razorpay is down: the reconciliation answers 503 and changes nothing.
    let o = order(&s, &buyer, &pack).await;
    let (id, order_id) = (
        o["id"].as_str().unwrap().to_owned(),
        o["razorpayOrderId"].as_str().unwrap().to_owned(),
    );
    fake.state
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    fake.pay(&order_id, "captured", None);
    let r = call(
        &s,
        Method::POST,
        &format!("/api/finance/payments/{id}/reconcile"),
        &admin,
        json!({}),
    )
    .await;
    r.problem(503);
    assert_eq!(payment(&s, &buyer, &id).await["state"], "CREATED");
    // Back up: the schedule finds the capture nobody reported.
    fake.state
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let p = granted(&s, &buyer, &id).await;
    assert_eq!(p["state"], "CAPTURED");
    assert_eq!(balance(&s, &buyer).await, 50);
    let health = reqwest::get(format!(
        "http://{}/health/ready",
        s.stack.finance_admin_addr
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    let rz = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "razorpay")
        .cloned()
        .unwrap();
    assert_eq!(rz["status"], "healthy", "{health}");
    s.stop().await;
    fake.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn bad_requests_and_callers_without_the_right_are_refused(backend: Backend) {
    let fake = Fake::start().await;
    let Some(s) = stack(backend, &fake, &[]).await else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (buyer, buyer_id) = s.new_session().await;
    // Products first: an order before the platform has GST settings, then before it has a
    // Razorpay account, is refused.
    let pack = product(&s, &admin, pack_body()).await;
    let r = s
        .post(
            "/api/finance/orders",
            Some(&buyer),
            json!({"productId": pack, "billing": billing()}),
        )
        .await;
    assert!(r.problem(400).contains("GST settings"), "{}", r.body);
    for bad in [
        json!({"legalName": "X", "gstin": "29AAGCB7383J1Z5", "stateCode": "29", "address": "a", "invoicePrefix": "MM", "sacCode": "999293"}),
        json!({"legalName": "X", "gstin": "29AAGCB7383J1Z4", "stateCode": "27", "address": "a", "invoicePrefix": "MM", "sacCode": "999293"}),
        json!({"legalName": "X", "gstin": "29AAGCB7383J1Z4", "stateCode": "29", "address": "a", "invoicePrefix": "MMMM", "sacCode": "999293"}),
        json!({"legalName": "X", "gstin": "29AAGCB7383J1Z4", "stateCode": "29", "address": "a", "invoicePrefix": "MM"}),
    ] {
        call(&s, Method::PUT, "/api/finance/gst-settings", &admin, bad)
            .await
            .problem(400);
    }
    call(
        &s,
        Method::PUT,
        "/api/finance/gst-settings",
        &buyer,
        gst_settings(),
    )
    .await
    .problem(403);
    let r = call(
        &s,
        Method::PUT,
        "/api/finance/gst-settings",
        &admin,
        gst_settings(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/finance/orders",
            Some(&buyer),
            json!({"productId": pack, "billing": billing()}),
        )
        .await;
    assert!(r.problem(400).contains("Razorpay account"), "{}", r.body);
    // Readiness says it is not configured (degraded, the service still serves).
    let health = reqwest::get(format!(
        "http://{}/health/ready",
        s.stack.finance_admin_addr
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert!(health.to_string().contains("not configured"), "{health}");

    // Credentials: finance staff only, well-formed only, never on an impersonated token.
    let creds = json!({"keyId": fake::KEY_ID, "keySecret": fake::KEY_SECRET, "webhookSecret": fake::WEBHOOK_SECRET});
    call(
        &s,
        Method::PUT,
        "/api/finance/razorpay",
        &buyer,
        creds.clone(),
    )
    .await
    .problem(403);
    for bad in [
        json!({"keyId": "key_1234567", "keySecret": "secret-123", "webhookSecret": "secret-123"}),
        json!({"keyId": fake::KEY_ID, "keySecret": "short", "webhookSecret": "secret-123"}),
        json!({"keyId": fake::KEY_ID, "keySecret": "secret-123"}),
    ] {
        call(&s, Method::PUT, "/api/finance/razorpay", &admin, bad)
            .await
            .problem(400);
    }
    let ml = s
        .post(
            "/api/auth/master-login",
            Some(&admin),
            json!({"userId": buyer_id}),
        )
        .await;
    assert_eq!(ml.status, 200, "{}", ml.body);
    let acting = ml.body["accessToken"].as_str().unwrap();
    call(&s, Method::PUT, "/api/finance/razorpay", acting, creds)
        .await
        .problem(403);
    let unset = s.get("/api/finance/razorpay", &admin).await;
    assert_ne!(unset.body["keySecretSet"], true, "{}", unset.body);
    configure(&s, &admin).await;

    // Products: each kind's fields, a price and a GST rate that exist.
    for bad in [
        json!({"kind": "TOKEN_PACK", "name": "x", "pricePaise": 10000, "gstRatePercent": 7, "tokens": 5}),
        json!({"kind": "TOKEN_PACK", "name": "x", "pricePaise": 10000, "gstRatePercent": 18, "tokens": 0}),
        json!({"kind": "TOKEN_PACK", "name": "x", "pricePaise": 10000, "gstRatePercent": 18, "tokens": 5, "courseId": "c1"}),
        json!({"kind": "COURSE", "name": "x", "pricePaise": 10000, "gstRatePercent": 18}),
        json!({"kind": "COURSE", "name": "x", "pricePaise": 10000, "gstRatePercent": 18, "courseId": "c1", "tokens": 3}),
        json!({"kind": "TOKEN_PACK", "name": "x", "pricePaise": 0, "gstRatePercent": 18, "tokens": 5}),
        json!({"kind": "TOKEN_PACK", "name": " ", "pricePaise": 10000, "gstRatePercent": 18, "tokens": 5}),
        json!({"name": "x", "pricePaise": 10000, "gstRatePercent": 18, "tokens": 5}),
    ] {
        let r = s
            .post("/api/finance/products", Some(&admin), bad.clone())
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    s.post("/api/finance/products", Some(&buyer), pack_body())
        .await
        .problem(403);

    // A retired product is not sold, and only staff list it.
    let retired = product(&s, &admin, pack_body()).await;
    let r = call(
        &s,
        Method::PUT,
        &format!("/api/finance/products/{retired}"),
        &admin,
        json!({"name": "50 tokens (old)", "pricePaise": 49900, "gstRatePercent": 18, "tokens": 50, "active": false}),
    )
    .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.body["active"].as_bool().unwrap_or(false)
        ),
        (200, false),
        "{}",
        r.body
    );
    let r = s
        .post(
            "/api/finance/orders",
            Some(&buyer),
            json!({"productId": retired, "billing": billing()}),
        )
        .await;
    r.problem(404);
    let listed = s.get("/api/finance/products", &buyer).await;
    assert!(
        !listed.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == retired)
    );
    s.get("/api/finance/products?includeInactive=true", &buyer)
        .await
        .problem(403);
    let all = s
        .get("/api/finance/products?includeInactive=true", &admin)
        .await;
    assert!(
        all.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == retired)
    );
    let unknown = uuid::Uuid::new_v4();
    s.post(
        "/api/finance/orders",
        Some(&buyer),
        json!({"productId": unknown, "billing": billing()}),
    )
    .await
    .problem(404);
    s.post(
        "/api/finance/orders",
        Some(&buyer),
        json!({"productId": "not-a-uuid", "billing": billing()}),
    )
    .await
    .problem(400);

    // Billing: a state that is none, a GSTIN with a wrong check character or of another state,
    // no billing at all.
    for bad in [
        json!({"productId": pack, "billing": {"name": "A", "stateCode": "99"}}),
        json!({"productId": pack, "billing": {"name": "A", "stateCode": "27", "gstin": "27AAPFU0939F1ZW"}}),
        json!({"productId": pack, "billing": {"name": "A", "stateCode": "29", "gstin": "27AAPFU0939F1ZV"}}),
        json!({"productId": pack, "billing": {"name": " ", "stateCode": "29"}}),
        json!({"productId": pack, "billing": {"name": "A", "stateCode": "29", "email": "not-an-address"}}),
        json!({"productId": pack}),
    ] {
        let r = s
            .post("/api/finance/orders", Some(&buyer), bad.clone())
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }

    // The callback: a signature that is no signature, someone else's payment.
    let o = order(&s, &buyer, &pack).await;
    let id = o["id"].as_str().unwrap();
    let verify = format!("/api/finance/payments/{id}/verify");
    for bad in [
        json!({"razorpayPaymentId": "pay_1", "razorpaySignature": "xyz"}),
        json!({"razorpayPaymentId": "1", "razorpaySignature": "a".repeat(64)}),
        json!({"razorpaySignature": "a".repeat(64)}),
    ] {
        call(&s, Method::POST, &verify, &buyer, bad)
            .await
            .problem(400);
    }
    let (other, _) = s.new_session().await;
    call(
        &s,
        Method::POST,
        &verify,
        &other,
        json!({"razorpayPaymentId": "pay_1", "razorpaySignature": "a".repeat(64)}),
    )
    .await
    .problem(404);
    // With an Idempotency-Key a retried order is the first one.
    let keyed = |key: &str| {
        s.http
            .post(s.url("/api/finance/orders"))
            .header("X-Platform", PLATFORM)
            .bearer_auth(&buyer)
            .header("Idempotency-Key", key)
            .json(&json!({"productId": pack, "billing": billing()}))
            .send()
    };
    let a = mas_testkit::reply(keyed("order-1").await.unwrap()).await;
    let b = mas_testkit::reply(keyed("order-1").await.unwrap()).await;
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (201, 201),
        "{} {}",
        a.body,
        b.body
    );
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(fake.state.orders.lock().unwrap().len(), 2);
    s.stop().await;
    fake.stop().await;
}

/// The fake signs as Razorpay does: the official SDK's own checks accept its checkout and
/// webhook signatures, and refuse them altered.
#[tokio::test]
async fn the_fake_razorpay_signs_like_the_official_sdk() {
    let (order, payment) = ("order_IluGWxBm9U8zJ8", "pay_IluGWxBm9U8zJ9");
    let payment_entity = json!({"id": payment, "entity": "payment", "amount": 49900, "currency": "INR", "status": "captured", "order_id": order, "captured": true});
    let (body, webhook_signature) = Fake::webhook("payment.captured", &payment_entity);
    let input = json!({
        "orderId": order, "paymentId": payment,
        "checkoutSignature": Fake::checkout_signature(order, payment),
        "keySecret": fake::KEY_SECRET,
        "body": String::from_utf8(body).unwrap(),
        "webhookSignature": webhook_signature,
        "webhookSecret": fake::WEBHOOK_SECRET,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/razorpay-verify.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (make test installs the razorpay package)");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the check finishes within 60 s")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdict,
        json!({"checkout": true, "webhook": true, "forgedCheckout": false, "forgedWebhook": false})
    );
}
