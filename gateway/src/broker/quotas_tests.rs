#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;

fn open() -> (tempfile::TempDir, ClientQuotas) {
    let dir = tempfile::tempdir().unwrap();
    let q = ClientQuotas::open(dir.path()).unwrap();
    (dir, q)
}

/// Who an entity names: `None` absent, `Some(None)` `<default>`.
type Part<'a> = Option<Option<&'a str>>;

fn entity(
    user: Option<Option<&str>>,
    client: Option<Option<&str>>,
) -> Vec<(String, Option<String>)> {
    let mut e = Vec::new();
    if let Some(u) = user {
        e.push((USER.to_string(), u.map(str::to_string)));
    }
    if let Some(c) = client {
        e.push((CLIENT_ID.to_string(), c.map(str::to_string)));
    }
    e
}

fn set(q: &ClientQuotas, e: Vec<(String, Option<String>)>, key: &str, value: f64) {
    let r = q
        .alter(
            &[QuotaAlteration {
                entity: e,
                ops: vec![(key.into(), Some(value))],
            }],
            false,
        )
        .unwrap();
    assert_eq!(r, vec![Ok(())]);
}

fn at(q: &ClientQuotas, ms: u64) -> Instant {
    q.epoch + Duration::from_millis(ms)
}

/// The quota a (user, client) gets, as Kafka's precedence decides it.
fn quota_of(q: &ClientQuotas, user: &str, client: &str) -> Option<f64> {
    let tags = q.sensor_tags(QuotaKind::Produce, user, client);
    q.limit(QuotaKind::Produce, &tags)
}

#[test]
fn precedence_is_kafkas_eight_levels() {
    let (_d, q) = open();
    let levels: Vec<(Part<'_>, Part<'_>)> = vec![
        (None, Some(None)),                     // 8 client-id=<default>
        (None, Some(Some("c"))),                // 7 client-id=c
        (Some(None), None),                     // 6 user=<default>
        (Some(None), Some(None)),               // 5 user=<default>,client-id=<default>
        (Some(None), Some(Some("c"))),          // 4 user=<default>,client-id=c
        (Some(Some("alice")), None),            // 3 user=alice
        (Some(Some("alice")), Some(None)),      // 2 user=alice,client-id=<default>
        (Some(Some("alice")), Some(Some("c"))), // 1 user=alice,client-id=c
    ];
    for (i, (u, c)) in levels.into_iter().enumerate() {
        let value = (8 - i) as f64 * 100.0;
        set(&q, entity(u, c), PRODUCER_BYTE_RATE, value);
        // The newest (more specific) level wins for alice/c.
        assert_eq!(quota_of(&q, "alice", "c"), Some(value), "level {}", 8 - i);
    }
    // Other combinations fall to their own most specific level.
    assert_eq!(quota_of(&q, "alice", "d"), Some(200.0)); // user=alice,client-id=<default>
    assert_eq!(quota_of(&q, "bob", "c"), Some(400.0)); // user=<default>,client-id=c
    assert_eq!(quota_of(&q, "bob", "d"), Some(500.0)); // user=<default>,client-id=<default>
                                                       // The consumer quota is separate: nothing set.
    let tags = q.sensor_tags(QuotaKind::Fetch, "alice", "c");
    assert_eq!(q.limit(QuotaKind::Fetch, &tags), None);
}

#[test]
fn sensors_are_shared_at_the_granularity_of_the_matching_entity() {
    let (_d, q) = open();
    set(
        &q,
        entity(Some(Some("alice")), None),
        PRODUCER_BYTE_RATE,
        1000.0,
    );
    set(
        &q,
        entity(None, Some(Some("c"))),
        PRODUCER_BYTE_RATE,
        1000.0,
    );
    assert_eq!(
        q.sensor_tags(QuotaKind::Produce, "alice", "x"),
        ("alice".into(), String::new())
    );
    assert_eq!(
        q.sensor_tags(QuotaKind::Produce, "bob", "c"),
        (String::new(), "c".into())
    );
    // alice's clients share one sensor: 6000 bytes from one and 6000 from another at once are
    // 12000 over 10 s, above 1000 B/s.
    assert_eq!(
        q.record(QuotaKind::Produce, "alice", "x", 6000.0, at(&q, 0)),
        0
    );
    let t = q.record(QuotaKind::Produce, "alice", "y", 6000.0, at(&q, 0));
    assert_eq!(t, 2000, "(1200 - 1000) / 1000 * 10 s");
}

/// Kafka's formula: rate over max(span, (samples - 1) windows), throttle
/// (rate - quota) / quota × that window.
#[test]
fn throttle_time_is_kafkas_formula() {
    let (_d, q) = open();
    set(&q, entity(None, Some(None)), PRODUCER_BYTE_RATE, 1000.0);
    // 10 000 bytes at once: exactly the quota over the minimum 10 s window.
    assert_eq!(
        q.record(QuotaKind::Produce, "u", "c", 10_000.0, at(&q, 0)),
        0
    );
    // 10 000 more: 20 000 / 10 s = 2000 B/s, twice the quota: 10 s of silence.
    assert_eq!(
        q.record(QuotaKind::Produce, "u", "c", 10_000.0, at(&q, 0)),
        10_000
    );
    // 5 s later the span is still the minimum 10 s.
    let t = q.record(QuotaKind::Produce, "u", "c", 1.0, at(&q, 5_000));
    assert_eq!(
        t,
        ((20_001.0 / 10.0 - 1000.0) / 1000.0 * 10_000.0_f64).round() as i32
    );
    // At 10.5 s the samples span 10.5 s.
    let t = q.record(QuotaKind::Produce, "u", "c", 1.0, at(&q, 10_500));
    assert_eq!(
        t,
        ((20_002.0 / 10.5 - 1000.0) / 1000.0 * 10_500.0_f64).round() as i32
    );
    // Once every sample is older than 11 windows it is forgotten.
    assert_eq!(
        q.record(QuotaKind::Produce, "u", "c", 1.0, at(&q, 40_000)),
        0
    );
}

/// Bound: a producer that waits out each throttle gets at most quota × (elapsed + the window)
/// bytes accepted; counted in bytes over simulated time, not measured.
#[test]
fn a_client_honouring_throttles_stays_within_its_quota() {
    let (_d, q) = open();
    let quota = 50_000.0;
    set(&q, entity(None, Some(Some("p"))), PRODUCER_BYTE_RATE, quota);
    let mut now_ms = 0u64;
    let mut accepted = 0.0;
    let mut throttled = 0;
    let request = 16_384.0;
    while now_ms < 120_000 {
        accepted += request;
        let t = q.record(
            QuotaKind::Produce,
            "ANONYMOUS",
            "p",
            request,
            at(&q, now_ms),
        );
        if t > 0 {
            throttled += 1;
            now_ms += t as u64;
        }
        now_ms += 1; // a request each millisecond when not throttled
    }
    let elapsed_s = now_ms as f64 / 1000.0;
    assert!(
        throttled > 10,
        "the producer was throttled {throttled} times"
    );
    let bound = quota * (elapsed_s + 11.0);
    assert!(
        accepted <= bound,
        "{accepted} bytes in {elapsed_s} s is above {bound} (quota {quota} B/s)"
    );
    // And the quota is not starved: at least the quota's worth over the time, less a window.
    assert!(
        accepted >= quota * (elapsed_s - 11.0),
        "{accepted} in {elapsed_s} s"
    );
}

#[test]
fn an_unrecorded_fetch_counts_nothing() {
    let (_d, q) = open();
    set(&q, entity(Some(None), None), CONSUMER_BYTE_RATE, 100.0);
    assert_eq!(
        q.max_value_in_window(QuotaKind::Fetch, "u", "c"),
        Some(1000.0)
    );
    let t = q.record(QuotaKind::Fetch, "u", "c", 5000.0, at(&q, 0));
    assert!(t > 0);
    q.unrecord(QuotaKind::Fetch, "u", "c", 5000.0, at(&q, 0));
    assert_eq!(q.record(QuotaKind::Fetch, "u", "c", 900.0, at(&q, 0)), 0);
    // Producer traffic is not counted against the consumer quota.
    assert_eq!(q.record(QuotaKind::Produce, "u", "c", 1e9, at(&q, 0)), 0);
}

#[test]
fn without_quotas_nothing_is_recorded() {
    let (_d, q) = open();
    assert_eq!(q.record(QuotaKind::Produce, "u", "c", 1e12, at(&q, 0)), 0);
    assert_eq!(q.sensor_count(), 0);
    assert_eq!(q.max_value_in_window(QuotaKind::Fetch, "u", "c"), None);
}

/// Bound: sensors of client ids idle for the whole window are dropped, so a client inventing a
/// new client id per request holds at most about twice the sensors of one window.
#[test]
fn idle_sensors_are_swept() {
    let (_d, q) = open();
    set(&q, entity(None, Some(None)), PRODUCER_BYTE_RATE, 1e9);
    for i in 0..5000 {
        q.record(QuotaKind::Produce, "u", &format!("c{i}"), 1.0, at(&q, 0));
    }
    assert_eq!(q.sensor_count(), 5000);
    // 11 windows later the first 5000 measure nothing: new ones sweep them away.
    for i in 0..4000 {
        q.record(
            QuotaKind::Produce,
            "u",
            &format!("d{i}"),
            1.0,
            at(&q, 11_000),
        );
    }
    assert_eq!(
        q.sensor_count(),
        4000,
        "only the sensors of the last window are kept"
    );
}

#[test]
fn alterations_are_validated_as_kafka() {
    let (_d, q) = open();
    let one = |e: Vec<(String, Option<String>)>, ops: Vec<(&str, Option<f64>)>| {
        let r = q
            .alter(
                &[QuotaAlteration {
                    entity: e,
                    ops: ops.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                }],
                false,
            )
            .unwrap();
        r.into_iter().next().unwrap()
    };
    let invalid = |r: Result<(), QuotaError>, text: &str| match r {
        Err(QuotaError::InvalidRequest(m)) => assert!(m.contains(text), "{m}"),
        other => panic!("{other:?}, wanted {text}"),
    };
    let alice = || entity(Some(Some("alice")), None);
    invalid(
        one(vec![], vec![(PRODUCER_BYTE_RATE, Some(1.0))]),
        "empty client quota entity",
    );
    invalid(
        one(vec![("group".into(), Some("g".into()))], vec![]),
        "Unhandled client quota entity type: group",
    );
    invalid(
        one(vec![(USER.into(), Some(String::new()))], vec![]),
        "Empty user not supported",
    );
    invalid(
        one(
            vec![(USER.into(), None), (USER.into(), Some("a".into()))],
            vec![],
        ),
        "duplicate entity entry user",
    );
    invalid(
        one(alice(), vec![("x", Some(1.0))]),
        "Invalid configuration key x",
    );
    invalid(
        one(alice(), vec![(PRODUCER_BYTE_RATE, Some(0.0))]),
        "must be greater than 0",
    );
    invalid(
        one(alice(), vec![(PRODUCER_BYTE_RATE, Some(f64::NAN))]),
        "greater than 0",
    );
    invalid(
        one(alice(), vec![(PRODUCER_BYTE_RATE, Some(1.5))]),
        "fractional",
    );
    invalid(
        one(alice(), vec![(PRODUCER_BYTE_RATE, Some(1e30))]),
        "too large for a LONG",
    );
    invalid(
        one(alice(), vec![(CONNECTION_CREATION_RATE, Some(1.0))]),
        "Invalid configuration key",
    );
    invalid(
        one(
            alice(),
            vec![(PRODUCER_BYTE_RATE, Some(1.0)), (PRODUCER_BYTE_RATE, None)],
        ),
        "Duplicate quota key",
    );
    invalid(
        one(
            vec![(IP.into(), Some("1.2.3.4".into())), (USER.into(), None)],
            vec![],
        ),
        "IP entity",
    );
    invalid(
        one(vec![(IP.into(), Some("not-an-ip".into()))], vec![]),
        "not a valid IP",
    );
    assert_eq!(
        one(
            vec![(IP.into(), Some("10.0.0.1".into()))],
            vec![(CONNECTION_CREATION_RATE, Some(5.0))]
        ),
        Ok(())
    );
    assert_eq!(one(alice(), vec![(REQUEST_PERCENTAGE, Some(12.5))]), Ok(()));
    // Nothing refused was applied.
    let all = q.describe(&[], false).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
}

/// Bound: one AlterClientQuotas may hold about a million alterations (`max_request_size`);
/// a repeated entity and a repeated key are each found by one set look-up (not a scan of all
/// before it), refused as Kafka's `ClientQuotaControlManager` does, and the rest applied.
#[test]
fn duplicates_in_a_large_alteration_are_found_by_set() {
    let (_d, q) = open();
    const ENTITIES: usize = 20_000;
    let client = |i: usize| entity(None, Some(Some(&format!("c{i}"))));
    let mut alterations: Vec<QuotaAlteration> = (0..ENTITIES)
        .map(|i| QuotaAlteration {
            entity: client(i),
            ops: vec![(PRODUCER_BYTE_RATE.into(), Some(1000.0))],
        })
        .collect();
    // The first entity again, after all the others.
    alterations.push(QuotaAlteration {
        entity: client(0),
        ops: vec![(CONSUMER_BYTE_RATE.into(), Some(1000.0))],
    });
    // A new entity naming one key twice, among other keys.
    alterations.push(QuotaAlteration {
        entity: client(ENTITIES),
        ops: vec![
            (PRODUCER_BYTE_RATE.into(), Some(1.0)),
            (CONSUMER_BYTE_RATE.into(), Some(1.0)),
            (REQUEST_PERCENTAGE.into(), Some(1.0)),
            (PRODUCER_BYTE_RATE.into(), None),
        ],
    });
    let r = q.alter(&alterations, false).unwrap();
    assert_eq!(r.len(), ENTITIES + 2);
    assert!(r[..ENTITIES].iter().all(Result::is_ok));
    match &r[ENTITIES] {
        Err(QuotaError::InvalidRequest(m)) => {
            assert!(m.contains("Ignoring duplicate entity"), "{m}")
        }
        other => panic!("{other:?}, wanted the duplicate entity refused"),
    }
    match &r[ENTITIES + 1] {
        Err(QuotaError::InvalidRequest(m)) => assert!(m.contains("Duplicate quota key"), "{m}"),
        other => panic!("{other:?}, wanted the duplicate key refused"),
    }
    // The duplicate did not touch the first entity; the refused one was not created.
    let all = q.describe(&[], false).unwrap();
    assert_eq!(all.len(), ENTITIES);
    let first = all
        .iter()
        .find(|(e, _)| *e == client(0).into_iter().collect());
    let values = &first.expect("c0 kept").1;
    assert_eq!(values.get(CONSUMER_BYTE_RATE), None);
    assert_eq!(values.get(PRODUCER_BYTE_RATE), Some(&1000.0));
}

#[test]
fn quotas_persist_and_validate_only_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = ClientQuotas::open(dir.path()).unwrap();
        set(
            &q,
            entity(Some(Some("alice")), Some(None)),
            CONSUMER_BYTE_RATE,
            2048.0,
        );
        let r = q
            .alter(
                &[QuotaAlteration {
                    entity: entity(Some(Some("bob")), None),
                    ops: vec![(PRODUCER_BYTE_RATE.into(), Some(1.0))],
                }],
                true,
            )
            .unwrap();
        assert_eq!(r, vec![Ok(())]);
    }
    let q = ClientQuotas::open(dir.path()).unwrap();
    let all = q.describe(&[], false).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].1.get(CONSUMER_BYTE_RATE), Some(&2048.0));
    assert!(q.enabled(QuotaKind::Fetch));
    // Removing the last key removes the entity.
    q.alter(
        &[QuotaAlteration {
            entity: entity(Some(Some("alice")), Some(None)),
            ops: vec![(CONSUMER_BYTE_RATE.into(), None)],
        }],
        false,
    )
    .unwrap();
    assert!(q.describe(&[], false).unwrap().is_empty());
    assert!(!q.enabled(QuotaKind::Fetch));
    drop(q);
    assert!(ClientQuotas::open(dir.path())
        .unwrap()
        .describe(&[], false)
        .unwrap()
        .is_empty());
}

#[test]
fn describe_filters_as_kafka() {
    let (_d, q) = open();
    set(
        &q,
        entity(Some(Some("alice")), None),
        PRODUCER_BYTE_RATE,
        1.0,
    );
    set(&q, entity(Some(None), None), PRODUCER_BYTE_RATE, 2.0);
    set(
        &q,
        entity(Some(Some("alice")), Some(Some("c"))),
        PRODUCER_BYTE_RATE,
        3.0,
    );
    set(&q, entity(None, Some(Some("c"))), PRODUCER_BYTE_RATE, 4.0);
    let c = |t: &str, m: i8, n: Option<&str>| FilterComponent {
        entity_type: t.into(),
        match_type: m,
        name: n.map(str::to_string),
    };
    let values = |filter: &[FilterComponent], strict: bool| -> Vec<f64> {
        let mut v: Vec<f64> = q
            .describe(filter, strict)
            .unwrap()
            .into_iter()
            .map(|(_, q)| q[PRODUCER_BYTE_RATE])
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    assert_eq!(values(&[], false), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(values(&[], true), Vec::<f64>::new());
    assert_eq!(
        values(&[c(USER, MATCH_EXACT, Some("alice"))], false),
        vec![1.0, 3.0]
    );
    assert_eq!(
        values(&[c(USER, MATCH_EXACT, Some("alice"))], true),
        vec![1.0]
    );
    assert_eq!(values(&[c(USER, MATCH_DEFAULT, None)], false), vec![2.0]);
    // SPECIFIED: any entity with that type (KRaft's ClientQuotasImage counts the default too).
    assert_eq!(
        values(&[c(USER, MATCH_SPECIFIED, None)], false),
        vec![1.0, 2.0, 3.0]
    );
    assert_eq!(
        values(&[c(CLIENT_ID, MATCH_SPECIFIED, None)], true),
        vec![4.0]
    );
    let err = |filter: &[FilterComponent]| q.describe(filter, false).unwrap_err();
    assert!(matches!(
        err(&[c("", MATCH_EXACT, Some("a"))]),
        QuotaError::InvalidRequest(_)
    ));
    assert!(matches!(
        err(&[c("group", MATCH_EXACT, Some("a"))]),
        QuotaError::UnsupportedEntityType(_)
    ));
    assert!(matches!(
        err(&[c(USER, MATCH_EXACT, None)]),
        QuotaError::InvalidRequest(_)
    ));
    assert!(matches!(
        err(&[c(USER, MATCH_DEFAULT, Some("a"))]),
        QuotaError::InvalidRequest(_)
    ));
    assert!(matches!(
        err(&[c(USER, 7, None)]),
        QuotaError::InvalidRequest(_)
    ));
    assert!(matches!(
        err(&[c(USER, MATCH_SPECIFIED, None), c(USER, MATCH_DEFAULT, None)]),
        QuotaError::InvalidRequest(_)
    ));
    assert!(matches!(
        err(&[c(IP, MATCH_SPECIFIED, None), c(USER, MATCH_DEFAULT, None)]),
        QuotaError::InvalidRequest(_)
    ));
}
