//! Native (Iggy) consumer groups rebalance incrementally, with the same server-side `uniform`
//! assignor as KIP-848 Kafka groups: official `iggy` clients join and leave a group one by one
//! and each change moves only the partitions it must (the newcomer's share on a join, the
//! leaver's partitions on a leave), every partition keeps exactly one owner, and loads differ
//! by at most one.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use compat_tests::{create_stream_with_topic, iggy_root_client, within, TestServer};
use iggy::prelude::*;

const PARTITIONS: u32 = 6;

fn id(name: &str) -> Identifier {
    Identifier::named(name).unwrap()
}

/// Member id -> partitions, as the server reports them.
async fn owners(admin: &IggyClient) -> BTreeMap<u32, Vec<u32>> {
    let group = within(
        "get group",
        admin.get_consumer_group(&id("inc"), &id("t"), &id("workers")),
    )
    .await
    .unwrap()
    .unwrap();
    group
        .members
        .iter()
        .map(|m| {
            let mut p = m.partitions.clone();
            p.sort_unstable();
            (m.id, p)
        })
        .collect()
}

/// Partitions that moved away from the members of `before` still present in `after`.
fn moved(before: &BTreeMap<u32, Vec<u32>>, after: &BTreeMap<u32, Vec<u32>>) -> usize {
    before
        .iter()
        .filter_map(|(m, parts)| after.get(m).map(|now| (parts, now)))
        .map(|(parts, now)| parts.iter().filter(|p| !now.contains(p)).count())
        .sum()
}

fn check_balanced(owners: &BTreeMap<u32, Vec<u32>>) {
    let mut all: Vec<u32> = owners.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..PARTITIONS).collect::<Vec<_>>(),
        "each partition owned once"
    );
    let loads: Vec<usize> = owners.values().map(Vec::len).collect();
    let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    assert!(hi - lo <= 1, "balanced within one: {owners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_group_members_joining_and_leaving_move_only_what_they_must() {
    let server = TestServer::start().await;
    let admin = iggy_root_client(&server).await;
    create_stream_with_topic(&admin, "inc", "t", PARTITIONS).await;
    admin
        .create_consumer_group(&id("inc"), &id("t"), "workers")
        .await
        .unwrap();

    let mut members = Vec::new();
    let mut last = BTreeMap::new();
    for n in 1..=4usize {
        let c = iggy_root_client(&server).await;
        within(
            "join",
            c.join_consumer_group(&id("inc"), &id("t"), &id("workers")),
        )
        .await
        .unwrap();
        members.push(c);
        let now = owners(&admin).await;
        assert_eq!(now.len(), n);
        check_balanced(&now);
        // The bound: the newcomer's share (6 / n, rounded down) is all that moves.
        let share = PARTITIONS as usize / n;
        let newcomer: usize = now
            .iter()
            .filter(|(m, _)| !last.contains_key(*m))
            .map(|(_, p)| p.len())
            .sum();
        assert_eq!(newcomer, share, "join {n}: {last:?} -> {now:?}");
        if n > 1 {
            assert_eq!(moved(&last, &now), share, "join {n}: {last:?} -> {now:?}");
        }
        last = now;
    }

    // Two leave, one after the other: the others keep everything they had.
    for _ in 0..2 {
        let leaver = members.remove(0);
        within(
            "leave",
            leaver.leave_consumer_group(&id("inc"), &id("t"), &id("workers")),
        )
        .await
        .unwrap();
        let now = owners(&admin).await;
        check_balanced(&now);
        assert_eq!(
            moved(&last, &now),
            0,
            "a leave moves only the leaver's: {last:?} -> {now:?}"
        );
        last = now;
    }
}
