//! Paid meetings to mentor payouts through the gateway: bank accounts (sealed, shown masked,
//! bad ones refused), a payout run that moves each mentor's unpaid earnings to payouts in
//! transit once (a retry answers the first run, a second run finds nothing to pay), the bank
//! file, the bank's confirmation (a bad file applies nothing; paid leaves transit for good,
//! failed returns to earnings and the next run pays it again; a contradiction is a conflict),
//! and the monthly run on its schedule, once per month however often it fires.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use mas_testkit::{PLATFORM, Reply, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

use crate::meetings as m;
use crate::paid_bookings::{book, grant, int, posted, priced_mentor};

on_both!(paid_meetings_are_paid_out_once_through_the_bank_files);

/// Books and ends `n` meetings of the mentor's (50 tokens each), so each earns them 40.
async fn paid_meetings(s: &TestStack, mentor: (&str, &str), student: &str, n: i64) {
    let (id, token) = mentor;
    for i in 0..n {
        let slot = m::slot(s, token, Utc::now() + Span::minutes(1 + 40 * i), 30).await;
        let b = book(s, student, &slot).await;
        assert_eq!(b.status, 201, "{}", b.body);
        let meeting = b.body["meetingId"].as_str().unwrap().to_owned();
        let e = m::call(
            s,
            Method::POST,
            &format!("/api/meetings/{meeting}/end"),
            token,
            Some(json!({})),
        )
        .await;
        assert_eq!(e.status, 200, "{}", e.body);
    }
    // The settlement runs after the event, as a job.
    let mut total = 0;
    for _ in 0..150 {
        let r = s.get("/api/mentor-earnings", token).await;
        total = int(&r.body["totalMentorTokens"]);
        if total == 40 * n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mentor {id} earned {total}, expected {}", 40 * n);
}

fn account(holder: &str, number: &str, ifsc: &str) -> Value {
    json!({"account": {"holderName": holder, "accountNumber": number, "ifsc": ifsc}})
}

async fn request(
    s: &TestStack,
    method: Method,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = s
        .http
        .request(method, s.url(path))
        .header("X-Platform", PLATFORM)
        .bearer_auth(token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    mas_testkit::reply(req.send().await.unwrap()).await
}

async fn new_run(s: &TestStack, admin: &str, key: &str) -> Reply {
    let body = json!({"note": "November"});
    request(
        s,
        Method::POST,
        "/api/finance/payout-runs",
        admin,
        Some(key),
        Some(body),
    )
    .await
}

async fn confirm(s: &TestStack, admin: &str, run: &str, csv: &str) -> Reply {
    let path = format!("/api/finance/payout-runs/{run}/confirmations");
    request(
        s,
        Method::POST,
        &path,
        admin,
        None,
        Some(json!({"csv": csv})),
    )
    .await
}

/// The run's payout to `mentor`.
fn payout_of<'a>(run: &'a Value, mentor: &str) -> &'a Value {
    run["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mentorId"] == json!(mentor))
        .unwrap_or_else(|| panic!("no payout to {mentor}: {run}"))
}

/// Each earning's payout id, as the mentor reads them.
async fn payout_ids(s: &TestStack, token: &str) -> Vec<String> {
    let r = s.get("/api/mentor-earnings", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["earnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payoutId"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Bank accounts: set by the mentor or by finance staff, shown masked, bad ones refused.
async fn bank_accounts(s: &TestStack, admin: &str, a: (&str, &str), b: &str, student: &str) {
    let mine = "/api/mentor-earnings/bank-account";
    for bad in [
        account("Asha Rao", "12345678901", "SBIN123456"),
        account("Asha Rao", "1234ABCD901", "SBIN0001234"),
        account("", "12345678901", "SBIN0001234"),
        json!({}),
    ] {
        request(s, Method::PUT, mine, a.1, None, Some(bad))
            .await
            .problem(400);
    }
    request(s, Method::GET, mine, a.1, None, None)
        .await
        .problem(404);
    let set = request(
        s,
        Method::PUT,
        mine,
        a.1,
        None,
        Some(account("Asha Rao", "123456789012", "SBIN0001234")),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["accountLast4"], json!("9012"));
    let got = request(s, Method::GET, mine, a.1, None, None).await;
    assert_eq!(got.body, set.body);
    assert!(
        !got.body.to_string().contains("123456789012"),
        "never the full number: {}",
        got.body
    );
    let theirs = format!("/api/finance/mentors/{b}/bank-account");
    let body = account("Ravi Kumar", "987654321", "HDFC0ABC123");
    request(s, Method::PUT, &theirs, student, None, Some(body.clone()))
        .await
        .problem(403);
    let staff = request(s, Method::PUT, &theirs, admin, None, Some(body)).await;
    assert_eq!(staff.status, 200, "{}", staff.body);
    assert_eq!(staff.body["accountLast4"], json!("4321"));
    let read = request(
        s,
        Method::GET,
        &format!("/api/finance/mentors/{}/bank-account", a.0),
        admin,
        None,
        None,
    )
    .await;
    assert_eq!(read.body["holderName"], json!("Asha Rao"));
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn paid_meetings_are_paid_out_once_through_the_bank_files(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (a, at) = priced_mentor(&s, &admin, 50).await;
    let (b, bt) = priced_mentor(&s, &admin, 50).await;
    let (c, ct) = priced_mentor(&s, &admin, 50).await;
    let (student, st) = m::user(&s, &admin, "USER").await;
    grant(&s, &admin, &student, 500).await;
    paid_meetings(&s, (&a, &at), &st, 2).await;
    paid_meetings(&s, (&b, &bt), &st, 1).await;
    paid_meetings(&s, (&c, &ct), &st, 1).await;
    bank_accounts(&s, &admin, (&a, &at), &b, &st).await;

    // Nothing to pay until meetings are paid: here A (80) and B (40) are; C has no account.
    let run = new_run(&s, &admin, "run-1").await;
    assert_eq!(run.status, 201, "{}", run.body);
    let id = run.body["id"].as_str().unwrap().to_owned();
    assert_eq!(run.body["state"], json!("open"));
    assert_eq!(run.body["trigger"], json!("on_demand"));
    assert_eq!(run.body["payoutCount"], json!(2));
    assert_eq!(run.body["mentorsWithoutBankAccount"], json!(1));
    let pa = payout_of(&run.body, &a);
    assert_eq!(
        (
            int(&pa["tokens"]),
            int(&pa["amountPaise"]),
            pa["meetings"].clone()
        ),
        (80, 8000, json!(2))
    );
    assert_eq!(pa["state"], json!("in_transit"));
    assert_eq!(pa["accountLast4"], json!("9012"));
    let pb = payout_of(&run.body, &b);
    assert_eq!((int(&pb["tokens"]), int(&pb["amountPaise"])), (40, 4000));
    let (pa, pb) = (
        pa["id"].as_str().unwrap().to_owned(),
        pb["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        posted(&s, &admin, "TOKENS:PAYOUTS_IN_TRANSIT").await,
        (120, 0)
    );
    assert_eq!(
        posted(&s, &admin, &format!("TOKENS:EARNINGS:{a}")).await,
        (100, 100),
        "commission 20 and the payout 80 out"
    );
    assert_eq!(payout_ids(&s, &at).await, vec![pa.clone(), pa.clone()]);
    assert_eq!(payout_ids(&s, &ct).await, vec![String::new()]);

    // A retry answers the first run; another run has nothing left to pay.
    let again = new_run(&s, &admin, "run-1").await;
    assert_eq!(
        (again.status.as_u16(), again.body["id"].clone()),
        (201, json!(id))
    );
    let none = new_run(&s, &admin, "run-2").await;
    assert!(
        none.problem(400).contains("nothing to pay"),
        "{}",
        none.body
    );
    request(
        &s,
        Method::POST,
        "/api/finance/payout-runs",
        &st,
        Some("run-3"),
        Some(json!({})),
    )
    .await
    .problem(403);
    let list = s.get("/api/finance/payout-runs", &admin).await;
    assert_eq!(
        list.body["runs"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    assert_eq!(int(&list.body["runs"][0]["tokens"]), 120);

    // The bank file: every payout in transit, with the full account number.
    let res = s
        .http
        .get(s.url(&format!("/api/finance/payout-runs/{id}/bank-file")))
        .header("X-Platform", PLATFORM)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv");
    let file = res.text().await.unwrap();
    let mut lines: Vec<&str> = file.lines().collect();
    assert_eq!(
        lines.remove(0),
        "payout_id,beneficiary_name,account_number,ifsc,amount_inr,mentor_id,narration"
    );
    lines.sort_unstable();
    let mut want = vec![
        format!("{pa},Asha Rao,123456789012,SBIN0001234,80.00,{a},{PLATFORM} payout {id}"),
        format!("{pb},Ravi Kumar,987654321,HDFC0ABC123,40.00,{b},{PLATFORM} payout {id}"),
    ];
    want.sort_unstable();
    assert_eq!(lines, want);

    // A bad file applies nothing, and names each bad line.
    let header = "payout_id,status,bank_reference,reason";
    for (bad, says) in [
        (
            format!("{header}\n{pa},paid,UTR1,\nnot-a-payout,paid,UTR2,"),
            "line 3",
        ),
        (
            format!("{header}\n{pa},refunded,UTR1,"),
            "must be paid or failed",
        ),
        (format!("{header}\n{pa},paid,,"), "bank_reference"),
        (
            format!("{header}\n{pa},paid,UTR1,\n{pa},paid,UTR1,"),
            "listed twice",
        ),
        (header.to_owned(), "no rows"),
    ] {
        let r = confirm(&s, &admin, &id, &bad).await;
        assert!(r.problem(400).contains(says), "{says}: {}", r.body);
    }
    confirm(
        &s,
        &admin,
        "no-such-run",
        &format!("{header}\n{pa},paid,UTR1,"),
    )
    .await
    .problem(404);
    let still = s
        .get(&format!("/api/finance/payout-runs/{id}"), &admin)
        .await;
    assert_eq!(payout_of(&still.body, &a)["state"], json!("in_transit"));

    // A is paid; B's bank returns the money: back to B's earnings, free for the next run.
    let file = format!("{header}\n{pa},paid,UTR0001,\n{pb},failed,,account closed");
    let done = confirm(&s, &admin, &id, &file).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["state"], json!("completed"));
    assert_eq!(payout_of(&done.body, &a)["bankReference"], json!("UTR0001"));
    assert_eq!(payout_of(&done.body, &b)["state"], json!("failed"));
    assert_eq!(
        payout_of(&done.body, &b)["failureReason"],
        json!("account closed")
    );
    assert_eq!(
        posted(&s, &admin, "TOKENS:PAYOUTS_IN_TRANSIT").await,
        (120, 120)
    );
    assert_eq!(posted(&s, &admin, "TOKENS:TOKEN_ISSUANCE").await.0, 80);
    assert_eq!(
        posted(&s, &admin, &format!("TOKENS:EARNINGS:{b}")).await,
        (90, 50)
    );
    assert_eq!(payout_ids(&s, &bt).await, vec![String::new()]);
    // The same file again changes nothing; a row contradicting a settled payout is a conflict.
    let same = confirm(&s, &admin, &id, &file).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(posted(&s, &admin, "TOKENS:TOKEN_ISSUANCE").await.0, 80);
    confirm(&s, &admin, &id, &format!("{header}\n{pa},failed,,oops"))
        .await
        .problem(409);

    // The next run pays B again (a new account), and never A.
    let body = account("Ravi Kumar", "555566667777", "ICIC0001111");
    request(
        &s,
        Method::PUT,
        &format!("/api/finance/mentors/{b}/bank-account"),
        &admin,
        None,
        Some(body),
    )
    .await;
    let second = new_run(&s, &admin, "run-4").await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.body["payoutCount"], json!(1));
    assert_eq!(payout_of(&second.body, &b)["accountLast4"], json!("7777"));

    // The monthly run, fired now from /admin/queues: pays C once, however often it fires.
    let body = account("Meera Iyer", "111122223333", "UTIB0000123");
    request(
        &s,
        Method::PUT,
        "/api/mentor-earnings/bank-account",
        &ct,
        None,
        Some(body),
    )
    .await;
    for _ in 0..2 {
        s.trigger_schedule("finance", "finance.payout-monthly")
            .await;
    }
    let mut monthly = vec![];
    for _ in 0..100 {
        let list = s.get("/api/finance/payout-runs", &admin).await;
        monthly = list.body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == json!("monthly"))
            .cloned()
            .collect();
        if !monthly.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(monthly.len(), 1, "{monthly:?}");
    let month = s
        .get(
            &format!(
                "/api/finance/payout-runs/{}",
                monthly[0]["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert!(
        month.body["id"].as_str().unwrap().starts_with("monthly-"),
        "{}",
        month.body
    );
    assert_eq!(month.body["payoutCount"], json!(1), "{}", month.body);
    assert_eq!(int(&payout_of(&month.body, &c)["tokens"]), 40);
    s.stop().await;
}
