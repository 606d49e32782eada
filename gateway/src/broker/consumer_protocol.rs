//! KIP-848 consumer groups (`group.protocol=consumer`), as Kafka 4's `GroupMetadataManager`
//! runs them: the server owns the assignment. Members heartbeat (ConsumerGroupHeartbeat) with
//! their subscription and the partitions they own; a change of membership, subscription or
//! subscribed topics' partitions bumps the group epoch; the target assignment is then computed
//! by a server-side [`Assignor`] for that epoch; and each member is reconciled towards its
//! target one heartbeat at a time, revocation before assignment: a partition is only handed to
//! its new owner once the old owner has reported it released, and a member only moves to the
//! new epoch once it has released what it must give up.
//!
//! What this module owns: one consumer group's state ([`ConsumerGroup`]), the heartbeat/leave
//! logic and its errors (Kafka's exact codes: FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID,
//! UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID, UNSUPPORTED_ASSIGNOR, INVALID_REQUEST, ...),
//! static membership (a static member leaving with epoch -2 keeps its assignment for a session
//! timeout; a new member with the same instance id takes it over), server-side regular
//! expression subscriptions (RE2 syntax, matched against whole topic names as Kafka's RE2J
//! does), session and rebalance timeouts as deadlines the coordinator's timer task serves,
//! and the member epoch checks of OffsetCommit/OffsetFetch for these groups. The
//! [`super::GroupCoordinator`] keeps these groups beside its classic ones, under its lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor, MemberSpec};
use super::coordinator::{ConsumerProtocolSettings, GroupError, MemberRef};

/// Kafka's `LEAVE_GROUP_MEMBER_EPOCH`: the member leaves for good.
pub const LEAVE_EPOCH: i32 = -1;
/// Kafka's `LEAVE_GROUP_STATIC_MEMBER_EPOCH`: a static member leaves for now.
pub const LEAVE_STATIC_EPOCH: i32 = -2;
/// ConsumerGroupHeartbeat v1 (KIP-1082): the client generates its member id.
const CLIENT_MEMBER_ID_VERSION: i16 = 1;
/// A bound on a subscription's compiled regular expression (the `regex` crate's size limit):
/// the pattern comes from the client, so its automaton must not grow without bound.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// A bound on a subscription's regular expression text.
pub const REGEX_MAX_LEN: usize = 4096;

/// The topics a heartbeat sees: every topic, name -> (topic id, partition count), so the
/// group's view never depends on who heartbeats; `hidden` are those the heartbeating member's
/// principal may not describe, left out of that member's own regex matches only.
#[derive(Debug, Clone, Default)]
pub struct TopicsView {
    pub by_name: BTreeMap<String, (Uuid, u32)>,
    pub hidden: BTreeSet<String>,
}

impl TopicsView {
    fn fingerprint(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

/// A ConsumerGroupHeartbeat, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns, by topic id; `None` when not sent.
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assigned partitions, when sent (see Kafka's rules in `heartbeat`).
    pub assignment: Option<Assignment>,
}

/// The reconciliation state of a member, as Kafka's `MemberState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to release partitions it must give up.
    UnrevokedPartitions,
    /// Waiting for other members to release partitions this one is to get.
    UnreleasedPartitions,
}

/// The state of a consumer group, named as Kafka's `ConsumerGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout: Duration,
    names: BTreeSet<String>,
    regex: Option<String>,
    /// Topic names the regex matched when last resolved.
    regex_matches: BTreeSet<String>,
    /// The topics changed since: resolved again at the member's next heartbeat, with its rights.
    regex_stale: bool,
    server_assignor: Option<String>,
    state: MemberState,
    epoch: i32,
    previous_epoch: i32,
    assigned: Assignment,
    revoking: Assignment,
    session_deadline: Instant,
    /// Fenced at this instant if still at this epoch (set while revoking).
    rebalance_deadline: Option<(Instant, i32)>,
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat).
    classic: Option<ClassicProtocol>,
}

/// What a classic-protocol member inside a consumer group joined with.
#[derive(Debug, Clone)]
struct ClassicProtocol {
    session_timeout: Duration,
    /// (name, subscription metadata) in the member's order of preference.
    protocols: Vec<(String, Bytes)>,
    /// The protocol (client assignor name) the member's answers name.
    chosen: String,
}

impl Member {
    fn new(id: String, now: Instant) -> Member {
        Member {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::ZERO,
            names: BTreeSet::new(),
            regex: None,
            regex_matches: BTreeSet::new(),
            regex_stale: false,
            server_assignor: None,
            state: MemberState::Stable,
            epoch: 0,
            previous_epoch: 0,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline: now,
            rebalance_deadline: None,
            classic: None,
        }
    }

    fn subscribed_names(&self) -> impl Iterator<Item = &String> {
        self.names.iter().chain(self.regex_matches.iter())
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.epoch == epoch
    }

    fn update_epoch(&mut self, epoch: i32) {
        self.previous_epoch = self.epoch;
        self.epoch = epoch;
    }
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberView>,
}

/// One consumer-protocol group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// instance id -> member id of the static members.
    statics: HashMap<String, String>,
    /// Member id -> target assignment at `assignment_epoch`.
    target: HashMap<String, Assignment>,
    /// (topic, partition) -> epoch of the member owning it (assigned or being revoked).
    partition_epochs: HashMap<(Uuid, i32), i32>,
    /// Subscribed topic name -> (id, partitions) as of the last epoch bump.
    metadata: BTreeMap<String, (Uuid, u32)>,
    /// The topic names regexes were last resolved against.
    resolved_against: Vec<String>,
    /// The assignor of the last target assignment.
    assignor: Assignor,
}

/// Checks a heartbeat as Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid` does.
pub fn validate(req: &Heartbeat, settings: &ConsumerProtocolSettings) -> Result<(), GroupError> {
    use GroupError::InvalidRequest;
    if req.group_id.is_empty() {
        return Err(InvalidRequest("GroupId can't be empty."));
    }
    if req.instance_id.as_deref() == Some("") {
        return Err(InvalidRequest("InstanceId can't be empty."));
    }
    if req.rack_id.as_deref() == Some("") {
        return Err(InvalidRequest("RackId can't be empty."));
    }
    if req.version >= CLIENT_MEMBER_ID_VERSION && req.member_id.is_empty() {
        return Err(InvalidRequest("MemberId can't be empty."));
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return Err(InvalidRequest(
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return Err(InvalidRequest(
                    "TopicPartitions must be empty when (re-)joining.",
                ));
            }
            let no_names = req
                .subscribed_topic_names
                .as_ref()
                .is_none_or(Vec::is_empty);
            let no_regex = req
                .subscribed_topic_regex
                .as_deref()
                .is_none_or(str::is_empty);
            if no_names && no_regex {
                return Err(InvalidRequest(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
        }
        e if e > 0 || e == LEAVE_EPOCH => {
            if req.member_id.is_empty() {
                return Err(InvalidRequest("MemberId can't be empty."));
            }
        }
        LEAVE_STATIC_EPOCH => {
            if req.member_id.is_empty() {
                return Err(InvalidRequest("MemberId can't be empty."));
            }
            if req.instance_id.is_none() {
                return Err(InvalidRequest("InstanceId can't be null."));
            }
        }
        _ => return Err(InvalidRequest("MemberEpoch is invalid.")),
    }
    if let Some(re) = req.subscribed_topic_regex.as_deref() {
        if !re.is_empty() {
            compile_regex(re)?;
        }
    }
    if let Some(a) = &req.server_assignor {
        if !settings.assignors.iter().any(|n| n == a) || Assignor::from_name(a).is_none() {
            return Err(GroupError::UnsupportedAssignor);
        }
    }
    Ok(())
}

/// A subscription regex, anchored at both ends: Kafka matches whole topic names
/// (`Pattern.compile(re).matcher(topic).matches()`). The client's text is validated on its
/// own first (splicing it into `^(?:…)$` would turn `a)|(b` into a valid, unanchored
/// pattern), and anchored on its parsed form, never by pasting text around it.
pub fn compile_regex(re: &str) -> Result<regex::Regex, GroupError> {
    if re.len() > REGEX_MAX_LEN {
        return Err(GroupError::InvalidRegularExpression);
    }
    let build = |pattern: &str| {
        regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|_| GroupError::InvalidRegularExpression)
    };
    build(re)?;
    let hir = regex_syntax::Parser::new()
        .parse(re)
        .map_err(|_| GroupError::InvalidRegularExpression)?;
    use regex_syntax::hir::{Hir, Look};
    let whole = Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]);
    build(&whole.to_string())
}

/// Kafka's member ids are `Uuid.randomUuid().toString()`: 22 characters of URL-safe base64.
pub fn new_member_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn owned_is_subset(owned: Option<&Vec<(Uuid, Vec<i32>)>>, target: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(t, parts)| {
        target
            .get(t)
            .is_some_and(|have| parts.iter().all(|p| have.contains(p)))
    })
}

/// Does the member still report owning any of `revoking`? (Not reporting counts as owning.)
fn owns_any(owned: Option<&Vec<(Uuid, Vec<i32>)>>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(t, parts)| {
        revoking
            .get(t)
            .is_some_and(|r| parts.iter().any(|p| r.contains(p)))
    })
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`.
fn check_epoch(
    member: &Member,
    received: i32,
    owned: Option<&Vec<(Uuid, Vec<i32>)>>,
) -> Result<(), GroupError> {
    if received > member.epoch {
        return Err(GroupError::FencedMemberEpoch);
    }
    if received < member.epoch
        && (received != member.previous_epoch || !owned_is_subset(owned, &member.assigned))
    {
        return Err(GroupError::FencedMemberEpoch);
    }
    Ok(())
}

impl ConsumerGroup {
    pub fn new(id: &str, settings: &ConsumerProtocolSettings) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            target: HashMap::new(),
            partition_epochs: HashMap::new(),
            metadata: BTreeMap::new(),
            resolved_against: Vec::new(),
            assignor: default_assignor(settings),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    /// The earliest session or rebalance deadline of a member.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| {
                [
                    Some(m.session_deadline),
                    m.rebalance_deadline.map(|(at, _)| at),
                ]
            })
            .flatten()
            .min()
    }

    /// Fences the members whose session expired, or that did not release their partitions
    /// within their rebalance timeout.
    pub fn expire(&mut self, now: Instant) {
        let lapsed: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.rebalance_deadline
                        .is_some_and(|(at, epoch)| at <= now && m.epoch == epoch)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in lapsed {
            tracing::info!(group = %self.id, member = %id, "consumer group member fenced: session or rebalance timeout");
            self.fence(&id);
        }
        // A rebalance deadline the member got past is dropped.
        for m in self.members.values_mut() {
            if m.rebalance_deadline.is_some_and(|(_, e)| e != m.epoch) {
                m.rebalance_deadline = None;
            }
        }
    }

    /// Removes a member and bumps the group epoch (Kafka's `consumerGroupFenceMember`).
    fn fence(&mut self, member_id: &str) {
        if let Some(m) = self.members.remove(member_id) {
            self.forget_partitions(&m);
            if let Some(i) = &m.instance_id {
                if self
                    .statics
                    .get(i)
                    .is_some_and(|holder| holder == member_id)
                {
                    self.statics.remove(i);
                }
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
    }

    fn forget_partitions(&mut self, m: &Member) {
        for (t, parts) in m.assigned.iter().chain(m.revoking.iter()) {
            for p in parts {
                self.partition_epochs.remove(&(*t, *p));
            }
        }
    }

    fn record_partitions(&mut self, m: &Member) {
        for (t, parts) in m.assigned.iter().chain(m.revoking.iter()) {
            for p in parts {
                self.partition_epochs.insert((*t, *p), m.epoch);
            }
        }
    }

    /// Stores `m` in place of the member of the same id, keeping the partition epochs right.
    fn put_member(&mut self, m: Member) {
        if let Some(old) = self.members.remove(&m.id) {
            self.forget_partitions(&old);
        }
        self.record_partitions(&m);
        if let Some(i) = &m.instance_id {
            self.statics.insert(i.clone(), m.id.clone());
        }
        self.members.insert(m.id.clone(), m);
    }

    /// A ConsumerGroupHeartbeat (already [`validate`]d) with a leave epoch (-1, -2).
    pub fn leave(&mut self, req: &Heartbeat) -> Result<HeartbeatAnswer, GroupError> {
        let answer = |epoch| HeartbeatAnswer {
            member_id: req.member_id.clone(),
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        match &req.instance_id {
            None => {
                if !self.members.contains_key(&req.member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                tracing::info!(group = %self.id, member = %req.member_id, "consumer group member left");
                self.fence(&req.member_id);
                Ok(answer(req.member_epoch))
            }
            Some(instance) => {
                let holder = self
                    .statics
                    .get(instance)
                    .cloned()
                    .ok_or(GroupError::UnknownMemberId)?;
                if holder != req.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                if req.member_epoch == LEAVE_STATIC_EPOCH {
                    // Kept, with its assignment, until its session times out or its instance
                    // rejoins.
                    if let Some(mut m) = self.members.get(&holder).cloned() {
                        m.epoch = LEAVE_STATIC_EPOCH;
                        m.revoking.clear();
                        m.rebalance_deadline = None;
                        self.put_member(m);
                    }
                    tracing::info!(group = %self.id, member = %holder, "static member left for now");
                    Ok(answer(LEAVE_STATIC_EPOCH))
                } else {
                    tracing::info!(group = %self.id, member = %holder, "static member left");
                    self.fence(&holder);
                    Ok(answer(req.member_epoch))
                }
            }
        }
    }

    /// A ConsumerGroupHeartbeat (already [`validate`]d) joining (epoch 0) or heartbeating
    /// (epoch > 0): Kafka's `consumerGroupHeartbeat`.
    pub fn heartbeat(
        &mut self,
        req: &Heartbeat,
        settings: &ConsumerProtocolSettings,
        session_timeout: Duration,
        heartbeat_interval: Duration,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let create = req.member_epoch == 0;
        if self.members.len() >= settings.max_size
            && (req.member_id.is_empty() || !self.members.contains_key(&req.member_id))
        {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let owned = req.owned.as_ref();
        let mut is_new = false;
        let member = match &req.instance_id {
            None => match self.members.get(&member_id) {
                // A classic member speaks JoinGroup/Heartbeat, not this.
                Some(m) if m.classic.is_some() => return Err(GroupError::UnknownMemberId),
                Some(m) => {
                    check_epoch(m, req.member_epoch, owned)?;
                    m.clone()
                }
                None if create => {
                    is_new = true;
                    Member::new(member_id.clone(), now)
                }
                None => return Err(GroupError::UnknownMemberId),
            },
            Some(instance) => {
                let existing = self
                    .statics
                    .get(instance)
                    .and_then(|id| self.members.get(id))
                    .cloned();
                match existing {
                    None if create => match self.members.get(&member_id) {
                        Some(m) => {
                            check_epoch(m, req.member_epoch, owned)?;
                            m.clone()
                        }
                        None => {
                            is_new = true;
                            Member::new(member_id.clone(), now)
                        }
                    },
                    None => return Err(GroupError::UnknownMemberId),
                    Some(old) if create => {
                        if old.epoch != LEAVE_STATIC_EPOCH {
                            return Err(GroupError::UnreleasedInstanceId);
                        }
                        // The new instance takes over the old one's assignment and target.
                        let mut m = old.clone();
                        m.id = member_id.clone();
                        m.epoch = 0;
                        m.previous_epoch = 0;
                        if let Some(t) = self.target.remove(&old.id) {
                            self.target.insert(member_id.clone(), t);
                        }
                        if let Some(gone) = self.members.remove(&old.id) {
                            self.forget_partitions(&gone);
                        }
                        tracing::info!(group = %self.id, old = %old.id, new = %member_id, "static member rejoined");
                        m
                    }
                    Some(old) => {
                        if old.id != member_id {
                            return Err(GroupError::FencedInstanceId);
                        }
                        check_epoch(&old, req.member_epoch, owned)?;
                        old
                    }
                }
            }
        };
        let mut updated = member.clone();
        if let Some(i) = &req.instance_id {
            updated.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            updated.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms >= 0 {
            updated.rebalance_timeout =
                Duration::from_millis(u64::try_from(req.rebalance_timeout_ms).unwrap_or(0));
        }
        if let Some(a) = &req.server_assignor {
            updated.server_assignor = Some(a.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            updated.names = names.iter().cloned().collect();
        }
        let mut regex_changed = false;
        if let Some(re) = &req.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            regex_changed = re != updated.regex;
            updated.regex = re;
        }
        updated.client_id.clone_from(&req.client_id);
        updated.client_host.clone_from(&req.client_host);
        let bump = is_new || updated.names != member.names || regex_changed;

        self.admit(updated, bump, regex_changed, topics, settings);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let mut updated = self
            .members
            .get(&member_id)
            .cloned()
            .ok_or(GroupError::UnknownMemberId)?;
        if !updated.is_reconciled_to(self.assignment_epoch) {
            self.reconcile(&mut updated, &target, owned, now);
        }
        updated.session_deadline = now + session_timeout;
        let assignment_changed = updated.assigned != member.assigned;
        let answer = HeartbeatAnswer {
            member_id: updated.id.clone(),
            member_epoch: updated.epoch,
            heartbeat_interval_ms: i32::try_from(heartbeat_interval.as_millis())
                .unwrap_or(i32::MAX),
            assignment: None,
        };
        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        let assignment = (full || assignment_changed).then(|| updated.assigned.clone());
        self.put_member(updated);
        Ok(HeartbeatAnswer {
            assignment,
            ..answer
        })
    }

    /// Stores a joining or updated member: resolves regexes again when the member's or the
    /// topics changed, refreshes the subscribed topics' metadata, bumps the group epoch when
    /// anything the assignment depends on changed (`bump` says the member did), and computes
    /// the new target assignment.
    fn admit(
        &mut self,
        mut updated: Member,
        mut bump: bool,
        mut regex_changed: bool,
        topics: &TopicsView,
        settings: &ConsumerProtocolSettings,
    ) {
        // A regex is resolved with the rights of the member that set it (as Kafka authorizes
        // per regex): when it changes, or at the member's first heartbeat after the topics
        // changed. Another principal's heartbeat never re-resolves it.
        let fingerprint = topics.fingerprint();
        if fingerprint != self.resolved_against {
            for m in self.members.values_mut() {
                m.regex_stale = m.regex.is_some();
            }
            self.resolved_against = fingerprint;
            regex_changed = true;
        }
        if regex_changed || updated.regex_stale {
            updated.regex_matches = resolve(updated.regex.as_deref(), topics);
            updated.regex_stale = false;
        }

        // The subscribed topics' metadata, with the updated member in.
        let mut subscribed: BTreeSet<&String> = self
            .members
            .values()
            .filter(|m| m.id != updated.id)
            .flat_map(Member::subscribed_names)
            .collect();
        subscribed.extend(updated.subscribed_names());
        let metadata: BTreeMap<String, (Uuid, u32)> = subscribed
            .into_iter()
            .filter_map(|n| topics.by_name.get(n).map(|v| (n.clone(), *v)))
            .collect();
        if metadata != self.metadata {
            self.metadata = metadata;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            tracing::info!(group = %self.id, epoch = self.group_epoch, "consumer group epoch bumped");
        }
        self.put_member(updated);

        if self.group_epoch > self.assignment_epoch {
            self.compute_target(settings);
        }
    }

    /// The assignor for the next target: the one most members ask for, else the default.
    fn choose_assignor(&self, settings: &ConsumerProtocolSettings) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .and_then(|(name, _)| Assignor::from_name(name))
            .unwrap_or_else(|| default_assignor(settings))
    }

    fn compute_target(&mut self, settings: &ConsumerProtocolSettings) {
        let assignor = self.choose_assignor(settings);
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| MemberSpec {
                member_id: m.id.clone(),
                subscribed: m
                    .subscribed_names()
                    .filter_map(|n| self.metadata.get(n).map(|(id, _)| *id))
                    .collect(),
                current: self.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        let topics: BTreeMap<Uuid, u32> = self.metadata.values().copied().collect();
        self.target = assignor.assign(&specs, &topics).into_iter().collect();
        self.assignor = assignor;
        self.assignment_epoch = self.group_epoch;
    }

    /// Kafka's `CurrentAssignmentBuilder`: moves `m` one step towards `target`.
    fn reconcile(
        &self,
        m: &mut Member,
        target: &Assignment,
        owned: Option<&Vec<(Uuid, Vec<i32>)>>,
        now: Instant,
    ) {
        let target_epoch = self.assignment_epoch;
        let before = (m.state, m.epoch);
        match m.state {
            MemberState::Stable => {
                if m.epoch != target_epoch {
                    self.next_assignment(m, m.epoch, target, owned);
                }
            }
            MemberState::UnrevokedPartitions => {
                if !owns_any(owned, &m.revoking) {
                    self.next_assignment(m, m.epoch + 1, target, owned);
                }
            }
            MemberState::UnreleasedPartitions => {
                self.next_assignment(m, m.epoch, target, owned);
            }
        }
        if (m.state, m.epoch) != before {
            m.rebalance_deadline = (m.state == MemberState::UnrevokedPartitions)
                .then(|| (now + m.rebalance_timeout, m.epoch));
        }
    }

    fn next_assignment(
        &self,
        m: &mut Member,
        epoch: i32,
        target: &Assignment,
        owned: Option<&Vec<(Uuid, Vec<i32>)>>,
    ) {
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut pending = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
        let empty = BTreeSet::new();
        for t in topics {
            let want = target.get(&t).unwrap_or(&empty);
            let have = m.assigned.get(&t).unwrap_or(&empty);
            let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
            let give: BTreeSet<i32> = have.difference(&keep).copied().collect();
            let mut get: BTreeSet<i32> = want.difference(&keep).copied().collect();
            let before = get.len();
            get.retain(|p| !self.partition_epochs.contains_key(&(t, *p)));
            unreleased |= get.len() != before;
            if !keep.is_empty() {
                assigned.insert(t, keep);
            }
            if !give.is_empty() {
                revoking.insert(t, give);
            }
            if !get.is_empty() {
                pending.insert(t, get);
            }
        }
        if !revoking.is_empty() && owns_any(owned, &revoking) {
            m.state = MemberState::UnrevokedPartitions;
            m.update_epoch(epoch);
            m.assigned = assigned;
            m.revoking = revoking;
            return;
        }
        let target_epoch = self.assignment_epoch;
        if !pending.is_empty() {
            for (t, parts) in pending {
                assigned.entry(t).or_default().extend(parts);
            }
        }
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        m.update_epoch(target_epoch);
        m.assigned = assigned;
        m.revoking = Assignment::new();
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit`.
    pub fn validate_offset_commit(
        &self,
        who: MemberRef<'_>,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if who.generation < 0 && self.members.is_empty() {
            return Ok(());
        }
        if transactional
            && who.generation < 0
            && who.member_id.is_empty()
            && who.group_instance_id.is_none()
        {
            return Ok(());
        }
        let m = self
            .members
            .get(who.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if who.generation != m.epoch {
            // A classic member's epoch is its generation, checked as a classic group does.
            return Err(if m.classic.is_some() {
                GroupError::IllegalGeneration
            } else {
                GroupError::StaleMemberEpoch
            });
        }
        Ok(())
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`: `member` is None for a fetch that names
    /// no member (admin clients, and OffsetFetch before v9).
    pub fn validate_offset_fetch(&self, member: Option<(&str, i32)>) -> Result<(), GroupError> {
        let Some((id, epoch)) = member else {
            return Ok(());
        };
        let m = self.members.get(id).ok_or(GroupError::UnknownMemberId)?;
        if m.epoch != epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Every topic name a member subscribes to (by name or through its regex).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(Member::subscribed_names)
            .cloned()
            .collect()
    }

    /// ConsumerGroupDescribe's view.
    pub fn view(&self) -> ConsumerGroupView {
        ConsumerGroupView {
            group_id: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.assignor.name().to_string(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.names.iter().cloned().collect(),
                    subscribed_topic_regex: m.regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: self.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A classic member's JoinGroup into a consumer group, in the group's terms.
#[derive(Debug, Clone)]
pub struct ClassicJoin {
    /// Decided by the coordinator (a new member gets a fresh one).
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
}

/// The answer to a classic member's JoinGroup into a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoined {
    pub member_id: String,
    /// The member epoch, which is the member's generation.
    pub epoch: i32,
    pub protocol_name: String,
}

/// A classic group's member, as an online upgrade or downgrade carries it over.
#[derive(Debug, Clone)]
pub struct ClassicSeed {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    /// The group's chosen protocol.
    pub protocol_name: String,
    /// The member's current assignment (a `ConsumerProtocolAssignment`).
    pub assignment: Bytes,
}

/// Classic-protocol members inside a consumer group (Kafka's `classicGroupJoinToConsumerGroup`
/// and its siblings): their assignment is the server-side one, handed out through SyncGroup;
/// JoinGroup is their heartbeat with owned partitions, and a Heartbeat answers
/// REBALANCE_IN_PROGRESS while they must rejoin to release or receive partitions.
impl ConsumerGroup {
    /// True when every member speaks the classic protocol (and there is one).
    pub fn only_classic_members(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// True when `member_id` is a member here.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// True when `member_id` is a classic-protocol member here.
    pub fn is_classic_member(&self, member_id: &str) -> bool {
        self.members
            .get(member_id)
            .is_some_and(|m| m.classic.is_some())
    }

    /// Kafka's `supportsClassicProtocols`: a classic member may join with `protocols` when
    /// one of them is supported by every other classic member.
    fn supports_classic(&self, member_id: &str, protocols: &[(String, Bytes)]) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != member_id)
                .filter_map(|m| m.classic.as_ref())
                .all(|c| c.protocols.iter().any(|(p, _)| p == name))
        })
    }

    /// Kafka's `waitingOnUnreleasedPartition`: some partition of `m`'s target is still owned
    /// by another member.
    fn waiting_on_unreleased(&self, m: &Member) -> bool {
        let Some(target) = self.target.get(&m.id) else {
            return false;
        };
        target.iter().any(|(t, parts)| {
            parts.iter().any(|p| {
                m.assigned.get(t).is_none_or(|a| !a.contains(p))
                    && self.partition_epochs.contains_key(&(*t, *p))
            })
        })
    }

    /// Kafka's join timeout: a classic member told to rejoin is fenced if it has not within
    /// its rebalance timeout (the deadline holds while it stays at its epoch).
    fn schedule_join_timeout(m: &mut Member, now: Instant) {
        if m.rebalance_deadline.is_none() {
            m.rebalance_deadline = Some((now + m.rebalance_timeout, m.epoch));
        }
    }

    /// A classic member (re)joins: its subscription and owned partitions come from the
    /// protocol metadata; it is reconciled one step towards its target like any member.
    pub fn classic_join(
        &mut self,
        j: ClassicJoin,
        settings: &ConsumerProtocolSettings,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<ClassicJoined, GroupError> {
        if !self.supports_classic(&j.member_id, &j.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        // Every protocol carries the same subscription; the answers name the first protocol.
        let (protocol, metadata) = j
            .protocols
            .first()
            .cloned()
            .ok_or(GroupError::InconsistentGroupProtocol)?;
        let sub = decode_subscription(&metadata).ok_or(GroupError::InconsistentGroupProtocol)?;
        let existing = self.members.get(&j.member_id).cloned();
        if existing.is_none() && self.members.len() >= settings.max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if existing.as_ref().is_some_and(|m| m.classic.is_none()) {
            return Err(GroupError::UnknownMemberId);
        }
        let is_new = existing.is_none();
        let member = existing.unwrap_or_else(|| Member::new(j.member_id.clone(), now));
        if let Some(instance) = &j.instance_id {
            // A static member's new incarnation takes its predecessor's place and target.
            if let Some(old) = self.statics.get(instance).cloned() {
                if old != j.member_id {
                    if let Some(gone) = self.members.remove(&old) {
                        self.forget_partitions(&gone);
                    }
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(j.member_id.clone(), t);
                    }
                }
            }
        }
        let before = member.names.clone();
        let mut updated = member.clone();
        updated.instance_id.clone_from(&j.instance_id);
        updated.client_id = j.client_id;
        updated.client_host = j.client_host;
        updated.rebalance_timeout = j.rebalance_timeout;
        updated.names = sub.topics.into_iter().collect();
        updated.regex = None;
        updated.classic = Some(ClassicProtocol {
            session_timeout: j.session_timeout,
            protocols: j.protocols,
            chosen: protocol.clone(),
        });
        let bump = is_new || updated.names != before;
        self.admit(updated, bump, false, topics, settings);
        let owned = names_to_ids(&sub.owned, topics);
        let target = self.target.get(&j.member_id).cloned().unwrap_or_default();
        let mut updated = self
            .members
            .get(&j.member_id)
            .cloned()
            .ok_or(GroupError::UnknownMemberId)?;
        if updated.state != MemberState::UnrevokedPartitions {
            // The member rejoined: its join timeout is over.
            updated.rebalance_deadline = None;
        }
        if !updated.is_reconciled_to(self.assignment_epoch) {
            self.reconcile(&mut updated, &target, Some(&owned), now);
        }
        updated.session_deadline = now + j.session_timeout;
        let epoch = updated.epoch;
        self.put_member(updated);
        Ok(ClassicJoined {
            member_id: j.member_id,
            epoch,
            protocol_name: protocol,
        })
    }

    /// The checks a classic member's SyncGroup and Heartbeat start with.
    fn classic_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<&Member, GroupError> {
        if let Some(holder) = instance_id.and_then(|i| self.statics.get(i)) {
            if holder != member_id {
                return Err(GroupError::FencedInstanceId);
            }
        }
        let m = self
            .members
            .get(member_id)
            .filter(|m| m.classic.is_some())
            .ok_or(GroupError::UnknownMemberId)?;
        if m.epoch != generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(m)
    }

    /// A classic member's SyncGroup: its current assignment, as `ConsumerProtocolAssignment`
    /// bytes, with the protocol name it joined with.
    pub fn classic_sync(
        &mut self,
        who: MemberRef<'_>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        now: Instant,
    ) -> Result<(String, Bytes), GroupError> {
        let m = self.classic_member(who.member_id, who.group_instance_id, who.generation)?;
        let chosen = m
            .classic
            .as_ref()
            .map(|c| c.chosen.clone())
            .unwrap_or_default();
        if protocol_type.is_some_and(|t| t != "consumer")
            || protocol_name.is_some_and(|n| n != chosen)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        // A rebalance started since the join: rejoin first (unless still revoking, which the
        // next join finishes).
        if self.group_epoch > m.epoch && m.state != MemberState::UnrevokedPartitions {
            let mut late = m.clone();
            Self::schedule_join_timeout(&mut late, now);
            self.put_member(late);
            return Err(GroupError::RebalanceInProgress);
        }
        let names: HashMap<Uuid, &str> = self
            .metadata
            .iter()
            .map(|(n, (id, _))| (*id, n.as_str()))
            .collect();
        let version = m
            .classic
            .as_ref()
            .and_then(|c| c.protocols.iter().find(|(n, _)| *n == chosen))
            .and_then(|(_, meta)| meta.get(..2))
            .map_or(0, |v| i16::from_be_bytes([v[0], v[1]]).clamp(0, 3));
        let assignment = encode_assignment(version, &m.assigned, &names);
        let mut touched = m.clone();
        if let Some(c) = &touched.classic {
            touched.session_deadline = now + c.session_timeout;
        }
        self.put_member(touched);
        Ok((chosen, assignment))
    }

    /// A classic member's Heartbeat: REBALANCE_IN_PROGRESS while it is not reconciled to the
    /// current target (it must rejoin to release or receive partitions).
    pub fn classic_heartbeat(
        &mut self,
        who: MemberRef<'_>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let m = self.classic_member(who.member_id, who.group_instance_id, who.generation)?;
        // Rejoin when the group epoch moved on, to finish a revocation, or to collect
        // partitions that are free now.
        let rejoin = m.epoch < self.group_epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && !self.waiting_on_unreleased(m));
        let mut touched = m.clone();
        if let Some(c) = &touched.classic {
            touched.session_deadline = now + c.session_timeout;
        }
        if rejoin {
            Self::schedule_join_timeout(&mut touched, now);
        }
        self.put_member(touched);
        if rejoin {
            Err(GroupError::RebalanceInProgress)
        } else {
            Ok(())
        }
    }

    /// A classic member's LeaveGroup (by member id, or by instance id for a static member).
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let id = match instance_id {
            Some(i) => match self.statics.get(i) {
                None => return Err(GroupError::UnknownMemberId),
                Some(holder) if !member_id.is_empty() && holder != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(holder) => holder.clone(),
            },
            None if self.members.contains_key(member_id) => member_id.to_string(),
            None => return Err(GroupError::UnknownMemberId),
        };
        tracing::info!(group = %self.id, member = %id, "classic member left the consumer group");
        self.fence(&id);
        Ok(())
    }

    /// Online upgrade (Kafka's `ConsumerGroup.fromClassicGroup`): the classic group's members
    /// become classic members of a consumer group whose epoch is the classic generation, each
    /// owning (and targeted at) what its current assignment gives it. `None` when a member's
    /// subscription or assignment cannot be read.
    pub fn from_classic(
        id: &str,
        settings: &ConsumerProtocolSettings,
        generation: i32,
        seeds: Vec<ClassicSeed>,
        topics: &TopicsView,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        let mut group = ConsumerGroup::new(id, settings);
        group.group_epoch = generation;
        group.assignment_epoch = generation;
        for seed in seeds {
            let meta = seed
                .protocols
                .iter()
                .find(|(n, _)| *n == seed.protocol_name)
                .map(|(_, m)| m.clone())?;
            let sub = decode_subscription(&meta)?;
            let assigned = if seed.assignment.is_empty() {
                Vec::new()
            } else {
                decode_assignment(&seed.assignment)?
            };
            let mut m = Member::new(seed.member_id.clone(), now);
            m.instance_id = seed.instance_id;
            m.client_id = seed.client_id;
            m.client_host = seed.client_host;
            m.rebalance_timeout = seed.rebalance_timeout;
            m.names = sub.topics.into_iter().collect();
            m.epoch = generation;
            m.previous_epoch = generation;
            m.assigned = to_assignment(&names_to_ids(&assigned, topics));
            m.session_deadline = now + seed.session_timeout;
            m.classic = Some(ClassicProtocol {
                session_timeout: seed.session_timeout,
                protocols: seed.protocols,
                chosen: seed.protocol_name,
            });
            group.target.insert(m.id.clone(), m.assigned.clone());
            group.put_member(m);
        }
        group.metadata = group
            .subscribed_topics()
            .into_iter()
            .filter_map(|n| topics.by_name.get(&n).map(|v| (n, *v)))
            .collect();
        group.resolved_against = topics.fingerprint();
        Some(group)
    }

    /// Online downgrade (Kafka's `ClassicGroup.fromConsumerGroup`): the (all classic) members
    /// with their current assignments, and the generation the classic group continues from.
    pub fn to_classic(&self) -> (i32, Vec<ClassicSeed>) {
        let names: HashMap<Uuid, &str> = self
            .metadata
            .iter()
            .map(|(n, (id, _))| (*id, n.as_str()))
            .collect();
        let seeds = self
            .members
            .values()
            .filter_map(|m| {
                let c = m.classic.as_ref()?;
                Some(ClassicSeed {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: c.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    protocols: c.protocols.clone(),
                    protocol_name: c.chosen.clone(),
                    assignment: encode_assignment(0, &m.assigned, &names),
                })
            })
            .collect();
        (self.group_epoch, seeds)
    }
}

/// A classic member's `ConsumerProtocolSubscription`: what it subscribes to and owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSubscription {
    pub topics: Vec<String>,
    pub owned: Vec<(String, Vec<i32>)>,
}

/// Big-endian fields read with every length checked against the bytes left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    /// Nullable bytes, skipped.
    fn skip_bytes(&mut self) -> Option<()> {
        let len = self.i32()?;
        if len >= 0 {
            self.take(usize::try_from(len).ok()?)?;
        }
        Some(())
    }

    /// An array's count, refused when the bytes left cannot hold that many elements of at
    /// least `min` bytes each (so no allocation follows an unchecked length).
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n <= self.0.len() / min).then_some(n)
    }

    fn topic_partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        let n = self.count(6)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = self.string()?;
            let k = self.count(4)?;
            let mut parts = Vec::with_capacity(k);
            for _ in 0..k {
                parts.push(self.i32()?);
            }
            out.push((topic, parts));
        }
        Some(out)
    }
}

/// Reads a `ConsumerProtocolSubscription` (v0: topics, user data; v1+: owned partitions).
pub fn decode_subscription(b: &[u8]) -> Option<ClassicSubscription> {
    let mut r = Reader(b);
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let n = r.count(2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string()?);
    }
    r.skip_bytes()?;
    let owned = if version >= 1 {
        r.topic_partitions()?
    } else {
        Vec::new()
    };
    Some(ClassicSubscription { topics, owned })
}

/// Reads a `ConsumerProtocolAssignment`'s partitions.
pub fn decode_assignment(b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = Reader(b);
    if r.i16()? < 0 {
        return None;
    }
    r.topic_partitions()
}

/// Writes a `ConsumerProtocolAssignment` (no user data) naming topics by `names`.
pub fn encode_assignment(version: i16, a: &Assignment, names: &HashMap<Uuid, &str>) -> Bytes {
    let named: Vec<(&str, &BTreeSet<i32>)> = a
        .iter()
        .filter_map(|(id, parts)| names.get(id).map(|n| (*n, parts)))
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&i32::try_from(named.len()).unwrap_or(0).to_be_bytes());
    for (name, parts) in named {
        out.extend_from_slice(&i16::try_from(name.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&i32::try_from(parts.len()).unwrap_or(0).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

/// Named partitions by topic id (topics that do not exist are dropped).
fn names_to_ids(named: &[(String, Vec<i32>)], topics: &TopicsView) -> Vec<(Uuid, Vec<i32>)> {
    named
        .iter()
        .filter_map(|(n, parts)| topics.by_name.get(n).map(|(id, _)| (*id, parts.clone())))
        .collect()
}

fn to_assignment(parts: &[(Uuid, Vec<i32>)]) -> Assignment {
    let mut a = Assignment::new();
    for (t, ps) in parts {
        if !ps.is_empty() {
            a.entry(*t).or_default().extend(ps.iter().copied());
        }
    }
    a
}

fn default_assignor(settings: &ConsumerProtocolSettings) -> Assignor {
    settings
        .assignors
        .iter()
        .find_map(|n| Assignor::from_name(n))
        .unwrap_or(Assignor::Uniform)
}

fn resolve(regex: Option<&str>, topics: &TopicsView) -> BTreeSet<String> {
    let Some(Ok(re)) = regex.map(compile_regex) else {
        return BTreeSet::new();
    };
    topics
        .by_name
        .keys()
        .filter(|n| re.is_match(n) && !topics.hidden.contains(*n))
        .cloned()
        .collect()
}

#[cfg(test)]
#[path = "consumer_protocol_tests.rs"]
mod tests;
