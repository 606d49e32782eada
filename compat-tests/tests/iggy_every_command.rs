//! Every command the `iggy` crate 0.10 offers over TCP, once, against a real wharf-server: each
//! answer must decode in the official client and say what was asked.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use compat_tests::{within, TestServer};
use iggy::prelude::*;

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

async fn connect(addr: &str, user: &str, password: &str) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(addr.to_string())
        .build()
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    within("login", client.login_user(user, password))
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_round_trips_through_the_official_client() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let c = connect(&addr, DEFAULT_ROOT_USERNAME, DEFAULT_ROOT_PASSWORD).await;

    // System.
    c.ping().await.unwrap();
    let me = c.get_me().await.unwrap();
    assert_eq!(me.user_id, Some(0));
    assert_eq!(me.transport, "TCP");
    assert!(c.get_client(me.client_id).await.unwrap().is_some());
    assert!(c.get_client(999_999).await.unwrap().is_none());
    assert!(c
        .get_clients()
        .await
        .unwrap()
        .iter()
        .any(|x| x.client_id == me.client_id));
    let stats = c.get_stats().await.unwrap();
    assert!(stats.clients_count >= 1);
    let cluster = c.get_cluster_metadata().await.unwrap();
    assert_eq!(cluster.nodes.len(), 1);

    // Streams and topics.
    let s = c.create_stream("shop").await.unwrap();
    assert_eq!((s.id, s.topics_count), (0, 0));
    c.update_stream(&id("shop"), "store").await.unwrap();
    assert_eq!(c.get_streams().await.unwrap()[0].name, "store");
    let t = c
        .create_topic(
            &id("store"),
            "orders",
            2,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::ExpireDuration(IggyDuration::from(3_600_000_000u64)),
            MaxTopicSize::Custom(IggyByteSize::from(1u64 << 30)),
        )
        .await
        .unwrap();
    assert_eq!(t.partitions.len(), 2);
    c.update_topic(
        &id("store"),
        &id("orders"),
        "orders2",
        CompressionAlgorithm::None,
        None,
        IggyExpiry::NeverExpire,
        MaxTopicSize::Unlimited,
    )
    .await
    .unwrap();
    let topics = c.get_topics(&id("store")).await.unwrap();
    assert_eq!(topics[0].name, "orders2");
    let stream = c.get_stream(&id("store")).await.unwrap().unwrap();
    assert_eq!(stream.topics.len(), 1);
    c.create_partitions(&id("store"), &id("orders2"), 2)
        .await
        .unwrap();
    c.delete_partitions(&id("store"), &id("orders2"), 1)
        .await
        .unwrap();
    assert_eq!(
        c.get_topic(&id("store"), &id("orders2"))
            .await
            .unwrap()
            .unwrap()
            .partitions_count,
        3
    );

    // Messages, flush, segments, purge.
    let mut batch: Vec<IggyMessage> = (0..10)
        .map(|i| {
            IggyMessage::builder()
                .payload(format!("m{i}").into())
                .build()
                .unwrap()
        })
        .collect();
    c.send_messages(
        &id("store"),
        &id("orders2"),
        &Partitioning::partition_id(2),
        &mut batch,
    )
    .await
    .unwrap();
    c.flush_unsaved_buffer(&id("store"), &id("orders2"), 2, true)
        .await
        .unwrap();
    c.delete_segments(&id("store"), &id("orders2"), 2, 1)
        .await
        .unwrap();
    let polled = c
        .poll_messages(
            &id("store"),
            &id("orders2"),
            Some(2),
            &Consumer::new(id("c")),
            &PollingStrategy::offset(0),
            100,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        polled.messages.len(),
        10,
        "the active segment is never deleted"
    );
    c.purge_topic(&id("store"), &id("orders2")).await.unwrap();
    c.purge_stream(&id("store")).await.unwrap();
    assert_eq!(
        c.get_topic(&id("store"), &id("orders2"))
            .await
            .unwrap()
            .unwrap()
            .messages_count,
        0
    );

    // Consumer groups and offsets.
    let g = c
        .create_consumer_group(&id("store"), &id("orders2"), "workers")
        .await
        .unwrap();
    assert_eq!(g.members_count, 0);
    c.join_consumer_group(&id("store"), &id("orders2"), &id("workers"))
        .await
        .unwrap();
    let me = c.get_me().await.unwrap();
    assert_eq!(me.consumer_groups_count, 1);
    let g = c
        .get_consumer_group(&id("store"), &id("orders2"), &id("workers"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.members[0].partitions, vec![0, 1, 2]);
    assert_eq!(
        c.get_consumer_groups(&id("store"), &id("orders2"))
            .await
            .unwrap()
            .len(),
        1
    );
    let group = Consumer::group(id("workers"));
    c.store_consumer_offset(&group, &id("store"), &id("orders2"), Some(1), 0)
        .await
        .unwrap();
    assert!(c
        .get_consumer_offset(&group, &id("store"), &id("orders2"), Some(1))
        .await
        .unwrap()
        .is_some());
    c.delete_consumer_offset(&group, &id("store"), &id("orders2"), Some(1))
        .await
        .unwrap();
    c.leave_consumer_group(&id("store"), &id("orders2"), &id("workers"))
        .await
        .unwrap();
    c.delete_consumer_group(&id("store"), &id("orders2"), &id("workers"))
        .await
        .unwrap();
    assert!(c
        .get_consumer_group(&id("store"), &id("orders2"), &id("workers"))
        .await
        .unwrap()
        .is_none());

    // Users and permissions.
    let perms = Permissions {
        global: GlobalPermissions {
            read_streams: true,
            poll_messages: true,
            ..GlobalPermissions::default()
        },
        streams: Some(BTreeMap::from([(
            0usize,
            StreamPermissions {
                send_messages: true,
                ..StreamPermissions::default()
            },
        )])),
    };
    let u = c
        .create_user("alice", "alice-pw", UserStatus::Active, Some(perms.clone()))
        .await
        .unwrap();
    assert_eq!(
        u.permissions.as_ref().map(|p| &p.global),
        Some(&perms.global)
    );
    let got = c.get_user(&id("alice")).await.unwrap().unwrap();
    assert_eq!(got.permissions, Some(perms));
    c.update_user(&id("alice"), Some("alice2"), Some(UserStatus::Active))
        .await
        .unwrap();
    c.update_permissions(&id("alice2"), None).await.unwrap();
    assert!(c
        .get_user(&id("alice2"))
        .await
        .unwrap()
        .unwrap()
        .permissions
        .is_none());
    c.change_password(&id("alice2"), "alice-pw", "alice-pw2")
        .await
        .unwrap();
    let alice = connect(&addr, "alice2", "alice-pw2").await;
    alice.ping().await.unwrap();
    assert!(matches!(
        alice.create_stream("x").await,
        Err(IggyError::Unauthorized)
    ));
    alice.logout_user().await.unwrap();
    c.update_user(&id("alice2"), None, Some(UserStatus::Inactive))
        .await
        .unwrap();
    let inactive = IggyClient::builder()
        .with_tcp()
        .with_server_address(addr.clone())
        .build()
        .unwrap();
    inactive.connect().await.unwrap();
    assert!(matches!(
        inactive.login_user("alice2", "alice-pw2").await,
        Err(IggyError::UserInactive)
    ));
    assert_eq!(c.get_users().await.unwrap().len(), 2);
    c.delete_user(&id("alice2")).await.unwrap();

    // Personal access tokens.
    let token = c
        .create_personal_access_token("tok-1", PersonalAccessTokenExpiry::NeverExpire)
        .await
        .unwrap();
    assert_eq!(
        c.get_personal_access_tokens().await.unwrap()[0].name,
        "tok-1"
    );
    let by_token = IggyClient::builder()
        .with_tcp()
        .with_server_address(addr.clone())
        .build()
        .unwrap();
    by_token.connect().await.unwrap();
    by_token
        .login_with_personal_access_token(&token.token)
        .await
        .unwrap();
    by_token.get_streams().await.unwrap();
    c.delete_personal_access_token("tok-1").await.unwrap();
    assert!(c.get_personal_access_tokens().await.unwrap().is_empty());

    // Deletions.
    c.delete_topic(&id("store"), &id("orders2")).await.unwrap();
    c.delete_stream(&id("store")).await.unwrap();
    assert!(c.get_streams().await.unwrap().is_empty());
    c.logout_user().await.unwrap();
}
