//! Logins at the broker, where both doors check credentials: Argon2 work is bounded by the
//! password slots whatever the flood, an unknown user costs exactly what a wrong password costs,
//! and parallel guesses from one address get no more tries than the failed-login limit.
//!
//! Counted, not timed: the slots report how many Argon2 computations ran, the most that ran at
//! once and how many memory buffers were ever allocated.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use wharf_gateway::broker::users::UserStatus;
use wharf_gateway::broker::{Broker, BrokerError, BrokerSettings, LoginSettings, StoreConfig};

fn open(dir: &Path, logins: LoginSettings) -> Arc<Broker> {
    let store = StoreConfig {
        background_tasks: false,
        ..StoreConfig::default()
    };
    let broker = Broker::open(
        dir,
        store,
        BrokerSettings {
            root_username: "iggy".into(),
            root_password: "iggy".into(),
            kafka_default_stream: "default".into(),
            groups: Default::default(),
            transactions: Default::default(),
            logins,
            max_partitions_per_topic: 1000,
            max_partitions: 100_000,
        },
    )
    .unwrap();
    Arc::new(broker)
}

fn peer(i: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000 + i).to_be_bytes())
}

fn refused_as_wrong(r: Result<impl std::fmt::Debug, BrokerError>) {
    assert!(
        matches!(r, Err(BrokerError::InvalidCredentials)),
        "expected invalid credentials, got {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_parallel_wrong_logins_run_at_most_two_argon2_computations_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(
        dir.path(),
        LoginSettings {
            password_verifications: 2,
            max_failed_logins: 1000,
            ..LoginSettings::default()
        },
    );
    broker
        .create_user("alice", "alice-pw", UserStatus::Active, None)
        .await
        .unwrap();
    let before = broker.password_stats().computations;
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..64 {
        let broker = Arc::clone(&broker);
        let user = if i % 2 == 0 {
            "alice".to_string()
        } else {
            format!("ghost{i}")
        };
        logins.spawn(async move { broker.login(&user, "wrong", peer(i)).await });
    }
    while let Some(r) = logins.join_next().await {
        refused_as_wrong(r.unwrap());
    }
    let stats = broker.password_stats();
    assert_eq!(
        stats.computations - before,
        64,
        "one verification per login"
    );
    assert!(
        stats.most_running <= 2,
        "{} Argon2 computations ran at once; password_verifications is 2",
        stats.most_running
    );
    assert!(
        stats.buffers <= 2,
        "{} Argon2 buffers (19 MiB each) were allocated; the bound is one per slot",
        stats.buffers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_costs_one_verification_exactly_like_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), LoginSettings::default());
    let count = || broker.password_stats().computations;
    let start = count();
    refused_as_wrong(broker.login("iggy", "wrong", peer(1)).await);
    assert_eq!(count() - start, 1, "a wrong password: one verification");
    refused_as_wrong(broker.login("nobody", "wrong", peer(2)).await);
    assert_eq!(count() - start, 2, "an unknown user: one verification too");
    assert_eq!(broker.login("iggy", "iggy", peer(3)).await.unwrap().id, 0);
    assert_eq!(count() - start, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_from_one_address_get_no_more_tries_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), LoginSettings::default());
    let attacker = peer(1);
    let start = broker.password_stats().computations;
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..64 {
        let broker = Arc::clone(&broker);
        logins.spawn(async move { broker.login("iggy", &format!("guess{i}"), attacker).await });
    }
    while let Some(r) = logins.join_next().await {
        refused_as_wrong(r.unwrap());
    }
    let tried = broker.password_stats().computations - start;
    assert_eq!(
        tried, 5,
        "max_failed_logins is 5: {tried} passwords were checked"
    );
    // Locked out: the right password is refused like a wrong one, without running Argon2,
    // from that address and, for that user, from any other.
    refused_as_wrong(broker.login("iggy", "iggy", attacker).await);
    refused_as_wrong(broker.login("iggy", "iggy", peer(2)).await);
    assert!(matches!(
        broker.login_with_token("some-token", attacker).await,
        Err(BrokerError::InvalidToken)
    ));
    assert_eq!(broker.password_stats().computations - start, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guesses_are_failed_logins_of_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), LoginSettings::default());
    let guesser = peer(7);
    for i in 0..5 {
        assert!(matches!(
            broker.login_with_token(&format!("guess{i}"), guesser).await,
            Err(BrokerError::InvalidToken)
        ));
    }
    let start = broker.password_stats().computations;
    refused_as_wrong(broker.login("iggy", "iggy", guesser).await);
    assert_eq!(
        broker.password_stats().computations,
        start,
        "refused before Argon2"
    );
    assert_eq!(broker.login("iggy", "iggy", peer(8)).await.unwrap().id, 0);
}
