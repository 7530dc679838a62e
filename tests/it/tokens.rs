//! Access tokens the gateway must refuse, and key rotation that logs nobody out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mas_kit::auth::{Claims, ISSUER, SigningKey, TokenKind};
use mas_testkit::{Backend, PLATFORM, TestStack};

on_both!(
    forged_tokens_are_refused;
    with: an_expired_token_is_refused,
    key_rotation_publishes_before_signing_and_logs_nobody_out,
);
use reqwest::Method;
use serde_json::{Value, json};

fn claims(sub: &str, exp_in: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: ISSUER.into(),
        sub: sub.into(),
        platform: PLATFORM.into(),
        role: "SUPERADMIN".into(),
        caps: vec![],
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        exp: now + exp_in,
        act: None,
        kind: TokenKind::Access,
    }
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

async fn jwks(s: &TestStack) -> Vec<String> {
    let r = s
        .call(Method::GET, "/.well-known/jwks.json", None, None, None)
        .await;
    r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn forged_tokens_are_refused(s: TestStack) {
    let (_, auth) = s.new_user().await;
    let real = auth["accessToken"].as_str().unwrap();
    let uid = auth["user"]["id"].as_str().unwrap();
    let kid = kid_of(real);
    let keys = s
        .call(Method::GET, "/.well-known/jwks.json", None, None, None)
        .await;
    assert_eq!(keys.body["keys"][0]["kty"], "OKP");
    assert_eq!(keys.body["keys"][0]["alg"], "EdDSA");

    // alg none, claiming the real kid.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(uid, 600)).unwrap())
    );
    // A key we made, under the real kid: wrong signature.
    let wrong_key = SigningKey::generate(&kid).sign(&claims(uid, 600)).unwrap();
    // A key nobody published.
    let unknown_kid = SigningKey::generate("not-a-published-kid")
        .sign(&claims(uid, 600))
        .unwrap();
    // HS256 signed with the public key as the secret (the classic confusion attack).
    let x = keys.body["keys"][0]["x"].as_str().unwrap();
    let hs = {
        let header =
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string());
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(uid, 600)).unwrap());
        format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(x))
    };
    for (name, token) in [
        ("alg none", none.as_str()),
        ("wrong key", &wrong_key),
        ("unknown kid", &unknown_kid),
        ("HS256", &hs),
        ("garbage", "abc.def"),
    ] {
        let r = s.get("/api/admin/users", token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        r.problem(401);
    }
    s.stop().await;
}

async fn an_expired_token_is_refused(backend: Backend) {
    let Some(s) =
        mas_testkit::spawn_with(backend, |o| o.set("identity", "ACCESS_TOKEN_TTL_SECS", "1")).await
    else {
        return;
    };
    let (_, auth) = s.new_user().await;
    let token = auth["accessToken"].as_str().unwrap();
    assert_eq!(s.get("/api/auth/me", token).await.status, 200);
    // exp is one second out; verifiers allow five seconds of clock skew.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert!(
        s.get("/api/auth/me", token)
            .await
            .problem(401)
            .contains("expired")
    );
    s.stop().await;
}

async fn key_rotation_publishes_before_signing_and_logs_nobody_out(backend: Backend) {
    let Some(s) =
        mas_testkit::spawn_with(backend, |o| o.set("identity", "KEY_PUBLISH_LEAD_SECS", "2")).await
    else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    let old_kid = kid_of(&root);
    assert_eq!(jwks(&s).await, std::slice::from_ref(&old_kid));

    let rotated = s
        .post("/api/admin/signing-keys/rotate", Some(&root), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_kid = rotated.body["kid"].as_str().unwrap().to_owned();
    // Published at once, not yet signing.
    assert_eq!(jwks(&s).await, [old_kid.clone(), new_kid.clone()]);
    assert_eq!(kid_of(&s.admin_token(PLATFORM).await), old_kid);

    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let fresh = s.admin_token(PLATFORM).await;
    assert_eq!(kid_of(&fresh), new_kid);
    // Old and new tokens both work.
    assert_eq!(s.get("/api/auth/me", &root).await.status, 200);
    assert_eq!(s.get("/api/auth/me", &fresh).await.status, 200);
    s.stop().await;
}
