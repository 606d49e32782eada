//! Kafka's authorization vocabulary (operations on Topic, Group, Cluster and TransactionalId
//! resources, and the ACL bindings of DescribeAcls/CreateAcls/DeleteAcls) mapped onto Wharf's
//! one permission model ([`Permissions`]); every decision is [`Broker::authorize`]'s.
//!
//! Operations, per resource (Kafka's own implications hold: READ, WRITE, DELETE and ALTER imply
//! DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS):
//!
//! | Kafka                         | Wharf action                                           |
//! |-------------------------------|--------------------------------------------------------|
//! | Topic Read                    | poll the topic                                         |
//! | Topic Write                   | send to the topic                                      |
//! | Topic Describe                | read, poll or send the topic (any right on it)         |
//! | Topic DescribeConfigs         | read the topic                                         |
//! | Topic Create                  | create topics in its stream (global or stream manage)  |
//! | Topic Delete/Alter/AlterConfigs | manage the topic                                     |
//! | Cluster Describe/DescribeConfigs | read_servers                                        |
//! | Cluster Alter/AlterConfigs/ClusterAction | manage_servers                              |
//! | Cluster Create                | create topics anywhere (global manage_topics/streams)  |
//! | Cluster IdempotentWrite       | send to any topic at all (KIP-679)                     |
//! | Group Read/Describe/Delete    | a group grant (literal, prefixed or `*`); global poll, |
//! |                               | read_streams or manage_streams imply Read and Describe |
//! |                               | on every group (Iggy's groups need only polling),      |
//! |                               | manage_streams Delete                                  |
//! | Group DescribeConfigs         | Describe on the group                                  |
//! | Group AlterConfigs            | manage_servers (no group right is that narrow: Read is |
//! |                               | every consumer's, Delete destroys; not grantable by    |
//! |                               | CreateAcls on a group)                                 |
//! | TransactionalId Write/Describe| a transactional-id grant                               |
//! | the ACLs (Describe / Alter)   | read_users / manage_users: ACLs are users' rights      |
//!
//! A topic that does not exist is judged by the stream's and the global rights alone (so a
//! principal who may not describe it learns nothing from the answer, as in Kafka).
//!
//! ACL bindings are the model seen from Kafka: global rights are Topic `*` (LITERAL), Group
//! `*` and Cluster `kafka-cluster` bindings, a stream's rights are Topic PREFIXED `<stream>.`
//! bindings, a topic's rights Topic LITERAL `<kafka name>` bindings, group and
//! transactional-id grants their own kinds. Listed are the operations a scope's rights imply,
//! without the ones Kafka itself implies from another listed one (`All` when every one is
//! implied). Creating a binding sets the narrowest right that implies it; deleting one clears,
//! at its scope, the rights it is listed from, and is refused (naming them) when they also
//! grant something the deletion does not name: another resource's binding (global poll also
//! lists Group `*` Read), another listed operation, or a right on streams themselves, since in
//! Kafka deleting one binding never takes away another. What the model cannot express is refused with a
//! message: DENY, hosts other than `*`, principals other than `User:<existing user>` (the root
//! user has every right and cannot change), prefixes other than an existing stream's `s.`,
//! topics that do not exist yet, Create on one topic, Describe or DescribeConfigs alone on one
//! topic (Iggy's read right on a topic also allows polling it), All or IdempotentWrite on the
//! cluster.
//! The default stream's own rights have no Kafka pattern (its topics have no common prefix)
//! and are not listed.

use std::collections::{BTreeMap, BTreeSet};

use super::users::{
    grant_for, GlobalPermissions, GroupPermissions, GroupRight, NamePattern, StreamPermissions,
    TopicPermissions, TransactionalIdPermissions, TransactionalIdRight,
};
use super::{Action, Broker, BrokerError, Ident, Permissions, Principal};

/// An id no stream or topic has (ids are handed out upward from 1): stands for a stream or
/// topic that does not exist, so only broader rights apply to it.
const NO_ID: u32 = u32::MAX;

/// The name of Kafka's one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Kafka's ACL operations (`AclOperation`, with Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        ALL_OPERATIONS.iter().copied().find(|o| o.code() == code)
    }

    /// Whether Kafka implies `self` from `other` (DESCRIBE from READ, WRITE, DELETE, ALTER;
    /// DESCRIBE_CONFIGS from ALTER_CONFIGS).
    fn implied_by(self, other: Operation) -> bool {
        match self {
            Operation::Describe => matches!(
                other,
                Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
            ),
            Operation::DescribeConfigs => other == Operation::AlterConfigs,
            _ => false,
        }
    }
}

const ALL_OPERATIONS: [Operation; 11] = [
    Operation::All,
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

/// The operations that apply to each kind of resource (Kafka's `AclEntry.supportedOperations`).
pub const TOPIC_OPERATIONS: [Operation; 8] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
pub const GROUP_OPERATIONS: [Operation; 3] =
    [Operation::Read, Operation::Delete, Operation::Describe];
pub const CLUSTER_OPERATIONS: [Operation; 7] = [
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];
pub const TRANSACTIONAL_ID_OPERATIONS: [Operation; 2] = [Operation::Write, Operation::Describe];

/// What a Kafka request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// By Kafka name (`t` in the default stream, `s.t` in stream `s`).
    Topic(&'a str),
    Group(&'a str),
    Cluster,
    TransactionalId(&'a str),
}

/// Kafka's resource types (codes of `ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        [
            ResourceType::Topic,
            ResourceType::Group,
            ResourceType::Cluster,
            ResourceType::TransactionalId,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }
}

/// Kafka's pattern types of a binding (codes of `PatternType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Filter codes shared by every field: ANY (and MATCH for pattern types).
pub const ANY: i8 = 1;
pub const MATCH: i8 = 2;
const DENY: i8 = 2;
/// Kafka's ALLOW permission type, the only one the model holds.
pub const ALLOW: i8 = 3;

/// One ALLOW binding on host `*`, as the model implies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `User:<name>`.
    pub principal: String,
    pub operation: Operation,
}

/// A binding as a client sends it (CreateAcls), in Kafka's codes.
#[derive(Debug, Clone)]
pub struct AclRequest {
    pub resource_type: i8,
    pub name: String,
    pub pattern: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter of bindings (DescribeAcls, DeleteAcls), in Kafka's codes; `None` matches any.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

/// Why a binding or filter is refused: what the model cannot express, or a malformed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AclRefusal(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, AclRefusal> {
    Err(AclRefusal(why.into()))
}

impl AclFilter {
    /// Refuses codes Kafka itself refuses in a filter (UNKNOWN, out of range).
    pub fn check(&self) -> Result<(), AclRefusal> {
        if self.resource_type != ANY && ResourceType::from_code(self.resource_type).is_none() {
            return refuse(format!("unknown resource type {}", self.resource_type));
        }
        if !(ANY..=4).contains(&self.pattern) {
            return refuse(format!("unknown pattern type {}", self.pattern));
        }
        if self.operation != ANY && Operation::from_code(self.operation).is_none() {
            return refuse(format!("unknown operation {}", self.operation));
        }
        if !(ANY..=ALLOW).contains(&self.permission) {
            return refuse(format!("unknown permission type {}", self.permission));
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let kind = self.resource_type == ANY || self.resource_type == b.resource_type.code();
        let name = match (self.pattern, &self.name) {
            (_, None) => {
                self.pattern == ANY || self.pattern == MATCH || self.pattern == b.pattern.code()
            }
            (ANY, Some(n)) => *n == b.name,
            (MATCH, Some(n)) => match b.pattern {
                PatternType::Literal => b.name == *n || b.name == "*",
                PatternType::Prefixed => n.starts_with(b.name.as_str()),
            },
            (p, Some(n)) => p == b.pattern.code() && *n == b.name,
        };
        kind && name
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| h == "*")
            && (self.operation == ANY || self.operation == b.operation.code())
            && (self.permission == ANY || self.permission == ALLOW)
    }
}

/// The action a Kafka operation on a topic (ids: [`NO_ID`] when missing) needs.
fn topic_action(op: Operation, stream: u32, topic: u32) -> Option<Action<'static>> {
    Some(match op {
        Operation::Read => Action::Poll(stream, topic),
        Operation::Write => Action::Send(stream, topic),
        Operation::Describe => Action::DescribeTopic(stream, topic),
        Operation::DescribeConfigs => Action::ReadTopic(stream, topic),
        Operation::Create => Action::CreateTopic(stream),
        Operation::Delete | Operation::Alter | Operation::AlterConfigs => {
            Action::ManageTopic(stream, topic)
        }
        _ => return None,
    })
}

fn cluster_action(op: Operation) -> Option<Action<'static>> {
    Some(match op {
        Operation::Describe | Operation::DescribeConfigs => Action::ReadServers,
        Operation::Alter | Operation::AlterConfigs | Operation::ClusterAction => {
            Action::ManageServers
        }
        Operation::Create => Action::CreateTopic(NO_ID),
        Operation::IdempotentWrite => Action::IdempotentWrite,
        _ => return None,
    })
}

fn group_action(op: Operation, name: &str) -> Option<Action<'_>> {
    let right = match op {
        Operation::Read => GroupRight::Read,
        // KIP-848's group configs: describing them needs Describe on the group.
        Operation::Describe | Operation::DescribeConfigs => GroupRight::Describe,
        Operation::Delete => GroupRight::Delete,
        // Changing them has no right of its own on a group in Wharf's model, and neither of
        // the group's rights is one to stretch: Read is every consumer's (any member could
        // change its group's timeouts), Delete would let a group's deleter reconfigure it
        // (Kafka: DELETE does not imply ALTER_CONFIGS). It is the operator's right that
        // already changes every other dynamic config (broker configs, client quotas):
        // manage_servers, Kafka's Cluster ALTER_CONFIGS.
        Operation::AlterConfigs => return Some(Action::ManageServers),
        _ => return None,
    };
    Some(Action::Group(right, name))
}

fn transactional_id_action(op: Operation, name: &str) -> Option<Action<'_>> {
    let right = match op {
        Operation::Write => TransactionalIdRight::Write,
        Operation::Describe => TransactionalIdRight::Describe,
        _ => return None,
    };
    Some(Action::TransactionalId(right, name))
}

fn operations_of(kind: ResourceType) -> &'static [Operation] {
    match kind {
        ResourceType::Topic => &TOPIC_OPERATIONS,
        ResourceType::Group => &GROUP_OPERATIONS,
        ResourceType::Cluster => &CLUSTER_OPERATIONS,
        ResourceType::TransactionalId => &TRANSACTIONAL_ID_OPERATIONS,
    }
}

/// Where a binding's rights live in [`Permissions`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Topic `*` (LITERAL) and the cluster.
    Global,
    Stream(u32),
    Topic(u32, u32),
    Group(NamePattern),
    TransactionalId(NamePattern),
}

impl Scope {
    /// The action `op` on a representative resource of this scope needs.
    fn action(&self, kind: ResourceType, op: Operation) -> Option<Action<'_>> {
        match (self, kind) {
            (Scope::Global, ResourceType::Cluster) => cluster_action(op),
            (Scope::Global, ResourceType::Topic) => topic_action(op, NO_ID, NO_ID),
            (Scope::Global, ResourceType::Group) => group_action(op, "*"),
            (Scope::Stream(s), ResourceType::Topic) => topic_action(op, *s, NO_ID),
            // Create is a stream's right, not one topic's.
            (Scope::Topic(s, t), ResourceType::Topic) if op != Operation::Create => {
                topic_action(op, *s, *t)
            }
            (Scope::Group(p), ResourceType::Group) => group_action(op, pattern_name(p)),
            (Scope::TransactionalId(p), ResourceType::TransactionalId) => {
                transactional_id_action(op, pattern_name(p))
            }
            _ => None,
        }
    }

    /// The rights `p` holds at this scope alone.
    fn only(&self, p: &Permissions) -> Permissions {
        let mut out = Permissions::default();
        match self {
            Scope::Global => {
                out.global = p.global.clone();
                out.global.manage_users = false;
                out.global.read_users = false;
            }
            Scope::Stream(s) => {
                if let Some(sp) = p.streams.get(s) {
                    let mut sp = sp.clone();
                    sp.topics.clear();
                    out.streams.insert(*s, sp);
                }
            }
            Scope::Topic(s, t) => {
                if let Some(tp) = p.streams.get(s).and_then(|sp| sp.topics.get(t)) {
                    let mut sp = StreamPermissions::default();
                    sp.topics.insert(*t, tp.clone());
                    out.streams.insert(*s, sp);
                }
            }
            Scope::Group(pattern) => {
                out.groups = p
                    .groups
                    .iter()
                    .filter(|g| g.pattern == *pattern)
                    .cloned()
                    .collect();
            }
            Scope::TransactionalId(pattern) => {
                out.transactional_ids = p
                    .transactional_ids
                    .iter()
                    .filter(|g| g.pattern == *pattern)
                    .cloned()
                    .collect();
            }
        }
        out
    }

    /// The operations on `kind` this scope's rights in `p` imply, as bindings list them.
    fn listed(&self, p: &Permissions, kind: ResourceType) -> Vec<Operation> {
        let only = self.only(p);
        let ops: Vec<Operation> = operations_of(kind)
            .iter()
            .copied()
            // Implied by any right to send; not a right of its own (KIP-679).
            .filter(|&op| op != Operation::IdempotentWrite)
            .filter(|&op| self.action(kind, op).is_some_and(|a| only.allows(a)))
            .collect();
        let applicable = operations_of(kind)
            .iter()
            .filter(|&&op| op != Operation::IdempotentWrite)
            .filter(|&&op| self.action(kind, op).is_some())
            .count();
        if kind != ResourceType::Cluster && !ops.is_empty() && ops.len() == applicable {
            return vec![Operation::All];
        }
        ops.iter()
            .copied()
            .filter(|&op| !ops.iter().any(|&other| op.implied_by(other)))
            .collect()
    }

    /// Every operation on `kind` this scope's rights in `p` allow, none left out because
    /// another implies it (what a deletion may not take away unasked).
    fn held(&self, p: &Permissions, kind: ResourceType) -> Vec<Operation> {
        let only = self.only(p);
        operations_of(kind)
            .iter()
            .copied()
            .filter(|&op| op != Operation::IdempotentWrite)
            .filter(|&op| self.action(kind, op).is_some_and(|a| only.allows(a)))
            .collect()
    }

    /// Grants `op` on `kind` here with the narrowest right that implies it; a refused grant
    /// changes nothing.
    fn grant(
        &self,
        p: &mut Permissions,
        kind: ResourceType,
        op: Operation,
    ) -> Result<(), AclRefusal> {
        let mut changed = p.clone();
        self.grant_into(&mut changed, kind, op)?;
        *p = changed;
        Ok(())
    }

    fn grant_into(
        &self,
        p: &mut Permissions,
        kind: ResourceType,
        op: Operation,
    ) -> Result<(), AclRefusal> {
        use Operation as O;
        match (self, kind) {
            (Scope::Global, ResourceType::Cluster) => {
                let g = &mut p.global;
                match op {
                    O::Describe | O::DescribeConfigs => g.read_servers = true,
                    O::Alter | O::AlterConfigs | O::ClusterAction => g.manage_servers = true,
                    O::Create => g.manage_topics = true,
                    O::IdempotentWrite => {
                        return refuse(
                            "IdempotentWrite on the cluster is implied by Write on any topic \
                             (KIP-679) and cannot be granted alone: grant Write on a topic",
                        )
                    }
                    _ => return refuse(format!("{op:?} on the cluster cannot be expressed")),
                }
            }
            (Scope::Global, ResourceType::Topic) => {
                let g = &mut p.global;
                match op {
                    O::Read => g.poll_messages = true,
                    O::Write => g.send_messages = true,
                    O::Describe | O::DescribeConfigs => g.read_topics = true,
                    O::Create | O::Delete | O::Alter | O::AlterConfigs => g.manage_topics = true,
                    O::All => {
                        g.manage_topics = true;
                        g.poll_messages = true;
                        g.send_messages = true;
                    }
                    _ => return refuse(format!("{op:?} does not apply to topics")),
                }
            }
            (Scope::Stream(s), ResourceType::Topic) => {
                let sp = p.streams.entry(*s).or_default();
                match op {
                    O::Read => sp.poll_messages = true,
                    O::Write => sp.send_messages = true,
                    O::Describe | O::DescribeConfigs => sp.read_topics = true,
                    O::Create | O::Delete | O::Alter | O::AlterConfigs => sp.manage_topics = true,
                    O::All => {
                        sp.manage_topics = true;
                        sp.poll_messages = true;
                        sp.send_messages = true;
                    }
                    _ => return refuse(format!("{op:?} does not apply to topics")),
                }
            }
            (Scope::Topic(s, t), ResourceType::Topic) => {
                let tp = p
                    .streams
                    .entry(*s)
                    .or_default()
                    .topics
                    .entry(*t)
                    .or_default();
                match op {
                    O::Read => tp.poll_messages = true,
                    O::Write => tp.send_messages = true,
                    O::Describe | O::DescribeConfigs => {
                        return refuse(
                            "Describe or DescribeConfigs on one topic cannot be granted alone: \
                             a topic's read right also allows polling it; grant Read (which \
                             implies Describe), or Describe on the stream's prefix or `*`",
                        )
                    }
                    O::Delete | O::Alter | O::AlterConfigs | O::All => tp.manage_topic = true,
                    O::Create => {
                        return refuse(
                            "Create on one existing topic cannot be expressed: grant Create on \
                             the stream's prefix `<stream>.` or on `*`",
                        )
                    }
                    _ => return refuse(format!("{op:?} does not apply to topics")),
                }
            }
            (Scope::Group(pattern), ResourceType::Group) => {
                let rights = grant_for(&mut p.groups, pattern);
                match op {
                    O::Read => rights.read = true,
                    O::Describe => rights.describe = true,
                    O::Delete => rights.delete = true,
                    O::All => {
                        rights.read = true;
                        rights.describe = true;
                        rights.delete = true;
                    }
                    _ => return refuse(format!("{op:?} does not apply to groups")),
                }
            }
            (Scope::TransactionalId(pattern), ResourceType::TransactionalId) => {
                let rights = grant_for(&mut p.transactional_ids, pattern);
                match op {
                    O::Write => rights.write = true,
                    O::Describe => rights.describe = true,
                    O::All => {
                        rights.write = true;
                        rights.describe = true;
                    }
                    _ => return refuse(format!("{op:?} does not apply to transactional ids")),
                }
            }
            _ => return refuse("the resource type and pattern do not fit"),
        }
        Ok(())
    }

    /// Takes `op` on `kind` away at this scope: clears every right here that implies it
    /// (`All`: every right that implies any operation).
    fn revoke(&self, p: &mut Permissions, kind: ResourceType, op: Operation) {
        let ops: Vec<Operation> = if op == Operation::All {
            operations_of(kind).to_vec()
        } else {
            vec![op]
        };
        let implies = |single: &Permissions| {
            ops.iter()
                .any(|&o| self.action(kind, o).is_some_and(|a| single.allows(a)))
        };
        match self {
            Scope::Global => {
                let mut flags = global_flags(&p.global);
                for i in 0..flags.len() {
                    let mut one = [false; 10];
                    one[i] = flags[i];
                    let single = Permissions {
                        global: global_from(one),
                        ..Default::default()
                    };
                    if flags[i] && implies(&single) {
                        flags[i] = false;
                    }
                }
                p.global = global_from(flags);
            }
            Scope::Stream(s) => {
                let Some(sp) = p.streams.get_mut(s) else {
                    return;
                };
                let mut flags = stream_flags(sp);
                for i in 0..flags.len() {
                    let mut one = [false; 6];
                    one[i] = flags[i];
                    let mut single = Permissions::default();
                    single.streams.insert(*s, stream_from(one, BTreeMap::new()));
                    if flags[i] && implies(&single) {
                        flags[i] = false;
                    }
                }
                let topics = std::mem::take(&mut sp.topics);
                *sp = stream_from(flags, topics);
            }
            Scope::Topic(s, t) => {
                let Some(tp) = p.streams.get_mut(s).and_then(|sp| sp.topics.get_mut(t)) else {
                    return;
                };
                let mut flags = topic_flags(tp);
                for i in 0..flags.len() {
                    let mut one = [false; 4];
                    one[i] = flags[i];
                    let mut single = Permissions::default();
                    let mut sp = StreamPermissions::default();
                    sp.topics.insert(*t, topic_from(one));
                    single.streams.insert(*s, sp);
                    if flags[i] && implies(&single) {
                        flags[i] = false;
                    }
                }
                *tp = topic_from(flags);
            }
            Scope::Group(pattern) => {
                for g in p.groups.iter_mut().filter(|g| g.pattern == *pattern) {
                    let r = &mut g.rights;
                    for o in &ops {
                        match o {
                            Operation::Read => r.read = false,
                            Operation::Delete => r.delete = false,
                            // Describe is implied by the others: taking it takes them all.
                            Operation::Describe => *r = GroupPermissions::default(),
                            _ => {}
                        }
                    }
                }
                p.groups.retain(|g| g.rights != GroupPermissions::default());
            }
            Scope::TransactionalId(pattern) => {
                for g in p
                    .transactional_ids
                    .iter_mut()
                    .filter(|g| g.pattern == *pattern)
                {
                    for o in &ops {
                        match o {
                            Operation::Write => g.rights.write = false,
                            Operation::Describe => g.rights = TransactionalIdPermissions::default(),
                            _ => {}
                        }
                    }
                }
                p.transactional_ids
                    .retain(|g| g.rights != TransactionalIdPermissions::default());
            }
        }
    }
}

/// The name a grant's pattern stands for when judging it (a prefix matches itself).
fn pattern_name(p: &NamePattern) -> &str {
    match p {
        NamePattern::Literal(n) | NamePattern::Prefixed(n) => n,
    }
}

fn global_flags(g: &GlobalPermissions) -> [bool; 10] {
    [
        g.manage_servers,
        g.read_servers,
        g.manage_users,
        g.read_users,
        g.manage_streams,
        g.read_streams,
        g.manage_topics,
        g.read_topics,
        g.poll_messages,
        g.send_messages,
    ]
}

fn global_from(f: [bool; 10]) -> GlobalPermissions {
    GlobalPermissions {
        manage_servers: f[0],
        read_servers: f[1],
        manage_users: f[2],
        read_users: f[3],
        manage_streams: f[4],
        read_streams: f[5],
        manage_topics: f[6],
        read_topics: f[7],
        poll_messages: f[8],
        send_messages: f[9],
    }
}

fn stream_flags(s: &StreamPermissions) -> [bool; 6] {
    [
        s.manage_stream,
        s.read_stream,
        s.manage_topics,
        s.read_topics,
        s.poll_messages,
        s.send_messages,
    ]
}

fn stream_from(f: [bool; 6], topics: BTreeMap<u32, TopicPermissions>) -> StreamPermissions {
    StreamPermissions {
        manage_stream: f[0],
        read_stream: f[1],
        manage_topics: f[2],
        read_topics: f[3],
        poll_messages: f[4],
        send_messages: f[5],
        topics,
    }
}

fn topic_flags(t: &TopicPermissions) -> [bool; 4] {
    [
        t.manage_topic,
        t.read_topic,
        t.poll_messages,
        t.send_messages,
    ]
}

fn topic_from(f: [bool; 4]) -> TopicPermissions {
    TopicPermissions {
        manage_topic: f[0],
        read_topic: f[1],
        poll_messages: f[2],
        send_messages: f[3],
    }
}

/// The streams and topics bindings name, as they are when the ACL request is handled.
#[derive(Debug, Default, Clone)]
struct Names {
    /// Streams with a Kafka prefix (not the default stream): id -> name.
    streams: BTreeMap<u32, String>,
    /// Topics Kafka clients reach: (stream, topic) -> Kafka name.
    topics: BTreeMap<(u32, u32), String>,
}

impl Names {
    /// A binding's resource pattern as the scope holding its rights.
    fn scope(
        &self,
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
    ) -> Result<Scope, AclRefusal> {
        let pattern_of = |name: &str| match pattern {
            PatternType::Literal => NamePattern::Literal(name.to_string()),
            PatternType::Prefixed => NamePattern::Prefixed(name.to_string()),
        };
        match kind {
            ResourceType::Cluster => {
                if name != CLUSTER_NAME || pattern != PatternType::Literal {
                    return refuse(format!("the cluster resource is LITERAL `{CLUSTER_NAME}`"));
                }
                Ok(Scope::Global)
            }
            ResourceType::Group => Ok(Scope::Group(pattern_of(name))),
            ResourceType::TransactionalId => Ok(Scope::TransactionalId(pattern_of(name))),
            ResourceType::Topic => match pattern {
                PatternType::Literal if name == "*" => Ok(Scope::Global),
                PatternType::Literal => match self.topics.iter().find(|(_, n)| *n == name) {
                    Some((&(s, t), _)) => Ok(Scope::Topic(s, t)),
                    None => refuse(format!(
                        "topic `{name}` does not exist: rights are held per existing topic; \
                         create it first, or grant on its stream's prefix or on `*`"
                    )),
                },
                PatternType::Prefixed => {
                    let stream = name.strip_suffix('.').unwrap_or("");
                    match self.streams.iter().find(|(_, n)| *n == stream) {
                        Some((&s, _)) if !stream.is_empty() => Ok(Scope::Stream(s)),
                        _ => refuse(format!(
                            "prefix `{name}` is not an existing stream's `<stream>.`: only a \
                             whole stream's topics can be granted by prefix"
                        )),
                    }
                }
            },
        }
    }

    /// Every binding the rights `p` of user `username` imply (sorted, each once).
    fn bindings(&self, username: &str, p: &Permissions) -> Vec<AclBinding> {
        let mut out: Vec<AclBinding> = self
            .scoped_bindings(username, p)
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every binding the rights `p` of user `username` imply, with the scope whose rights
    /// imply it (Group `*` may be implied by global rights and by a grant).
    fn scoped_bindings(&self, username: &str, p: &Permissions) -> Vec<(Scope, AclBinding)> {
        self.scoped_bindings_with(p, |scope, p, kind| scope.listed(p, kind), username)
    }

    /// The bindings of each scope of `p`, with the operations `ops` gives for it.
    fn scoped_bindings_with(
        &self,
        p: &Permissions,
        ops: impl Fn(&Scope, &Permissions, ResourceType) -> Vec<Operation>,
        username: &str,
    ) -> Vec<(Scope, AclBinding)> {
        let principal = format!("User:{username}");
        let mut out = Vec::new();
        let mut add = |scope: &Scope, kind: ResourceType, name: &str, pattern: PatternType| {
            for operation in ops(scope, p, kind) {
                let b = AclBinding {
                    resource_type: kind,
                    name: name.to_string(),
                    pattern,
                    principal: principal.clone(),
                    operation,
                };
                out.push((scope.clone(), b));
            }
        };
        add(
            &Scope::Global,
            ResourceType::Group,
            "*",
            PatternType::Literal,
        );
        add(
            &Scope::Global,
            ResourceType::Topic,
            "*",
            PatternType::Literal,
        );
        add(
            &Scope::Global,
            ResourceType::Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
        );
        for (&sid, sp) in &p.streams {
            if let Some(name) = self.streams.get(&sid) {
                add(
                    &Scope::Stream(sid),
                    ResourceType::Topic,
                    &format!("{name}."),
                    PatternType::Prefixed,
                );
            }
            for &tid in sp.topics.keys() {
                if let Some(name) = self.topics.get(&(sid, tid)) {
                    add(
                        &Scope::Topic(sid, tid),
                        ResourceType::Topic,
                        name,
                        PatternType::Literal,
                    );
                }
            }
        }
        let grant_of = |pattern: &NamePattern| match pattern {
            NamePattern::Literal(n) => (n.clone(), PatternType::Literal),
            NamePattern::Prefixed(n) => (n.clone(), PatternType::Prefixed),
        };
        let mut seen = Vec::new();
        for g in &p.groups {
            if !seen.contains(&g.pattern) {
                seen.push(g.pattern.clone());
                let (name, pattern) = grant_of(&g.pattern);
                add(
                    &Scope::Group(g.pattern.clone()),
                    ResourceType::Group,
                    &name,
                    pattern,
                );
            }
        }
        seen.clear();
        for g in &p.transactional_ids {
            if !seen.contains(&g.pattern) {
                seen.push(g.pattern.clone());
                let (name, pattern) = grant_of(&g.pattern);
                add(
                    &Scope::TransactionalId(g.pattern.clone()),
                    ResourceType::TransactionalId,
                    &name,
                    pattern,
                );
            }
        }
        out
    }

    /// Every right `p` holds, as a deletion must keep it: each operation on each resource a
    /// binding names (none left out), and the rights on streams themselves that only the
    /// native door names.
    fn footprint(&self, p: &Permissions) -> BTreeSet<HeldRight> {
        let mut out = BTreeSet::new();
        for (_, b) in self.scoped_bindings_with(p, |scope, p, kind| scope.held(p, kind), "") {
            out.insert(HeldRight::Binding(
                b.resource_type,
                b.name,
                b.pattern,
                b.operation,
            ));
        }
        let g = &p.global;
        if g.manage_streams {
            out.insert(HeldRight::Streams(None, true));
        }
        if g.read_streams {
            out.insert(HeldRight::Streams(None, false));
        }
        for (&sid, sp) in &p.streams {
            if let Some(name) = self.streams.get(&sid) {
                if sp.manage_stream {
                    out.insert(HeldRight::Streams(Some(name.clone()), true));
                }
                if sp.read_stream {
                    out.insert(HeldRight::Streams(Some(name.clone()), false));
                }
            }
        }
        out
    }

    /// `p` without the bindings `matched` (each with the scope it is listed from): clears, at
    /// each binding's scope, the permissions that imply it. Refused, naming the native
    /// permissions, when those also hold a right that is not being deleted (a binding on
    /// another resource, another listed operation, a right on streams), since in Kafka
    /// deleting one binding never takes away another.
    /// `before` is `p`'s [`Names::footprint`]; the answer holds the changed rights' own.
    fn without(
        &self,
        username: &str,
        p: &Permissions,
        before: &BTreeSet<HeldRight>,
        matched: &[&(Scope, AclBinding)],
    ) -> Result<(Permissions, BTreeSet<HeldRight>), AclRefusal> {
        let mut changed = p.clone();
        let mut asked = BTreeSet::new();
        for (scope, b) in matched {
            scope.revoke(&mut changed, b.resource_type, b.operation);
            let ops: Vec<Operation> = if b.operation == Operation::All {
                operations_of(b.resource_type).to_vec()
            } else {
                ALL_OPERATIONS
                    .iter()
                    .copied()
                    .filter(|&o| o == b.operation || o.implied_by(b.operation))
                    .collect()
            };
            for o in ops {
                asked.insert(HeldRight::Binding(
                    b.resource_type,
                    b.name.clone(),
                    b.pattern,
                    o,
                ));
            }
        }
        let after = self.footprint(&changed);
        let also: Vec<String> = before
            .iter()
            .filter(|r| !after.contains(r) && !asked.contains(r))
            .map(|r| r.to_string())
            .collect();
        if also.is_empty() {
            return Ok((changed, after));
        }
        let shown = also.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
        let more = if also.len() > 4 {
            format!(" and {} more", also.len() - 4)
        } else {
            String::new()
        };
        refuse(format!(
            "cannot delete only these bindings of User:{username}: they come from the native \
             permission(s) {}, which also grant {shown}{more}; remove that permission natively \
             (wharf user permissions), or delete those bindings in the same filter",
            cleared(p, &changed).join(", ")
        ))
    }

    /// The binding a client asks for, checked against what the model can hold.
    fn binding(
        &self,
        r: &AclRequest,
    ) -> Result<(ResourceType, Scope, Operation, String), AclRefusal> {
        if r.permission != ALLOW {
            return refuse(if r.permission == DENY {
                "DENY bindings cannot be expressed: Wharf's permissions only grant".to_string()
            } else {
                format!("invalid permission type {}", r.permission)
            });
        }
        if r.host != "*" {
            return refuse(format!(
                "host `{}` cannot be expressed: rights hold from every host (`*`)",
                r.host
            ));
        }
        let Some(kind) = ResourceType::from_code(r.resource_type) else {
            return refuse(format!(
                "resource type {} cannot be expressed",
                r.resource_type
            ));
        };
        let pattern = match r.pattern {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            p => return refuse(format!("pattern type {p} is not LITERAL or PREFIXED")),
        };
        let Some(op) = Operation::from_code(r.operation) else {
            return refuse(format!("invalid operation {}", r.operation));
        };
        let Some(username) = r.principal.strip_prefix("User:") else {
            return refuse(format!(
                "principal `{}` cannot be expressed: principals are `User:<wharf user>`",
                r.principal
            ));
        };
        let scope = self.scope(kind, &r.name, pattern)?;
        Ok((kind, scope, op, username.to_string()))
    }
}

/// One right a user holds, as [`Names::footprint`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HeldRight {
    Binding(ResourceType, String, PatternType, Operation),
    /// Reading (`false`) or managing (`true`) a stream (`None`: every stream) itself.
    Streams(Option<String>, bool),
}

impl std::fmt::Display for HeldRight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeldRight::Binding(kind, name, pattern, op) => {
                write!(f, "{kind:?}:{pattern:?}:{name} {op:?}")
            }
            HeldRight::Streams(stream, manage) => {
                let verb = if *manage { "managing" } else { "reading" };
                match stream {
                    None => write!(f, "{verb} every stream"),
                    Some(s) => write!(f, "{verb} stream `{s}`"),
                }
            }
        }
    }
}

const GLOBAL_FLAG_NAMES: [&str; 10] = [
    "manage_servers",
    "read_servers",
    "manage_users",
    "read_users",
    "manage_streams",
    "read_streams",
    "manage_topics",
    "read_topics",
    "poll_messages",
    "send_messages",
];
const STREAM_FLAG_NAMES: [&str; 6] = [
    "manage_stream",
    "read_stream",
    "manage_topics",
    "read_topics",
    "poll_messages",
    "send_messages",
];
const TOPIC_FLAG_NAMES: [&str; 4] = [
    "manage_topic",
    "read_topic",
    "poll_messages",
    "send_messages",
];

/// The native permissions set in `before` and not in `after`, by name and scope.
fn cleared(before: &Permissions, after: &Permissions) -> Vec<String> {
    let mut out = Vec::new();
    let gone = |b: &[bool], a: &[bool], names: &[&str], at: &str, out: &mut Vec<String>| {
        for i in 0..b.len() {
            if b[i] && !a[i] {
                out.push(format!("{at}{}", names[i]));
            }
        }
    };
    gone(
        &global_flags(&before.global),
        &global_flags(&after.global),
        &GLOBAL_FLAG_NAMES,
        "global ",
        &mut out,
    );
    for (sid, sp) in &before.streams {
        let asp = after.streams.get(sid).cloned().unwrap_or_default();
        gone(
            &stream_flags(sp),
            &stream_flags(&asp),
            &STREAM_FLAG_NAMES,
            &format!("stream {sid} "),
            &mut out,
        );
        for (tid, tp) in &sp.topics {
            let atp = asp.topics.get(tid).cloned().unwrap_or_default();
            gone(
                &topic_flags(tp),
                &topic_flags(&atp),
                &TOPIC_FLAG_NAMES,
                &format!("stream {sid} topic {tid} "),
                &mut out,
            );
        }
    }
    out
}

/// Users other than root by id: name and rights (what ACL changes work on).
type AllPermissions = BTreeMap<u32, (String, Option<Permissions>)>;

fn user_named<'a>(
    all: &'a mut AllPermissions,
    username: &str,
) -> Result<&'a mut Option<Permissions>, AclRefusal> {
    match all.values_mut().find(|(n, _)| n == username) {
        Some((_, p)) => Ok(p),
        None => refuse(format!(
            "principal `User:{username}` is not a Wharf user other than root (root has every \
             right): create the user first"
        )),
    }
}

impl Broker {
    /// Fails unless `principal` may do the Kafka operation `op` on `resource` (through
    /// [`Broker::authorize`], the one authorization function).
    pub fn authorize_kafka(
        &self,
        principal: &Principal,
        op: Operation,
        resource: Resource<'_>,
    ) -> Result<(), BrokerError> {
        let action = match resource {
            Resource::Topic(name) => {
                let (s, t) = self.topic_ids(name);
                topic_action(op, s, t)
            }
            Resource::Cluster => cluster_action(op),
            Resource::Group(name) => group_action(op, name),
            Resource::TransactionalId(name) => transactional_id_action(op, name),
        };
        match action {
            Some(a) => self.authorize(principal, a),
            None => Err(BrokerError::Unauthorized),
        }
    }

    /// Kafka's authorized-operations bit field (bit = operation code) of `resource` for
    /// `principal`, as Metadata, DescribeCluster and DescribeGroups report it.
    pub fn kafka_authorized_operations(
        &self,
        principal: &Principal,
        resource: Resource<'_>,
    ) -> i32 {
        let ops: &[Operation] = match resource {
            Resource::Topic(_) => &TOPIC_OPERATIONS,
            Resource::Group(_) => &GROUP_OPERATIONS,
            Resource::Cluster => &CLUSTER_OPERATIONS,
            Resource::TransactionalId(_) => &TRANSACTIONAL_ID_OPERATIONS,
        };
        ops.iter()
            .filter(|&&op| self.authorize_kafka(principal, op, resource).is_ok())
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// The stream and topic ids a Kafka name points to ([`NO_ID`] for what does not exist).
    fn topic_ids(&self, name: &str) -> (u32, u32) {
        let loc = self.locate(name);
        let stream = self
            .store
            .stream(Ident::Name(&loc.stream))
            .map_or(NO_ID, |s| s.id);
        let topic = self
            .store
            .topic(Ident::Name(&loc.stream), Ident::Name(&loc.topic))
            .map_or(NO_ID, |t| t.id);
        (stream, topic)
    }

    fn acl_names(&self) -> Names {
        let mut names = Names::default();
        for s in self.store.streams() {
            if s.name != self.default_stream {
                names.streams.insert(s.id, s.name.clone());
            }
        }
        for (name, t) in self.kafka_topics() {
            names.topics.insert((t.stream_id, t.id), name);
        }
        names
    }

    /// The bindings matching `filter` (DescribeAcls); needs the right to read users.
    pub fn describe_acls(
        &self,
        principal: &Principal,
        filter: &AclFilter,
    ) -> Result<Result<Vec<AclBinding>, AclRefusal>, BrokerError> {
        self.authorize(principal, Action::ReadUsers)?;
        if let Err(e) = filter.check() {
            return Ok(Err(e));
        }
        let names = self.acl_names();
        let mut out: Vec<AclBinding> = self
            .users()
            .iter()
            .filter(|u| u.id != super::users::ROOT_USER_ID)
            .filter_map(|u| {
                u.permissions
                    .as_ref()
                    .map(|p| names.bindings(&u.username, p))
            })
            .flatten()
            .filter(|b| filter.matches(b))
            .collect();
        out.sort();
        Ok(Ok(out))
    }

    /// Grants each binding (CreateAcls) in one durable change of the users document; each
    /// gets its own outcome. Needs the right to manage users.
    pub async fn create_acls(
        &self,
        principal: &Principal,
        acls: Vec<AclRequest>,
    ) -> Result<Vec<Result<(), AclRefusal>>, BrokerError> {
        self.authorize(principal, Action::ManageUsers)?;
        let names = self.acl_names();
        self.change_users(move |users| {
            users.change_all_permissions(|all| {
                acls.iter()
                    .map(|r| {
                        let (kind, scope, op, username) = names.binding(r)?;
                        let p = user_named(all, &username)?;
                        let mut changed = p.clone().unwrap_or_default();
                        scope.grant(&mut changed, kind, op)?;
                        *p = Some(changed);
                        Ok(())
                    })
                    .collect()
            })
        })
        .await
    }

    /// Revokes the bindings each filter matches (DeleteAcls) in one durable change; each
    /// filter's outcome lists the bindings it removed. Needs the right to manage users.
    pub async fn delete_acls(
        &self,
        principal: &Principal,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Result<Vec<AclBinding>, AclRefusal>>, BrokerError> {
        self.authorize(principal, Action::ManageUsers)?;
        let names = self.acl_names();
        self.change_users(move |users| {
            users.change_all_permissions(|all| {
                // Each user's bindings, built once per request (as Kafka matches every filter
                // against the ACLs as the request found them); a binding is removed once, by
                // the first filter matching it.
                let listed: Vec<(u32, Vec<(Scope, AclBinding)>)> = all
                    .iter()
                    .filter_map(|(&id, (name, p))| {
                        p.as_ref().map(|p| (id, names.scoped_bindings(name, p)))
                    })
                    .collect();
                // Each user's rights as a deletion must keep them, worked out when a filter
                // first matches one of their bindings and kept up to date.
                let mut held: BTreeMap<u32, BTreeSet<HeldRight>> = BTreeMap::new();
                let mut deleted: BTreeSet<AclBinding> = BTreeSet::new();
                filters
                    .iter()
                    .map(|f| {
                        f.check()?;
                        // A filter is all or nothing: every user's change is worked out
                        // before any is made.
                        let mut changes = Vec::new();
                        for (id, bindings) in &listed {
                            let matched: Vec<&(Scope, AclBinding)> = bindings
                                .iter()
                                .filter(|(_, b)| f.matches(b) && !deleted.contains(b))
                                .collect();
                            let Some((username, Some(p))) = all.get(id) else {
                                continue;
                            };
                            if matched.is_empty() {
                                continue;
                            }
                            let before = held.entry(*id).or_insert_with(|| names.footprint(p));
                            let (changed, after) = names.without(username, p, before, &matched)?;
                            changes.push((*id, changed, after, matched));
                        }
                        let mut removed = Vec::new();
                        for (id, changed, after, matched) in changes {
                            if let Some((_, p)) = all.get_mut(&id) {
                                *p = Some(changed);
                            }
                            held.insert(id, after);
                            removed.extend(matched.into_iter().map(|(_, b)| b.clone()));
                        }
                        removed.sort();
                        removed.dedup();
                        deleted.extend(removed.iter().cloned());
                        Ok(removed)
                    })
                    .collect()
            })
        })
        .await
    }
}

impl Broker {
    /// What a Kafka answer says when asked for `resource`'s authorized operations (Metadata,
    /// DescribeCluster, DescribeTopicPartitions): the bit field when `principal` may describe
    /// the resource, else 0 (Kafka's `AuthHelper`: no operations are disclosed for a resource
    /// the principal may not describe).
    pub fn kafka_disclosed_operations(&self, principal: &Principal, resource: Resource<'_>) -> i32 {
        if self
            .authorize_kafka(principal, Operation::Describe, resource)
            .is_ok()
        {
            self.kafka_authorized_operations(principal, resource)
        } else {
            0
        }
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
