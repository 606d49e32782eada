//! Logins over the native door, with wharf-sdk against a real wharf-server: failed logins lock
//! an address out (the right password included, answered like a wrong one), and a password
//! change ends the user's other sessions and revokes their personal access tokens.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use wharf_gateway::config::{Overrides, ServerConfig};
use wharf_sdk::{Client, ClientConfig, Error, Identifier};

const WAIT: Duration = Duration::from_secs(60);
/// Iggy's codes: not logged in, wrong username or password, wrong personal access token.
const UNAUTHENTICATED: u32 = 40;
const INVALID_CREDENTIALS: u32 = 42;
const INVALID_PAT: u32 = 53;

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

struct Server {
    addr: std::net::SocketAddr,
    _running: wharf_gateway::Running,
    _dir: tempfile::TempDir,
}

/// A server with the default login policy (5 failures in a minute lock out for a minute).
async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let config = ServerConfig::load_from(&overrides, &[]).unwrap();
    assert_eq!(config.logins.max_failed_logins, 5);
    assert!(config.logins.end_sessions_on_password_change);
    let running = wharf_gateway::start(config).await.unwrap();
    Server {
        addr: running.native_addr,
        _running: running,
        _dir: dir,
    }
}

/// A connection that has not logged in (and never logs in again by itself).
async fn anonymous(server: &Server) -> Client {
    let mut config = ClientConfig::new(server.addr.to_string());
    config.heartbeat = None;
    within("connect", Client::connect(config)).await.unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> Option<u32> {
    r.unwrap_err().server_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_address_out_even_for_the_right_password() {
    let server = server().await;
    let client = anonymous(&server).await;
    for _ in 0..5 {
        let r = within("wrong login", client.login_user("iggy", "wrong")).await;
        assert_eq!(code(r), Some(INVALID_CREDENTIALS));
    }
    // Locked out: the right password gets the very answer a wrong one gets, on this connection
    // and on a new one from the same address.
    let r = within("right login", client.login_user("iggy", "iggy")).await;
    assert_eq!(code(r), Some(INVALID_CREDENTIALS));
    let fresh = anonymous(&server).await;
    let r = within("right login", fresh.login_user("iggy", "iggy")).await;
    assert_eq!(code(r), Some(INVALID_CREDENTIALS));
    let r = within("token login", fresh.login_with_token("not-a-token")).await;
    assert_eq!(code(r), Some(INVALID_PAT));
    within("ping", fresh.ping()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_users_other_sessions_and_revokes_their_tokens() {
    let server = server().await;
    let root = anonymous(&server).await;
    within("root login", root.login_user("iggy", "iggy"))
        .await
        .unwrap();
    within(
        "create alice",
        root.create_user("alice", "alice-pw", true, None),
    )
    .await
    .unwrap();
    let alice = Identifier::Name("alice".into());

    let first = anonymous(&server).await;
    within("login", first.login_user("alice", "alice-pw"))
        .await
        .unwrap();
    let token = within(
        "create token",
        first.create_personal_access_token("ci-token", None),
    )
    .await
    .unwrap();
    let by_token = anonymous(&server).await;
    within("token login", by_token.login_with_token(&token))
        .await
        .unwrap();
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
    // The other sessions are logged out; the one that changed the password stays.
    assert_eq!(
        code(within("get_me", first.get_me()).await),
        Some(UNAUTHENTICATED)
    );
    assert_eq!(
        code(within("get_me", by_token.get_me()).await),
        Some(UNAUTHENTICATED)
    );
    within("get_me", changer.get_me()).await.unwrap();
    within("get_me", root.get_me()).await.unwrap();
    // The token is revoked and the old password is gone; the new one works.
    let fresh = anonymous(&server).await;
    let r = within("revoked token", fresh.login_with_token(&token)).await;
    assert_eq!(code(r), Some(INVALID_PAT));
    let r = within("old password", fresh.login_user("alice", "alice-pw")).await;
    assert_eq!(code(r), Some(INVALID_CREDENTIALS));
    within("new password", first.login_user("alice", "new-pw"))
        .await
        .unwrap();

    // An administrator's change ends every session of the user (the administrator's is not
    // one of them).
    within(
        "admin changes password",
        root.change_password(&alice, "new-pw", "newer-pw"),
    )
    .await
    .unwrap();
    assert_eq!(
        code(within("get_me", first.get_me()).await),
        Some(UNAUTHENTICATED)
    );
    assert_eq!(
        code(within("get_me", changer.get_me()).await),
        Some(UNAUTHENTICATED)
    );
    within("get_me", root.get_me()).await.unwrap();
}
