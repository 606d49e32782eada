//! Kafka topic names and where they live (ARCHITECTURE.md, "Translation"): the topics of the
//! default stream appear under their own names, a topic `t` of another stream `s` as `s.t`. A
//! name is looked up by the prefix before its first `.` when a stream of that name exists, else
//! it is a topic of the default stream.

use wharf_log_store::{Ident, StoreError, TopicInfo};

use crate::broker::{Broker, BrokerError};

/// Where a Kafka topic name points: a stream (by name) and a topic name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub stream: String,
    pub topic: String,
}

/// Kafka's own rule for topic names: 1..=249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic name '{name}' must be 1..=249 characters"));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "topic name '{name}' may only hold ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Resolves a Kafka name to its stream and topic names (the topic need not exist).
pub fn locate(broker: &Broker, default_stream: &str, name: &str) -> Location {
    if let Some((prefix, rest)) = name.split_once('.') {
        if !rest.is_empty()
            && prefix != default_stream
            && broker.store.stream(Ident::Name(prefix)).is_ok()
        {
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

/// The existing topic a Kafka name points to.
pub fn resolve(
    broker: &Broker,
    default_stream: &str,
    name: &str,
) -> Result<TopicInfo, BrokerError> {
    let loc = locate(broker, default_stream, name);
    Ok(broker
        .store
        .topic(Ident::Name(&loc.stream), Ident::Name(&loc.topic))?)
}

/// The Kafka name of a topic of stream `stream_name`.
pub fn kafka_name(default_stream: &str, stream_name: &str, topic: &str) -> String {
    if stream_name == default_stream {
        topic.to_string()
    } else {
        format!("{stream_name}.{topic}")
    }
}

/// Every topic of every stream, with its Kafka name.
pub fn all_topics(broker: &Broker, default_stream: &str) -> Vec<(String, TopicInfo)> {
    let mut out = Vec::new();
    for s in broker.store.streams() {
        if let Ok(topics) = broker.store.topics(Ident::Id(s.id)) {
            for t in topics {
                out.push((kafka_name(default_stream, &s.name, &t.name), t));
            }
        }
    }
    out
}

/// Creates the default stream if it is missing (the first Kafka topic brings it).
pub fn ensure_default_stream(broker: &Broker, default_stream: &str) -> Result<(), BrokerError> {
    match broker.store.create_stream(default_stream) {
        Ok(_) | Err(StoreError::StreamExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate("orders.v1_x-y").is_ok());
        assert!(validate("").is_err());
        assert!(validate("..").is_err());
        assert!(validate("a b").is_err());
        assert!(validate(&"x".repeat(250)).is_err());
        assert_eq!(kafka_name("default", "default", "t"), "t");
        assert_eq!(kafka_name("default", "s", "t"), "s.t");
    }
}
