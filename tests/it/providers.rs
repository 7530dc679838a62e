//! WhatsApp (Cloud API) and SMS (Exotel) deliveries against fake provider servers that answer
//! the way the real APIs do, including their error bodies; WhatsApp's approved templates and its
//! 24-hour window for free text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

on_both!(; with:
    whatsapp_and_sms_go_out_through_their_providers,
    whatsapp_free_text_needs_a_message_from_the_recipient_within_24_hours,
);

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, String, String)>>,
    reject_whatsapp: AtomicBool,
}

async fn fake(req: HttpRequest, body: web::Bytes, seen: web::Data<Seen>) -> HttpResponse {
    let path = req.path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.requests.lock().unwrap().push((
        path.clone(),
        auth,
        String::from_utf8_lossy(&body).into_owned(),
    ));
    if path.ends_with("/messages") {
        if seen.reject_whatsapp.load(Ordering::SeqCst) {
            return HttpResponse::Unauthorized().json(json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}));
        }
        return HttpResponse::Ok()
            .json(json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.HBgM"}]}));
    }
    if path.ends_with("/Sms/send.json") {
        return HttpResponse::Ok()
            .json(json!({"SMSMessage": {"Sid": "b6cf1d4f", "Status": "queued"}}));
    }
    HttpResponse::NotFound().json(json!({"RestException": {"Status": 404, "Message": "not found"}}))
}

async fn delivery(s: &TestStack, token: &str, recipient: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = s
            .get(
                &format!(
                    "/api/admin/deliveries?recipient=%2B{}",
                    recipient.trim_start_matches('+')
                ),
                token,
            )
            .await;
        last = r.body["deliveries"][0].clone();
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery never reached {status}: {last}");
}

/// The fake providers and a stack whose notifier sends through them.
async fn stack_with_fake_providers(
    backend: Backend,
) -> Option<(web::Data<Seen>, actix_web::dev::ServerHandle, TestStack)> {
    let seen = web::Data::new(Seen::default());
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(fake))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let running = server.run();
    let handle = running.handle();
    tokio::spawn(running);

    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        for (k, v) in [
            ("WHATSAPP_TOKEN", "wa-token"),
            ("WHATSAPP_PHONE_NUMBER_ID", "1055"),
            ("WHATSAPP_API_BASE", base.as_str()),
            ("EXOTEL_SID", "acme"),
            ("EXOTEL_API_KEY", "key"),
            ("EXOTEL_API_TOKEN", "exo-secret"),
            ("EXOTEL_FROM", "MASOTP"),
            ("EXOTEL_API_BASE", base.as_str()),
            ("NOTIFY_RETRY_ATTEMPTS", "2"),
            ("NOTIFY_RETRY_FIRST_MS", "100"),
        ] {
            o.set("notifier", k, v);
        }
    })
    .await
    else {
        handle.stop(false).await;
        return None;
    };
    Some((seen, handle, s))
}

async fn whatsapp_and_sms_go_out_through_their_providers(backend: Backend) {
    let Some((seen, handle, s)) = stack_with_fake_providers(backend).await else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    let send = |channel: &'static str, to: &'static str| {
        let (s, root) = (&s, root.clone());
        async move {
            s.call(
                Method::POST,
                "/api/admin/notifications/send",
                Some(PLATFORM),
                Some(&root),
                Some(json!({"channel": channel, "recipient": to, "template": "otp", "variablesJson": "{\"code\": \"482913\"}"})),
            )
            .await
        }
    };

    let r = send("whatsapp", "+919876543210").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    let d = delivery(&s, &root, "+919876543210", "sent").await;
    assert_eq!(d["providerMessageId"], "wamid.HBgM");
    let r = send("sms", "+919812345678").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = delivery(&s, &root, "+919812345678", "sent").await;
    assert_eq!(d["providerMessageId"], "b6cf1d4f");
    {
        let reqs = seen.requests.lock().unwrap();
        let (path, auth, body) = &reqs[0];
        assert_eq!(path, "/1055/messages");
        assert_eq!(auth, "Bearer wa-token");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["to"], "919876543210");
        // The OTP is business-initiated: the seeded approved template, its code a parameter.
        assert_eq!(body["type"], "template", "{body}");
        assert_eq!(body["template"]["name"], "otp");
        assert_eq!(body["template"]["language"]["code"], "en");
        assert_eq!(
            body["template"]["components"],
            json!([{"type": "body", "parameters": [{"type": "text", "text": "482913"}]}])
        );
        let (path, auth, body) = &reqs[1];
        assert_eq!(path, "/v1/Accounts/acme/Sms/send.json");
        assert!(auth.starts_with("Basic "), "{auth}");
        assert!(
            body.contains("To=%2B919812345678") && body.contains("From=MASOTP"),
            "{body}"
        );
    }

    // A rejected token: the provider's own explanation is recorded.
    seen.reject_whatsapp.store(true, Ordering::SeqCst);
    let r = send("whatsapp", "+919800000001").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = delivery(&s, &root, "+919800000001", "failed").await;
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("HTTP 401: Invalid OAuth access token"),
        "{d}"
    );
    assert_eq!(d["attempts"], 2);
    s.stop().await;
    handle.stop(false).await;
}

/// The bodies the fake WhatsApp server received, in order.
fn whatsapp_bodies(seen: &Seen) -> Vec<Value> {
    seen.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, ..)| path.ends_with("/messages"))
        .map(|(_, _, body)| serde_json::from_str(body).unwrap())
        .collect()
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn whatsapp_free_text_needs_a_message_from_the_recipient_within_24_hours(backend: Backend) {
    let Some((seen, handle, s)) = stack_with_fake_providers(backend).await else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    let put = |name: &'static str, body: Value| {
        let (s, root) = (&s, root.clone());
        async move {
            s.call(
                Method::PUT,
                &format!("/api/admin/notification-templates/whatsapp/{name}"),
                Some(PLATFORM),
                Some(&root),
                Some(body),
            )
            .await
        }
    };
    let send = |template: &'static str, to: &'static str| {
        let (s, root) = (&s, root.clone());
        async move {
            s.call(
                Method::POST,
                "/api/admin/notifications/send",
                Some(PLATFORM),
                Some(&root),
                Some(
                    json!({"channel": "whatsapp", "recipient": to, "template": template,
                    "variablesJson": "{\"name\": \"Asha\", \"when\": \"5 pm\"}"}),
                ),
            )
            .await
        }
    };
    // A free-text template (no approved template named).
    let r = put(
        "thanks",
        json!({"body": "Thanks {{ name }}, we got your message."}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Nobody wrote: free text is refused up front, with the reason.
    let r = send("thanks", "+919800000010").await;
    let detail = r.problem(400).to_owned();
    assert!(detail.contains("24 hours"), "{detail}");
    assert!(detail.contains("approved template"), "{detail}");
    assert_eq!(r.body["code"], "failed_precondition", "{}", r.body);

    // The recipient wrote an hour ago (as the webhook will record it: no '+'): free text goes.
    let db = mas_kit::db::connect(&s.stack.notifier_config.common.database)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    notifier::app::whatsapp::record_inbound(
        &db,
        PLATFORM,
        "919800000010",
        now - chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    // A late, older event does not close the window again.
    notifier::app::whatsapp::record_inbound(
        &db,
        PLATFORM,
        "+919800000010",
        now - chrono::Duration::hours(30),
    )
    .await
    .unwrap();
    let r = send("thanks", "+919800000010").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = delivery(&s, &root, "+919800000010", "sent").await;
    assert_eq!(d["providerMessageId"], "wamid.HBgM");
    let body = whatsapp_bodies(&seen).pop().unwrap();
    assert_eq!(body["type"], "text", "{body}");
    assert_eq!(body["text"]["body"], "Thanks Asha, we got your message.");

    // A message 25 hours ago no longer opens the window; nor does one on another platform.
    notifier::app::whatsapp::record_inbound(
        &db,
        PLATFORM,
        "+919800000011",
        now - chrono::Duration::hours(25),
    )
    .await
    .unwrap();
    notifier::app::whatsapp::record_inbound(&db, mas_testkit::OTHER_PLATFORM, "+919800000011", now)
        .await
        .unwrap();
    assert!(
        send("thanks", "+919800000011")
            .await
            .problem(400)
            .contains("24 hours")
    );
    // Bad input to record_inbound is an error, not a row.
    assert!(
        notifier::app::whatsapp::record_inbound(&db, PLATFORM, "12ab", now)
            .await
            .is_err()
    );

    // An approved template goes to anyone, its parameters rendered in order.
    let r = put(
        "reminder",
        json!({"body": "Hi {{ name }}, your session is at {{ when }}.", "whatsappTemplate": "session_reminder",
            "whatsappLanguage": "en_US", "whatsappParameters": ["{{ name }}", "{{ when }}"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["whatsappTemplate"], "session_reminder");
    assert_eq!(
        r.body["whatsappParameters"],
        json!(["{{ name }}", "{{ when }}"])
    );
    let r = send("reminder", "+919800000011").await;
    assert_eq!(r.status, 202, "{}", r.body);
    delivery(&s, &root, "+919800000011", "sent").await;
    let body = whatsapp_bodies(&seen).pop().unwrap();
    assert_eq!(body["type"], "template", "{body}");
    assert_eq!(
        body["template"],
        json!({"name": "session_reminder", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "5 pm"}]}]})
    );

    // Bad template fields get clear errors.
    let r = put(
        "bad",
        json!({"body": "x", "whatsappTemplate": "Session Reminder", "whatsappLanguage": "en"}),
    )
    .await;
    assert!(r.problem(400).contains("whatsappTemplate"));
    let r = put(
        "bad",
        json!({"body": "x", "whatsappTemplate": "ok", "whatsappLanguage": "english"}),
    )
    .await;
    assert!(r.problem(400).contains("whatsappLanguage"));
    let r = put("bad", json!({"body": "x", "whatsappTemplate": "ok", "whatsappLanguage": "en", "whatsappParameters": ["{{ x "]})).await;
    assert!(r.problem(400).contains("whatsappParameters"));
    let r = s
        .call(
            Method::PUT,
            "/api/admin/notification-templates/email/bad",
            Some(PLATFORM),
            Some(&root),
            Some(json!({"subject": "s", "body": "x", "whatsappTemplate": "ok", "whatsappLanguage": "en"})),
        )
        .await;
    assert!(r.problem(400).contains("whatsappTemplate"));
    db.close().await.ok();
    s.stop().await;
    handle.stop(false).await;
}
