//! finance through the gateway: a user's wallet, finance staff granting and reversing tokens
//! (idempotent by `Idempotency-Key`, refused to master-login tokens and to other roles), the
//! journal and accounts, and the bad requests at each boundary.

use mas_testkit::{PLATFORM, Reply, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

on_both!(
    grants_are_idempotent_and_reach_the_wallet,
    reversals_take_the_tokens_back_once,
    only_finance_staff_move_tokens,
    bad_requests_are_refused_whole
);

async fn grant(s: &TestStack, token: &str, user: &str, key: Option<&str>, body: Value) -> Reply {
    let mut req = s
        .http
        .post(s.url(&format!("/api/finance/wallets/{user}/grants")))
        .header("X-Platform", PLATFORM)
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    mas_testkit::reply(req.send().await.unwrap()).await
}

fn tokens(wallet: &Value, field: &str) -> i64 {
    // int64 fields are JSON strings in the proto3 JSON mapping.
    wallet[field].as_str().unwrap_or("0").parse().unwrap()
}

async fn grants_are_idempotent_and_reach_the_wallet(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (user, uid) = s.new_session().await;
    // A wallet that never moved money is empty.
    let w = s.get("/api/finance/wallet", &user).await;
    assert_eq!(w.status, 200, "{}", w.body);
    assert_eq!(
        (tokens(&w.body, "balance"), w.body["userId"].as_str()),
        (0, Some(uid.as_str()))
    );

    let body = json!({"tokens": 120, "reason": "welcome bonus"});
    let first = grant(&s, &admin, &uid, Some("grant-1"), body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["amount"], "120");
    assert_eq!(first.body["code"], "grant");
    // The retry is the same transfer; the tokens are granted once.
    let again = grant(&s, &admin, &uid, Some("grant-1"), body).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    // The same key with another body is refused.
    let other = grant(
        &s,
        &admin,
        &uid,
        Some("grant-1"),
        json!({"tokens": 5, "reason": "x"}),
    )
    .await;
    other.problem(409);
    let w = s.get("/api/finance/wallet", &user).await;
    assert_eq!(
        (tokens(&w.body, "balance"), tokens(&w.body, "available")),
        (120, 120)
    );

    // The user's own journal shows the grant.
    let mine = s.get("/api/finance/wallet/transfers", &user).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["transfers"][0]["memo"], "welcome bonus");

    // Finance staff: the user's wallet, the accounts, the platform's journal.
    let w = s.get(&format!("/api/finance/wallets/{uid}"), &admin).await;
    assert_eq!(tokens(&w.body, "balance"), 120);
    let accounts = s.get("/api/finance/accounts", &admin).await;
    assert_eq!(accounts.status, 200, "{}", accounts.body);
    let kinds: Vec<&str> = accounts.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"PROMOTIONS") && kinds.contains(&"WALLET"),
        "{kinds:?}"
    );

    s.stop().await;
}

async fn reversals_take_the_tokens_back_once(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (user, uid) = s.new_session().await;
    let body = json!({"tokens": 120, "reason": "welcome bonus"});
    let first = grant(&s, &admin, &uid, None, body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    // A reversal takes the tokens back, once.
    let id = first.body["id"].as_str().unwrap();
    let path = format!("/api/finance/transfers/{id}/reverse");
    let reason = json!({"reason": "granted by mistake"});
    let rev = s.post(&path, Some(&admin), reason.clone()).await;
    assert_eq!(rev.status, 201, "{}", rev.body);
    assert_eq!(
        (rev.body["code"].as_str(), rev.body["reference"].as_str()),
        (Some("reversal"), Some(id))
    );
    let same = s.post(&path, Some(&admin), reason).await;
    assert_eq!(
        same.body["id"], rev.body["id"],
        "a retried reversal is the same one"
    );
    s.post(&path, Some(&admin), json!({"reason": "again"}))
        .await
        .problem(409);
    let w = s.get("/api/finance/wallet", &user).await;
    assert_eq!(tokens(&w.body, "balance"), 0);
    // A reversal is a transfer like any other: reversing it gives the tokens back.
    let back = s
        .post(
            &format!(
                "/api/finance/transfers/{}/reverse",
                rev.body["id"].as_str().unwrap()
            ),
            Some(&admin),
            json!({"reason": "the grant stands"}),
        )
        .await;
    assert_eq!(back.status, 201, "{}", back.body);
    // Without a key every grant is a new one.
    let small = grant(
        &s,
        &admin,
        &uid,
        None,
        json!({"tokens": 10, "reason": "small"}),
    )
    .await;
    assert_eq!(small.status, 201, "{}", small.body);
    let journal = s
        .get(
            &format!("/api/finance/transfers?accountId={PLATFORM}:TOKENS:WALLET:{uid}"),
            &admin,
        )
        .await;
    assert_eq!(
        journal.body["transfers"].as_array().unwrap().len(),
        4,
        "{}",
        journal.body
    );
    s.stop().await;
}

async fn only_finance_staff_move_tokens(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (user, uid) = s.new_session().await;
    let ok = json!({"tokens": 10, "reason": "r"});
    // A USER is not finance staff.
    grant(&s, &user, &uid, None, ok.clone()).await.problem(403);
    s.get("/api/finance/accounts", &user).await.problem(403);
    s.get(&format!("/api/finance/wallets/{uid}"), &user)
        .await
        .problem(403);
    // An EXPERT with the FINANCE capability is.
    let (_, other) = s.new_user().await;
    let oid = other["user"]["id"].as_str().unwrap();
    let up = s
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{oid}"),
            Some(PLATFORM),
            Some(&admin),
            Some(json!({"role": "EXPERT", "capabilities": {"values": ["FINANCE"]}})),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let email = other["user"]["email"].as_str().unwrap();
    let login = s.login_on(PLATFORM, email, "password123").await;
    let staff = login.body["accessToken"].as_str().unwrap();
    assert_eq!(grant(&s, staff, &uid, None, ok.clone()).await.status, 201);
    // Money never moves on an impersonated (master-login) token, even a SUPERADMIN's.
    let ml = s
        .post(
            "/api/auth/master-login",
            Some(&admin),
            json!({"userId": oid}),
        )
        .await;
    assert_eq!(ml.status, 200, "{}", ml.body);
    let acting = ml.body["accessToken"].as_str().unwrap();
    grant(&s, acting, &uid, None, ok).await.problem(403);
    let w = s.get(&format!("/api/finance/wallets/{uid}"), &admin).await;
    assert_eq!(
        tokens(&w.body, "balance"),
        10,
        "only the staff's grant went through"
    );
    s.stop().await;
}

async fn bad_requests_are_refused_whole(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (_, uid) = s.new_session().await;
    // Bad input: each refused with a problem naming the field, nothing granted.
    for (body, field) in [
        (json!({"tokens": 0, "reason": "r"}), "tokens"),
        (json!({"tokens": 1_000_001, "reason": "r"}), "tokens"),
        (json!({"tokens": 5, "reason": " "}), "reason"),
        (json!({"tokens": 5}), "reason"),
    ] {
        let r = grant(&s, &admin, &uid, None, body).await;
        let detail = r.problem(400).to_owned();
        assert!(detail.contains(field), "{detail}");
    }
    grant(
        &s,
        &admin,
        "not-a-uuid",
        None,
        json!({"tokens": 5, "reason": "r"}),
    )
    .await
    .problem(400);
    s.get("/api/finance/transfers?pageToken=forged", &admin)
        .await
        .problem(400);
    s.post(
        "/api/finance/transfers/no-such-transfer/reverse",
        Some(&admin),
        json!({"reason": "r"}),
    )
    .await
    .problem(404);
    let w = s.get(&format!("/api/finance/wallets/{uid}"), &admin).await;
    assert_eq!(tokens(&w.body, "balance"), 0, "nothing was granted");
    // The internal RPC is not on the REST surface.
    let r = s
        .post(
            "/api/finance/transfers",
            Some(&admin),
            json!({"transfers": []}),
        )
        .await;
    assert!(r.status == 404 || r.status == 405, "{}", r.status);
    s.stop().await;
}
