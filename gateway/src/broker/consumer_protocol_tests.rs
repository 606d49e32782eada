#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::*;

const SESSION: Duration = Duration::from_secs(45);
const INTERVAL: Duration = Duration::from_secs(5);

fn topic_id(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn topics(list: &[(&str, u8, u32)]) -> TopicsView {
    TopicsView {
        by_name: list
            .iter()
            .map(|(name, id, parts)| ((*name).to_string(), (topic_id(*id), *parts)))
            .collect(),
        hidden: BTreeSet::new(),
    }
}

fn join(member: &str, subscribed: &[&str]) -> Heartbeat {
    Heartbeat {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(subscribed.iter().map(|s| (*s).to_string()).collect()),
        owned: Some(Vec::new()),
        ..Heartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
    Heartbeat {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.map(|a| {
            a.iter()
                .map(|(t, p)| (*t, p.iter().copied().collect()))
                .collect()
        }),
        ..Heartbeat::default()
    }
}

struct Fixture {
    group: ConsumerGroup,
    settings: ConsumerProtocolSettings,
    topics: TopicsView,
    now: Instant,
}

impl Fixture {
    fn new() -> Fixture {
        let settings = ConsumerProtocolSettings::default();
        Fixture {
            group: ConsumerGroup::new("g", &settings),
            settings,
            topics: topics(&[("a", 1, 4)]),
            now: Instant::now(),
        }
    }

    fn send(&mut self, req: &Heartbeat) -> Result<HeartbeatAnswer, GroupError> {
        validate(req, &self.settings)?;
        if req.member_epoch < 0 {
            return self.group.leave(req);
        }
        self.group.heartbeat(
            req,
            &self.settings,
            SESSION,
            INTERVAL,
            &self.topics,
            self.now,
        )
    }

    fn assigned(&self, member: &str) -> Assignment {
        self.group.members[member].assigned.clone()
    }
}

fn size(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[test]
fn a_member_whose_session_lapses_is_fenced_and_its_partitions_move() {
    let mut f = Fixture::new();
    f.send(&join("m1", &["a"])).unwrap();
    f.send(&join("m2", &["a"])).unwrap();
    // m1 releases half; both settle at epoch 2.
    let all = f.assigned("m1");
    let r = f.send(&beat("m1", 1, Some(&all))).unwrap();
    let kept = r.assignment.unwrap();
    f.send(&beat("m1", 1, Some(&kept))).unwrap();
    f.send(&beat("m2", 2, Some(&Assignment::new()))).unwrap();
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);

    // m2 keeps heartbeating; m1 goes silent. The bound: fenced once 45 s pass, not before.
    f.now += SESSION - Duration::from_secs(1);
    let m2 = f.assigned("m2");
    f.send(&beat("m2", 2, Some(&m2))).unwrap();
    f.group.expire(f.now);
    assert!(f.group.members.contains_key("m1"));
    f.now += Duration::from_secs(1);
    f.group.expire(f.now);
    assert!(
        !f.group.members.contains_key("m1"),
        "fenced at its session timeout"
    );
    assert_eq!(f.group.state(), ConsumerGroupState::Assigning);
    let r = f.send(&beat("m2", 2, Some(&m2))).unwrap();
    assert_eq!(r.member_epoch, 3);
    assert_eq!(
        size(&r.assignment.unwrap()),
        4,
        "the survivor takes every partition"
    );
}

#[test]
fn a_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() {
    let mut f = Fixture::new();
    f.send(&join("m1", &["a"])).unwrap();
    f.send(&join("m2", &["a"])).unwrap();
    let all = f.assigned("m1");
    f.send(&beat("m1", 1, Some(&all))).unwrap();
    assert_eq!(
        f.group.members["m1"].state,
        MemberState::UnrevokedPartitions
    );
    // m1 keeps heartbeating but never releases; the bound is its 10 s rebalance timeout.
    f.now += Duration::from_secs(9);
    f.send(&beat("m1", 1, Some(&all))).unwrap();
    f.group.expire(f.now);
    assert!(f.group.members.contains_key("m1"));
    f.now += Duration::from_secs(1);
    f.group.expire(f.now);
    assert!(
        !f.group.members.contains_key("m1"),
        "fenced at its rebalance timeout"
    );
    // Its partitions are free: m2 gets all four.
    let r = f.send(&beat("m2", 2, Some(&Assignment::new()))).unwrap();
    assert_eq!(size(&r.assignment.unwrap()), 4);
}

#[test]
fn a_lost_answer_is_forgiven_once_but_older_or_newer_epochs_are_fenced() {
    let mut f = Fixture::new();
    f.send(&join("m1", &["a"])).unwrap();
    let mine = f.assigned("m1");
    // The topic grows: the group epoch moves to 2.
    f.topics = topics(&[("a", 1, 6)]);
    let r = f.send(&beat("m1", 1, Some(&mine))).unwrap();
    assert_eq!(r.member_epoch, 2);
    // The answer with epoch 2 was lost: epoch 1 with a subset of the assignment is accepted.
    assert!(f.send(&beat("m1", 1, Some(&mine))).is_ok());
    // Owning a partition it was never given at the previous epoch is not.
    let mut more = mine.clone();
    more.entry(topic_id(1)).or_default().insert(99);
    assert_eq!(
        f.send(&beat("m1", 1, Some(&more))),
        Err(GroupError::FencedMemberEpoch)
    );
    assert_eq!(
        f.send(&beat("m1", 3, None)),
        Err(GroupError::FencedMemberEpoch)
    );
}

#[test]
fn a_static_member_that_left_for_now_is_fenced_after_its_session() {
    let mut f = Fixture::new();
    let mut j = join("s1", &["a"]);
    j.instance_id = Some("i1".into());
    f.send(&j).unwrap();
    let mut leave = beat("s1", LEAVE_STATIC_EPOCH, None);
    leave.instance_id = Some("i1".into());
    assert_eq!(f.send(&leave).unwrap().member_epoch, LEAVE_STATIC_EPOCH);
    assert_eq!(size(&f.assigned("s1")), 4, "kept while away");
    f.now += SESSION;
    f.group.expire(f.now);
    assert!(f.group.is_empty());
    assert!(f.group.statics.is_empty(), "the instance id is released");
}

#[test]
fn the_group_is_bounded_by_its_max_size() {
    let mut f = Fixture::new();
    f.settings.max_size = 2;
    f.send(&join("m1", &["a"])).unwrap();
    f.send(&join("m2", &["a"])).unwrap();
    assert_eq!(
        f.send(&join("m3", &["a"])),
        Err(GroupError::GroupMaxSizeReached)
    );
    assert_eq!(f.group.member_count(), 2);
}

#[test]
fn the_assignor_members_ask_for_is_used() {
    let mut f = Fixture::new();
    f.topics = topics(&[("a", 1, 5)]);
    let mut j = join("m1", &["a"]);
    j.server_assignor = Some("range".into());
    f.send(&j).unwrap();
    assert_eq!(f.group.view().assignor_name, "range");
    let mut bad = join("m2", &["a"]);
    bad.server_assignor = Some("cooperative-sticky".into());
    assert_eq!(
        validate(&bad, &f.settings),
        Err(GroupError::UnsupportedAssignor)
    );
}

#[test]
fn offset_commits_check_the_member_epoch() {
    let mut f = Fixture::new();
    let who = |id, epoch| MemberRef {
        member_id: id,
        group_instance_id: None,
        generation: epoch,
    };
    assert!(
        f.group.validate_offset_commit(who("", -1), false).is_ok(),
        "empty group"
    );
    f.send(&join("m1", &["a"])).unwrap();
    assert_eq!(
        f.group.validate_offset_commit(who("", -1), false),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        f.group.validate_offset_commit(who("m1", 7), false),
        Err(GroupError::StaleMemberEpoch)
    );
    assert!(f.group.validate_offset_commit(who("m1", 1), false).is_ok());
    assert!(
        f.group.validate_offset_commit(who("", -1), true).is_ok(),
        "anonymous txn"
    );
    assert_eq!(
        f.group.validate_offset_fetch(Some(("m1", 0))),
        Err(GroupError::StaleMemberEpoch)
    );
    assert!(f.group.validate_offset_fetch(None).is_ok());
}

#[test]
fn regexes_are_bounded_and_match_whole_names() {
    assert_eq!(
        compile_regex(&"a".repeat(REGEX_MAX_LEN + 1)).err(),
        Some(GroupError::InvalidRegularExpression)
    );
    // A pattern whose automaton would pass the size limit is refused, not built.
    assert_eq!(
        compile_regex("(\\w{100}){100}").err(),
        Some(GroupError::InvalidRegularExpression)
    );
    let re = compile_regex("top.c").unwrap();
    assert!(re.is_match("topic"));
    assert!(
        !re.is_match("topics"),
        "whole names only, as Kafka's RE2J matches()"
    );
    // Unbalanced text is refused as RE2J refuses it, not spliced into a valid pattern that
    // would match names starting with `a` or ending with `b`.
    assert_eq!(
        compile_regex("a)|(b").err(),
        Some(GroupError::InvalidRegularExpression)
    );
    // Alternation stays inside the anchors, and a verbose-mode comment cannot swallow them.
    let re = compile_regex("a|ab").unwrap();
    assert!(re.is_match("ab") && !re.is_match("abc") && !re.is_match("xa"));
    let re = compile_regex("(?x)abc#comment").unwrap();
    assert!(re.is_match("abc") && !re.is_match("abcd"));
}

// ---- classic members inside a consumer group ----

/// A `ConsumerProtocolSubscription` of `version` to "a", owning `owned` of "a" (v1+).
fn classic_subscription(version: i16, owned: &[i32]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b'a');
    b.extend_from_slice(&3i32.to_be_bytes()); // user data
    b.extend_from_slice(b"xyz");
    if version >= 1 {
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.push(b'a');
        b.extend_from_slice(&(owned.len() as i32).to_be_bytes());
        for p in owned {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    if version >= 2 {
        b.extend_from_slice(&7i32.to_be_bytes()); // generation
    }
    if version >= 3 {
        b.extend_from_slice(&(-1i16).to_be_bytes()); // no rack
    }
    b
}

#[test]
fn classic_protocol_bytes_are_read_with_every_length_checked() {
    for v in 0..=3 {
        let sub = decode_subscription(&classic_subscription(v, &[1, 3])).unwrap();
        assert_eq!(sub.topics, vec!["a".to_string()]);
        let owned = if v == 0 {
            vec![]
        } else {
            vec![("a".to_string(), vec![1, 3])]
        };
        assert_eq!(sub.owned, owned, "version {v}");
    }
    // Counts beyond the bytes that follow are refused before anything is allocated.
    let mut lying = classic_subscription(1, &[1]);
    lying[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(decode_subscription(&lying), None);
    let whole = classic_subscription(1, &[1]);
    for cut in 0..whole.len() {
        assert_eq!(decode_subscription(&whole[..cut]), None, "cut at {cut}");
    }
    assert_eq!(decode_subscription(&[0xff, 0xff, 0, 0, 0, 0]), None);

    let a: Assignment = [(topic_id(1), [0, 2].into_iter().collect())]
        .into_iter()
        .collect();
    let names: HashMap<Uuid, &str> = [(topic_id(1), "a")].into_iter().collect();
    let bytes = encode_assignment(3, &a, &names);
    assert_eq!(
        decode_assignment(&bytes),
        Some(vec![("a".to_string(), vec![0, 2])])
    );
    let mut lying = bytes.to_vec();
    lying[2..6].copy_from_slice(&(1i32 << 30).to_be_bytes());
    assert_eq!(decode_assignment(&lying), None);
}

fn seed(member: &str, assigned: &[i32]) -> ClassicSeed {
    let a: Assignment = [(topic_id(1), assigned.iter().copied().collect())]
        .into_iter()
        .collect();
    let names: HashMap<Uuid, &str> = [(topic_id(1), "a")].into_iter().collect();
    ClassicSeed {
        member_id: member.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocols: vec![(
            "range".into(),
            Bytes::from(classic_subscription(1, assigned)),
        )],
        protocol_name: "range".into(),
        assignment: encode_assignment(0, &a, &names),
    }
}

fn classic_who(member: &str, generation: i32) -> MemberRef<'_> {
    MemberRef {
        member_id: member,
        group_instance_id: None,
        generation,
    }
}

#[test]
fn an_upgraded_group_keeps_the_classic_assignment_until_the_classic_member_rejoins() {
    let mut f = Fixture::new();
    f.group = ConsumerGroup::from_classic(
        "g",
        &f.settings,
        5,
        vec![seed("old", &[0, 1, 2, 3])],
        &f.topics,
        f.now,
    )
    .unwrap();
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
    assert_eq!(
        size(&f.assigned("old")),
        4,
        "owned as its classic assignment said"
    );
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 5), f.now),
        Ok(())
    );

    let first = f.send(&join("new", &["a"])).unwrap();
    assert_eq!(first.member_epoch, 6);
    assert_eq!(
        size(first.assignment.as_ref().unwrap()),
        0,
        "all still owned by old"
    );
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 5), f.now),
        Err(GroupError::RebalanceInProgress)
    );
    // A cooperative member rejoining while still owning everything keeps its epoch, the
    // partitions it must give up held back.
    let j = |owned: &[i32]| ClassicJoin {
        member_id: "old".into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocols: vec![("range".into(), Bytes::from(classic_subscription(1, owned)))],
    };
    let joined = f
        .group
        .classic_join(j(&[0, 1, 2, 3]), &f.settings, &f.topics, f.now)
        .unwrap();
    assert_eq!((joined.epoch, joined.protocol_name.as_str()), (5, "range"));
    let (_, bytes) = f
        .group
        .classic_sync(
            classic_who("old", 5),
            Some("consumer"),
            Some("range"),
            f.now,
        )
        .unwrap();
    assert_eq!(
        decode_assignment(&bytes).unwrap()[0].1.len(),
        2,
        "only what it keeps"
    );
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 5), f.now),
        Err(GroupError::RebalanceInProgress),
        "it must rejoin to finish revoking"
    );
    let kept = f.assigned("old");
    let kept: Vec<i32> = kept.values().flatten().copied().collect();
    let joined = f
        .group
        .classic_join(j(&kept), &f.settings, &f.topics, f.now)
        .unwrap();
    assert_eq!(joined.epoch, 6);
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 6), f.now),
        Ok(())
    );
    let got = f.send(&beat("new", 6, first.assignment.as_ref())).unwrap();
    assert_eq!(
        size(got.assignment.as_ref().unwrap()),
        2,
        "the released half"
    );

    // The consumer-protocol member leaves: only classic members remain, with what they own.
    f.send(&beat("new", -1, None)).unwrap();
    assert!(f.group.only_classic_members());
    let (generation, seeds) = f.group.to_classic();
    assert_eq!(generation, 7);
    assert_eq!(decode_assignment(&seeds[0].assignment).unwrap()[0].1, kept);
}

#[test]
fn a_classic_member_that_does_not_rejoin_within_its_rebalance_timeout_is_fenced() {
    let mut f = Fixture::new();
    f.group = ConsumerGroup::from_classic(
        "g",
        &f.settings,
        1,
        vec![seed("old", &[0, 1, 2, 3])],
        &f.topics,
        f.now,
    )
    .unwrap();
    f.send(&join("new", &["a"])).unwrap();
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 1), f.now),
        Err(GroupError::RebalanceInProgress)
    );
    // It keeps heartbeating (its session stays alive) but never rejoins.
    let bound = Duration::from_secs(30);
    f.now += bound - Duration::from_secs(1);
    assert_eq!(
        f.group.classic_heartbeat(classic_who("old", 1), f.now),
        Err(GroupError::RebalanceInProgress)
    );
    f.group.expire(f.now);
    assert!(
        f.group.is_classic_member("old"),
        "not before its rebalance timeout"
    );
    f.now += Duration::from_secs(1);
    f.group.expire(f.now);
    assert!(
        !f.group.has_member("old"),
        "fenced at its rebalance timeout"
    );
    let got = f.send(&beat("new", 2, Some(&Assignment::new()))).unwrap();
    assert_eq!(size(got.assignment.as_ref().unwrap()), 4);
}
