//! OffsetFetch: a group's committed positions, for the partitions asked or for all of them.
//! A partition without a commit reads -1.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use wharf_log_store::{CommittedOffset, OffsetKey, OffsetOwner};

use super::{str_bytes, Request};
use crate::kafka::errors::code;
use crate::kafka::names;

pub fn handle(req: &Request<'_>, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = r.group_id.0.to_string();
    let offsets = req.broker().store.offsets();
    let owner = OffsetOwner::Group(group.clone());
    let topics: Vec<OffsetFetchResponseTopic> = match r.topics {
        Some(asked) => asked
            .into_iter()
            .map(|t| {
                let topic = req.topic(t.name.0.as_str()).ok();
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|index| {
                        let committed = topic.as_ref().and_then(|info| {
                            offsets.get(&OffsetKey {
                                owner: owner.clone(),
                                stream: info.stream_id,
                                topic: info.id,
                                partition: u32::try_from(index).ok()?,
                            })
                        });
                        partition(index, committed)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect(),
        None => {
            // Every partition the group has a position on, by topic.
            let names: HashMap<(u32, u32), String> =
                names::all_topics(req.broker(), req.default_stream())
                    .into_iter()
                    .map(|(name, t)| ((t.stream_id, t.id), name))
                    .collect();
            let mut by_topic: BTreeMap<String, Vec<OffsetFetchResponsePartition>> = BTreeMap::new();
            for (k, v) in offsets.list(|k| k.owner == owner) {
                if let Some(name) = names.get(&(k.stream, k.topic)) {
                    by_topic
                        .entry(name.clone())
                        .or_default()
                        .push(partition(k.partition as i32, Some(v)));
                }
            }
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect()
        }
    };
    let error = if group.is_empty() {
        code::INVALID_GROUP_ID
    } else {
        code::NONE
    };
    let mut resp = OffsetFetchResponse::default().with_topics(topics);
    if req.version >= 2 {
        resp = resp.with_error_code(error);
    } else if error != code::NONE {
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                p.error_code = error;
            }
        }
    }
    resp
}

fn partition(index: i32, committed: Option<CommittedOffset>) -> OffsetFetchResponsePartition {
    let p = OffsetFetchResponsePartition::default().with_partition_index(index);
    match committed {
        Some(c) => p
            .with_committed_offset(i64::try_from(c.next_offset).unwrap_or(i64::MAX))
            .with_committed_leader_epoch(c.leader_epoch)
            .with_metadata(Some(str_bytes(c.metadata))),
        None => p
            .with_committed_offset(-1)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(str_bytes(""))),
    }
}
