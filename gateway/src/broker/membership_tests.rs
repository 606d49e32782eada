//! Consumer-protocol heartbeats through the broker core: the group's view of the topics.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::*;
use crate::broker::consumer_protocol::Heartbeat;
use crate::broker::BrokerSettings;
use wharf_log_store::StoreConfig;

fn heartbeat(member: &str, epoch: i32) -> Heartbeat {
    Heartbeat {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: if epoch == 0 { 10_000 } else { -1 },
        ..Heartbeat::default()
    }
}

#[tokio::test]
async fn the_group_epoch_does_not_depend_on_who_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(
        dir.path(),
        StoreConfig::default(),
        BrokerSettings::for_tests(),
    )
    .unwrap();
    for name in ["shared", "secret"] {
        b.create_kafka_topic(name, 2, Default::default(), false)
            .await
            .unwrap();
    }
    let everything = |_: &str| true;
    let no_secret = |t: &str| t != "secret";
    // m1's principal may describe both topics and names them; m2's may not see "secret" and
    // subscribes by a regex that would match it.
    let mut join1 = heartbeat("m1", 0);
    join1.subscribed_topic_names = Some(vec!["shared".into(), "secret".into()]);
    join1.owned = Some(Vec::new());
    let mut e1 = b
        .consumer_group_heartbeat(&join1, everything)
        .unwrap()
        .member_epoch;
    let mut join2 = heartbeat("m2", 0);
    join2.subscribed_topic_regex = Some("s.*".into());
    join2.owned = Some(Vec::new());
    let mut e2 = b
        .consumer_group_heartbeat(&join2, no_secret)
        .unwrap()
        .member_epoch;
    let epoch = b.describe_consumer_group("g").unwrap().group_epoch;
    // The bound: 10 alternating heartbeats of the two principals leave the group epoch as is.
    for _ in 0..5 {
        e1 = b
            .consumer_group_heartbeat(&heartbeat("m1", e1), everything)
            .unwrap()
            .member_epoch;
        e2 = b
            .consumer_group_heartbeat(&heartbeat("m2", e2), no_secret)
            .unwrap()
            .member_epoch;
    }
    let g = b.describe_consumer_group("g").unwrap();
    assert_eq!(
        g.group_epoch, epoch,
        "no rebalance from alternating principals"
    );
    let secret = topic_uuid(&b.kafka_topic("secret").unwrap());
    let m2 = g.members.iter().find(|m| m.member_id == "m2").unwrap();
    assert!(
        !m2.target_assignment.contains_key(&secret),
        "m2's regex is resolved with m2's rights"
    );
    let m1 = g.members.iter().find(|m| m.member_id == "m1").unwrap();
    assert!(
        m1.target_assignment.contains_key(&secret),
        "m1 keeps the topic only it may see"
    );
}

#[tokio::test]
async fn an_empty_group_without_offsets_is_dropped_when_its_last_member_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(
        dir.path(),
        StoreConfig::default(),
        BrokerSettings::for_tests(),
    )
    .unwrap();
    b.create_kafka_topic("t", 1, Default::default(), false)
        .await
        .unwrap();
    // The bound: after 1,000 distinct groups joined and left, no consumer group is kept.
    for n in 0..1000 {
        let group = format!("g{n}");
        let mut join = heartbeat("m", 0);
        join.group_id.clone_from(&group);
        join.subscribed_topic_names = Some(vec!["t".into()]);
        join.owned = Some(Vec::new());
        b.consumer_group_heartbeat(&join, |_| true).unwrap();
        assert!(b.coordinator.is_consumer_group(&group));
        let mut leave = heartbeat("m", LEAVE_EPOCH);
        leave.group_id = group.clone();
        b.consumer_group_heartbeat(&leave, |_| true).unwrap();
        assert!(!b.coordinator.is_consumer_group(&group), "{group} dropped");
    }
}
