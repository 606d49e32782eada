//! The group coordinator for classic (client-side assignment) consumer groups, as Kafka's
//! `GroupCoordinator` runs them: members join, one of them (the leader) is handed everyone's
//! subscription and assigns, the others receive their share through SyncGroup, and everyone
//! heartbeats. Subscriptions and assignments are opaque bytes here; the client's assignor does
//! the work, so this module knows nothing of topics.
//!
//! States follow Kafka: `Empty` -> `PreparingRebalance` (waiting for members to (re)join) ->
//! `CompletingRebalance` (waiting for the leader's assignment) -> `Stable`, and back to
//! `PreparingRebalance` whenever membership or a subscription changes. A group that is deleted
//! is simply forgotten (Kafka's `Dead`).
//!
//! Membership lives in memory and is formed again after a restart (members get
//! UNKNOWN_MEMBER_ID and rejoin); committed offsets live in the log store, written through
//! [`GroupCoordinator::commit_offsets`] so the generation and member checks and the write happen
//! under one lock. Timers (session, rebalance, MEMBER_ID_REQUIRED, initial delay) are deadlines
//! kept in the groups and served by one task, [`GroupCoordinator::drive_timers`], which sleeps
//! until the earliest one.
//!
//! KIP-848 consumer-protocol groups ([`super::consumer_protocol`]) live beside the classic ones
//! under the same lock and timer task: a group id names one kind or the other, and an empty
//! group of one kind gives way to the other. Groups with members migrate as Kafka 4's do, per
//! `group.consumer.migration.policy`: a classic group of protocol type `consumer` becomes a
//! consumer group when a consumer-protocol member joins it (online upgrade: its members stay,
//! as classic members whose assignment the server now computes, still speaking
//! JoinGroup/SyncGroup/Heartbeat/LeaveGroup), and a consumer group whose last
//! consumer-protocol member leaves while classic members remain becomes a classic group again
//! and rebalances (online downgrade).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

use super::consumer_protocol::{
    self, ClassicJoin, ClassicSeed, ConsumerGroup, ConsumerGroupView, Heartbeat, HeartbeatAnswer,
    TopicsView,
};
use super::group_config::GroupConfig;

/// A member that has joined but never completed a join is dropped after this long (Kafka's
/// `NewMemberJoinTimeoutMs`): it probably went away mid-join.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay: Duration,
    pub max_group_size: usize,
    /// The consumer protocol's (KIP-848) settings.
    pub consumer: ConsumerProtocolSettings,
}

impl Default for CoordinatorSettings {
    fn default() -> Self {
        CoordinatorSettings {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            initial_rebalance_delay: Duration::from_secs(3),
            max_group_size: 10_000,
            consumer: ConsumerProtocolSettings::default(),
        }
    }
}

/// The broker-wide settings of consumer-protocol (KIP-848) groups, Kafka's `group.consumer.*`
/// broker configs with Kafka 4's defaults. A group's own configs
/// ([`super::group_config::GroupConfig`]) override the session timeout and heartbeat interval
/// within the min/max bounds.
#[derive(Debug, Clone)]
pub struct ConsumerProtocolSettings {
    /// `group.consumer.session.timeout.ms` (45 s)
    pub session_timeout: Duration,
    /// `group.consumer.min.session.timeout.ms` (45 s)
    pub min_session_timeout: Duration,
    /// `group.consumer.max.session.timeout.ms` (60 s)
    pub max_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (5 s)
    pub heartbeat_interval: Duration,
    /// `group.consumer.min.heartbeat.interval.ms` (5 s)
    pub min_heartbeat_interval: Duration,
    /// `group.consumer.max.heartbeat.interval.ms` (15 s)
    pub max_heartbeat_interval: Duration,
    /// `group.consumer.max.size` (Kafka: unbounded; here bounded like classic groups)
    pub max_size: usize,
    /// `group.consumer.assignors`: the first is the default (`uniform`, `range`)
    pub assignors: Vec<String>,
    /// `group.consumer.migration.policy` (`bidirectional`, `upgrade`, `downgrade`, `disabled`)
    pub migration_policy: String,
}

impl Default for ConsumerProtocolSettings {
    fn default() -> Self {
        ConsumerProtocolSettings {
            session_timeout: Duration::from_secs(45),
            min_session_timeout: Duration::from_secs(45),
            max_session_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(5),
            min_heartbeat_interval: Duration::from_secs(5),
            max_heartbeat_interval: Duration::from_secs(15),
            max_size: 10_000,
            assignors: vec!["uniform".into(), "range".into()],
            migration_policy: "bidirectional".into(),
        }
    }
}

/// Why a group operation was refused; each is one of Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("this server no longer coordinates the group")]
    NotCoordinator,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("session timeout outside the allowed range")]
    InvalidSessionTimeout,
    #[error("protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("a member id is required: join again with the one given")]
    MemberIdRequired,
    #[error("another member holds this group instance id")]
    FencedInstanceId,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("group not found")]
    GroupIdNotFound,
    // KIP-848 (consumer protocol) refusals.
    #[error("the member epoch is fenced: abandon the partitions and rejoin")]
    FencedMemberEpoch,
    #[error("the member epoch is not the member's current one")]
    StaleMemberEpoch,
    #[error("the instance id is still held by another member")]
    UnreleasedInstanceId,
    #[error("the server assignor is not supported")]
    UnsupportedAssignor,
    #[error("invalid regular expression")]
    InvalidRegularExpression,
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

/// The group states, named as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup, in the coordinator's terms.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, subscription metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and a member id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the join answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
    /// The leader rejoined as a static member without changes: it need not assign again.
    pub skip_assignment: bool,
}

impl JoinResult {
    fn failed(member_id: &str, error: GroupError) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup, in the coordinator's terms.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// From the leader: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn failed(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Who a request says it is.
#[derive(Debug, Clone, Copy)]
pub struct MemberRef<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    pub generation: i32,
}

/// DescribeGroups' view of a member.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups' view of a group.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol, when the group is Stable.
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

/// ListGroups' view of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// The state's name as Kafka spells it (classic or consumer group states).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5's group type).
    pub group_type: &'static str,
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    last_heartbeat: Instant,
    /// Joined but no join has completed for it yet.
    is_new: bool,
}

impl Member {
    /// A member entering the group with `req`, waiting for the join phase to end.
    fn joining(
        id: String,
        req: JoinRequest,
        session_timeout: Duration,
        rebalance_timeout: Duration,
        join_waiter: oneshot::Sender<JoinResult>,
        now: Instant,
    ) -> Member {
        Member {
            id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout,
            rebalance_timeout,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(join_waiter),
            sync_waiter: None,
            last_heartbeat: now,
            is_new: true,
        }
    }

    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// When the member is given up for lost, if it can be.
    fn deadline(&self) -> Option<Instant> {
        if self.awaiting_join() {
            // Waiting in JoinGroup keeps a member alive (the rebalance timeout bounds the
            // wait), except a new one, which may have gone away before its first join completed.
            self.is_new
                .then_some(self.last_heartbeat + NEW_MEMBER_JOIN_TIMEOUT)
        } else if self.sync_waiter.is_some() {
            None
        } else {
            Some(self.last_heartbeat + self.session_timeout)
        }
    }

    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn joins_same(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn answer_join(&mut self, result: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            // The member may have disconnected; it will rejoin or expire.
            let _ = tx.send(result);
        }
    }

    fn answer_sync(&mut self, result: SyncResult) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(result);
        }
    }
}

/// When a rebalance stops waiting for members to rejoin.
#[derive(Debug, Clone, Copy)]
struct JoinDeadline {
    at: Instant,
    /// The first rebalance of an empty group: wait the whole delay even if everyone is in,
    /// then extend by another delay (up to `remaining`) while new members keep arriving.
    initial: bool,
    remaining: Duration,
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In order of joining.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and when they lapse.
    pending: HashMap<String, Instant>,
    /// group.instance.id -> member id of the static members.
    statics: HashMap<String, String>,
    join_deadline: Option<JoinDeadline>,
    new_member_added: bool,
    /// The coordinator's count of completed rebalances, shared by its groups.
    rebalances: Arc<AtomicU64>,
}

impl Group {
    fn new(id: &str, rebalances: &Arc<AtomicU64>) -> Group {
        Group {
            rebalances: Arc::clone(rebalances),
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            join_deadline: None,
            new_member_added: false,
        }
    }

    /// Online downgrade: a classic group continuing a consumer group's classic members from
    /// its epoch, with their current assignments, and rebalancing at once (Kafka's
    /// `ClassicGroup.fromConsumerGroup` followed by a rebalance).
    fn from_consumer(
        id: &str,
        rebalances: &Arc<AtomicU64>,
        generation: i32,
        seeds: Vec<ClassicSeed>,
        settings: &CoordinatorSettings,
        now: Instant,
    ) -> Group {
        let mut group = Group::new(id, rebalances);
        group.generation = generation;
        group.protocol_type = Some("consumer".to_string());
        for s in seeds {
            if let Some(i) = &s.instance_id {
                group.statics.insert(i.clone(), s.member_id.clone());
            }
            group.members.push(Member {
                id: s.member_id,
                instance_id: s.instance_id,
                client_id: s.client_id,
                client_host: s.client_host,
                session_timeout: s.session_timeout,
                rebalance_timeout: s.rebalance_timeout,
                protocol_type: "consumer".to_string(),
                protocols: s.protocols,
                assignment: s.assignment,
                join_waiter: None,
                sync_waiter: None,
                last_heartbeat: now,
                is_new: false,
            });
        }
        group.leader = group.members.first().map(|m| m.id.clone());
        group.protocol_name = group.select_protocol();
        group.state = GroupState::Stable;
        group.prepare_rebalance(settings, now);
        group
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn has(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// True when `instance_id` belongs to a static member other than `member_id`.
    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.statics.get(i))
            .is_some_and(|holder| holder != member_id)
    }

    /// The protocols every member supports, in the order the first member prefers them.
    fn candidate_protocols(&self) -> Vec<&str> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Whether a member joining with these protocols could be part of this group.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol every current member speaks that the newcomer speaks too.
        self.candidate_protocols()
            .iter()
            .any(|c| protocols.iter().any(|(p, _)| p == c))
    }

    /// Kafka's vote: each member votes for its most preferred candidate; most votes wins,
    /// ties go to the leader's (else the first member's) preference.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in &self.members {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p.as_str()))
            {
                if let Some(v) = votes.iter_mut().find(|(_, c)| c == name) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max()?;
        let preferred = self
            .leader
            .as_deref()
            .and_then(|l| self.member(l))
            .or(self.members.first())?;
        preferred
            .protocols
            .iter()
            .map(|(p, _)| p.as_str())
            .find(|p| votes.iter().any(|(n, c)| c == p && *n == best))
            .map(str::to_string)
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(Member::awaiting_join)
    }

    /// The join answer for `member_id` in the current generation.
    fn join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            self.members
                .iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn add_member(&mut self, member: Member, settings: &CoordinatorSettings, now: Instant) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(i) = &member.instance_id {
            self.statics.insert(i.clone(), member.id.clone());
        }
        self.members.push(member);
        self.maybe_prepare_rebalance(settings, now);
    }

    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let i = self.members.iter().position(|m| m.id == id)?;
        let member = self.members.remove(i);
        if let Some(instance) = &member.instance_id {
            if self.statics.get(instance) == Some(&member.id) {
                self.statics.remove(instance);
            }
        }
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        // The protocol type stays when the last member goes, as in Kafka: an Empty consumer
        // group is still a consumer group (the next member to join sets it again).
        Some(member)
    }

    /// Removes a member that left or expired and lets the group react (Kafka's
    /// `removeMemberAndUpdateGroup`).
    fn remove_and_update(&mut self, id: &str, settings: &CoordinatorSettings, now: Instant) {
        let Some(mut member) = self.remove_member(id) else {
            return;
        };
        member.answer_join(JoinResult::failed(id, GroupError::UnknownMemberId));
        member.answer_sync(SyncResult::failed(GroupError::UnknownMemberId));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(settings, now);
            }
            GroupState::PreparingRebalance => self.check_join_completion(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn maybe_prepare_rebalance(&mut self, settings: &CoordinatorSettings, now: Instant) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(settings, now);
        } else {
            self.check_join_completion(now);
        }
    }

    fn prepare_rebalance(&mut self, settings: &CoordinatorSettings, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting in SyncGroup must rejoin; the leader's assignment is moot.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::failed(GroupError::RebalanceInProgress));
            }
        }
        let timeout = self.rebalance_timeout();
        let delay = settings.initial_rebalance_delay.min(timeout);
        self.join_deadline = Some(if self.state == GroupState::Empty && !delay.is_zero() {
            JoinDeadline {
                at: now + delay,
                initial: true,
                remaining: timeout.saturating_sub(delay),
            }
        } else {
            JoinDeadline {
                at: now + timeout,
                initial: false,
                remaining: Duration::ZERO,
            }
        });
        self.state = GroupState::PreparingRebalance;
        self.check_join_completion(now);
    }

    /// Completes the rebalance once every member has rejoined (not during the initial delay).
    fn check_join_completion(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| !d.initial)
            && self.all_joined()
        {
            self.complete_join(now);
        }
    }

    /// The rebalance's join phase ends: members that did not rejoin are dropped, a new
    /// generation starts and every member gets its join answer (Kafka's `onCompleteJoin`).
    fn complete_join(&mut self, now: Instant) {
        self.join_deadline = None;
        self.new_member_added = false;
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.remove_member(&id);
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        if self.leader.as_deref().is_none_or(|l| !self.has(l)) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = ?self.protocol_name,
            "rebalance: join phase complete"
        );
        let answers: Vec<JoinResult> = self
            .members
            .iter()
            .map(|m| self.join_result(&m.id, false))
            .collect();
        for (m, answer) in self.members.iter_mut().zip(answers) {
            m.is_new = false;
            m.last_heartbeat = now;
            m.answer_join(answer);
        }
    }

    /// The earliest moment something in this group times out.
    fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.iter().filter_map(Member::deadline);
        let pending = self.pending.values().copied();
        let join = self.join_deadline.map(|d| d.at);
        members.chain(pending).chain(join).min()
    }

    fn expire(&mut self, settings: &CoordinatorSettings, now: Instant) {
        let lapsed: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            self.pending.remove(&id);
            self.check_join_completion(now);
        }
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.deadline().is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in dead {
            tracing::info!(group = %self.id, member = %id, "member's session expired; removed");
            self.remove_and_update(&id, settings, now);
        }
        if let Some(d) = self.join_deadline {
            if d.at <= now && self.state == GroupState::PreparingRebalance {
                if d.initial && self.new_member_added && !d.remaining.is_zero() {
                    let delay = settings.initial_rebalance_delay.min(d.remaining);
                    self.new_member_added = false;
                    self.join_deadline = Some(JoinDeadline {
                        at: now + delay,
                        initial: true,
                        remaining: d.remaining.saturating_sub(delay),
                    });
                } else {
                    self.complete_join(now);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    groups: HashMap<String, Group>,
    /// The consumer-protocol (KIP-848) groups; a group id names a group in one map or the other.
    consumer: HashMap<String, ConsumerGroup>,
    /// When the timer task will next look; an earlier deadline must wake it.
    next_wake: Option<Instant>,
    /// Set at shutdown: everything is answered NOT_COORDINATOR from then on.
    closed: bool,
}

/// The coordinator of every classic group on this server.
#[derive(Debug)]
pub struct GroupCoordinator {
    settings: CoordinatorSettings,
    state: Mutex<State>,
    wake: Notify,
    /// Rebalances completed (a new generation), for the operator.
    rebalances: Arc<AtomicU64>,
}

impl GroupCoordinator {
    pub fn new(settings: CoordinatorSettings) -> GroupCoordinator {
        GroupCoordinator {
            settings,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            rebalances: Arc::default(),
        }
    }

    /// Rebalances completed (each a new generation of a group) since the start, as Kafka's
    /// group coordinator counts them.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> &CoordinatorSettings {
        &self.settings
    }

    /// Wakes the timer task if something now times out before it planned to look.
    fn reschedule(&self, state: &mut State, group_id: &str) {
        let classic = state.groups.get(group_id).and_then(Group::next_deadline);
        let consumer = state
            .consumer
            .get(group_id)
            .and_then(ConsumerGroup::next_deadline);
        let Some(at) = classic.into_iter().chain(consumer).min() else {
            return;
        };
        if state.next_wake.is_none_or(|w| at < w) {
            state.next_wake = Some(at);
            self.wake.notify_one();
        }
    }

    /// JoinGroup. Waits (without holding any lock) until the rebalance's join phase ends.
    pub async fn join(&self, req: JoinRequest) -> JoinResult {
        self.join_with_topics(req, &TopicsView::default()).await
    }

    /// JoinGroup, with the topics a classic member of a consumer group may subscribe to.
    pub async fn join_with_topics(&self, req: JoinRequest, topics: &TopicsView) -> JoinResult {
        let rx = match self.start_join(req, topics) {
            Ok(rx) => rx,
            Err((member_id, e)) => return JoinResult::failed(&member_id, e),
        };
        rx.await
            .unwrap_or_else(|_| JoinResult::failed("", GroupError::NotCoordinator))
    }

    /// Starts a join; the error carries the member id the request gave.
    fn start_join(
        &self,
        req: JoinRequest,
        topics: &TopicsView,
    ) -> Result<oneshot::Receiver<JoinResult>, (String, GroupError)> {
        let fail = |e| Err((req.member_id.clone(), e));
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId);
        }
        let session = u64::try_from(req.session_timeout_ms)
            .map(Duration::from_millis)
            .ok()
            .filter(|s| {
                (self.settings.min_session_timeout..=self.settings.max_session_timeout).contains(s)
            });
        let Some(session) = session else {
            return fail(GroupError::InvalidSessionTimeout);
        };
        // JoinGroup v0 has no rebalance timeout; it is the session timeout then.
        let rebalance = u64::try_from(req.rebalance_timeout_ms)
            .map(Duration::from_millis)
            .unwrap_or(session);
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        let now = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock();
        if state.closed {
            return fail(GroupError::NotCoordinator);
        }
        // A consumer-protocol group of this id: an empty one gives way to the classic group
        // (Kafka converts it); one with members takes the classic member in.
        match state.consumer.get(&req.group_id) {
            Some(g) if g.is_empty() => {
                state.consumer.remove(&req.group_id);
            }
            Some(_) => {
                let answer =
                    self.join_consumer_group(&mut state, req, session, rebalance, topics, now);
                return match answer {
                    Ok(result) => {
                        let _ = tx.send(result);
                        Ok(rx)
                    }
                    Err(e) => Err(e),
                };
            }
            None => {}
        }
        if !req.member_id.is_empty() && !state.groups.contains_key(&req.group_id) {
            return fail(GroupError::UnknownMemberId);
        }
        let group = state
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, &self.rebalances));
        let member_id = req.member_id.clone();
        let outcome = if !group.supports(&req.protocol_type, &req.protocols) {
            Err(GroupError::InconsistentGroupProtocol)
        } else if req.member_id.is_empty() {
            self.join_new(group, req, session, rebalance, tx, now)
        } else {
            self.join_known(group, req, session, rebalance, tx, now)
        };
        let group_id = group.id.clone();
        if group.members.is_empty() && group.pending.is_empty() && group.generation == 0 {
            // Nobody got in: do not keep a group that never was.
            state.groups.remove(&group_id);
        }
        self.reschedule(&mut state, &group_id);
        match outcome {
            Ok(()) => Ok(rx),
            Err(e) => Err((member_id, e)),
        }
    }

    fn join_new(
        &self,
        group: &mut Group,
        req: JoinRequest,
        session: Duration,
        rebalance: Duration,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let member_id = new_member_id(&req.client_id);
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = group.statics.get(&instance).cloned() {
                return self
                    .rejoin_static(group, req, &old_id, member_id, session, rebalance, tx, now);
            }
        }
        if group.members.len() + group.pending.len() >= self.settings.max_group_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if req.group_instance_id.is_none() && req.require_known_member_id {
            group.pending.insert(member_id.clone(), now + session);
            let _ = tx.send(JoinResult::failed(&member_id, GroupError::MemberIdRequired));
            return Ok(());
        }
        group.add_member(
            Member::joining(member_id, req, session, rebalance, tx, now),
            &self.settings,
            now,
        );
        Ok(())
    }

    /// A static member comes back (a restarted process with the same group.instance.id): it
    /// takes over the old member's place under a new member id, fencing the old one, and the
    /// group rebalances only if it must (Kafka's `updateStaticMemberAndRebalance`).
    #[allow(clippy::too_many_arguments)]
    fn rejoin_static(
        &self,
        group: &mut Group,
        req: JoinRequest,
        old_id: &str,
        new_id: String,
        session: Duration,
        rebalance: Duration,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let was_leader = group.is_leader(old_id);
        let Some(member) = group.member_mut(old_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        member.answer_join(JoinResult::failed(old_id, GroupError::FencedInstanceId));
        member.answer_sync(SyncResult::failed(GroupError::FencedInstanceId));
        let unchanged = member.joins_same(&req.protocols);
        member.id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout = session;
        member.rebalance_timeout = rebalance;
        member.protocols = req.protocols;
        member.last_heartbeat = now;
        if let Some(instance) = req.group_instance_id {
            group.statics.insert(instance, new_id.clone());
        }
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        match group.state {
            GroupState::Stable if unchanged || group.select_protocol() == group.protocol_name => {
                let is_leader = group.is_leader(&new_id);
                let _ = tx.send(group.join_result(&new_id, is_leader));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = group.member_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                group.check_join_completion(now);
            }
            _ => {
                if let Some(m) = group.member_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                group.prepare_rebalance(&self.settings, now);
            }
        }
        Ok(())
    }

    fn join_known(
        &self,
        group: &mut Group,
        req: JoinRequest,
        session: Duration,
        rebalance: Duration,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let id = req.member_id.clone();
        if group.pending.remove(&id).is_some() {
            group.add_member(
                Member::joining(id, req, session, rebalance, tx, now),
                &self.settings,
                now,
            );
            return Ok(());
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &id) {
            return Err(GroupError::FencedInstanceId);
        }
        let instance_unknown = req
            .group_instance_id
            .as_ref()
            .is_some_and(|i| !group.statics.contains_key(i));
        if !group.has(&id) || instance_unknown {
            return Err(GroupError::UnknownMemberId);
        }
        let is_leader = group.is_leader(&id);
        let state = group.state;
        let Some(member) = group.member_mut(&id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let unchanged = member.joins_same(&req.protocols);
        member.last_heartbeat = now;
        match state {
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our answer and asks again: same generation.
                let _ = tx.send(group.join_result(&id, false));
                return Ok(());
            }
            GroupState::Stable if unchanged && !is_leader => {
                let _ = tx.send(group.join_result(&id, false));
                return Ok(());
            }
            GroupState::Empty | GroupState::Dead => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        member.protocols = req.protocols;
        member.session_timeout = session;
        member.rebalance_timeout = rebalance;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.join_waiter = Some(tx);
        if state == GroupState::PreparingRebalance {
            group.check_join_completion(now);
        } else {
            group.prepare_rebalance(&self.settings, now);
        }
        Ok(())
    }

    /// A classic member's JoinGroup into a consumer-protocol group with members (Kafka's
    /// `classicGroupJoinToConsumerGroup`): answered at once, with the member epoch as the
    /// generation; the assignment follows in SyncGroup.
    fn join_consumer_group(
        &self,
        state: &mut State,
        req: JoinRequest,
        session: Duration,
        rebalance: Duration,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<JoinResult, (String, GroupError)> {
        let member_id = req.member_id.clone();
        if req.protocol_type != "consumer" {
            return Err((member_id, GroupError::InconsistentGroupProtocol));
        }
        let Some(group) = state.consumer.get_mut(&req.group_id) else {
            return Err((member_id, GroupError::UnknownMemberId));
        };
        if member_id.is_empty() && req.group_instance_id.is_none() && req.require_known_member_id {
            // The member joins again with this id (Kafka's MEMBER_ID_REQUIRED round trip).
            return Ok(JoinResult::failed(
                &consumer_protocol::new_member_id(),
                GroupError::MemberIdRequired,
            ));
        }
        let id = if member_id.is_empty() {
            consumer_protocol::new_member_id()
        } else {
            member_id.clone()
        };
        let joined = group
            .classic_join(
                ClassicJoin {
                    member_id: id.clone(),
                    instance_id: req.group_instance_id,
                    client_id: req.client_id,
                    client_host: req.client_host,
                    session_timeout: session,
                    rebalance_timeout: rebalance,
                    protocols: req.protocols,
                },
                &self.settings.consumer,
                topics,
                now,
            )
            .map_err(|e| (member_id, e))?;
        let group_id = req.group_id;
        self.reschedule(state, &group_id);
        Ok(JoinResult {
            error: None,
            generation: joined.epoch,
            protocol_type: Some("consumer".to_string()),
            protocol_name: Some(joined.protocol_name),
            leader: String::new(),
            member_id: joined.member_id,
            members: Vec::new(),
            skip_assignment: false,
        })
    }

    /// Online downgrade when the migration policy allows it and the group's members all speak
    /// the classic protocol (the last consumer-protocol member just left).
    fn maybe_downgrade(&self, state: &mut State, group_id: &str, now: Instant) {
        if !matches!(
            self.settings.consumer.migration_policy.as_str(),
            "bidirectional" | "downgrade"
        ) {
            return;
        }
        let Some(group) = state.consumer.get(group_id) else {
            return;
        };
        if !group.only_classic_members() || group.member_count() > self.settings.max_group_size {
            return;
        }
        let (generation, seeds) = group.to_classic();
        state.consumer.remove(group_id);
        tracing::info!(group = %group_id, "consumer group downgraded to a classic group");
        let classic = Group::from_consumer(
            group_id,
            &self.rebalances,
            generation,
            seeds,
            &self.settings,
            now,
        );
        state.groups.insert(group_id.to_string(), classic);
    }

    /// Online upgrade when a consumer-protocol member joins classic group `group_id` with
    /// members (Kafka's `validateOnlineUpgrade` and `convertToConsumerGroup`); refused with
    /// GROUP_ID_NOT_FOUND when the policy, the protocol type or the size do not allow it.
    fn upgrade(
        &self,
        state: &mut State,
        group_id: &str,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<(), GroupError> {
        let Some(g) = state.groups.get(group_id) else {
            return Ok(());
        };
        let allowed = matches!(
            self.settings.consumer.migration_policy.as_str(),
            "bidirectional" | "upgrade"
        );
        if !allowed
            || g.protocol_type.as_deref() != Some("consumer")
            || g.members.len() > self.settings.consumer.max_size
        {
            return Err(GroupError::GroupIdNotFound);
        }
        let protocol = g
            .protocol_name
            .clone()
            .or_else(|| g.select_protocol())
            .unwrap_or_default();
        let seeds = g
            .members
            .iter()
            .map(|m| ClassicSeed {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: m.protocols.clone(),
                protocol_name: protocol.clone(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let converted = ConsumerGroup::from_classic(
            group_id,
            &self.settings.consumer,
            g.generation,
            seeds,
            topics,
            now,
        )
        .ok_or(GroupError::GroupIdNotFound)?;
        if let Some(mut old) = state.groups.remove(group_id) {
            // Members waiting in a join or sync retry against the consumer group.
            for m in &mut old.members {
                let id = m.id.clone();
                m.answer_join(JoinResult::failed(&id, GroupError::RebalanceInProgress));
                m.answer_sync(SyncResult::failed(GroupError::RebalanceInProgress));
            }
        }
        tracing::info!(group = %group_id, "classic group upgraded to a consumer group");
        state.consumer.insert(group_id.to_string(), converted);
        Ok(())
    }

    /// SyncGroup. The leader's call carries everyone's assignment; the others wait for it.
    pub async fn sync(&self, req: SyncRequest) -> SyncResult {
        let rx = match self.start_sync(req) {
            Ok(rx) => rx,
            Err(e) => return SyncResult::failed(e),
        };
        rx.await
            .unwrap_or_else(|_| SyncResult::failed(GroupError::NotCoordinator))
    }

    fn start_sync(&self, req: SyncRequest) -> Result<oneshot::Receiver<SyncResult>, GroupError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(group) = state.consumer.get_mut(&req.group_id) {
            let who = MemberRef {
                member_id: &req.member_id,
                group_instance_id: req.group_instance_id.as_deref(),
                generation: req.generation,
            };
            let (protocol_name, assignment) = group.classic_sync(
                who,
                req.protocol_type.as_deref(),
                req.protocol_name.as_deref(),
                now,
            )?;
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(SyncResult {
                error: None,
                protocol_type: Some("consumer".to_string()),
                protocol_name: Some(protocol_name),
                assignment,
            });
            let id = req.group_id;
            self.reschedule(&mut state, &id);
            return Ok(rx);
        }
        let group = state
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if !group.has(&req.member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if req.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if req.protocol_type.is_some() && req.protocol_type != group.protocol_type
            || req.protocol_name.is_some() && req.protocol_name != group.protocol_name
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let (tx, rx) = oneshot::channel();
        match group.state {
            GroupState::Empty | GroupState::Dead => return Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => return Err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = group
                    .member(&req.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = tx.send(group.sync_result(assignment));
                if let Some(m) = group.member_mut(&req.member_id) {
                    m.last_heartbeat = now;
                }
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = group.member_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                    m.last_heartbeat = now;
                }
                if group.is_leader(&req.member_id) {
                    let mut given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in &mut group.members {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    tracing::info!(group = %group.id, generation = group.generation, "group is stable");
                    let answers: Vec<SyncResult> = group
                        .members
                        .iter()
                        .map(|m| group.sync_result(m.assignment.clone()))
                        .collect();
                    for (m, answer) in group.members.iter_mut().zip(answers) {
                        if m.sync_waiter.is_some() {
                            m.last_heartbeat = now;
                        }
                        m.answer_sync(answer);
                    }
                }
            }
        }
        let id = req.group_id;
        self.reschedule(&mut state, &id);
        Ok(rx)
    }

    /// Heartbeat: keeps a member alive and tells it when to rejoin.
    pub fn heartbeat(&self, group_id: &str, who: MemberRef<'_>) -> Result<(), GroupError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(group) = state.consumer.get_mut(group_id) {
            let result = group.classic_heartbeat(who, now);
            self.reschedule(&mut state, group_id);
            return result;
        }
        let group = state
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        check_member(group, who)?;
        let outcome = match group.state {
            GroupState::Empty | GroupState::Dead => return Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        };
        if let Some(m) = group.member_mut(who.member_id) {
            m.last_heartbeat = now;
        }
        outcome
    }

    /// LeaveGroup for each (member id, group instance id). The outer error is the group's,
    /// the inner ones each member's.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(group) = state.consumer.get_mut(group_id) {
            let results = leaving
                .iter()
                .map(|(member_id, instance)| group.classic_leave(member_id, instance.as_deref()))
                .collect();
            self.maybe_downgrade(&mut state, group_id, now);
            self.reschedule(&mut state, group_id);
            return Ok(results);
        }
        let Some(group) = state.groups.get_mut(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            let target = match instance {
                Some(i) => match group.statics.get(i) {
                    None => Err(GroupError::UnknownMemberId),
                    Some(holder) if !member_id.is_empty() && holder != member_id => {
                        Err(GroupError::FencedInstanceId)
                    }
                    Some(holder) => Ok(holder.clone()),
                },
                None if group.pending.remove(member_id).is_some() => {
                    group.check_join_completion(now);
                    results.push(Ok(()));
                    continue;
                }
                None if group.has(member_id) => Ok(member_id.clone()),
                None => Err(GroupError::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    tracing::info!(group = %group.id, member = %id, "member left");
                    group.remove_and_update(&id, &self.settings, now);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let id = group_id.to_string();
        self.reschedule(&mut state, &id);
        Ok(results)
    }

    /// Checks that `who` may commit offsets for the group now and, if so, runs `write` under
    /// the group lock (so no rebalance slips in between). A negative generation with an empty
    /// or unknown group is a commit from outside group management (`assign()` users).
    pub fn commit_offsets<R>(
        &self,
        group_id: &str,
        who: MemberRef<'_>,
        write: impl FnOnce() -> R,
    ) -> Result<R, GroupError> {
        self.check_commit(group_id, who, false, write)
    }

    /// [`GroupCoordinator::commit_offsets`] with Kafka's rules for TxnOffsetCommit: a request
    /// without member and generation (v0-2) is not checked against the members, and a
    /// rebalance being completed does not refuse it.
    pub fn commit_offsets_in_txn<R>(
        &self,
        group_id: &str,
        who: MemberRef<'_>,
        write: impl FnOnce() -> R,
    ) -> Result<R, GroupError> {
        self.check_commit(group_id, who, true, write)
    }

    /// Runs `write` under the lock every offset commit of a group is checked and written
    /// under, so a read-then-write of committed offsets (a transaction's offsets applied on
    /// its commit) sees no plain commit slip in between.
    pub fn with_commit_lock<R>(&self, write: impl FnOnce() -> R) -> R {
        let _state = self.state.lock();
        write()
    }

    fn check_commit<R>(
        &self,
        group_id: &str,
        who: MemberRef<'_>,
        transactional: bool,
        write: impl FnOnce() -> R,
    ) -> Result<R, GroupError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(group) = state.consumer.get(group_id) {
            return group
                .validate_offset_commit(who, transactional)
                .map(|()| write());
        }
        let Some(group) = state.groups.get_mut(group_id) else {
            return if who.generation < 0 {
                Ok(write())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        // Kafka's ClassicGroup.validateOffsetCommit (used for OffsetCommit and TxnOffsetCommit
        // alike): a dead group first; then a generation of -1 commits to an empty group; a
        // request naming a member or a generation >= 0 must name a current member and the
        // current generation; an anonymous transactional commit passes in any state.
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if group.is_fenced(who.group_instance_id, who.member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if who.generation < 0 && group.state == GroupState::Empty {
            return Ok(write());
        }
        if transactional
            && who.generation < 0
            && who.member_id.is_empty()
            && who.group_instance_id.is_none()
        {
            return Ok(write());
        }
        if !group.has(who.member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if who.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match group.state {
            GroupState::CompletingRebalance if !transactional => {
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance => Ok(write()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = group.member_mut(who.member_id) {
                    m.last_heartbeat = now;
                }
                Ok(write())
            }
        }
    }

    /// DescribeGroups for one group; `has_offsets` says whether it has committed offsets
    /// (such a group exists, Empty, even when no member ever joined here).
    pub fn describe(&self, group_id: &str, has_offsets: bool) -> Result<GroupSummary, GroupError> {
        let state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if state.consumer.contains_key(group_id) {
            // Kafka: "Group .. is not a classic group."
            return Err(GroupError::GroupIdNotFound);
        }
        let Some(group) = state.groups.get(group_id) else {
            return Ok(GroupSummary {
                state: if has_offsets {
                    GroupState::Empty
                } else {
                    GroupState::Dead
                },
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            });
        };
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        Ok(GroupSummary {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// ListGroups: every group with members here, and every group named in `with_offsets`.
    pub fn list(&self, with_offsets: Vec<String>) -> Vec<GroupListing> {
        let state = self.state.lock();
        let mut out: Vec<GroupListing> = state
            .groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
                group_type: "classic",
            })
            .chain(state.consumer.iter().map(|(id, g)| GroupListing {
                group_id: id.clone(),
                protocol_type: "consumer".to_string(),
                state: g.state().name(),
                group_type: "consumer",
            }))
            .collect();
        for name in with_offsets {
            if !state.groups.contains_key(&name) && !state.consumer.contains_key(&name) {
                out.push(GroupListing {
                    group_id: name,
                    protocol_type: String::new(),
                    state: GroupState::Empty.name(),
                    group_type: "classic",
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Forgets an empty group, running `delete_offsets` (which says whether there were any)
    /// under the lock so no member can join in between.
    pub fn delete(
        &self,
        group_id: &str,
        delete_offsets: impl FnOnce() -> bool,
    ) -> Result<(), GroupError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(g) = state.consumer.get(group_id) {
            if !g.is_empty() {
                return Err(GroupError::NonEmptyGroup);
            }
            state.consumer.remove(group_id);
            delete_offsets();
            return Ok(());
        }
        match state.groups.get(group_id) {
            Some(g) if g.state != GroupState::Empty || !g.pending.is_empty() => {
                Err(GroupError::NonEmptyGroup)
            }
            Some(_) => {
                state.groups.remove(group_id);
                delete_offsets();
                Ok(())
            }
            None if delete_offsets() => Ok(()),
            None => Err(GroupError::GroupIdNotFound),
        }
    }

    /// For OffsetDelete: the protocol type and the members' subscriptions (for the chosen
    /// protocol) of a group with members, `None` for an empty one, and runs `f` with them
    /// under the lock.
    pub fn with_subscriptions<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(Option<(&str, Vec<Bytes>)>) -> R,
    ) -> Result<R, GroupError> {
        let state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        match state.groups.get(group_id) {
            Some(g) if g.state != GroupState::Empty => {
                let protocol = g
                    .protocol_name
                    .clone()
                    .or_else(|| g.select_protocol())
                    .unwrap_or_default();
                let subs = g
                    .members
                    .iter()
                    .map(|m| m.metadata_for(&protocol))
                    .collect();
                Ok(f(Some((g.protocol_type.as_deref().unwrap_or(""), subs))))
            }
            _ => Ok(f(None)),
        }
    }

    /// ConsumerGroupHeartbeat (KIP-848): join, heartbeat, reconcile or leave. `topics` are the
    /// topics a subscription can name; `config` the group's own session/heartbeat settings.
    pub fn consumer_heartbeat(
        &self,
        req: &Heartbeat,
        config: &GroupConfig,
        topics: &TopicsView,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let settings = &self.settings.consumer;
        consumer_protocol::validate(req, settings)?;
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        let leaving = req.member_epoch == consumer_protocol::LEAVE_EPOCH
            || req.member_epoch == consumer_protocol::LEAVE_STATIC_EPOCH;
        if !state.consumer.contains_key(&req.group_id) {
            // Kafka's getOrMaybeCreateConsumerGroup: created by a joining member; a classic
            // group in the way gives way only when it has no members.
            if leaving || req.member_epoch != 0 {
                return Err(GroupError::GroupIdNotFound);
            }
            match state.groups.get(&req.group_id) {
                Some(g) if g.state == GroupState::Empty && g.pending.is_empty() => {
                    state.groups.remove(&req.group_id);
                }
                Some(_) => self.upgrade(&mut state, &req.group_id, topics, now)?,
                None => {}
            }
            if !state.consumer.contains_key(&req.group_id) {
                state.consumer.insert(
                    req.group_id.clone(),
                    ConsumerGroup::new(&req.group_id, settings),
                );
            }
        }
        let Some(group) = state.consumer.get_mut(&req.group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        let result = if leaving {
            group.leave(req)
        } else {
            let session = config
                .consumer_session_timeout_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map_or(settings.session_timeout, Duration::from_millis);
            let interval = config
                .consumer_heartbeat_interval_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map_or(settings.heartbeat_interval, Duration::from_millis);
            group.heartbeat(req, settings, session, interval, topics, now)
        };
        self.maybe_downgrade(&mut state, &req.group_id, now);
        self.reschedule(&mut state, &req.group_id);
        result
    }

    /// ConsumerGroupDescribe for one group: GROUP_ID_NOT_FOUND unless it is a consumer group.
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroupView, GroupError> {
        let state = self.state.lock();
        if state.closed {
            return Err(GroupError::NotCoordinator);
        }
        state
            .consumer
            .get(group_id)
            .map(ConsumerGroup::view)
            .ok_or(GroupError::GroupIdNotFound)
    }

    /// The topics the members of consumer-protocol group `group_id` subscribe to, when it is
    /// one with members (OffsetDelete refuses those topics: GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn consumer_group_subscriptions(
        &self,
        group_id: &str,
    ) -> Option<std::collections::BTreeSet<String>> {
        let state = self.state.lock();
        state
            .consumer
            .get(group_id)
            .filter(|g| !g.is_empty())
            .map(ConsumerGroup::subscribed_topics)
    }

    /// True when `member_id` is a consumer-protocol (not classic) member of consumer group
    /// `group_id`: such a member must commit with OffsetCommit v9+ (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`).
    pub fn uses_consumer_protocol(&self, group_id: &str, member_id: &str) -> bool {
        let state = self.state.lock();
        state
            .consumer
            .get(group_id)
            .is_some_and(|g| g.has_member(member_id) && !g.is_classic_member(member_id))
    }

    /// True when `group_id` is a consumer-protocol group here.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.state.lock().consumer.contains_key(group_id)
    }

    /// Drops consumer-protocol group `group_id` if it has no members (its last member left)
    /// and no committed offsets, so joining and leaving cannot pile up empty groups (Kafka
    /// deletes an empty group once its offsets expire; without offsets there is nothing to keep).
    pub fn drop_empty_consumer_group(&self, group_id: &str, has_offsets: bool) {
        let mut state = self.state.lock();
        if !has_offsets
            && state
                .consumer
                .get(group_id)
                .is_some_and(ConsumerGroup::is_empty)
        {
            state.consumer.remove(group_id);
        }
    }

    /// OffsetFetch v9's member check for consumer groups (`member`: id and epoch, when the
    /// request names one); other groups are not checked.
    pub fn check_offset_fetch(
        &self,
        group_id: &str,
        member: Option<(&str, i32)>,
    ) -> Result<(), GroupError> {
        let state = self.state.lock();
        match state.consumer.get(group_id) {
            Some(g) => g.validate_offset_fetch(member),
            None => Ok(()),
        }
    }

    /// Runs the group timers until `stopped` turns true, then answers every waiting member
    /// NOT_COORDINATOR (as Kafka does when a coordinator unloads its groups).
    pub async fn drive_timers(&self, mut stopped: watch::Receiver<bool>) {
        loop {
            let next = self.expire(Instant::now());
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.wake.notified() => {}
                () = crate::server::until_stopped(&mut stopped) => break,
            }
        }
        self.unload();
    }

    /// Serves every deadline that has passed; returns the next one.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock();
        for g in state.groups.values_mut() {
            if g.next_deadline().is_some_and(|d| d <= now) {
                g.expire(&self.settings, now);
            }
        }
        let mut expired = Vec::new();
        for (id, g) in &mut state.consumer {
            if g.next_deadline().is_some_and(|d| d <= now) {
                g.expire(now);
                expired.push(id.clone());
            }
        }
        for id in expired {
            self.maybe_downgrade(&mut state, &id, now);
        }
        let classic = state.groups.values().filter_map(Group::next_deadline);
        let consumer = state
            .consumer
            .values()
            .filter_map(ConsumerGroup::next_deadline);
        let next = classic.chain(consumer).min();
        state.next_wake = next;
        next
    }

    fn unload(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        for g in state.groups.values_mut() {
            for m in &mut g.members {
                m.answer_join(JoinResult::failed(
                    &m.id.clone(),
                    GroupError::NotCoordinator,
                ));
                m.answer_sync(SyncResult::failed(GroupError::NotCoordinator));
            }
        }
        state.groups.clear();
        state.consumer.clear();
    }
}

/// The checks every member request starts with, in Kafka's order.
fn check_member(group: &Group, who: MemberRef<'_>) -> Result<(), GroupError> {
    if group.is_fenced(who.group_instance_id, who.member_id) {
        return Err(GroupError::FencedInstanceId);
    }
    if !group.has(who.member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    if who.generation != group.generation {
        return Err(GroupError::IllegalGeneration);
    }
    Ok(())
}

/// Kafka's member id shape: the client id, a dash, a random UUID.
fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::from_bytes(rand::random()))
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
