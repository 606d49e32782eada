//! Names across the two doors (ARCHITECTURE.md, "Translation"), and the one naming rule both
//! doors apply to new names.
//!
//! The topics of the Kafka default stream appear to Kafka clients under their own names, a
//! topic `t` of another stream `s` as `s.t`. A Kafka name is resolved by its prefix before the
//! first `.` when a stream of that name exists, else it is a topic of the default stream.
//!
//! The naming rule makes every new stream and topic usable from Kafka: a Kafka topic name is
//! 1..=249 of `[a-zA-Z0-9._-]` and not `.` or `..` (Kafka's `Topic.validate`). A topic name
//! follows it, and so does its Kafka name as a whole (`s.t` is at most 249 characters). A
//! stream name (other than the default stream's, which Kafka clients never see) is 1..=247 of
//! `[a-zA-Z0-9_-]`: no `.`, because the first `.` of a Kafka name ends the stream part, so a
//! stream `p.q` would be listed as `p.q.t` and then resolved to stream `p`. The rule is
//! stricter than Iggy's (1..=255 bytes of UTF-8) and keeps `..`, `/`, control and invisible
//! characters out of names and paths. Names made before the rule keep working on the native
//! door; Kafka clients are not shown them, and the server lists them once at start.
//!
//! The rule both doors must keep: every topic's Kafka name resolves back to that topic, and no
//! two topics share one. Two changes could break it, and both are refused here whichever door
//! asks: a stream `s` created (or renamed to) while the default stream has a topic `s.x` (the
//! new stream would capture that name), and a default-stream topic `s.x` created (or renamed to)
//! while a stream `s` exists.

use super::{BrokerError, NameKind, StreamInfo, TopicInfo};

/// Longest Kafka topic name (Kafka's `Topic.MAX_NAME_LENGTH`).
pub const MAX_KAFKA_NAME_LEN: usize = 249;

/// Longest stream name: its topics' Kafka names `s.t` need a `.` and one more character.
pub const MAX_STREAM_NAME_LEN: usize = MAX_KAFKA_NAME_LEN - 2;

/// Where a Kafka topic name points: a stream (by name) and a topic name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub stream: String,
    pub topic: String,
}

fn refuse(kind: NameKind, name: &str, why: &str) -> Result<(), BrokerError> {
    Err(BrokerError::InvalidName {
        kind,
        // Debug form: an invisible or control character shows as an escape.
        reason: format!("{name:?} {why}"),
    })
}

/// Checks `name` against Kafka's characters: ASCII letters, digits, `_`, `-`, and `.` when
/// `dots` allows it.
fn kafka_characters(kind: NameKind, name: &str, dots: bool) -> Result<(), BrokerError> {
    if name.is_empty() {
        return refuse(kind, name, "is empty");
    }
    if name == "." || name == ".." {
        return refuse(kind, name, "is not allowed");
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.');
    if name.bytes().all(legal) {
        return Ok(());
    }
    if !dots && name.contains('.') && name.bytes().all(|b| legal(b) || b == b'.') {
        return refuse(
            kind,
            name,
            "holds '.', which separates stream and topic in Kafka names (stream.topic)",
        );
    }
    refuse(
        kind,
        name,
        if dots {
            "may only hold ASCII letters, digits, '.', '_' and '-'"
        } else {
            "may only hold ASCII letters, digits, '_' and '-'"
        },
    )
}

/// Kafka's own rule for topic names: 1..=249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_kafka_name(name: &str) -> Result<(), BrokerError> {
    if name.len() > MAX_KAFKA_NAME_LEN {
        return refuse(
            NameKind::Topic,
            name,
            &format!(
                "is {} characters long; at most {MAX_KAFKA_NAME_LEN}",
                name.len()
            ),
        );
    }
    kafka_characters(NameKind::Topic, name, true)
}

/// The rule for a new stream name (a create or a rename): 1..=247 of `[a-zA-Z0-9_-]`. The
/// default stream's name never shows in a Kafka name, so it only needs Kafka's characters.
pub fn validate_stream_name(default_stream: &str, name: &str) -> Result<(), BrokerError> {
    if name == default_stream {
        return kafka_characters(NameKind::Stream, name, true);
    }
    if name.len() > MAX_STREAM_NAME_LEN {
        return refuse(
            NameKind::Stream,
            name,
            &format!(
                "is {} characters long; at most {MAX_STREAM_NAME_LEN}, so its topics' Kafka \
                 names (stream.topic) fit Kafka's {MAX_KAFKA_NAME_LEN}",
                name.len()
            ),
        );
    }
    kafka_characters(NameKind::Stream, name, false)
}

/// The rule for a new topic name in `stream` (a create or a rename): Kafka's rule for the
/// name, and for its Kafka name `stream.name` as a whole. In a stream named before the rule
/// (not reachable from Kafka anyway) only the topic's own name is checked.
pub fn validate_topic_name(
    default_stream: &str,
    stream: &str,
    name: &str,
) -> Result<(), BrokerError> {
    validate_kafka_name(name)?;
    if stream != default_stream && validate_stream_name(default_stream, stream).is_ok() {
        let full = kafka_name(default_stream, stream, name);
        if full.len() > MAX_KAFKA_NAME_LEN {
            return refuse(
                NameKind::Topic,
                name,
                &format!(
                    "would have the Kafka name '{full}' of {} characters; at most \
                     {MAX_KAFKA_NAME_LEN}",
                    full.len()
                ),
            );
        }
    }
    Ok(())
}

/// The rule for a stream renamed to `name`: the new name, and its topics' Kafka names.
pub fn validate_stream_rename(
    default_stream: &str,
    name: &str,
    topics: &[TopicInfo],
) -> Result<(), BrokerError> {
    validate_stream_name(default_stream, name)?;
    if name == default_stream {
        return Ok(());
    }
    match topics
        .iter()
        .find(|t| name.len() + 1 + t.name.len() > MAX_KAFKA_NAME_LEN)
    {
        Some(t) => refuse(
            NameKind::Stream,
            name,
            &format!(
                "would give topic '{}' a Kafka name longer than {MAX_KAFKA_NAME_LEN} characters",
                t.name
            ),
        ),
        None => Ok(()),
    }
}

/// The names in the catalog that the naming rule refuses (made before it), described for the
/// log: streams, then topics with their stream.
pub fn outside_rules(
    default_stream: &str,
    streams: &[StreamInfo],
    topics_of: impl Fn(u32) -> Vec<TopicInfo>,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in streams {
        if validate_stream_name(default_stream, &s.name).is_err() {
            out.push(format!("stream {:?}", s.name));
        }
        for t in topics_of(s.id) {
            if validate_topic_name(default_stream, &s.name, &t.name).is_err() {
                out.push(format!("topic {:?} of stream {:?}", t.name, s.name));
            }
        }
    }
    out
}

/// A bounded one-line list: the first 20 entries and how many more there are.
pub fn summary(entries: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut line = entries
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if entries.len() > SHOWN {
        line.push_str(&format!(" and {} more", entries.len() - SHOWN));
    }
    line
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

/// The stream id, topic id and creation time a [`topic_uuid`] encodes (any id decodes; the
/// catalog says whether such a topic exists).
pub fn topic_uuid_parts(id: uuid::Uuid) -> (u32, u32, u64) {
    let b = id.as_bytes();
    let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let created = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    (word(0), word(4), created)
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

    /// The attack names of issue 14 item 9, refused as new stream and topic names; names near
    /// the 249-character Kafka bound are taken up to it and no further.
    #[test]
    fn new_names_follow_one_rule_for_both_doors() {
        let zero_width = "a\u{200b}b";
        let long_255 = "x".repeat(255);
        for bad in [
            "", ".", "..", "../../x", "a/b", "a b", zero_width, "p.q", &long_255,
        ] {
            assert!(
                validate_stream_name("default", bad).is_err(),
                "stream {bad:?}"
            );
        }
        for bad in [
            "", ".", "..", "../../x", "a/b", "a b", zero_width, "ü", &long_255,
        ] {
            assert!(
                validate_topic_name("default", "default", bad).is_err(),
                "topic {bad:?}"
            );
            assert!(
                validate_topic_name("default", "s", bad).is_err(),
                "topic {bad:?}"
            );
        }
        for good in ["orders", "test-stream", "a_b-1", "O"] {
            assert!(validate_stream_name("default", good).is_ok(), "{good}");
            assert!(
                validate_topic_name("default", good, "t.v1").is_ok(),
                "{good}"
            );
        }
        // The default stream's name never shows in a Kafka name.
        assert!(validate_stream_name("kafka.default", "kafka.default").is_ok());
        // Bounds: a stream of 247 and a topic of 1 make a Kafka name of exactly 249.
        let s247 = "s".repeat(MAX_STREAM_NAME_LEN);
        assert!(validate_stream_name("default", &s247).is_ok());
        assert!(validate_stream_name("default", &"s".repeat(248)).is_err());
        assert!(validate_topic_name("default", &s247, "t").is_ok());
        assert!(validate_topic_name("default", &s247, "tt").is_err());
        assert!(validate_topic_name("default", "default", &"t".repeat(249)).is_ok());
        assert!(validate_topic_name("default", "default", &"t".repeat(250)).is_err());
        // A rename must keep the stream's topics' Kafka names within 249.
        let topics = [topic(&"t".repeat(100))];
        assert!(validate_stream_rename("default", &"s".repeat(148), &topics).is_ok());
        assert!(validate_stream_rename("default", &"s".repeat(149), &topics).is_err());
        // Refusals name the problem and show invisible characters escaped.
        let why = validate_stream_name("default", zero_width)
            .unwrap_err()
            .to_string();
        assert!(why.contains("\\u{200b}"), "{why}");
        let why = validate_stream_name("default", "p.q")
            .unwrap_err()
            .to_string();
        assert!(why.contains("separates stream and topic"), "{why}");
    }

    #[test]
    fn names_made_before_the_rule_are_listed() {
        let streams = [
            StreamInfo {
                id: 1,
                ..stream("default")
            },
            StreamInfo {
                id: 2,
                ..stream("p.q")
            },
        ];
        let found = outside_rules("default", &streams, |id| match id {
            1 => vec![topic("../../x"), topic("fine")],
            _ => vec![topic("t")],
        });
        assert_eq!(
            found,
            ["topic \"../../x\" of stream \"default\"", "stream \"p.q\"",]
        );
        let many: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        assert!(summary(&many).ends_with("n19 and 5 more"));
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
