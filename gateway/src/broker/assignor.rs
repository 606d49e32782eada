//! The server-side partition assignors of KIP-848 consumer groups, named as Kafka names them:
//! `uniform` (every member gets a near-equal share of the partitions it subscribes to, keeping
//! what it already has where balance allows, so a rebalance moves as few partitions as it can)
//! and `range` (per topic, consecutive ranges of partitions to the members subscribed to it,
//! in member id order, so members subscribed to co-partitioned topics get the same indexes).
//!
//! Assignors are pure: they see the members (with their subscribed topic ids and their
//! current target assignment) and the subscribed topics' partition counts, and answer the new
//! target assignment of every member. Partitions never go to a member not subscribed to their
//! topic, and each partition goes to at most one member.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub member_id: String,
    pub subscribed: BTreeSet<Uuid>,
    /// The member's current target assignment (the stickiness input).
    pub current: Assignment,
}

/// A server-side assignor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    /// The assignor of this name (`uniform`, `range`), as `group.consumer.assignors` lists them.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member (members without partitions map to an empty one).
    /// `topics` gives the partition count of each subscribed topic that exists.
    pub fn assign(
        self,
        members: &[MemberSpec],
        topics: &BTreeMap<Uuid, u32>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(members, topics),
            Assignor::Range => range(members, topics),
        }
    }
}

fn partition_count(topics: &BTreeMap<Uuid, u32>, topic: &Uuid) -> i32 {
    topics
        .get(topic)
        .map_or(0, |&n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// Per topic, members subscribed to it in member id order each take a consecutive range; the
/// first `partitions % members` take one more.
fn range(members: &[MemberSpec], topics: &BTreeMap<Uuid, u32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    for topic in topics.keys() {
        let subscribers: Vec<&&MemberSpec> = sorted
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .collect();
        let Ok(n) = i32::try_from(subscribers.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let count = partition_count(topics, topic);
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in (0..n).zip(subscribers) {
            let take = each + i32::from(i < extra);
            if take > 0 {
                if let Some(a) = out.get_mut(&m.member_id) {
                    a.insert(*topic, (next..next + take).collect());
                }
            }
            next += take;
        }
    }
    out
}

/// Sticky and balanced: members keep the partitions of their current assignment that they
/// still subscribe to, as far as balance allows; the rest go to the members below their share.
fn uniform(members: &[MemberSpec], topics: &BTreeMap<Uuid, u32>) -> BTreeMap<String, Assignment> {
    uniform_counted(members, topics, &mut Work::default())
}

/// Loop steps of one `uniform` run, counted so tests can bound the work without timing it.
#[derive(Debug, Default)]
struct Work {
    steps: usize,
}

fn uniform_counted(
    members: &[MemberSpec],
    topics: &BTreeMap<Uuid, u32>,
    work: &mut Work,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let n = sorted.len();
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); n];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (i, m) in sorted.iter().enumerate() {
        for (topic, parts) in &m.current {
            if !m.subscribed.contains(topic) {
                continue;
            }
            let count = partition_count(topics, topic);
            for &p in parts {
                work.steps += 1;
                if (0..count).contains(&p) && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), i);
                    owned[i].insert((*topic, p));
                }
            }
        }
    }
    let subscribers: BTreeMap<Uuid, Vec<usize>> = topics
        .keys()
        .map(|t| {
            let subs = (0..n)
                .filter(|&i| sorted[i].subscribed.contains(t))
                .collect();
            (*t, subs)
        })
        .collect();
    // Homogeneous when every member subscribes to the same existing topics (the usual case).
    let homogeneous = subscribers.values().all(|s| s.is_empty() || s.len() == n);
    if homogeneous {
        balance_by_quota(&subscribers, topics, &mut owned, &owner, work);
    } else {
        balance_by_moves(&subscribers, topics, &mut owned, &mut owner, work);
    }
    sorted
        .iter()
        .zip(owned)
        .map(|(m, parts)| {
            let mut a = Assignment::new();
            for (t, p) in parts {
                a.entry(t).or_default().insert(p);
            }
            (m.member_id.clone(), a)
        })
        .collect()
}

/// Every member may take any partition: each gets a quota of `P / M`, and the `P % M` members
/// holding the most keep one more (as Kafka's UniformHomogeneousAssignmentBuilder). Members
/// over quota give up their excess in one pass; the excess and the unowned partitions fill
/// the members under quota. O(P log P), and exactly the moves balance needs.
fn balance_by_quota(
    subscribers: &BTreeMap<Uuid, Vec<usize>>,
    topics: &BTreeMap<Uuid, u32>,
    owned: &mut [BTreeSet<(Uuid, i32)>],
    owner: &BTreeMap<(Uuid, i32), usize>,
    work: &mut Work,
) {
    let n = owned.len();
    if n == 0 {
        return;
    }
    let total: usize = subscribers
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(t, _)| usize::try_from(partition_count(topics, t)).unwrap_or(0))
        .sum();
    let (base, extra) = (total / n, total % n);
    let mut by_load: Vec<usize> = (0..n).collect();
    by_load.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
    let mut quota = vec![base; n];
    for &i in by_load.iter().take(extra) {
        quota[i] += 1;
    }
    let mut pool: Vec<(Uuid, i32)> = Vec::new();
    for (i, parts) in owned.iter_mut().enumerate() {
        while parts.len() > quota[i] {
            work.steps += 1;
            // The highest partitions go first, for determinism.
            if let Some(tp) = parts.pop_last() {
                pool.push(tp);
            }
        }
    }
    for (topic, subs) in subscribers {
        if subs.is_empty() {
            continue;
        }
        for p in 0..partition_count(topics, topic) {
            work.steps += 1;
            if !owner.contains_key(&(*topic, p)) {
                pool.push((*topic, p));
            }
        }
    }
    let mut pool = pool.into_iter();
    for (i, parts) in owned.iter_mut().enumerate() {
        while parts.len() < quota[i] {
            work.steps += 1;
            let Some(tp) = pool.next() else { break };
            parts.insert(tp);
        }
    }
}

/// Members subscribe to different topics: each unowned partition goes to its least loaded
/// subscriber, then partitions move to a subscriber holding at least two fewer than their
/// owner until no such move exists (each move lowers the sum of squared loads, so this ends).
/// A pass moves every partition it can, never one per pass.
fn balance_by_moves(
    subscribers: &BTreeMap<Uuid, Vec<usize>>,
    topics: &BTreeMap<Uuid, u32>,
    owned: &mut [BTreeSet<(Uuid, i32)>],
    owner: &mut BTreeMap<(Uuid, i32), usize>,
    work: &mut Work,
) {
    for (topic, subs) in subscribers {
        if subs.is_empty() {
            continue;
        }
        for p in 0..partition_count(topics, topic) {
            work.steps += 1;
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            if let Some(&i) = subs.iter().min_by_key(|&&i| (owned[i].len(), i)) {
                owner.insert((*topic, p), i);
                owned[i].insert((*topic, p));
            }
        }
    }
    loop {
        let mut moved = false;
        let mut order: Vec<usize> = (0..owned.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
        for from in order {
            let candidates: Vec<(Uuid, i32)> = owned[from].iter().rev().copied().collect();
            for tp in candidates {
                work.steps += 1;
                let best = subscribers
                    .get(&tp.0)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&to| to != from && owned[to].len() + 1 < owned[from].len())
                    .min_by_key(|&to| (owned[to].len(), to));
                if let Some(to) = best {
                    owned[from].remove(&tp);
                    owned[to].insert(tp);
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn member(id: &str, subs: &[Uuid], current: Assignment) -> MemberSpec {
        MemberSpec {
            member_id: id.into(),
            subscribed: subs.iter().copied().collect(),
            current,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Every partition of every subscribed topic is assigned exactly once, only to a subscriber.
    fn check_complete(
        members: &[MemberSpec],
        topics: &BTreeMap<Uuid, u32>,
        out: &BTreeMap<String, Assignment>,
    ) {
        let mut seen = BTreeSet::new();
        for m in members {
            for (t, parts) in &out[&m.member_id] {
                assert!(
                    m.subscribed.contains(t),
                    "{} got an unsubscribed topic",
                    m.member_id
                );
                for p in parts {
                    assert!(seen.insert((*t, *p)), "partition {p} assigned twice");
                }
            }
        }
        let expected: usize = topics
            .iter()
            .filter(|(t, _)| members.iter().any(|m| m.subscribed.contains(t)))
            .map(|(_, n)| *n as usize)
            .sum();
        assert_eq!(seen.len(), expected, "every subscribed partition assigned");
    }

    #[test]
    fn uniform_balances_within_one_and_is_complete() {
        let (a, b) = (topic(1), topic(2));
        let topics = BTreeMap::from([(a, 7), (b, 3)]);
        let members: Vec<MemberSpec> = ["m1", "m2", "m3"]
            .iter()
            .map(|id| member(id, &[a, b], Assignment::new()))
            .collect();
        let out = Assignor::Uniform.assign(&members, &topics);
        check_complete(&members, &topics, &out);
        let loads: Vec<usize> = out.values().map(count).collect();
        let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(hi - lo <= 1, "balanced within one: {loads:?}");
    }

    #[test]
    fn uniform_moves_only_what_balance_needs_when_a_member_joins() {
        let a = topic(1);
        let topics = BTreeMap::from([(a, 6)]);
        let two = vec![
            member("m1", &[a], Assignment::new()),
            member("m2", &[a], Assignment::new()),
        ];
        let first = Assignor::Uniform.assign(&two, &topics);
        let three = vec![
            member("m1", &[a], first["m1"].clone()),
            member("m2", &[a], first["m2"].clone()),
            member("m3", &[a], Assignment::new()),
        ];
        let second = Assignor::Uniform.assign(&three, &topics);
        check_complete(&three, &topics, &second);
        // The bound: 6 partitions over 3 members, so exactly 2 move (to m3), 4 stay put.
        let kept = ["m1", "m2"]
            .iter()
            .map(|m| {
                let before = first[*m].get(&a).cloned().unwrap_or_default();
                let after = second[*m].get(&a).cloned().unwrap_or_default();
                before.intersection(&after).count()
            })
            .sum::<usize>();
        assert_eq!(kept, 4);
        assert_eq!(count(&second["m3"]), 2);
    }

    #[test]
    fn uniform_with_different_subscriptions_gives_each_topic_to_its_subscribers() {
        let (a, b) = (topic(1), topic(2));
        let topics = BTreeMap::from([(a, 4), (b, 4)]);
        let members = vec![
            member("m1", &[a], Assignment::new()),
            member("m2", &[a, b], Assignment::new()),
            member("m3", &[b], Assignment::new()),
        ];
        let out = Assignor::Uniform.assign(&members, &topics);
        check_complete(&members, &topics, &out);
        let loads: Vec<usize> = out.values().map(count).collect();
        assert!(loads.iter().all(|&l| (2..=3).contains(&l)), "{loads:?}");
    }

    #[test]
    fn uniform_drops_partitions_of_topics_no_longer_subscribed_or_gone() {
        let (a, b) = (topic(1), topic(2));
        let topics = BTreeMap::from([(a, 2)]);
        let current = Assignment::from([(a, BTreeSet::from([0, 1, 5])), (b, BTreeSet::from([0]))]);
        let members = vec![member("m1", &[a], current)];
        let out = Assignor::Uniform.assign(&members, &topics);
        assert_eq!(out["m1"], Assignment::from([(a, BTreeSet::from([0, 1]))]));
    }

    #[test]
    fn uniform_scale_out_of_one_to_two_members_is_linear_in_partitions() {
        // The bound: 1 -> 2 members over P = 100,000 partitions moves exactly P/2 partitions,
        // keeps the other P/2 with their owner, and takes at most 4·P loop steps.
        const P: u32 = 100_000;
        let a = topic(1);
        let topics = BTreeMap::from([(a, P)]);
        let all: BTreeSet<i32> = (0..P as i32).collect();
        let members = vec![
            member("m1", &[a], Assignment::from([(a, all.clone())])),
            member("m2", &[a], Assignment::new()),
        ];
        let mut work = Work::default();
        let out = uniform_counted(&members, &topics, &mut work);
        check_complete(&members, &topics, &out);
        let kept = out["m1"]
            .get(&a)
            .map_or(0, |s| s.intersection(&all).count());
        assert_eq!(kept, (P / 2) as usize, "m1 keeps half");
        assert_eq!(count(&out["m2"]), (P / 2) as usize, "moves = P/2");
        assert!(
            work.steps <= 4 * P as usize,
            "{} loop steps for P = {P}",
            work.steps
        );
    }

    #[test]
    fn uniform_heterogeneous_rebalance_moves_many_per_pass() {
        // Heterogeneous subscriptions: one member holds everything of `a`, two others join
        // (one also subscribes to `b`). Balanced within one where subscriptions allow.
        let (a, b) = (topic(1), topic(2));
        let topics = BTreeMap::from([(a, 3000), (b, 10)]);
        let all: BTreeSet<i32> = (0..3000).collect();
        let members = vec![
            member("m1", &[a], Assignment::from([(a, all)])),
            member("m2", &[a], Assignment::new()),
            member("m3", &[a, b], Assignment::new()),
        ];
        let mut work = Work::default();
        let out = uniform_counted(&members, &topics, &mut work);
        check_complete(&members, &topics, &out);
        let loads: Vec<usize> = out.values().map(count).collect();
        let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(hi - lo <= 1, "balanced within one: {loads:?}");
        assert!(work.steps <= 20 * 3010, "{} loop steps", work.steps);
    }

    #[test]
    fn range_gives_consecutive_ranges_in_member_id_order() {
        let (a, b) = (topic(1), topic(2));
        let topics = BTreeMap::from([(a, 5), (b, 5)]);
        let members = vec![
            member("m2", &[a, b], Assignment::new()),
            member("m1", &[a, b], Assignment::new()),
        ];
        let out = Assignor::Range.assign(&members, &topics);
        check_complete(&members, &topics, &out);
        let expect_m1 = Assignment::from([
            (a, BTreeSet::from([0, 1, 2])),
            (b, BTreeSet::from([0, 1, 2])),
        ]);
        assert_eq!(out["m1"], expect_m1);
        assert_eq!(count(&out["m2"]), 4);
    }

    #[test]
    fn no_members_or_topics_assign_nothing() {
        let topics = BTreeMap::from([(topic(1), 3)]);
        assert!(Assignor::Uniform.assign(&[], &topics).is_empty());
        let m = vec![member("m1", &[topic(9)], Assignment::new())];
        assert!(Assignor::Range.assign(&m, &topics)["m1"].is_empty());
        assert!(Assignor::Uniform.assign(&m, &topics)["m1"].is_empty());
    }
}
