use std::collections::BTreeSet;

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::primitives::{Consumer, Identifier, PollingStrategy};

fn s() -> Identifier {
    Identifier::Name("shop".into())
}

fn t() -> Identifier {
    Identifier::Numeric(3)
}

/// One value of every command (some twice, with other options). `every_request_round_trips`
/// fails when a command in the `commands!` list has no value here.
fn samples() -> Vec<Request> {
    let perms = Some(WirePermissions {
        global: [true; 10],
        streams: vec![WireStreamPermissions {
            stream_id: 1,
            flags: [true; 6],
            topics: vec![],
        }],
    });
    vec![
        Ping.into(),
        GetStats.into(),
        GetClusterMetadata.into(),
        GetMe.into(),
        GetClient { client_id: 4 }.into(),
        GetClients.into(),
        GetUser { user_id: s() }.into(),
        GetUsers.into(),
        CreateUser {
            username: "bob".into(),
            password: "pw".into(),
            active: false,
            permissions: perms.clone(),
        }
        .into(),
        CreateUser {
            username: "eve".into(),
            password: String::new(),
            active: true,
            permissions: None,
        }
        .into(),
        DeleteUser { user_id: t() }.into(),
        UpdateUser {
            user_id: t(),
            username: Some("b".into()),
            active: Some(true),
        }
        .into(),
        UpdateUser {
            user_id: s(),
            username: None,
            active: None,
        }
        .into(),
        UpdatePermissions {
            user_id: t(),
            permissions: perms,
        }
        .into(),
        ChangePassword {
            user_id: t(),
            current: "a".into(),
            new: "b".into(),
        }
        .into(),
        LoginUser {
            username: "u".into(),
            password: "p".into(),
            version: Some("1".into()),
            context: None,
        }
        .into(),
        LogoutUser.into(),
        GetPersonalAccessTokens.into(),
        CreatePersonalAccessToken {
            name: "tok".into(),
            expiry: Limit::Value(5),
        }
        .into(),
        DeletePersonalAccessToken { name: "tok".into() }.into(),
        LoginWithPersonalAccessToken {
            token: "secret".into(),
        }
        .into(),
        PollMessages {
            consumer: Consumer::Single(t()),
            stream_id: s(),
            topic_id: t(),
            partition_id: Some(2),
            strategy: PollingStrategy::Offset(9),
            count: 10,
            auto_commit: true,
        }
        .into(),
        FlushUnsavedBuffer {
            stream_id: s(),
            topic_id: t(),
            partition_id: 1,
            fsync: true,
        }
        .into(),
        GetConsumerOffset {
            consumer: Consumer::Group(s()),
            stream_id: s(),
            topic_id: t(),
            partition_id: None,
        }
        .into(),
        StoreConsumerOffset {
            consumer: Consumer::Group(s()),
            stream_id: s(),
            topic_id: t(),
            partition_id: Some(1),
            offset: 7,
        }
        .into(),
        DeleteConsumerOffset {
            consumer: Consumer::Single(s()),
            stream_id: s(),
            topic_id: t(),
            partition_id: Some(0),
        }
        .into(),
        GetStream { stream_id: s() }.into(),
        GetStreams.into(),
        CreateStream { name: "n".into() }.into(),
        DeleteStream { stream_id: s() }.into(),
        UpdateStream {
            stream_id: s(),
            name: "m".into(),
        }
        .into(),
        PurgeStream { stream_id: s() }.into(),
        GetTopic {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        GetTopics { stream_id: s() }.into(),
        CreateTopic {
            stream_id: s(),
            partitions_count: 3,
            compression: 1,
            message_expiry: Limit::Unlimited,
            max_topic_size: Limit::Value(100),
            replication_factor: 1,
            name: "x".into(),
        }
        .into(),
        DeleteTopic {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        UpdateTopic {
            stream_id: s(),
            topic_id: t(),
            compression: 2,
            message_expiry: Limit::ServerDefault,
            max_topic_size: Limit::Unlimited,
            replication_factor: 0,
            name: "y".into(),
        }
        .into(),
        PurgeTopic {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        CreatePartitions {
            stream_id: s(),
            topic_id: t(),
            count: 2,
        }
        .into(),
        DeletePartitions {
            stream_id: s(),
            topic_id: t(),
            count: 1,
        }
        .into(),
        DeleteSegments {
            stream_id: s(),
            topic_id: t(),
            partition_id: 0,
            count: 3,
        }
        .into(),
        GetConsumerGroup {
            stream_id: s(),
            topic_id: t(),
            group_id: s(),
        }
        .into(),
        GetConsumerGroups {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        CreateConsumerGroup {
            stream_id: s(),
            topic_id: t(),
            name: "g".into(),
        }
        .into(),
        DeleteConsumerGroup {
            stream_id: s(),
            topic_id: t(),
            group_id: t(),
        }
        .into(),
        JoinConsumerGroup {
            stream_id: s(),
            topic_id: t(),
            group_id: t(),
        }
        .into(),
        LeaveConsumerGroup {
            stream_id: s(),
            topic_id: t(),
            group_id: t(),
        }
        .into(),
        GetTopicDurability {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        SetTopicDurability {
            stream_id: s(),
            topic_id: t(),
            durability: 2,
        }
        .into(),
        GetTopicConfig {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
        SetTopicConfig {
            stream_id: t(),
            topic_id: s(),
            changes: vec![
                TopicConfigChange {
                    name: "cleanup.policy".into(),
                    value: Some("compact,delete".into()),
                },
                TopicConfigChange {
                    name: "delete.retention.ms".into(),
                    value: None,
                },
                TopicConfigChange {
                    name: "cleanup.policy".into(),
                    value: Some(String::new()),
                },
            ],
        }
        .into(),
        GetConsumerLag { group: None }.into(),
        GetConsumerLag {
            group: Some("workers".into()),
        }
        .into(),
        GetMetricsSnapshot { lag_rows: 10 }.into(),
    ]
}

fn encoded(r: &Request) -> BytesMut {
    let mut b = BytesMut::new();
    r.encode(&mut b);
    b
}

/// Every request decodes back to itself: the client and server halves agree. Checked against
/// the generated code list, so a command added without a sample here fails.
#[test]
fn every_request_round_trips() {
    let all = samples();
    for r in &all {
        assert_eq!(&Request::decode(r.code(), &encoded(r)).unwrap(), r);
    }
    let covered: BTreeSet<u32> = all.iter().map(Request::code).collect();
    let listed: BTreeSet<u32> = Request::CODES.iter().copied().collect();
    assert_eq!(
        covered, listed,
        "every listed command has a sample, and only those"
    );
}

/// One byte short or one byte long, every command's payload is refused.
#[test]
fn every_request_refuses_short_and_long_payloads() {
    for r in samples() {
        let b = encoded(&r);
        if !b.is_empty() {
            assert!(
                matches!(
                    Request::decode(r.code(), &b[..b.len() - 1]),
                    Err(RequestError::Malformed(_))
                ),
                "short {r:?}"
            );
        }
        let mut long = b.to_vec();
        long.push(0);
        assert!(
            matches!(
                Request::decode(r.code(), &long),
                Err(RequestError::Malformed(_))
            ),
            "long {r:?}"
        );
    }
}

#[test]
fn the_code_list_is_sound() {
    let distinct: BTreeSet<u32> = Request::CODES.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        Request::CODES.len(),
        "a code is listed twice"
    );
    for &code in Request::CODES {
        assert!(codes::command_name(code).is_some(), "no name for {code}");
        assert_ne!(code, codes::SEND_MESSAGES);
        assert_ne!(code, codes::GET_SNAPSHOT_FILE);
    }
}

#[test]
fn login_as_the_iggy_crate_sends_it() {
    // From the 0.10 client: user iggy / iggy, version "0.10.0", empty context.
    let payload = [
        4, b'i', b'g', b'g', b'y', 4, b'i', b'g', b'g', b'y', 6, 0, 0, 0, b'0', b'.', b'1', b'0',
        b'.', b'0', 0, 0, 0, 0,
    ];
    assert_eq!(
        Request::decode(codes::LOGIN_USER, &payload).unwrap(),
        Request::LoginUser(LoginUser {
            username: "iggy".into(),
            password: "iggy".into(),
            version: Some("0.10.0".into()),
            context: None
        })
    );
    // An older client stops after the password.
    assert_eq!(
        Request::decode(codes::LOGIN_USER, &payload[..10]).unwrap(),
        Request::LoginUser(LoginUser {
            username: "iggy".into(),
            password: "iggy".into(),
            version: None,
            context: None
        })
    );
}

#[test]
fn create_topic_and_poll() {
    let mut b = BytesMut::new();
    Identifier::Numeric(1).encode(&mut b);
    b.put_u32_le(3);
    b.put_u8(1);
    b.put_u64_le(0);
    b.put_u64_le(u64::MAX);
    b.put_u8(0);
    b.put_u8(6);
    b.put_slice(b"orders");
    match Request::decode(codes::CREATE_TOPIC, &b).unwrap() {
        Request::CreateTopic(CreateTopic {
            partitions_count: 3,
            message_expiry: Limit::ServerDefault,
            max_topic_size: Limit::Unlimited,
            name,
            ..
        }) => {
            assert_eq!(name, "orders")
        }
        other => panic!("{other:?}"),
    }
    let mut b = BytesMut::new();
    Consumer::Group(Identifier::Name("g".into())).encode(&mut b);
    Identifier::Numeric(0).encode(&mut b);
    Identifier::Numeric(0).encode(&mut b);
    crate::primitives::encode_optional_partition(None, &mut b);
    PollingStrategy::Next.encode(&mut b);
    b.put_u32_le(100);
    b.put_u8(1);
    let req = Request::decode(codes::POLL_MESSAGES, &b).unwrap();
    assert!(matches!(
        req,
        Request::PollMessages(PollMessages {
            count: 100,
            auto_commit: true,
            partition_id: None,
            ..
        })
    ));
    // One byte short, one byte long: both refused with the field named.
    assert!(Request::decode(codes::POLL_MESSAGES, &b[..b.len() - 1]).is_err());
    let mut long = b.to_vec();
    long.push(0);
    assert!(Request::decode(codes::POLL_MESSAGES, &long).is_err());
}

#[test]
fn set_topic_durability_refuses_unknown_modes() {
    let mut b = encoded(
        &SetTopicDurability {
            stream_id: s(),
            topic_id: t(),
            durability: 0,
        }
        .into(),
    );
    let last = b.len() - 1;
    b[last] = 3;
    assert_eq!(
        Request::decode(codes::WHARF_SET_TOPIC_DURABILITY, &b),
        Err(RequestError::Malformed(crate::wire::err(
            "durability",
            crate::wire::Problem::Unknown(3)
        )))
    );
}

#[test]
fn permissions_round_trip() {
    let p = WirePermissions {
        global: [
            true, false, true, false, false, false, false, false, true, true,
        ],
        streams: vec![
            WireStreamPermissions {
                stream_id: 1,
                flags: [false, true, false, false, true, false],
                topics: vec![
                    WireTopicPermissions {
                        topic_id: 2,
                        flags: [true, false, false, true],
                    },
                    WireTopicPermissions {
                        topic_id: 3,
                        flags: [false, false, true, false],
                    },
                ],
            },
            WireStreamPermissions {
                stream_id: 4,
                ..Default::default()
            },
        ],
    };
    let mut b = BytesMut::new();
    p.encode(&mut b);
    let mut r = Reader::new(&b);
    assert_eq!(WirePermissions::decode(&mut r).unwrap(), p);
    assert_eq!(r.remaining(), 0);
}

#[test]
fn unknown_unsupported_and_garbage() {
    assert_eq!(
        Request::decode(9999, &[]),
        Err(RequestError::UnknownCommand(9999))
    );
    for code in [codes::SEND_MESSAGES, codes::GET_SNAPSHOT_FILE] {
        assert_eq!(
            Request::decode(code, &[]),
            Err(RequestError::Unsupported(code))
        );
    }
    assert!(Request::decode(codes::GET_STREAM, &[2, 200, b'x']).is_err());
    assert!(Request::decode(codes::PING, &[1]).is_err());
}

/// Every listed command, plus the unsupported ones and a few unknown codes.
fn fuzz_codes() -> Vec<u32> {
    let mut all = Request::CODES.to_vec();
    all.extend_from_slice(Request::UNSUPPORTED_CODES);
    all.extend([0, 7, 999, u32::MAX]);
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// Random bytes never panic the decoder, and whatever decodes encodes back to a payload that
    /// decodes to the same request.
    #[test]
    fn decoder_survives_random_payloads(
        code in proptest::sample::select(fuzz_codes()),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(req) = Request::decode(code, &bytes) {
            prop_assert_eq!(req.code(), code);
            prop_assert_eq!(Request::decode(code, &encoded(&req)), Ok(req));
        }
    }

    /// Mutations of valid payloads never panic the decoder either (they get past the first
    /// fields far more often than random bytes do).
    #[test]
    fn decoder_survives_mutated_payloads(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = samples();
        let req = pick.get(&all);
        let mut b = encoded(req).to_vec();
        if !b.is_empty() {
            for (at, x) in flips {
                let i = at.index(b.len());
                b[i] = x;
            }
            b.truncate(cut.index(b.len() + 1));
        }
        if let Ok(back) = Request::decode(req.code(), &b) {
            prop_assert_eq!(Request::decode(req.code(), &encoded(&back)), Ok(back));
        }
    }
}

fn set_config(changes: Vec<TopicConfigChange>) -> BytesMut {
    encoded(
        &SetTopicConfig {
            stream_id: s(),
            topic_id: t(),
            changes,
        }
        .into(),
    )
}

fn change(name: &str, value: Option<&str>) -> TopicConfigChange {
    TopicConfigChange {
        name: name.into(),
        value: value.map(str::to_owned),
    }
}

#[test]
fn set_topic_config_bounds_its_count_and_value_lengths() {
    let decode = |b: &[u8]| Request::decode(codes::WHARF_SET_TOPIC_CONFIG, b);
    let head = encoded(
        &GetTopicConfig {
            stream_id: s(),
            topic_id: t(),
        }
        .into(),
    );
    // The bound on the count: MAX_TOPIC_CONFIG_CHANGES, refused before any change is read
    // (a huge count with nothing behind it allocates nothing).
    let mut b = head.clone();
    b.put_u32_le(MAX_TOPIC_CONFIG_CHANGES + 1);
    assert!(matches!(
        decode(&b),
        Err(RequestError::Malformed(DecodeError {
            field: "configs_count",
            problem: crate::wire::Problem::TooLong { .. }
        }))
    ));
    let mut b = head.clone();
    b.put_u32_le(u32::MAX);
    assert!(decode(&b).is_err());
    let mut b = head.clone();
    b.put_u32_le(0);
    assert!(decode(&b).is_err(), "an empty change list is refused");
    // The bound on a value: MAX_CONFIG_VALUE_LEN bytes.
    let at_limit = "x".repeat(MAX_CONFIG_VALUE_LEN);
    let b = set_config(vec![change("cleanup.policy", Some(&at_limit))]);
    assert!(decode(&b).is_ok());
    let mut b = head.clone();
    b.put_u32_le(1);
    b.put_u8(1);
    b.put_slice(b"a");
    b.put_u8(1);
    b.put_u16_le(MAX_CONFIG_VALUE_LEN as u16 + 1);
    b.put_slice(&vec![b'x'; MAX_CONFIG_VALUE_LEN + 1]);
    assert!(matches!(
        decode(&b),
        Err(RequestError::Malformed(DecodeError {
            field: "config_value",
            problem: crate::wire::Problem::TooLong { .. }
        }))
    ));
    // A count larger than the changes present, an empty name, a presence flag other than 0/1.
    let mut b = set_config(vec![change("a", None)]);
    let at = head.len();
    b[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
    assert!(decode(&b).is_err());
    let mut b = set_config(vec![change("a", None)]);
    b[at + 4] = 0;
    assert!(decode(&b).is_err());
    let mut b = set_config(vec![change("a", None)]);
    let last = b.len() - 1;
    b[last] = 2;
    assert!(decode(&b).is_err());
}

/// Review 17 #12: a value over MAX_CONFIG_VALUE_LEN whose cut would land inside a UTF-8
/// character (1023 ASCII bytes, then "é") is refused by `check` and, sent anyway, refused by
/// the server as too long: never applied cut short, never refused as bad UTF-8. More than
/// MAX_TOPIC_CONFIG_CHANGES changes are refused too, not silently dropped.
#[test]
fn over_long_config_values_are_refused_never_cut() {
    let decode = |b: &[u8]| Request::decode(codes::WHARF_SET_TOPIC_CONFIG, b);
    let value = format!("{}é", "x".repeat(MAX_CONFIG_VALUE_LEN - 1));
    assert_eq!(value.len(), MAX_CONFIG_VALUE_LEN + 1);
    let over = SetTopicConfig {
        stream_id: s(),
        topic_id: t(),
        changes: vec![change("cleanup.policy", Some(&value))],
    };
    assert_eq!(
        over.check(),
        Err(TopicConfigError::Value {
            name: "cleanup.policy".into(),
            len: MAX_CONFIG_VALUE_LEN + 1
        })
    );
    assert!(matches!(
        decode(&set_config(over.changes.clone())),
        Err(RequestError::Malformed(DecodeError {
            field: "config_value",
            problem: crate::wire::Problem::TooLong { .. }
        }))
    ));
    // At the limit, multi-byte characters included, the value travels whole.
    let at_limit = format!("{}é", "x".repeat(MAX_CONFIG_VALUE_LEN - 2));
    let ok = vec![change("cleanup.policy", Some(&at_limit))];
    let Ok(Request::SetTopicConfig(back)) = decode(&set_config(ok.clone())) else {
        panic!("a value at the limit was refused");
    };
    assert_eq!(back.changes, ok);
    let many: Vec<TopicConfigChange> = (0..=MAX_TOPIC_CONFIG_CHANGES)
        .map(|_| change("a", None))
        .collect();
    assert!(decode(&set_config(many)).is_err());
    let empty = SetTopicConfig {
        stream_id: s(),
        topic_id: t(),
        changes: vec![],
    };
    assert_eq!(empty.check(), Err(TopicConfigError::Count { count: 0 }));
    let name = SetTopicConfig {
        stream_id: s(),
        topic_id: t(),
        changes: vec![change(&"n".repeat(256), None)],
    };
    assert!(matches!(name.check(), Err(TopicConfigError::Name { .. })));
}

/// Bound: a snapshot asks for at most MAX_SNAPSHOT_LAG_ROWS lag rows; one more is refused
/// before anything is gathered.
#[test]
fn metrics_snapshot_bounds_its_lag_rows() {
    let at = GetMetricsSnapshot {
        lag_rows: MAX_SNAPSHOT_LAG_ROWS,
    };
    assert_eq!(
        Request::decode(codes::WHARF_METRICS_SNAPSHOT, &encoded(&at.into())).unwrap(),
        Request::GetMetricsSnapshot(at)
    );
    let over = (MAX_SNAPSHOT_LAG_ROWS + 1).to_le_bytes();
    assert!(matches!(
        Request::decode(codes::WHARF_METRICS_SNAPSHOT, &over),
        Err(RequestError::Malformed(DecodeError {
            field: "lag_rows",
            problem: crate::wire::Problem::TooLong { .. }
        }))
    ));
}

/// Bound: the group id of a lag request is read only as far as its u16 length says and only
/// if the bytes are there; a length past the payload or bytes that are not UTF-8 are refused.
#[test]
fn consumer_lag_group_is_bounded_and_utf8() {
    let mut b = BytesMut::new();
    b.put_u16_le(u16::MAX);
    b.put_slice(b"short");
    assert!(Request::decode(codes::WHARF_CONSUMER_LAG, &b).is_err());
    let mut b = BytesMut::new();
    b.put_u16_le(2);
    b.put_slice(&[0xff, 0xfe]);
    assert!(Request::decode(codes::WHARF_CONSUMER_LAG, &b).is_err());
    // The longest id the store allows still round-trips.
    let longest = GetConsumerLag {
        group: Some("g".repeat(MAX_GROUP_ID_LEN)),
    };
    let r: Request = longest.clone().into();
    assert_eq!(
        Request::decode(codes::WHARF_CONSUMER_LAG, &encoded(&r)).unwrap(),
        Request::GetConsumerLag(longest)
    );
}
