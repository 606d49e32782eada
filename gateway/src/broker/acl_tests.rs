#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::*;
use crate::broker::users::GroupGrant;

fn names() -> Names {
    let mut n = Names::default();
    n.streams.insert(2, "s".into());
    n.topics.insert((1, 3), "a".into());
    n.topics.insert((2, 5), "s.t".into());
    n
}

fn ops(p: &Permissions, scope: &Scope, kind: ResourceType) -> Vec<Operation> {
    scope.listed(p, kind)
}

#[test]
fn kafka_operations_map_onto_the_model() {
    let mut p = Permissions::default();
    p.streams.entry(1).or_default().topics.insert(
        3,
        TopicPermissions {
            poll_messages: true,
            ..Default::default()
        },
    );
    let allows = |p: &Permissions, op| topic_action(op, 1, 3).is_some_and(|a| p.allows(a));
    assert!(allows(&p, Operation::Read));
    assert!(allows(&p, Operation::Describe), "Read implies Describe");
    assert!(!allows(&p, Operation::Write));
    assert!(!allows(&p, Operation::DescribeConfigs));
    assert!(!allows(&p, Operation::Delete));
    assert!(
        !p.allows(Action::IdempotentWrite),
        "no right to send anywhere"
    );
    assert!(
        !topic_action(Operation::Read, 1, 4).is_some_and(|a| p.allows(a)),
        "another topic"
    );

    p.streams
        .get_mut(&1)
        .unwrap()
        .topics
        .get_mut(&3)
        .unwrap()
        .send_messages = true;
    assert!(
        p.allows(Action::IdempotentWrite),
        "KIP-679: Write on any topic"
    );
    assert!(cluster_action(Operation::IdempotentWrite).is_some_and(|a| p.allows(a)));
    assert!(!cluster_action(Operation::Describe).is_some_and(|a| p.allows(a)));

    p.groups.push(GroupGrant {
        pattern: NamePattern::Prefixed("app-".into()),
        rights: GroupPermissions {
            read: true,
            ..Default::default()
        },
    });
    let group = |p: &Permissions, op, name| group_action(op, name).is_some_and(|a| p.allows(a));
    assert!(group(&p, Operation::Read, "app-1"));
    assert!(
        group(&p, Operation::Describe, "app-1"),
        "Read implies Describe"
    );
    assert!(!group(&p, Operation::Delete, "app-1"));
    assert!(!group(&p, Operation::Read, "other"));
    assert!(
        !group(&p, Operation::Write, "app-1"),
        "not a group operation"
    );

    // Review 18a #10: changing a group's configs is the operator's (manage_servers), not a
    // right of the group's: its deleter (or a member) may not reconfigure it; describing
    // them needs Describe on it.
    let mut deleter = Permissions::default();
    deleter.groups.push(GroupGrant {
        pattern: NamePattern::Literal("g".into()),
        rights: GroupPermissions {
            read: true,
            delete: true,
            ..Default::default()
        },
    });
    assert!(group(&deleter, Operation::Delete, "g"));
    assert!(group(&deleter, Operation::DescribeConfigs, "g"));
    assert!(!group(&deleter, Operation::AlterConfigs, "g"));
    let mut operator = Permissions::default();
    operator.global.manage_servers = true;
    assert!(group(&operator, Operation::AlterConfigs, "g"));
    assert!(!group(&operator, Operation::Delete, "g"));

    let root = Permissions::all();
    assert!(group(&root, Operation::Delete, "any"));
    assert!(transactional_id_action(Operation::Write, "tx").is_some_and(|a| root.allows(a)));
}

#[test]
fn bindings_round_trip_through_grant_list_and_revoke() {
    let n = names();
    let mut p = Permissions::default();
    let a = n
        .scope(ResourceType::Topic, "a", PatternType::Literal)
        .unwrap();
    assert_eq!(a, Scope::Topic(1, 3));
    a.grant(&mut p, ResourceType::Topic, Operation::Read)
        .unwrap();
    assert_eq!(ops(&p, &a, ResourceType::Topic), [Operation::Read]);
    assert!(p.streams[&1].topics[&3].poll_messages, "Read is poll");
    a.grant(&mut p, ResourceType::Topic, Operation::Write)
        .unwrap();
    assert_eq!(
        ops(&p, &a, ResourceType::Topic),
        [Operation::Read, Operation::Write]
    );
    a.revoke(&mut p, ResourceType::Topic, Operation::Read);
    assert_eq!(ops(&p, &a, ResourceType::Topic), [Operation::Write]);

    let global = n
        .scope(ResourceType::Topic, "*", PatternType::Literal)
        .unwrap();
    global
        .grant(&mut p, ResourceType::Topic, Operation::Describe)
        .unwrap();
    assert!(p.global.read_topics);
    assert_eq!(
        ops(&p, &global, ResourceType::Topic),
        [Operation::Describe, Operation::DescribeConfigs]
    );

    let stream = n
        .scope(ResourceType::Topic, "s.", PatternType::Prefixed)
        .unwrap();
    assert_eq!(stream, Scope::Stream(2));
    stream
        .grant(&mut p, ResourceType::Topic, Operation::All)
        .unwrap();
    assert_eq!(ops(&p, &stream, ResourceType::Topic), [Operation::All]);
    // Revoking Describe takes away every right of the stream that implies it.
    stream.revoke(&mut p, ResourceType::Topic, Operation::Describe);
    assert!(ops(&p, &stream, ResourceType::Topic).is_empty());

    let cluster = n
        .scope(ResourceType::Cluster, CLUSTER_NAME, PatternType::Literal)
        .unwrap();
    cluster
        .grant(&mut p, ResourceType::Cluster, Operation::Describe)
        .unwrap();
    assert!(p.global.read_servers);
    assert_eq!(
        ops(&p, &cluster, ResourceType::Cluster),
        [Operation::Describe, Operation::DescribeConfigs]
    );

    let group = n
        .scope(ResourceType::Group, "app-", PatternType::Prefixed)
        .unwrap();
    group
        .grant(&mut p, ResourceType::Group, Operation::Read)
        .unwrap();
    assert_eq!(ops(&p, &group, ResourceType::Group), [Operation::Read]);
    group
        .grant(&mut p, ResourceType::Group, Operation::Delete)
        .unwrap();
    group.revoke(&mut p, ResourceType::Group, Operation::Read);
    assert_eq!(ops(&p, &group, ResourceType::Group), [Operation::Delete]);
    group.revoke(&mut p, ResourceType::Group, Operation::All);
    assert!(p.groups.is_empty(), "an empty grant is dropped");

    let listed = n.bindings("alice", &p);
    assert!(listed.iter().all(|b| b.principal == "User:alice"));
    assert!(listed.contains(&AclBinding {
        resource_type: ResourceType::Topic,
        name: "a".into(),
        pattern: PatternType::Literal,
        principal: "User:alice".into(),
        operation: Operation::Write,
    }));
}

#[test]
fn global_rights_list_and_lose_their_group_bindings() {
    let n = names();
    let mut p = Permissions::default();
    p.global.poll_messages = true;
    let listed = n.bindings("alice", &p);
    let group_star = AclBinding {
        resource_type: ResourceType::Group,
        name: "*".into(),
        pattern: PatternType::Literal,
        principal: "User:alice".into(),
        operation: Operation::Read,
    };
    assert!(listed.contains(&group_star), "{listed:?}");
    let scoped = n.scoped_bindings("alice", &p);
    let group_only: Vec<&(Scope, AclBinding)> =
        scoped.iter().filter(|(_, b)| *b == group_star).collect();
    assert_eq!(group_only.len(), 1);
    // Bound: deleting Group `*` Read alone may not take away the topic reads the same global
    // poll right grants; it is refused, naming the native permission.
    let why = n
        .without("alice", &p, &n.footprint(&p), &group_only)
        .unwrap_err()
        .0;
    assert!(why.contains("global poll_messages"), "{why}");
    assert!(why.contains("Topic:Literal:* Read"), "{why}");
    // Both bindings the right is listed as, deleted together, clear it.
    let both: Vec<&(Scope, AclBinding)> = scoped.iter().collect();
    let (cleared, _) = n.without("alice", &p, &n.footprint(&p), &both).unwrap();
    assert!(
        !cleared.global.poll_messages,
        "the right implying them is gone"
    );
    assert!(n.bindings("alice", &cleared).is_empty());
}

#[test]
fn a_deletion_takes_away_only_what_it_names() {
    let n = names();
    let read = |scope: Scope, name: &str, pattern, op| {
        (
            scope,
            AclBinding {
                resource_type: ResourceType::Topic,
                name: name.into(),
                pattern,
                principal: "User:alice".into(),
                operation: op,
            },
        )
    };
    // Topic `a` Read from its poll right alone: deleted, other rights untouched.
    let mut p = Permissions::default();
    p.global.read_servers = true;
    let a = Scope::Topic(1, 3);
    a.grant(&mut p, ResourceType::Topic, Operation::Read)
        .unwrap();
    a.grant(&mut p, ResourceType::Topic, Operation::Write)
        .unwrap();
    let r = read(a.clone(), "a", PatternType::Literal, Operation::Read);
    let (after, _) = n.without("alice", &p, &n.footprint(&p), &[&r]).unwrap();
    let tp = &after.streams[&1].topics[&3];
    assert!(!tp.poll_messages && tp.send_messages && after.global.read_servers);

    // A topic's read right lists Read and DescribeConfigs: deleting Read alone would take
    // DescribeConfigs too, so it is refused; both together are deleted.
    let mut p = Permissions::default();
    p.streams.entry(1).or_default().topics.insert(
        3,
        TopicPermissions {
            read_topic: true,
            ..Default::default()
        },
    );
    let listed = n.scoped_bindings("alice", &p);
    let ops: Vec<Operation> = listed.iter().map(|(_, b)| b.operation).collect();
    assert_eq!(ops, [Operation::Read, Operation::DescribeConfigs]);
    let why = n
        .without("alice", &p, &n.footprint(&p), &[&listed[0]])
        .unwrap_err()
        .0;
    assert!(
        why.contains("read_topic") && why.contains("DescribeConfigs"),
        "{why}"
    );
    let all: Vec<_> = listed.iter().collect();
    assert_eq!(n.without("alice", &p, &n.footprint(&p), &all).unwrap().0, {
        let mut e = Permissions::default();
        e.streams
            .entry(1)
            .or_default()
            .topics
            .insert(3, Default::default());
        e
    });

    // A stream's manage right lists All on its prefix, but also manages the stream itself
    // (natively): refused.
    let mut p = Permissions::default();
    p.streams.entry(2).or_default().manage_stream = true;
    let listed = n.scoped_bindings("alice", &p);
    let all: Vec<_> = listed.iter().collect();
    let why = n
        .without("alice", &p, &n.footprint(&p), &all)
        .unwrap_err()
        .0;
    assert!(
        why.contains("managing stream `s`") && why.contains("manage_stream"),
        "{why}"
    );
}

#[test]
fn filters_match_as_kafka_does() {
    let b = |name: &str, pattern, op| AclBinding {
        resource_type: ResourceType::Topic,
        name: name.into(),
        pattern,
        principal: "User:alice".into(),
        operation: op,
    };
    let filter = |name: Option<&str>, pattern: i8| AclFilter {
        resource_type: ResourceType::Topic.code(),
        name: name.map(String::from),
        pattern,
        principal: None,
        host: None,
        operation: ANY,
        permission: ANY,
    };
    let prefixed = b("s.", PatternType::Prefixed, Operation::Read);
    let wildcard = b("*", PatternType::Literal, Operation::Read);
    let exact = b("s.t", PatternType::Literal, Operation::Read);
    let other = b("a", PatternType::Literal, Operation::Read);
    let m = filter(Some("s.t"), MATCH);
    assert!(m.matches(&prefixed) && m.matches(&wildcard) && m.matches(&exact));
    assert!(!m.matches(&other));
    let any = filter(Some("s.t"), ANY);
    assert!(any.matches(&exact) && !any.matches(&prefixed) && !any.matches(&wildcard));
    let literal = filter(None, PatternType::Literal.code());
    assert!(literal.matches(&other) && !literal.matches(&prefixed));
    let deny = AclFilter {
        permission: DENY,
        ..filter(None, ANY)
    };
    assert!(!deny.matches(&exact), "the model holds no DENY bindings");
    let op = AclFilter {
        operation: Operation::Write.code(),
        ..filter(None, ANY)
    };
    assert!(!op.matches(&exact));
    assert!(filter(None, 0).check().is_err(), "UNKNOWN pattern type");
}

#[test]
fn what_the_model_cannot_express_is_refused_with_a_reason() {
    let n = names();
    let ok = AclRequest {
        resource_type: ResourceType::Topic.code(),
        name: "a".into(),
        pattern: PatternType::Literal.code(),
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Read.code(),
        permission: ALLOW,
    };
    assert!(n.binding(&ok).is_ok());
    let refused = |r: AclRequest, says: &str| {
        let why = n.binding(&r).unwrap_err().0;
        assert!(why.contains(says), "{why:?} should say {says:?}");
    };
    refused(
        AclRequest {
            permission: DENY,
            ..ok.clone()
        },
        "DENY",
    );
    refused(
        AclRequest {
            host: "10.0.0.1".into(),
            ..ok.clone()
        },
        "host",
    );
    refused(
        AclRequest {
            principal: "Group:ops".into(),
            ..ok.clone()
        },
        "principal",
    );
    refused(
        AclRequest {
            name: "nope".into(),
            ..ok.clone()
        },
        "does not exist",
    );
    refused(
        AclRequest {
            name: "x".into(),
            pattern: PatternType::Prefixed.code(),
            ..ok.clone()
        },
        "prefix",
    );
    let mut p = Permissions::default();
    let (kind, scope, op, _) = n
        .binding(&AclRequest {
            operation: Operation::Create.code(),
            ..ok.clone()
        })
        .unwrap();
    assert!(scope
        .grant(&mut p, kind, op)
        .unwrap_err()
        .0
        .contains("Create"));
    let why = scope
        .grant(&mut p, ResourceType::Topic, Operation::Describe)
        .unwrap_err()
        .0;
    assert!(why.contains("polling"), "{why}");
    assert_eq!(p, Permissions::default(), "nothing granted");
}
