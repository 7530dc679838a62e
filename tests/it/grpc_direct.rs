//! Calls that reach identity's gRPC port directly, bypassing the gateway: the service does not
//! trust the network.

use mas_kit::proto::mas::identity::v1 as pb;
use mas_kit::proto::mas::identity::v1::identity_client::IdentityClient;
use mas_testkit::{PLATFORM, TestStack};

on_both!(
    direct_calls_without_a_token_or_with_forged_context_are_refused,
    ops_actions_are_internal_even_for_a_superadmin,
    get_contacts_is_for_service_accounts_and_checks_its_input,
    field_constraints_are_enforced_by_the_service_with_the_gateways_words,
);
use tonic::Code;

fn request<T>(msg: T, token: Option<&str>, extra: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    for (k, v) in extra {
        r.metadata_mut().insert(*k, v.parse().unwrap());
    }
    r
}

async fn direct_calls_without_a_token_or_with_forged_context_are_refused(s: TestStack) {
    let mut client = IdentityClient::connect(format!("http://{}", s.stack.identity_grpc_addr))
        .await
        .unwrap();
    let (_, auth) = s.new_user().await;
    let token = auth["accessToken"].as_str().unwrap();
    let uid = auth["user"]["id"].as_str().unwrap();

    let e = client
        .get_me(request(pb::GetMeRequest {}, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = client
        .list_users(request(
            pb::ListUsersRequest::default(),
            None,
            &[("x-platform", PLATFORM)],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // A valid token works directly...
    let me = client
        .get_me(request(
            pb::GetMeRequest {},
            Some(token),
            &[("x-platform", PLATFORM), ("x-user-id", uid)],
        ))
        .await
        .unwrap();
    assert_eq!(me.get_ref().id, uid);
    // ...but not with context metadata that contradicts it.
    for forged in [
        ("x-user-id", "someone-else"),
        ("x-platform", mas_testkit::OTHER_PLATFORM),
        ("x-user-role", "SUPERADMIN"),
    ] {
        let e = client
            .get_me(request(pb::GetMeRequest {}, Some(token), &[forged]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{forged:?}");
    }
    // A forged role claim does not open admin RPCs either.
    let e = client
        .list_users(request(
            pb::ListUsersRequest::default(),
            Some(token),
            &[("x-user-role", "ADMIN")],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Internal RPCs take service tokens only.
    let e = client
        .verify_api_key(request(
            pb::VerifyApiKeyRequest {
                api_key: "mas_x".into(),
            },
            Some(token),
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = client
        .issue_service_token(pb::IssueServiceTokenRequest {
            service: "gateway".into(),
            secret: "guess".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    s.stop().await;
}

async fn ops_actions_are_internal_even_for_a_superadmin(s: TestStack) {
    use mas_kit::proto::mas::ops::v1 as ops;
    let mut client =
        ops::ops_client::OpsClient::connect(format!("http://{}", s.stack.identity_grpc_addr))
            .await
            .unwrap();
    let e = client
        .list_queues(request(ops::ListQueuesRequest {}, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let root = s.admin_token(PLATFORM).await;
    let e = client
        .trigger_schedule(request(
            ops::ScheduleActionRequest {
                id: "identity.token-cleanup".into(),
                actor: "me".into(),
            },
            Some(&root),
            &[("x-platform", PLATFORM)],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "only the gateway's service account drives the dashboard actions"
    );
    // Health stays public.
    assert!(
        client
            .health(request(ops::HealthRequest {}, None, &[]))
            .await
            .is_ok()
    );
    s.stop().await;
}

async fn get_contacts_is_for_service_accounts_and_checks_its_input(s: TestStack) {
    let mut client = IdentityClient::connect(format!("http://{}", s.stack.identity_grpc_addr))
        .await
        .unwrap();
    let (email, auth) = s.new_user().await;
    let token = auth["accessToken"].as_str().unwrap();
    let uid = auth["user"]["id"].as_str().unwrap().to_owned();
    let ask = |ids: Vec<String>, platform: &str| pb::GetContactsRequest {
        platform: platform.into(),
        user_ids: ids,
    };
    // A user's token does not open it, nor does no token.
    for t in [Some(token), None] {
        let e = client
            .get_contacts(request(ask(vec![uid.clone()], PLATFORM), t, &[]))
            .await
            .unwrap_err();
        assert!(
            matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated),
            "{e:?}"
        );
    }
    let secret = s.stack.identity_config.service_accounts["notifier"]
        .expose()
        .to_owned();
    let service = client
        .issue_service_token(pb::IssueServiceTokenRequest {
            service: "notifier".into(),
            secret,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let st = Some(service.as_str());
    let found = client
        .get_contacts(request(
            ask(vec![uid.clone(), "no-such-user".into()], PLATFORM),
            st,
            &[],
        ))
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(found.len(), 1, "unknown ids are left out");
    assert_eq!(
        (found[0].id.as_str(), found[0].email.as_str()),
        (uid.as_str(), email.as_str())
    );
    // Another platform's users are not found through this one.
    let other = client
        .get_contacts(request(
            ask(vec![uid.clone()], mas_testkit::OTHER_PLATFORM),
            st,
            &[],
        ))
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert!(other.is_empty());
    for (bad, why) in [
        (ask(vec![], PLATFORM), "no ids"),
        (
            ask((0..101).map(|i| i.to_string()).collect(), PLATFORM),
            "too many",
        ),
        (ask(vec![String::new()], PLATFORM), "empty id"),
        (ask(vec![uid.clone()], ""), "no platform"),
    ] {
        let e = client
            .get_contacts(request(bad, st, &[]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{why}: {e:?}");
    }
    s.stop().await;
}

/// The `buf.validate` constraints hold on the service's own port, not only at the gateway, and
/// both word a violation the same way (the field's JSON name, then the rule).
async fn field_constraints_are_enforced_by_the_service_with_the_gateways_words(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let mut client = IdentityClient::connect(format!("http://{}", s.stack.identity_grpc_addr))
        .await
        .unwrap();
    let platform = [("x-platform", PLATFORM)];
    let direct = client
        .list_users(request(
            pb::ListUsersRequest {
                page_size: 201,
                ..Default::default()
            },
            Some(&root),
            &platform,
        ))
        .await
        .unwrap_err();
    assert_eq!(direct.code(), Code::InvalidArgument, "{direct:?}");
    assert!(direct.message().starts_with("pageSize: "), "{direct:?}");
    let via_gateway = s.get("/api/admin/users?pageSize=201", &root).await;
    assert_eq!(via_gateway.problem(400), direct.message());
    // An absent page size takes the default.
    let fine = client
        .list_users(request(
            pb::ListUsersRequest::default(),
            Some(&root),
            &platform,
        ))
        .await
        .unwrap();
    assert!(!fine.into_inner().users.is_empty());
    // An id that is not a UUID is refused before the service looks it up.
    let bad_id = client
        .get_user(request(
            pb::GetUserRequest { id: "42".into() },
            Some(&root),
            &platform,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument, "{bad_id:?}");
    assert!(bad_id.message().starts_with("id: "), "{bad_id:?}");
    s.stop().await;
}
