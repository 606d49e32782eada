//! Logins with the official Iggy SDK (`iggy` 0.10): a session ended by a password change gets
//! Iggy's "unauthenticated" (the SDK reconnects, finds itself still not logged in and says so),
//! the revoked token is refused, and an address locked out after five wrong passwords gets
//! "invalid credentials" for the right password too.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::str::FromStr;

use compat_tests::{iggy_root_client, within, TestServer};
use iggy::prelude::*;

/// A connected client that has not logged in and reconnects at once when told to.
async fn anonymous(server: &TestServer) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .with_reestablish_after(IggyDuration::from_str("1ms").unwrap())
        .build()
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_clients_see_ended_sessions_and_lockouts_as_iggy_errors() {
    let server = TestServer::start().await;
    let root = iggy_root_client(&server).await;
    within(
        "create alice",
        root.create_user("alice", "alice-pw", UserStatus::Active, None),
    )
    .await
    .unwrap();
    let alice = Identifier::named("alice").unwrap();

    let other = anonymous(&server).await;
    within("login", other.login_user("alice", "alice-pw"))
        .await
        .unwrap();
    let token = within(
        "create token",
        other.create_personal_access_token("ci-token", PersonalAccessTokenExpiry::NeverExpire),
    )
    .await
    .unwrap()
    .token;
    let changer = anonymous(&server).await;
    within("login", changer.login_user("alice", "alice-pw"))
        .await
        .unwrap();
    within(
        "change password",
        changer.change_password(&alice, "alice-pw", "new-pw"),
    )
    .await
    .unwrap();

    let err = within("get_me", other.get_me()).await.unwrap_err();
    assert!(matches!(err, IggyError::Unauthenticated), "{err:?}");
    within("get_me", changer.get_me()).await.unwrap();
    let fresh = anonymous(&server).await;
    let err = within(
        "revoked token",
        fresh.login_with_personal_access_token(&token),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, IggyError::InvalidPersonalAccessToken),
        "{err:?}"
    );

    // One failed login so far (the token): four wrong passwords more lock this address out.
    for _ in 0..4 {
        let err = within("wrong login", fresh.login_user("alice", "wrong"))
            .await
            .unwrap_err();
        assert!(matches!(err, IggyError::InvalidCredentials), "{err:?}");
    }
    let err = within("right login", fresh.login_user("alice", "new-pw"))
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::InvalidCredentials), "{err:?}");
    // Sessions logged in before the lockout keep working.
    within("get_me", root.get_me()).await.unwrap();
}
