//! Names across the two doors (ARCHITECTURE.md, "Translation"). The topics of the Kafka default
//! stream appear to Kafka clients under their own names, a topic `t` of another stream `s` as
//! `s.t`. A Kafka name is resolved by its prefix before the first `.` when a stream of that name
//! exists, else it is a topic of the default stream.
//!
//! The rule both doors must keep: every topic's Kafka name resolves back to that topic, and no
//! two topics share one. Two changes could break it, and both are refused here whichever door
//! asks: a stream `s` created (or renamed to) while the default stream has a topic `s.x` (the
//! new stream would capture that name), and a default-stream topic `s.x` created (or renamed to)
//! while a stream `s` exists. Topics of a stream whose name holds a `.` cannot be reached from
//! Kafka at all (the prefix rule splits at the first dot) and are not listed to Kafka clients.

use super::{BrokerError, NameKind, StreamInfo, TopicInfo};

/// Where a Kafka topic name points: a stream (by name) and a topic name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub stream: String,
    pub topic: String,
}

/// Kafka's own rule for topic names: 1..=249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_kafka_name(name: &str) -> Result<(), BrokerError> {
    let bad = |reason: String| {
        Err(BrokerError::InvalidName {
            kind: NameKind::Topic,
            reason,
        })
    };
    if name.is_empty() || name.len() > 249 {
        return bad(format!("topic name '{name}' must be 1..=249 characters"));
    }
    if name == "." || name == ".." {
        return bad(format!("topic name '{name}' is not allowed"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad(format!(
            "topic name '{name}' may only hold ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Resolves a Kafka name to its stream and topic names (the topic need not exist), given the
/// streams that exist.
pub fn locate(default_stream: &str, stream_exists: impl Fn(&str) -> bool, name: &str) -> Location {
    if let Some((prefix, rest)) = name.split_once('.') {
        if !rest.is_empty() && prefix != default_stream && stream_exists(prefix) {
            return Location {
                stream: prefix.to_string(),
                topic: rest.to_string(),
            };
        }
    }
    Location {
        stream: default_stream.to_string(),
        topic: name.to_string(),
    }
}

/// The Kafka name of topic `topic` of stream `stream`.
pub fn kafka_name(default_stream: &str, stream: &str, topic: &str) -> String {
    if stream == default_stream {
        topic.to_string()
    } else {
        format!("{stream}.{topic}")
    }
}

/// Whether Kafka clients can reach topic `topic` of stream `stream` by its Kafka name.
pub fn reachable(
    default_stream: &str,
    stream_exists: impl Fn(&str) -> bool,
    stream: &str,
    topic: &str,
) -> bool {
    let loc = locate(
        default_stream,
        stream_exists,
        &kafka_name(default_stream, stream, topic),
    );
    loc.stream == stream && loc.topic == topic
}

/// A stable topic id for Kafka clients (metadata v10+): derived from where the topic lives and
/// when it was made, so a re-created topic gets a new one.
pub fn topic_uuid(t: &TopicInfo) -> uuid::Uuid {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&t.stream_id.to_be_bytes());
    b[4..8].copy_from_slice(&t.id.to_be_bytes());
    b[8..].copy_from_slice(&t.created_at.to_be_bytes());
    uuid::Uuid::from_bytes(b)
}

/// Refuses a stream named `name` (new, or a rename of another) when it would capture the Kafka
/// name of a default-stream topic. `default_topics` are the default stream's topics.
pub fn check_stream_name(
    default_stream: &str,
    name: &str,
    default_topics: &[TopicInfo],
) -> Result<(), BrokerError> {
    if name == default_stream {
        return Ok(());
    }
    let prefix = format!("{name}.");
    match default_topics
        .iter()
        .find(|t| t.name.len() > prefix.len() && t.name.starts_with(&prefix))
    {
        Some(t) => Err(BrokerError::NameCollision(format!(
            "a stream named '{name}' would take the Kafka name '{}' from topic '{}' of stream \
             '{default_stream}'; rename or delete that topic first",
            t.name, t.name
        ))),
        None => Ok(()),
    }
}

/// Refuses a topic named `name` in `stream` (new, or a rename) when its Kafka name would be
/// another topic's, or resolve to another stream.
pub fn check_topic_name(
    default_stream: &str,
    streams: &[StreamInfo],
    stream: &str,
    name: &str,
) -> Result<(), BrokerError> {
    if stream != default_stream {
        return Ok(());
    }
    let Some((prefix, rest)) = name.split_once('.') else {
        return Ok(());
    };
    if rest.is_empty() || prefix == default_stream {
        return Ok(());
    }
    if streams.iter().any(|s| s.name == prefix) {
        return Err(BrokerError::NameCollision(format!(
            "a topic named '{name}' in stream '{default_stream}' would have the Kafka name of \
             topic '{rest}' of stream '{prefix}'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicInfo {
        TopicInfo {
            stream_id: 0,
            id: 0,
            name: name.into(),
            created_at: 0,
            partitions: 1,
            settings: Default::default(),
        }
    }

    fn stream(name: &str) -> StreamInfo {
        StreamInfo {
            id: 1,
            name: name.into(),
            created_at: 0,
            topics: 0,
        }
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_kafka_name("orders.v1_x-y").is_ok());
        assert!(validate_kafka_name("").is_err());
        assert!(validate_kafka_name("..").is_err());
        assert!(validate_kafka_name("a b").is_err());
        assert!(validate_kafka_name(&"x".repeat(250)).is_err());
        assert_eq!(kafka_name("default", "default", "t"), "t");
        assert_eq!(kafka_name("default", "s", "t"), "s.t");
    }

    #[test]
    fn names_resolve_by_existing_stream_prefix() {
        let exists = |s: &str| s == "s";
        assert_eq!(locate("default", exists, "s.t").stream, "s");
        assert_eq!(locate("default", exists, "x.t").stream, "default");
        assert_eq!(locate("default", exists, "s.").topic, "s.");
        assert!(reachable("default", exists, "s", "t"));
        assert!(!reachable("default", exists, "default", "s.t"));
        assert!(!reachable(
            "default",
            |s| s == "a" || s == "a.b",
            "a.b",
            "c"
        ));
    }

    #[test]
    fn collisions_are_refused_both_ways() {
        let defaults = [topic("s.t"), topic("plain")];
        assert!(matches!(
            check_stream_name("default", "s", &defaults),
            Err(BrokerError::NameCollision(_))
        ));
        assert!(check_stream_name("default", "x", &defaults).is_ok());
        assert!(check_stream_name("default", "default", &defaults).is_ok());
        let streams = [stream("default"), stream("s")];
        assert!(matches!(
            check_topic_name("default", &streams, "default", "s.t"),
            Err(BrokerError::NameCollision(_))
        ));
        assert!(check_topic_name("default", &streams, "default", "x.t").is_ok());
        assert!(check_topic_name("default", &streams, "s", "s.t").is_ok());
        assert!(check_topic_name("default", &streams, "default", "default.t").is_ok());
    }
}
