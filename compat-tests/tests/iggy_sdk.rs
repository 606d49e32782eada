//! The official Iggy Rust SDK (`iggy` 0.10) against a real `wharf-server`: what an existing Iggy
//! application does must work unchanged.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use compat_tests::{iggy_root_client, within, TestServer};
use futures_util::StreamExt;
use iggy::prelude::*;

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

/// Recomputes a polled message's XXH3-64 checksum from its fields, as the server must have.
fn checksum_of(m: &IggyMessage) -> u64 {
    let mut b = BytesMut::new();
    b.put_u64_le(0);
    b.put_u128_le(m.header.id);
    b.put_u64_le(m.header.offset);
    b.put_u64_le(m.header.timestamp);
    b.put_u64_le(m.header.origin_timestamp);
    b.put_u32_le(m.header.user_headers_length);
    b.put_u32_le(m.header.payload_length);
    b.put_u64_le(m.header.reserved);
    b.put_slice(&m.payload);
    if let Some(h) = &m.user_headers {
        b.put_slice(h);
    }
    wharf_protocol::message::checksum(&b)
}

fn message(i: u64) -> IggyMessage {
    let headers = BTreeMap::from([
        (HeaderKey::try_from("index").unwrap(), HeaderValue::from(i)),
        (
            HeaderKey::try_from("source").unwrap(),
            HeaderValue::try_from("compat").unwrap(),
        ),
    ]);
    IggyMessage::builder()
        .id(u128::from(i) + 1)
        .payload(Bytes::from(format!(
            "message {i:06} {}",
            "x".repeat((i % 50) as usize)
        )))
        .user_headers(headers)
        .build()
        .unwrap()
}

/// Checks a polled message against what `message(i)` sent.
fn check(m: &IggyMessage) -> u64 {
    let i = (m.header.id - 1) as u64;
    let want = message(i);
    assert_eq!(m.payload, want.payload, "payload of message {i}");
    let headers = m.user_headers_map().unwrap().unwrap();
    assert_eq!(
        headers[&HeaderKey::try_from("index").unwrap()]
            .as_uint64()
            .unwrap(),
        i
    );
    assert_eq!(
        headers[&HeaderKey::try_from("source").unwrap()]
            .as_str()
            .unwrap(),
        "compat"
    );
    assert_eq!(m.header.reserved, 0);
    assert_eq!(m.header.checksum, checksum_of(m), "checksum of message {i}");
    assert!(m.header.timestamp > 0);
    i
}

async fn poll(
    client: &IggyClient,
    partition: u32,
    consumer: &Consumer,
    strategy: PollingStrategy,
    count: u32,
    auto_commit: bool,
) -> PolledMessages {
    within(
        "poll",
        client.poll_messages(
            &id("shop"),
            &id("orders"),
            Some(partition),
            consumer,
            &strategy,
            count,
            auto_commit,
        ),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_answer_holds_at_most_max_poll_bytes_but_always_one_message() {
    const MAX_POLL_BYTES: usize = 10_000;
    let server = TestServer::start_with(|c| c.native.max_poll_bytes = MAX_POLL_BYTES as u32).await;
    let client = iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&client, "shop", "orders", 1).await;
    // 50 messages of 1,000 bytes in five stored batches of ten, then one of 20,000 bytes.
    let payload_lens: Vec<usize> = [1000; 50].into_iter().chain([20_000]).collect();
    for chunk in payload_lens.chunks(10) {
        let mut messages: Vec<IggyMessage> = chunk
            .iter()
            .map(|&len| {
                IggyMessage::builder()
                    .payload(Bytes::from(vec![b'p'; len]))
                    .build()
                    .unwrap()
            })
            .collect();
        within(
            "send",
            client.send_messages(
                &id("shop"),
                &id("orders"),
                &Partitioning::partition_id(0),
                &mut messages,
            ),
        )
        .await
        .unwrap();
    }
    // Bound: the messages of one answer (64-byte header, payload and user headers each, as on
    // the wire) hold at most max_poll_bytes, filled message by message across stored batches,
    // except that a single message larger than that still comes (alone).
    let consumer = Consumer::new(id("reader"));
    let mut next = 0u64;
    let mut answers = Vec::new();
    while next < payload_lens.len() as u64 {
        let polled = poll(
            &client,
            0,
            &consumer,
            PollingStrategy::offset(next),
            1000,
            false,
        )
        .await;
        let bytes: usize = polled
            .messages
            .iter()
            .map(|m| 64 + m.header.payload_length as usize + m.header.user_headers_length as usize)
            .sum();
        assert!(
            bytes <= MAX_POLL_BYTES || polled.messages.len() == 1,
            "{} messages of {bytes} bytes in one answer",
            polled.messages.len()
        );
        let offsets: Vec<u64> = polled.messages.iter().map(|m| m.header.offset).collect();
        let expected: Vec<u64> = (next..next + offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "every message once, in order");
        next += offsets.len() as u64;
        answers.push(offsets.len());
    }
    // 9 × 1,064 bytes fit in 10,000, a tenth does not; the large message comes alone.
    assert_eq!(answers, vec![9, 9, 9, 9, 9, 5, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_sends_100k_messages_and_every_polling_strategy_reads_them() {
    let server = TestServer::start().await;
    let client = iggy_root_client(&server).await;
    client.create_stream("shop").await.unwrap();
    let topic = client
        .create_topic(
            &id("shop"),
            "orders",
            3,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        )
        .await
        .unwrap();
    assert_eq!(topic.partitions_count, 3);
    assert_eq!(topic.partitions.len(), 3);

    let producer = client
        .producer("shop", "orders")
        .unwrap()
        .direct(DirectConfig::builder().batch_length(1000).build())
        .build();
    within("producer init", producer.init()).await.unwrap();
    // 100 batches of 1000; each batch sent with a key, so it lands where XxHash32(key) % 3 says.
    let mut expected: HashMap<u32, Vec<u64>> = HashMap::new();
    for batch in 0..100u64 {
        let key = format!("key-{}", batch % 7);
        let partition = wharf_protocol::partition_for_key(key.as_bytes(), 3);
        let messages: Vec<IggyMessage> = (batch * 1000..(batch + 1) * 1000).map(message).collect();
        expected
            .entry(partition)
            .or_default()
            .extend(batch * 1000..(batch + 1) * 1000);
        let partitioning = Arc::new(Partitioning::messages_key_str(&key).unwrap());
        within(
            "send",
            producer.send_with_partitioning(messages, Some(partitioning)),
        )
        .await
        .unwrap();
    }

    let details = client
        .get_topic(&id("shop"), &id("orders"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.messages_count, 100_000);

    let reader = Consumer::new(id("reader"));
    let mut total = 0;
    for partition in 0..3u32 {
        let want = expected.get(&partition).cloned().unwrap_or_default();
        // Offset: everything, in order, with dense offsets.
        let mut got = Vec::new();
        let mut next = 0u64;
        loop {
            let polled = poll(
                &client,
                partition,
                &reader,
                PollingStrategy::offset(next),
                1000,
                false,
            )
            .await;
            assert_eq!(polled.partition_id, partition);
            assert_eq!(polled.count as usize, polled.messages.len());
            if polled.messages.is_empty() {
                break;
            }
            for m in &polled.messages {
                assert_eq!(m.header.offset, next, "offsets are dense");
                next += 1;
                got.push(check(m));
            }
        }
        assert_eq!(
            got, want,
            "partition {partition} holds exactly what was sent to it, in order"
        );
        total += got.len();
        if want.is_empty() {
            continue;
        }
        let last = want.len() as u64 - 1;

        let first = poll(
            &client,
            partition,
            &reader,
            PollingStrategy::first(),
            10,
            false,
        )
        .await;
        let offsets: Vec<u64> = first.messages.iter().map(|m| m.header.offset).collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
        assert_eq!(first.current_offset, last);

        let tail = poll(
            &client,
            partition,
            &reader,
            PollingStrategy::last(),
            10,
            false,
        )
        .await;
        let offsets: Vec<u64> = tail.messages.iter().map(|m| m.header.offset).collect();
        assert_eq!(offsets, (last - 9..=last).collect::<Vec<_>>());

        // Next with auto-commit walks forward from the stored offset.
        let c = Consumer::new(id(&format!("next-{partition}")));
        let a = poll(&client, partition, &c, PollingStrategy::next(), 5, true).await;
        let b = poll(&client, partition, &c, PollingStrategy::next(), 5, true).await;
        assert_eq!(
            a.messages
                .iter()
                .map(|m| m.header.offset)
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            b.messages
                .iter()
                .map(|m| m.header.offset)
                .collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9]
        );
        let stored = client
            .get_consumer_offset(&c, &id("shop"), &id("orders"), Some(partition))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.stored_offset, 9);

        // Timestamp: the first message at or after a message's server timestamp.
        let probe = poll(
            &client,
            partition,
            &reader,
            PollingStrategy::offset(last / 2),
            1,
            false,
        )
        .await;
        let ts = probe.messages[0].header.timestamp;
        let at = poll(
            &client,
            partition,
            &reader,
            PollingStrategy::timestamp(IggyTimestamp::from(ts)),
            10,
            false,
        )
        .await;
        assert!(!at.messages.is_empty());
        assert!(at.messages.iter().all(|m| m.header.timestamp >= ts));
        let first_at = at.messages[0].header.offset;
        assert!(first_at <= last / 2);
        if first_at > 0 {
            let before = poll(
                &client,
                partition,
                &reader,
                PollingStrategy::offset(first_at - 1),
                1,
                false,
            )
            .await;
            assert!(
                before.messages[0].header.timestamp < ts,
                "timestamp poll skipped an earlier match"
            );
        }
        // Past the end: nothing, but the answer still says where the partition is.
        let past = poll(
            &client,
            partition,
            &reader,
            PollingStrategy::offset(last + 1),
            10,
            false,
        )
        .await;
        assert!(past.messages.is_empty());
        assert_eq!(past.current_offset, last);
    }
    assert_eq!(total, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_a_consumer_group_split_and_hand_over_partitions() {
    let server = TestServer::start().await;
    let admin = iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&admin, "shop", "orders", 3).await;
    for partition in 0..3u32 {
        let mut messages: Vec<IggyMessage> = (0..10)
            .map(|i| message(u64::from(partition) * 10 + i))
            .collect();
        admin
            .send_messages(
                &id("shop"),
                &id("orders"),
                &Partitioning::partition_id(partition),
                &mut messages,
            )
            .await
            .unwrap();
    }

    // A single consumer's offset: stored, read back, deleted.
    let single = Consumer::new(id("auditor"));
    admin
        .store_consumer_offset(&single, &id("shop"), &id("orders"), Some(1), 4)
        .await
        .unwrap();
    let got = admin
        .get_consumer_offset(&single, &id("shop"), &id("orders"), Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.partition_id, got.current_offset, got.stored_offset),
        (1, 9, 4)
    );
    let next = poll(&admin, 1, &single, PollingStrategy::next(), 1, false).await;
    assert_eq!(next.messages[0].header.offset, 5);
    admin
        .delete_consumer_offset(&single, &id("shop"), &id("orders"), Some(1))
        .await
        .unwrap();
    assert!(admin
        .get_consumer_offset(&single, &id("shop"), &id("orders"), Some(1))
        .await
        .unwrap()
        .is_none());

    // Two group members, each on its own connection.
    let (c1, c2) = (
        iggy_root_client(&server).await,
        iggy_root_client(&server).await,
    );
    let mut first = c1
        .consumer_group("workers", "shop", "orders")
        .unwrap()
        .auto_commit(AutoCommit::When(AutoCommitWhen::PollingMessages))
        .batch_length(100)
        .build();
    let mut second = c2
        .consumer_group("workers", "shop", "orders")
        .unwrap()
        .auto_commit(AutoCommit::When(AutoCommitWhen::PollingMessages))
        .batch_length(100)
        .build();
    within("first consumer init", first.init()).await.unwrap();
    within("second consumer init", second.init()).await.unwrap();
    let group = admin
        .get_consumer_group(&id("shop"), &id("orders"), &id("workers"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.members_count, 2);
    let mut assigned: Vec<u32> = group
        .members
        .iter()
        .flat_map(|m| m.partitions.clone())
        .collect();
    assigned.sort_unstable();
    assert_eq!(
        assigned,
        vec![0, 1, 2],
        "every partition has exactly one owner"
    );
    let owned_by_second: Vec<u32> = group
        .members
        .iter()
        .find(|m| m.partitions.len() == 1)
        .map(|m| m.partitions.clone())
        .unwrap();

    // The member with one partition reads exactly that partition's ten messages.
    let mut seen = Vec::new();
    let mut reader = if owned_by_second.len() == 1 {
        &mut second
    } else {
        &mut first
    };
    while seen.len() < 10 {
        let m = within("group member receives", reader.next())
            .await
            .unwrap()
            .unwrap();
        seen.push((m.partition_id, m.message.header.offset));
    }
    let partitions: Vec<u32> = seen.iter().map(|s| s.0).collect();
    assert!(partitions.iter().all(|p| *p == partitions[0]), "{seen:?}");

    // One member leaves: the other owns everything.
    within("leave", first.shutdown()).await.unwrap();
    let group = admin
        .get_consumer_group(&id("shop"), &id("orders"), &id("workers"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.members_count, 1);
    assert_eq!(group.members[0].partitions, vec![0, 1, 2]);
    reader = &mut second;
    let mut rest = 0;
    while rest < 20 {
        let m = within("remaining member receives the rest", reader.next())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            m.partition_id, partitions[0],
            "already consumed partition read again"
        );
        rest += 1;
    }
    within("shutdown", second.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_surface_as_the_right_iggy_errors() {
    let server = TestServer::start().await;
    let bad = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .build()
        .unwrap();
    bad.connect().await.unwrap();
    let err = bad.login_user("iggy", "wrong").await.unwrap_err();
    assert!(matches!(err, IggyError::InvalidCredentials), "{err:?}");

    let client = iggy_root_client(&server).await;
    client.create_stream("shop").await.unwrap();
    let err = client.create_stream("shop").await.unwrap_err();
    assert!(
        matches!(err, IggyError::StreamNameAlreadyExists(_)),
        "{err:?}"
    );
    assert!(client.get_stream(&id("nope")).await.unwrap().is_none());
    let err = client.delete_stream(&id("nope")).await.unwrap_err();
    assert!(matches!(err, IggyError::StreamIdNotFound(_)), "{err:?}");
    let err = client
        .create_topic(
            &id("nope"),
            "t",
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::StreamIdNotFound(_)), "{err:?}");
    client
        .create_topic(
            &id("shop"),
            "t",
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        )
        .await
        .unwrap();
    let err = client
        .create_topic(
            &id("shop"),
            "t",
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, IggyError::TopicNameAlreadyExists(_, _)),
        "{err:?}"
    );
    assert!(client
        .get_topic(&id("shop"), &id("missing"))
        .await
        .unwrap()
        .is_none());
    let err = client
        .send_messages(
            &id("shop"),
            &id("missing"),
            &Partitioning::balanced(),
            &mut [message(1)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::TopicIdNotFound(_, _)), "{err:?}");
    let err = client
        .send_messages(
            &id("shop"),
            &id("t"),
            &Partitioning::partition_id(5),
            &mut [message(1)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::PartitionNotFound(..)), "{err:?}");

    // A user without permissions is refused.
    client
        .create_user("reader", "secret-pw", UserStatus::Active, None)
        .await
        .unwrap();
    let err = client
        .create_user("reader", "secret-pw", UserStatus::Active, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::UserAlreadyExists), "{err:?}");
    let limited = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .build()
        .unwrap();
    limited.connect().await.unwrap();
    limited.login_user("reader", "secret-pw").await.unwrap();
    let err = limited.create_stream("mine").await.unwrap_err();
    assert!(matches!(err, IggyError::Unauthorized), "{err:?}");
    let err = client
        .delete_user(&Identifier::numeric(0).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, IggyError::CannotDeleteUser(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let mut server = TestServer::start().await;
    let token = {
        let client = iggy_root_client(&server).await;
        compat_tests::create_stream_with_topic(&client, "shop", "orders", 2).await;
        let mut messages: Vec<IggyMessage> = (0..50).map(message).collect();
        client
            .send_messages(
                &id("shop"),
                &id("orders"),
                &Partitioning::partition_id(1),
                &mut messages,
            )
            .await
            .unwrap();
        client
            .store_consumer_offset(
                &Consumer::new(id("keeper")),
                &id("shop"),
                &id("orders"),
                Some(1),
                24,
            )
            .await
            .unwrap();
        client
            .create_user("alice", "alice-pw", UserStatus::Active, None)
            .await
            .unwrap();
        client
            .create_personal_access_token("ci-token", PersonalAccessTokenExpiry::NeverExpire)
            .await
            .unwrap()
            .token
    };
    within("restart", server.restart()).await;

    let by_token = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .build()
        .unwrap();
    by_token.connect().await.unwrap();
    by_token
        .login_with_personal_access_token(&token)
        .await
        .unwrap();
    let client = iggy_root_client(&server).await;
    let stream = client.get_stream(&id("shop")).await.unwrap().unwrap();
    assert_eq!(stream.topics_count, 1);
    let topic = client
        .get_topic(&id("shop"), &id("orders"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((topic.partitions_count, topic.messages_count), (2, 50));
    let offset = client
        .get_consumer_offset(
            &Consumer::new(id("keeper")),
            &id("shop"),
            &id("orders"),
            Some(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offset.stored_offset, 24);
    let users = client.get_users().await.unwrap();
    assert!(users.iter().any(|u| u.username == "alice"));
    let polled = poll(
        &client,
        1,
        &Consumer::new(id("x")),
        PollingStrategy::offset(0),
        100,
        false,
    )
    .await;
    assert_eq!(polled.messages.len(), 50);
    for m in &polled.messages {
        check(m);
    }
    server.stop().await;
}
