//! The coordinator's state machine, driven directly with the clock paused (timeouts pass in
//! virtual time, so nothing here waits for real).

use std::sync::Arc;

use super::*;

fn settings() -> CoordinatorSettings {
    CoordinatorSettings {
        min_session_timeout: Duration::from_secs(1),
        max_session_timeout: Duration::from_secs(60),
        initial_rebalance_delay: Duration::ZERO,
        max_group_size: 100,
        consumer: Default::default(),
    }
}

fn coordinator(settings: CoordinatorSettings) -> Arc<GroupCoordinator> {
    let c = Arc::new(GroupCoordinator::new(settings));
    let timers = Arc::clone(&c);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let _stop = stop; // never sent: the timers run for the whole test
        timers.drive_timers(stopped).await;
    });
    c
}

fn join(group: &str, member: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from(format!("sub-{member}"))),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member_id: true,
    }
}

fn who(member: &str, generation: i32) -> MemberRef<'_> {
    MemberRef {
        member_id: member,
        group_instance_id: None,
        generation,
    }
}

fn sync(group: &str, member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

/// Joins through the MEMBER_ID_REQUIRED round trip; returns the member id it was given.
async fn member_id(c: &GroupCoordinator, group: &str) -> String {
    let first = c.join(join(group, "")).await;
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(
        first.member_id.starts_with("client-"),
        "{}",
        first.member_id
    );
    first.member_id
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A group of `a` and `b`, Stable in generation 2 with assignments "A" and "B".
async fn stable_pair(c: &Arc<GroupCoordinator>, group: &str) -> (String, String) {
    let a = member_id(c, group).await;
    let joined = c.join(join(group, &a)).await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    assert_eq!(joined.leader, a);
    let got = c.sync(sync(group, &a, 1, &[(&a, "A")])).await;
    assert_eq!((got.error, &got.assignment[..]), (None, &b"A"[..]));

    let b = member_id(c, group).await;
    let b_join = tokio::spawn({
        let c = Arc::clone(c);
        let req = join(group, &b);
        async move { c.join(req).await }
    });
    settle().await;
    assert_eq!(
        c.heartbeat(group, who(&a, 1)),
        Err(GroupError::RebalanceInProgress)
    );
    let a_join = c.join(join(group, &a)).await;
    let b_joined = b_join.await.unwrap();
    assert_eq!((a_join.error, a_join.generation), (None, 2));
    assert_eq!(a_join.protocol_name.as_deref(), Some("range"));
    assert_eq!(a_join.members.len(), 2, "the leader sees every member");
    assert_eq!(a_join.members[1].metadata, Bytes::from(format!("sub-{b}")));
    assert_eq!((b_joined.error, b_joined.generation), (None, 2));
    assert!(b_joined.members.is_empty(), "followers see no members");
    assert_eq!(b_joined.leader, a);

    let b_sync = tokio::spawn({
        let c = Arc::clone(c);
        let req = sync(group, &b, 2, &[]);
        async move { c.sync(req).await }
    });
    settle().await;
    let a_sync = c.sync(sync(group, &a, 2, &[(&a, "A"), (&b, "B")])).await;
    assert_eq!(&a_sync.assignment[..], b"A");
    assert_eq!(&b_sync.await.unwrap().assignment[..], b"B");
    assert_eq!(c.heartbeat(group, who(&b, 2)), Ok(()));
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn members_join_sync_heartbeat_and_commit_by_generation() {
    let c = coordinator(settings());
    let (a, b) = stable_pair(&c, "g").await;
    let describe = c.describe("g", false).unwrap();
    assert_eq!(describe.state, GroupState::Stable);
    assert_eq!(describe.protocol_name, "range");
    assert_eq!(describe.members.len(), 2);
    assert_eq!(&describe.members[1].assignment[..], b"B");

    assert_eq!(c.commit_offsets("g", who(&a, 2), || 7), Ok(7));
    assert_eq!(
        c.commit_offsets("g", who(&a, 1), || 7),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.commit_offsets("g", who("stranger", 2), || 7),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.commit_offsets("g", who("", -1), || 7),
        Err(GroupError::UnknownMemberId),
        "outside commits are refused while the group has members"
    );
    assert_eq!(c.commit_offsets("nobody", who("", -1), || 7), Ok(7));
    assert_eq!(
        c.commit_offsets("nobody", who("x", 3), || 7),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat("g", who(&b, 1)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat("missing", who(&b, 2)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.sync(sync("g", &b, 2, &[])).await.assignment,
        Bytes::from_static(b"B"),
        "a Stable group answers SyncGroup with the current assignment"
    );
}

#[tokio::test(start_paused = true)]
async fn a_commit_while_completing_a_rebalance_is_refused_but_allowed_while_preparing() {
    let c = coordinator(settings());
    let (a, b) = stable_pair(&c, "g").await;
    let a_join = tokio::spawn({
        let c = Arc::clone(&c);
        let req = join("g", &a);
        async move { c.join(req).await }
    });
    settle().await;
    // PreparingRebalance: b has not rejoined; it may still commit what it processed.
    assert_eq!(c.commit_offsets("g", who(&b, 2), || ()), Ok(()));
    let b_join = c.join(join("g", &b)).await;
    assert_eq!(b_join.generation, 3);
    assert_eq!(a_join.await.unwrap().generation, 3);
    // CompletingRebalance: generation 3 is known but not yet assigned.
    assert_eq!(
        c.commit_offsets("g", who(&b, 3), || ()),
        Err(GroupError::RebalanceInProgress)
    );
    // Kafka's TxnOffsetCommit is not held by the group's state, and one without member and
    // generation (v0-2) is not checked against the members; a wrong generation still is.
    assert_eq!(c.commit_offsets_in_txn("g", who(&b, 3), || ()), Ok(()));
    assert_eq!(c.commit_offsets_in_txn("g", who("", -1), || ()), Ok(()));
    assert_eq!(
        c.commit_offsets_in_txn("g", who(&b, 2), || ()),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.commit_offsets_in_txn("g", who("stranger", 3), || ()),
        Err(GroupError::UnknownMemberId)
    );
    // Kafka 4's ClassicGroup.validateOffsetCommit (not the old coordinator's looser
    // doTxnCommitOffsets): a generation >= 0 or a member id means both are checked.
    assert_eq!(
        c.commit_offsets_in_txn("g", who("", 3), || ()),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.commit_offsets_in_txn("g", who(&b, -1), || ()),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.sync(sync("g", &b, 2, &[])).await.error,
        Some(GroupError::IllegalGeneration)
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_is_removed_after_its_session_and_the_group_rebalances() {
    let c = coordinator(settings());
    let (a, b) = stable_pair(&c, "g").await;
    // a heartbeats every second; b says nothing (its session is 10 s).
    let mut told = None;
    for second in 1..=15 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = c.heartbeat("g", who(&a, 2)) {
            told = Some((second, e));
            break;
        }
    }
    let (second, e) = told.expect("a is told to rejoin");
    assert_eq!(e, GroupError::RebalanceInProgress);
    assert!((10..=11).contains(&second), "b expired after {second} s");
    let again = c.join(join("g", &a)).await;
    assert_eq!((again.generation, again.members.len()), (3, 1));
    assert_eq!(
        c.heartbeat("g", who(&b, 2)),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
    let c = coordinator(settings());
    let (a, b) = stable_pair(&c, "g").await;
    let newcomer = member_id(&c, "g").await;
    let started = Instant::now();
    let n_join = tokio::spawn({
        let c = Arc::clone(&c);
        let req = join("g", &newcomer);
        async move { c.join(req).await }
    });
    settle().await;
    // a rejoins at once and keeps its session alive by waiting; b keeps heartbeating but
    // never rejoins (a consumer stuck in processing), so only the rebalance timeout ends it.
    let a_join = tokio::spawn({
        let c = Arc::clone(&c);
        let req = join("g", &a);
        async move { c.join(req).await }
    });
    let heartbeats = tokio::spawn({
        let c = Arc::clone(&c);
        let b = b.clone();
        async move {
            while c.heartbeat("g", who(&b, 2)) == Err(GroupError::RebalanceInProgress) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let joined = n_join.await.unwrap();
    assert_eq!(joined.generation, 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "the rebalance timeout"
    );
    let leader = a_join.await.unwrap();
    let ids: Vec<&str> = leader
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, [a.as_str(), newcomer.as_str()]);
    heartbeats.await.unwrap();
    assert_eq!(
        c.heartbeat("g", who(&b, 2)),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pending_member_id_lapses_after_the_session_timeout() {
    let c = coordinator(settings());
    let (a, _b) = stable_pair(&c, "g").await;
    let _never_used = member_id(&c, "g").await;
    let started = Instant::now();
    // a rejoins for another reason; the rebalance waits for the pending member id to lapse.
    c.leave("g", &[(_b.clone(), None)]).unwrap();
    let again = c.join(join("g", &a)).await;
    assert_eq!(again.members.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "completed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_static_member_comes_back_without_a_rebalance_and_fences_its_old_self() {
    let c = coordinator(settings());
    let static_join = |member: &str| JoinRequest {
        group_instance_id: Some("instance-1".into()),
        ..join("g", member)
    };
    // Static members get their id at once (no MEMBER_ID_REQUIRED round trip).
    let first = c.join(static_join("")).await;
    assert_eq!((first.error, first.generation), (None, 1));
    let old = first.member_id;
    let stat = |member: &str, generation| SyncRequest {
        group_instance_id: Some("instance-1".into()),
        ..sync("g", member, generation, &[(member, "X")])
    };
    assert_eq!(&c.sync(stat(&old, 1)).await.assignment[..], b"X");

    // The process restarts: same instance id, no member id.
    let back = c.join(static_join("")).await;
    assert_eq!((back.error, back.generation), (None, 1), "no rebalance");
    assert_ne!(back.member_id, old);
    assert_eq!(
        back.leader, back.member_id,
        "leadership moves to the new id"
    );
    let fenced = MemberRef {
        member_id: &old,
        group_instance_id: Some("instance-1"),
        generation: 1,
    };
    assert_eq!(c.heartbeat("g", fenced), Err(GroupError::FencedInstanceId));
    assert_eq!(
        c.commit_offsets("g", fenced, || ()),
        Err(GroupError::FencedInstanceId)
    );
    let current = MemberRef {
        member_id: &back.member_id,
        group_instance_id: Some("instance-1"),
        generation: 1,
    };
    assert_eq!(c.heartbeat("g", current), Ok(()));
    let resumed = c.sync(stat(&back.member_id, 1)).await;
    assert_eq!(&resumed.assignment[..], b"X", "the assignment is kept");

    // Leaving by instance id with a stale member id is fenced; with the right one it works.
    let out = c
        .leave("g", &[(old.clone(), Some("instance-1".into()))])
        .unwrap();
    assert_eq!(out, vec![Err(GroupError::FencedInstanceId)]);
    let out = c
        .leave("g", &[(String::new(), Some("instance-1".into()))])
        .unwrap();
    assert_eq!(out, vec![Ok(())]);
    assert_eq!(c.describe("g", false).unwrap().state, GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn leaving_empties_the_group_which_can_then_be_deleted() {
    let c = coordinator(settings());
    let (a, b) = stable_pair(&c, "g").await;
    assert_eq!(c.delete("g", || true), Err(GroupError::NonEmptyGroup));
    let out = c
        .leave("g", &[(a.clone(), None), ("stranger".into(), None)])
        .unwrap();
    assert_eq!(out, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(
        c.heartbeat("g", who(&b, 2)),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(c.leave("g", &[(b, None)]).unwrap(), vec![Ok(())]);
    let empty = c.describe("g", false).unwrap();
    assert_eq!((empty.state, empty.members.len()), (GroupState::Empty, 0));
    assert_eq!(
        c.list(vec!["offsets-only".into()]),
        vec![
            GroupListing {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                state: "Empty",
                group_type: "classic",
            },
            GroupListing {
                group_id: "offsets-only".into(),
                protocol_type: String::new(),
                state: "Empty",
                group_type: "classic",
            },
        ]
    );
    assert_eq!(c.delete("g", || false), Ok(()));
    assert_eq!(c.describe("g", false).unwrap().state, GroupState::Dead);
    assert_eq!(c.delete("g", || false), Err(GroupError::GroupIdNotFound));
    assert_eq!(c.delete("offsets-only", || true), Ok(()));
    assert_eq!(
        c.leave("g", &[("x".into(), None)]).unwrap(),
        vec![Err(GroupError::UnknownMemberId)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_rebalance_waits_the_initial_delay_for_more_members() {
    let c = coordinator(CoordinatorSettings {
        initial_rebalance_delay: Duration::from_secs(3),
        ..settings()
    });
    let started = Instant::now();
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    let (ja, jb) = tokio::join!(c.join(join("g", &a)), c.join(join("g", &b)));
    assert_eq!(
        (ja.generation, jb.generation),
        (1, 1),
        "one generation for both"
    );
    assert_eq!(ja.members.len() + jb.members.len(), 2);
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn bad_joins_get_kafkas_errors() {
    let c = coordinator(settings());
    let bad = |f: fn(&mut JoinRequest)| {
        let mut r = join("g", "");
        f(&mut r);
        r
    };
    let cases: Vec<(JoinRequest, GroupError)> = vec![
        (bad(|r| r.group_id.clear()), GroupError::InvalidGroupId),
        (
            bad(|r| r.session_timeout_ms = 500),
            GroupError::InvalidSessionTimeout,
        ),
        (
            bad(|r| r.session_timeout_ms = -1),
            GroupError::InvalidSessionTimeout,
        ),
        (
            bad(|r| r.session_timeout_ms = 61_000),
            GroupError::InvalidSessionTimeout,
        ),
        (
            bad(|r| r.protocols.clear()),
            GroupError::InconsistentGroupProtocol,
        ),
        (
            bad(|r| r.protocol_type.clear()),
            GroupError::InconsistentGroupProtocol,
        ),
        (
            bad(|r| r.member_id = "ghost".into()),
            GroupError::UnknownMemberId,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(c.join(req).await.error, Some(want));
    }
    assert!(
        c.list(Vec::new()).is_empty(),
        "failed joins leave no group behind"
    );

    let (a, _b) = stable_pair(&c, "g").await;
    let other_type = JoinRequest {
        protocol_type: "connect".into(),
        ..join("g", "")
    };
    assert_eq!(
        c.join(other_type).await.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let no_common = JoinRequest {
        protocols: vec![("sticky".into(), Bytes::new())],
        ..join("g", "")
    };
    assert_eq!(
        c.join(no_common).await.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(
        c.heartbeat("g", who(&a, 2)),
        Ok(()),
        "the group is undisturbed"
    );
}

#[tokio::test(start_paused = true)]
async fn shutting_down_answers_waiting_members_not_coordinator() {
    let c = Arc::new(GroupCoordinator::new(settings()));
    let (stop, stopped) = watch::channel(false);
    let timers = tokio::spawn({
        let c = Arc::clone(&c);
        async move { c.drive_timers(stopped).await }
    });
    let (a, _b) = stable_pair(&c, "g").await;
    let waiting = tokio::spawn({
        let c = Arc::clone(&c);
        let req = join("g", &a);
        async move { c.join(req).await }
    });
    settle().await;
    stop.send(true).unwrap();
    timers.await.unwrap();
    assert_eq!(
        waiting.await.unwrap().error,
        Some(GroupError::NotCoordinator)
    );
    assert_eq!(
        c.heartbeat("g", who(&a, 2)),
        Err(GroupError::NotCoordinator)
    );
}

/// Each completed rebalance (a new generation) is counted once, in every group alike: two for
/// a pair that formed in two steps, one more for a second group.
#[tokio::test(start_paused = true)]
async fn completed_rebalances_are_counted() {
    let c = coordinator(settings());
    assert_eq!(c.rebalances(), 0);
    stable_pair(&c, "g").await;
    assert_eq!(c.rebalances(), 2);
    let a = member_id(&c, "h").await;
    let joined = c.join(join("h", &a)).await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    assert_eq!(c.rebalances(), 3);
    // A heartbeat of a stable member changes nothing.
    assert_eq!(c.heartbeat("h", who(&a, 1)), Ok(()));
    assert_eq!(c.rebalances(), 3);
}

// ---- classic <-> consumer protocol migration ----

/// A `ConsumerProtocolSubscription` v1 to `topics`, owning `owned` of topic "a".
fn subscription(topics: &[&str], owned: &[i32]) -> Bytes {
    let mut b = vec![0, 1];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
    if owned.is_empty() {
        b.extend_from_slice(&0i32.to_be_bytes());
    } else {
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.push(b'a');
        b.extend_from_slice(&(owned.len() as i32).to_be_bytes());
        for p in owned {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    Bytes::from(b)
}

fn topics_a() -> TopicsView {
    TopicsView {
        by_name: [("a".to_string(), (uuid::Uuid::from_bytes([1; 16]), 4u32))]
            .into_iter()
            .collect(),
        ..TopicsView::default()
    }
}

fn classic_join(member: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        protocols: vec![("range".into(), subscription(&["a"], owned))],
        ..join("m", member)
    }
}

fn consumer_join(member: &str) -> Heartbeat {
    Heartbeat {
        version: 1,
        group_id: "m".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["a".into()]),
        owned: Some(Vec::new()),
        ..Heartbeat::default()
    }
}

fn consumer_beat(
    member: &str,
    epoch: i32,
    owned: &Option<super::super::assignor::Assignment>,
) -> Heartbeat {
    Heartbeat {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        owned: owned.as_ref().map(|a| {
            a.iter()
                .map(|(t, p)| (*t, p.iter().copied().collect()))
                .collect()
        }),
        ..consumer_join(member)
    }
}

fn partitions(assignment: &Bytes) -> Vec<i32> {
    consumer_protocol::decode_assignment(assignment)
        .unwrap()
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect()
}

/// A classic group "m" with one member, Stable in generation 1 owning all four partitions.
async fn stable_classic_member(c: &Arc<GroupCoordinator>) -> String {
    let a = member_id(c, "m").await;
    let joined = c.join_with_topics(classic_join(&a, &[]), &topics_a()).await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    let mut s = sync("m", &a, 1, &[]);
    let all = consumer_protocol::encode_assignment(
        0,
        &[(uuid::Uuid::from_bytes([1; 16]), (0..4).collect())]
            .into_iter()
            .collect(),
        &[(uuid::Uuid::from_bytes([1; 16]), "a")]
            .into_iter()
            .collect(),
    );
    s.assignments = vec![(a.clone(), all)];
    let got = c.sync(s).await;
    assert_eq!(partitions(&got.assignment), vec![0, 1, 2, 3]);
    a
}

#[tokio::test(start_paused = true)]
async fn a_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_when_it_leaves() {
    let c = coordinator(settings());
    let config = GroupConfig::default();
    let a = stable_classic_member(&c).await;

    // Upgrade: the consumer-protocol member joins; the classic member keeps what it owns.
    let first = c
        .consumer_heartbeat(&consumer_join("c"), &config, &topics_a())
        .unwrap();
    assert!(c.is_consumer_group("m"), "the classic group was upgraded");
    assert_eq!(
        first.member_epoch, 2,
        "the group epoch continues from generation 1"
    );
    assert_eq!(
        first.assignment.as_ref().map(|a| a.len()),
        Some(0),
        "nothing free yet"
    );
    // The classic member is told to rejoin; rejoining (eager: owning nothing) releases.
    assert_eq!(
        c.heartbeat("m", who(&a, 1)),
        Err(GroupError::RebalanceInProgress)
    );
    let rejoined = c.join_with_topics(classic_join(&a, &[]), &topics_a()).await;
    assert_eq!(rejoined.error, None);
    assert_eq!(rejoined.generation, 2, "the member epoch is the generation");
    assert_eq!(
        c.heartbeat("m", who(&a, 1)),
        Err(GroupError::IllegalGeneration)
    );
    let synced = c.sync(sync("m", &a, 2, &[])).await;
    assert_eq!(synced.error, None);
    let kept = partitions(&synced.assignment);
    assert_eq!(
        kept.len(),
        2,
        "the server-side target splits the partitions: {kept:?}"
    );
    assert_eq!(c.heartbeat("m", who(&a, 2)), Ok(()));
    // The consumer member now gets the released half.
    let got = c
        .consumer_heartbeat(
            &consumer_beat("c", 2, &first.assignment),
            &config,
            &topics_a(),
        )
        .unwrap();
    let mine: Vec<i32> = got
        .assignment
        .unwrap()
        .values()
        .flatten()
        .copied()
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter().all(|p| !kept.contains(p)),
        "no partition has two owners"
    );
    // Commits: the classic member by its generation, a stale one refused as a classic group does.
    assert_eq!(c.commit_offsets("m", who(&a, 2), || ()), Ok(()));
    assert_eq!(
        c.commit_offsets("m", who(&a, 1), || ()),
        Err(GroupError::IllegalGeneration)
    );

    // Downgrade: the last consumer-protocol member leaves; the group is classic again and
    // rebalances, the classic member rejoining as its leader.
    let mut leave = consumer_beat("c", -1, &None);
    leave.owned = None;
    c.consumer_heartbeat(&leave, &config, &topics_a()).unwrap();
    assert!(!c.is_consumer_group("m"), "the group was downgraded");
    assert_eq!(
        c.heartbeat("m", who(&a, 3)),
        Err(GroupError::RebalanceInProgress)
    );
    let joined = c.join(classic_join(&a, &kept)).await;
    assert_eq!((joined.error, joined.leader.as_str()), (None, a.as_str()));
    assert_eq!(joined.generation, 4);
    assert_eq!(joined.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_is_refused_by_the_policy_or_a_non_consumer_group() {
    let mut s = settings();
    s.consumer.migration_policy = "downgrade".into();
    let c = coordinator(s);
    stable_classic_member(&c).await;
    assert_eq!(
        c.consumer_heartbeat(&consumer_join("c"), &GroupConfig::default(), &topics_a())
            .err(),
        Some(GroupError::GroupIdNotFound),
        "policy `downgrade` does not upgrade"
    );
    assert!(!c.is_consumer_group("m"));

    let c = coordinator(settings());
    let other = |member: &str| JoinRequest {
        protocol_type: "connect".into(),
        ..join("m", member)
    };
    let first = c.join(other("")).await;
    let joined = c.join(other(&first.member_id)).await;
    assert_eq!(joined.error, None);
    assert_eq!(
        c.consumer_heartbeat(&consumer_join("c"), &GroupConfig::default(), &topics_a())
            .err(),
        Some(GroupError::GroupIdNotFound),
        "only groups of protocol type `consumer` upgrade"
    );
}

#[tokio::test(start_paused = true)]
async fn a_consumer_group_whose_policy_forbids_downgrade_keeps_its_classic_members() {
    let mut s = settings();
    s.consumer.migration_policy = "upgrade".into();
    let c = coordinator(s);
    let config = GroupConfig::default();
    let a = stable_classic_member(&c).await;
    c.consumer_heartbeat(&consumer_join("c"), &config, &topics_a())
        .unwrap();
    let mut leave = consumer_beat("c", -1, &None);
    leave.owned = None;
    c.consumer_heartbeat(&leave, &config, &topics_a()).unwrap();
    assert!(
        c.is_consumer_group("m"),
        "policy `upgrade` never downgrades"
    );
    // A classic member's JoinGroup into the consumer group is answered by the server.
    let rejoined = c.join_with_topics(classic_join(&a, &[]), &topics_a()).await;
    assert_eq!(rejoined.error, None);
    let synced = c.sync(sync("m", &a, rejoined.generation, &[])).await;
    assert_eq!(partitions(&synced.assignment), vec![0, 1, 2, 3]);
    // Another protocol type cannot join it.
    let other = JoinRequest {
        protocol_type: "connect".into(),
        ..join("m", "")
    };
    assert_eq!(
        c.join(other).await.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}
