//! OffsetDelete: drops a group's committed offsets for some partitions, unless the group has
//! members subscribed to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use std::collections::HashSet;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use wharf_log_store::{OffsetKey, OffsetOwner};

use super::Request;
use crate::kafka::errors::{code, for_group};

pub fn handle(req: &Request<'_>, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = r.group_id.0.to_string();
    if group.is_empty() {
        return OffsetDeleteResponse::default().with_error_code(code::INVALID_GROUP_ID);
    }
    let offsets = req.broker().store.offsets();
    let owner = OffsetOwner::Group(group.clone());
    let has_offsets = offsets.any(|k| k.owner == owner);
    let outcome = req
        .broker()
        .coordinator
        .with_subscriptions(&group, |active| -> Result<_, i16> {
            let subscribed: HashSet<String> = match active {
                None if !has_offsets => return Err(code::GROUP_ID_NOT_FOUND),
                None => HashSet::new(),
                Some((protocol_type, _)) if protocol_type != "consumer" => {
                    return Err(code::NON_EMPTY_GROUP)
                }
                Some((_, subscriptions)) => subscriptions
                    .iter()
                    .flat_map(|s| subscribed_topics(s).unwrap_or_default())
                    .collect(),
            };
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let name = t.name.0.as_str();
                    let topic = req.topic(name);
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let error = match &topic {
                                Err(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
                                Ok(info)
                                    if p.partition_index < 0
                                        || p.partition_index as u32 >= info.partitions =>
                                {
                                    code::UNKNOWN_TOPIC_OR_PARTITION
                                }
                                Ok(_) if subscribed.contains(name) => {
                                    code::GROUP_SUBSCRIBED_TO_TOPIC
                                }
                                Ok(info) => {
                                    let key = OffsetKey {
                                        owner: owner.clone(),
                                        stream: info.stream_id,
                                        topic: info.id,
                                        partition: p.partition_index as u32,
                                    };
                                    match offsets.delete(&key) {
                                        Ok(_) => code::NONE,
                                        Err(e) => {
                                            tracing::warn!(%group, "cannot delete an offset: {e}");
                                            code::UNKNOWN_SERVER_ERROR
                                        }
                                    }
                                }
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            Ok(topics)
        });
    match outcome {
        Err(e) => OffsetDeleteResponse::default().with_error_code(for_group(&e)),
        Ok(Err(c)) => OffsetDeleteResponse::default().with_error_code(c),
        Ok(Ok(topics)) => OffsetDeleteResponse::default()
            .with_error_code(code::NONE)
            .with_topics(topics),
    }
}

/// The topics of a Kafka `ConsumerProtocolSubscription` (v0-3 share the leading
/// `version: i16, topics: [string]` layout), read with every length checked; `None` when the
/// bytes are not one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    // Each topic needs at least its 2-byte length: a count beyond that is a lie.
    if count < 0 || count as usize > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = rest.get(2..2 + len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = &rest[2 + len..];
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_read_with_bounds_checked() {
        let mut m = vec![0, 1, 0, 0, 0, 2];
        for t in ["orders", "s.t"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 0, 0]); // user data, ignored
        assert_eq!(
            subscribed_topics(&m),
            Some(vec!["orders".to_string(), "s.t".to_string()])
        );
        assert_eq!(subscribed_topics(&m[..9]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[]), None);
    }
}
