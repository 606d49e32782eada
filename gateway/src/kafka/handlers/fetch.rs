//! Fetch: decodes the request (each partition once, however often it is listed, as Kafka keeps
//! them), makes one broker call ([`Broker::fetch`]: whole batches in the
//! Kafka format, at most the smaller of the request's `max_bytes` and the server's
//! `fetch_max_bytes` but at least one batch per response (KIP-74), a long poll woken by
//! appends) and encodes the answer with its records spliced in, not copied
//! ([`FetchAnswer`]). Fetch sessions (KIP-227) are kept by [`crate::kafka::fetch_sessions`]:
//! an incremental answer carries only partitions with news. From v13 topics are named by id
//! (KIP-516), and an id no topic has is UNKNOWN_TOPIC_ID. `isolation_level` (v4+) is the broker's: `read_committed` answers stop at the
//! last stable offset and list the aborted transactions their data overlaps; every v4+ answer
//! carries the last stable offset. The answer is measured against the client's consumer
//! byte-rate quota before its session is told anything: over it, Kafka's throttled answer
//! (no partitions; a full request makes no session, an incremental one is left as it was).
//!
//! [`Broker::fetch`]: crate::broker::Broker::fetch

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::consume::{FetchLimits, FetchWant, Fetched, Isolation};
use crate::kafka::connection::{ResponseBody, ResponseFrame};
use crate::kafka::errors;
use crate::kafka::fetch_sessions::{
    Context, Told, TopicKey, Wanted, INVALID_FETCH_SESSION_EPOCH, INVALID_SESSION_ID,
};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// First version whose requests may name a session (KIP-227).
const FIRST_SESSIONS: i16 = 7;
/// First version whose readers decode zstd (KIP-110).
const FIRST_ZSTD: i16 = 10;
/// First version naming topics by id (KIP-516).
const FIRST_TOPIC_IDS: i16 = 13;
const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();

pub async fn handle(req: &Request<'_>, r: FetchRequest) -> FetchAnswer {
    let version = req.version;
    let uses_topic_ids = version >= FIRST_TOPIC_IDS;
    let limits = FetchLimits::new(
        usize::try_from(r.max_bytes)
            .unwrap_or(0)
            .min(req.fetch_quota_max_bytes()), // quota
        req.door.config.fetch_max_bytes as usize,
        usize::try_from(r.min_bytes).unwrap_or(0),
        Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0)),
    )
    .with_isolation(Isolation::from_kafka(r.isolation_level))
    .with_zstd(version >= FIRST_ZSTD);
    let wanted = distinct_wants(r.topics, uses_topic_ids);
    let sessions = &req.door.fetch_sessions;
    let now = sessions.now_ms();
    let (context, wants) = if version >= FIRST_SESSIONS {
        let forgotten = forgotten(r.forgotten_topics_data, uses_topic_ids);
        sessions.open(
            r.session_id,
            r.session_epoch,
            uses_topic_ids,
            wanted,
            forgotten,
            now,
        )
    } else {
        (Context::Sessionless, wanted)
    };
    if let Context::Error(code) = context {
        return session_error(code, INVALID_SESSION_ID);
    }
    // Fetch v13+ names topics by id: an id no topic has is UNKNOWN_TOPIC_ID.
    let ids = if uses_topic_ids {
        let ids = wants.iter().filter_map(|w| match &w.topic {
            TopicKey::Id(id) => Some(*id),
            TopicKey::Name(_) => None,
        });
        super::metadata::topic_names_by_id(req, ids)
    } else {
        HashMap::new()
    };
    let names: Vec<Option<Arc<str>>> = wants
        .iter()
        .map(|w| match &w.topic {
            TopicKey::Name(n) => Some(Arc::clone(n)),
            TopicKey::Id(id) => ids.get(id).cloned(),
        })
        .collect();
    // Partitions of topics the principal may not read: TOPIC_AUTHORIZATION_FAILED, unread.
    let mut may_read: HashMap<Arc<str>, bool> = HashMap::new();
    let refusals: Vec<Option<i16>> = names
        .iter()
        .map(|name| match name {
            None => Some(UNKNOWN_TOPIC_ID),
            Some(n) => {
                let allowed = *may_read
                    .entry(Arc::clone(n))
                    .or_insert_with(|| req.may(Operation::Read, Resource::Topic(n)));
                (!allowed).then_some(errors::code::TOPIC_AUTHORIZATION_FAILED)
            }
        })
        .collect();
    let asked: Vec<FetchWant> = wants
        .iter()
        .zip(&names)
        .zip(&refusals)
        .filter_map(|((w, name), refused)| match (name, refused) {
            (Some(topic), None) => Some(FetchWant {
                topic: Arc::clone(topic),
                partition: w.partition,
                offset: w.offset,
                max_bytes: usize::try_from(w.max_bytes).unwrap_or(0),
            }),
            _ => None,
        })
        .collect();
    let mut fetched = if asked.is_empty() && !wants.is_empty() {
        Vec::new()
    } else {
        req.broker().fetch(asked, limits).await
    }
    .into_iter();
    let mut answered: Vec<(PartitionData, Vec<Bytes>)> = Vec::with_capacity(wants.len());
    let mut told: Vec<(Wanted, Told)> = Vec::with_capacity(wants.len());
    for (w, refused) in wants.into_iter().zip(refusals) {
        let outcome = if refused.is_none() {
            fetched.next()
        } else {
            None
        };
        let (data, batches) = match outcome {
            Some(f) => partition(version, w.partition, f),
            None => (refused_partition(version, w.partition, refused), Vec::new()),
        };
        let t = Told {
            records_bytes: batches.iter().map(Bytes::len).sum(),
            high_watermark: data.high_watermark,
            log_start_offset: data.log_start_offset,
            error: data.error_code,
        };
        told.push((w, t));
        answered.push((data, batches));
    }
    // Which partitions the answer carries, the session not yet told (Kafka's
    // `getResponseSize` iterates without updating the context).
    let carried = match &context {
        Context::Incremental { id, epoch } => match sessions.preview(*id, *epoch, &told) {
            Ok(carried) => carried,
            // A duplicate request moved the session on (Kafka answers with the session's
            // id), or the session was evicted while this one was read.
            Err(code) if code == INVALID_FETCH_SESSION_EPOCH => return session_error(code, *id),
            Err(code) => return session_error(code, INVALID_SESSION_ID),
        },
        _ => vec![true; told.len()],
    };
    let mut records = Vec::with_capacity(answered.len());
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (i, ((w, _), (data, batches))) in told.iter().zip(answered).enumerate() {
        if !carried.get(i).copied().unwrap_or(true) {
            continue;
        }
        records.push(Some(batches));
        // As Kafka groups its answer: consecutive partitions of one topic share an entry.
        match responses.last_mut() {
            Some(t) if same_topic(t, &w.topic) => t.partitions.push(data),
            _ => {
                let t = FetchableTopicResponse::default().with_partitions(vec![data]);
                responses.push(match &w.topic {
                    TopicKey::Id(id) => t.with_topic_id(*id),
                    TopicKey::Name(n) => {
                        t.with_topic(TopicName(StrBytes::from_string(n.to_string())))
                    }
                });
            }
        }
    }
    let mut answer = FetchAnswer {
        response: FetchResponse::default().with_responses(responses),
        records,
    };
    // quota: the answer's bytes against the consumer's byte rate, before the session is
    // told anything (Kafka's `KafkaApis.handleFetchRequest`). Over it, Kafka's throttled
    // answer: no partitions, the session untouched; a full request makes no session.
    let throttle = req.broker().record_fetch_quota(
        req.principal,
        req.client_id.as_deref().unwrap_or(""),
        answer.quota_size(version),
        std::time::Instant::now(),
    );
    if throttle > 0 {
        let (error, session_id) = match context {
            Context::Incremental { id, epoch } => (sessions.throttled(id, epoch), id),
            _ => (0, INVALID_SESSION_ID),
        };
        return FetchAnswer {
            response: FetchResponse::default()
                .with_throttle_time_ms(throttle)
                .with_error_code(error)
                .with_session_id(session_id),
            records: Vec::new(),
        };
    }
    let session_id = match context {
        Context::Full { uses_topic_ids } => sessions.create(uses_topic_ids, &told, now),
        Context::Incremental { id, epoch } => match sessions.filter(id, epoch, &told) {
            // The same partitions as the preview: only a request moving the epoch on changes
            // a session, and that is checked.
            Ok(_) => id,
            Err(code) if code == INVALID_FETCH_SESSION_EPOCH => return session_error(code, id),
            Err(code) => return session_error(code, INVALID_SESSION_ID),
        },
        Context::Sessionless | Context::Error(_) => INVALID_SESSION_ID,
    };
    answer.response.session_id = session_id;
    answer
}

/// Whether `t` is the answer entry of `topic`.
fn same_topic(t: &FetchableTopicResponse, topic: &TopicKey) -> bool {
    match topic {
        TopicKey::Id(id) => t.topic_id == *id,
        TopicKey::Name(n) => *t.topic.0 == **n,
    }
}

/// The answer to a request with a session error: the error, no partitions.
fn session_error(code: i16, session_id: i32) -> FetchAnswer {
    FetchAnswer {
        response: FetchResponse::default()
            .with_error_code(code)
            .with_session_id(session_id),
        records: Vec::new(),
    }
}

/// The partitions a request asks for, as Kafka keeps them (an insertion-ordered map by topic
/// and partition): each partition once, where it first appears, with the fetch offset and
/// `max_bytes` of its last appearance. A request listing one partition a million times costs
/// one read and one answer entry. From v13 topics are named by id.
fn distinct_wants(topics: Vec<FetchTopic>, by_id: bool) -> Vec<Wanted> {
    let mut wants: Vec<Wanted> = Vec::new();
    let mut seen: HashMap<(TopicKey, i32), usize> = HashMap::new();
    for t in topics {
        let topic = topic_key(by_id, t.topic_id, &t.topic);
        for p in t.partitions {
            let want = Wanted {
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            };
            match seen.entry((topic.clone(), p.partition)) {
                Entry::Occupied(at) => wants[*at.get()] = want,
                Entry::Vacant(slot) => {
                    slot.insert(wants.len());
                    wants.push(want);
                }
            }
        }
    }
    wants
}

fn topic_key(by_id: bool, id: Uuid, name: &TopicName) -> TopicKey {
    if by_id {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(Arc::from(name.0.as_str()))
    }
}

/// The partitions a request (v7+) asks its session to forget.
fn forgotten(topics: Vec<ForgottenTopic>, by_id: bool) -> Vec<(TopicKey, i32)> {
    topics
        .into_iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, t.topic_id, &t.topic);
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect()
}

/// The answer for a partition that was not read: refused with `error` (an unknown topic id,
/// or TOPIC_AUTHORIZATION_FAILED), or missing from the broker's answer (which never happens:
/// one outcome per partition asked). Kafka's `FetchResponse.partitionResponse`.
fn refused_partition(version: i16, index: i32, error: Option<i16>) -> PartitionData {
    let error = error.unwrap_or(errors::code::UNKNOWN_SERVER_ERROR);
    let data = PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error)
        .with_high_watermark(-1)
        .with_log_start_offset(-1);
    if version >= 4 {
        data.with_last_stable_offset(-1)
    } else {
        data
    }
}

/// A partition's answer without its records, and its records.
fn partition(version: i16, index: i32, f: Fetched) -> (PartitionData, Vec<Bytes>) {
    let mut data = PartitionData::default().with_partition_index(index);
    if let Some(b) = f.bounds {
        data = data
            .with_high_watermark(b.high_watermark as i64)
            .with_log_start_offset(b.log_start_offset as i64);
    }
    if version >= 4 {
        let aborted = f.aborted.map(|list| {
            list.into_iter()
                .map(|t| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_first_offset(t.first_offset as i64)
                })
                .collect()
        });
        data = data
            .with_last_stable_offset(f.last_stable_offset.map_or(-1, |o| o as i64))
            .with_aborted_transactions(aborted);
    }
    match f.records {
        Ok(records) => (data, records),
        Err(e) => (data.with_error_code(errors::for_broker(&e)), Vec::new()),
    }
}

/// A Fetch answer: the response without its records, and the records of each partition (in
/// the order the partitions are encoded) as parts: null, or batches to be written one after
/// the other. It is encoded exactly as `FetchResponse::encode` would encode the response
/// with each partition's parts joined, but the parts are written from where they are, not
/// copied into the answer's buffer.
#[derive(Debug)]
pub struct FetchAnswer {
    response: FetchResponse,
    records: Vec<Option<Vec<Bytes>>>,
}

impl From<FetchResponse> for FetchAnswer {
    /// Takes each partition's records out of `response` as one part.
    fn from(mut response: FetchResponse) -> FetchAnswer {
        let records = response
            .responses
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
            .map(|p| p.records.take().map(|r| vec![r]))
            .collect();
        FetchAnswer { response, records }
    }
}

impl ResponseBody for FetchAnswer {
    /// The whole answer in `buf`, records copied (what [`encode_sliced`] avoids).
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        let mut whole = self.response.clone();
        let partitions = whole
            .responses
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut());
        for (p, r) in partitions.zip(&self.records) {
            p.records = r.as_ref().map(|parts| parts.concat().into());
        }
        whole.encode(buf, version)
    }

    fn encode_frame(&self, frame: &mut ResponseFrame, version: i16) -> anyhow::Result<()> {
        encode_sliced(&self.response, &self.records, version, frame)
    }

    fn errors(&self, each: &mut dyn FnMut(i16)) {
        crate::metrics::kafka_errors::fetch(&self.response, each);
    }

    // quota: the handler decided the throttle (see `handle`); the connection is muted so long.
    fn throttled_ms(&self) -> i32 {
        self.response.throttle_time_ms
    }
}

impl FetchAnswer {
    /// The answer's size as Kafka's consumer quota counts it (`FetchResponse.sizeOf`: the
    /// body and 4 bytes of response header), the records counted, not encoded.
    fn quota_size(&self, version: i16) -> usize {
        let flexible = version >= FIRST_FLEXIBLE;
        // `response` holds every partition's records as null; `records` holds them.
        let skeleton = self.response.compute_size(version).unwrap_or(0);
        let records: usize = self
            .records
            .iter()
            .flatten()
            .map(|parts| {
                let len: usize = parts.iter().map(Bytes::len).sum();
                // The length in place of the null marker (int32 -1, or varint 0).
                if flexible {
                    len + varint_len(len + 1) - 1
                } else {
                    len
                }
            })
            .sum();
        4 + skeleton + records
    }
}

/// Bytes of `v` as an unsigned varint.
fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - v.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Record parts shorter than this are copied into the frame's buffer, while fewer than
/// [`COPY_MAX`] record bytes were: a part of its own costs an entry in the vectored write,
/// which is dearer than copying a few KiB, but a frame of many small batches must not become
/// one copy of them all.
const SPLICE_MIN: usize = 4096;
const COPY_MAX: usize = 64 << 10;

/// First version with flexible (compact, tagged) encodings.
const FIRST_FLEXIBLE: i16 = 12;

/// Encodes `response` into `frame` with `records` (one entry per partition, in encoding
/// order) spliced in. Everything but the records is encoded by the `kafka-protocol` crate,
/// twice: with every partition's records null, and with every one empty. The two encodings
/// have the same length and differ only in each partition's records marker, in the order the
/// partitions are encoded (null: int32 -1 or varint 0; empty: int32 0 or varint 1; they
/// differ in their first byte). Each marker is replaced by the records' length and parts.
fn encode_sliced(
    response: &FetchResponse,
    records: &[Option<Vec<Bytes>>],
    version: i16,
    frame: &mut ResponseFrame,
) -> anyhow::Result<()> {
    let flexible = version >= FIRST_FLEXIBLE;
    let marker_len = if flexible { 1 } else { 4 };
    // The response's own records fields are not used: `records` holds them.
    let mut skeleton = response.clone();
    for p in skeleton
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        p.records = None;
    }
    let mut nulls = BytesMut::new();
    skeleton.encode(&mut nulls, version)?;
    for p in skeleton
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        p.records = Some(Bytes::new());
    }
    let mut empties = BytesMut::new();
    skeleton.encode(&mut empties, version)?;
    anyhow::ensure!(
        nulls.len() == empties.len(),
        "null and empty records encode to different lengths"
    );
    let mut records = records.iter();
    let mut copied_records = 0;
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = nulls[at..]
        .iter()
        .zip(&empties[at..])
        .position(|(n, e)| n != e)
    {
        at += offset;
        let Some(record) = records.next() else {
            anyhow::bail!("more records markers than partitions");
        };
        let marker = at..at + marker_len;
        let Some(null) = nulls.get(marker.clone()) else {
            anyhow::bail!("records marker past the end");
        };
        frame.buf().extend_from_slice(&nulls[copied..at]);
        match record {
            None => frame.buf().extend_from_slice(null),
            Some(parts) => {
                put_length(frame.buf(), parts.iter().map(Bytes::len).sum(), flexible)?;
                for part in parts {
                    if part.len() < SPLICE_MIN && copied_records < COPY_MAX {
                        frame.buf().extend_from_slice(part);
                        copied_records += part.len();
                    } else {
                        frame.splice(part.clone());
                    }
                }
            }
        }
        at = marker.end;
        copied = at;
    }
    anyhow::ensure!(
        records.next().is_none(),
        "fewer records markers than partitions"
    );
    frame.buf().extend_from_slice(&nulls[copied..]);
    Ok(())
}

/// The length before non-null bytes: int32, or in flexible versions an unsigned varint of the
/// length plus one.
fn put_length(buf: &mut BytesMut, len: usize, flexible: bool) -> anyhow::Result<()> {
    if flexible {
        let mut v = u32::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .ok_or_else(|| anyhow::anyhow!("records of {len} bytes"))?;
        while v >= 0x80 {
            buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        buf.put_u8(v as u8);
    } else {
        let l = i32::try_from(len).map_err(|_| anyhow::anyhow!("records of {len} bytes"))?;
        buf.put_i32(l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::versions;
    use kafka_protocol::messages::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, SnapshotId};
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::StrBytes;

    fn records(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Two topics, partitions with null, empty, small (copied) and large (spliced, with a
    /// multi-byte varint length) records, aborted transactions, error codes and, where the
    /// version has them, the other optional and tagged fields.
    fn sample(version: i16) -> (FetchResponse, Vec<Bytes>) {
        let large = [records(70_000, 1), records(SPLICE_MIN, 2)];
        let mut p = Vec::new();
        for (i, r) in [
            None,
            Some(Bytes::new()),
            Some(records(100, 3)),
            Some(large[0].clone()),
            Some(large[1].clone()),
        ]
        .into_iter()
        .enumerate()
        {
            let mut d = PartitionData::default()
                .with_partition_index(i as i32)
                .with_error_code(if i == 1 { 1 } else { 0 })
                .with_high_watermark(1000 + i as i64)
                .with_last_stable_offset(900 + i as i64)
                .with_log_start_offset(i as i64)
                .with_records(r);
            if i % 2 == 0 {
                d = d.with_aborted_transactions(Some(vec![
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(7))
                        .with_first_offset(5),
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(8))
                        .with_first_offset(6),
                ]));
            } else if i == 3 {
                d = d.with_aborted_transactions(Some(Vec::new()));
            }
            if version >= 11 {
                d = d.with_preferred_read_replica(BrokerId(if i == 2 { 3 } else { -1 }));
            }
            if version >= FIRST_FLEXIBLE && i == 4 {
                d = d
                    .with_diverging_epoch(
                        EpochEndOffset::default().with_epoch(2).with_end_offset(9),
                    )
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(1))
                            .with_leader_epoch(4),
                    )
                    .with_snapshot_id(SnapshotId::default().with_end_offset(3).with_epoch(1));
                d.unknown_tagged_fields.insert(40, Bytes::from_static(b"x"));
            }
            p.push(d);
        }
        let second = p.split_off(3);
        let topic = |name: &str, partitions| {
            let mut t = FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.into())))
                .with_partitions(partitions);
            if version >= FIRST_FLEXIBLE {
                t.unknown_tagged_fields
                    .insert(50, Bytes::from_static(b"yz"));
            }
            t
        };
        let mut r = FetchResponse::default()
            .with_throttle_time_ms(12)
            .with_responses(vec![
                topic("alpha", p),
                topic("", Vec::new()),
                topic("beta", second),
            ]);
        if version >= 7 {
            r = r.with_error_code(0).with_session_id(0);
        }
        if version >= FIRST_FLEXIBLE {
            r.unknown_tagged_fields.insert(60, Bytes::from_static(b"t"));
        }
        (r, large.to_vec())
    }

    /// The frame's bytes after the size prefix, checking the prefix.
    fn encoded(answer: &FetchAnswer, version: i16) -> (Vec<Bytes>, Vec<u8>) {
        let mut frame = ResponseFrame::new();
        answer.encode_frame(&mut frame, version).unwrap();
        let parts = frame.finish().unwrap();
        let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let size = u32::from_be_bytes(whole[..4].try_into().unwrap()) as usize;
        assert_eq!(size, whole.len() - 4, "v{version}: size prefix");
        (parts, whole[4..].to_vec())
    }

    /// The size the consumer quota counts is Kafka's `FetchResponse.sizeOf` (4 + the body),
    /// worked out without encoding the records: equal to the encoded body's length plus 4
    /// at every advertised version (null, empty, small and multi-byte-varint records).
    #[test]
    fn the_quota_size_is_the_encoded_size() {
        let (lo, hi) = versions::range(versions::FETCH).unwrap();
        for version in lo..=hi {
            let answer = FetchAnswer::from(sample(version).0);
            let mut body = BytesMut::new();
            answer.encode_body(&mut body, version).unwrap();
            assert_eq!(answer.quota_size(version), 4 + body.len(), "v{version}");
        }
        assert_eq!(
            [0, 1, 127, 128, 16_383, 16_384].map(varint_len),
            [1, 1, 1, 2, 2, 3]
        );
    }

    #[test]
    fn sliced_encoding_equals_the_crates_for_every_advertised_fetch_version() {
        let (lo, hi) = versions::range(versions::FETCH).unwrap();
        for version in lo..=hi {
            let (response, large) = sample(version);
            let mut expected = BytesMut::new();
            response.encode(&mut expected, version).unwrap();

            let answer = FetchAnswer::from(response);
            let (parts, bytes) = encoded(&answer, version);
            assert!(bytes == expected[..], "v{version}: bytes differ");
            // The large records were written from where they were, not copied.
            for l in &large {
                assert!(
                    parts
                        .iter()
                        .any(|p| p.as_ptr() == l.as_ptr() && p.len() == l.len()),
                    "v{version}: records of {} bytes were copied",
                    l.len()
                );
            }
            // Each large records set follows a buffer part; in flexible versions tagged
            // fields follow the last one.
            let tail = usize::from(version >= FIRST_FLEXIBLE);
            assert_eq!(parts.len(), 2 * large.len() + tail, "v{version}: parts");

            let mut whole = BytesMut::new();
            answer.encode_body(&mut whole, version).unwrap();
            assert!(whole == expected, "v{version}: encode_body differs");
        }
    }

    #[test]
    fn records_in_many_parts_encode_as_their_concatenation() {
        let (lo, hi) = versions::range(versions::FETCH).unwrap();
        for version in lo..=hi {
            let (response, _) = sample(version);
            let mut expected = BytesMut::new();
            response.encode(&mut expected, version).unwrap();
            // Every records set cut into parts of growing sizes: many small ones (copied until
            // COPY_MAX is reached, then spliced) and large ones.
            let mut answer = FetchAnswer::from(response);
            for r in answer.records.iter_mut().flatten() {
                let whole = r.concat();
                let (mut at, mut len) = (0, 1);
                r.clear();
                while at < whole.len() {
                    let end = (at + len).min(whole.len());
                    r.push(Bytes::copy_from_slice(&whole[at..end]));
                    at = end;
                    len = len * 3 / 2 + 1;
                }
            }
            let (parts, bytes) = encoded(&answer, version);
            assert!(bytes == expected[..], "v{version}: bytes differ");
            assert!(parts.len() > 3, "v{version}: large parts are spliced");
        }
    }

    /// Bound: the wants of a request are its distinct partitions, however often one is listed,
    /// in first-seen order with the last listing's offset (Kafka's map by topic and partition).
    #[test]
    fn each_partition_is_wanted_once() {
        use kafka_protocol::messages::fetch_request::FetchPartition;
        let topic = |n: &str, parts: Vec<(i32, i64)>| {
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(n.into())))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                        })
                        .collect(),
                )
        };
        let mut many = vec![(3, 0); 100_000];
        many.push((1, 5));
        let wants = distinct_wants(
            vec![
                topic("a", many),
                topic("b", vec![(3, 1)]),
                topic("a", vec![(3, 9), (2, 0)]),
            ],
            false,
        );
        let got: Vec<(&str, i32, i64)> = wants
            .iter()
            .map(|w| match &w.topic {
                TopicKey::Name(n) => (&**n, w.partition, w.offset),
                TopicKey::Id(_) => unreachable!("named topics"),
            })
            .collect();
        assert_eq!(got, [("a", 3, 9), ("a", 1, 5), ("b", 3, 1), ("a", 2, 0)]);
    }

    /// The LSO goes into every v4+ answer; the aborted transactions are a list for
    /// read_committed and null for read_uncommitted (as Kafka); older versions have neither.
    #[test]
    fn partition_answers_carry_the_lso_and_the_aborted_transactions() {
        use crate::broker::txn_state::AbortedTxn;
        use crate::broker::PartitionStats;
        let fetched = |aborted: Option<Vec<AbortedTxn>>| Fetched {
            bounds: Some(PartitionStats {
                log_start_offset: 2,
                high_watermark: 10,
                size_bytes: 0,
                segments: 1,
            }),
            last_stable_offset: Some(6),
            aborted,
            records: Ok(Vec::new()),
        };
        let txn = AbortedTxn {
            producer_id: 9,
            first_offset: 3,
            last_offset: 5,
        };
        let (d, _) = partition(11, 0, fetched(Some(vec![txn])));
        assert_eq!((d.high_watermark, d.last_stable_offset), (10, 6));
        let listed: Vec<(i64, i64)> = d
            .aborted_transactions
            .unwrap()
            .iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect();
        assert_eq!(listed, [(9, 3)]);
        let (d, _) = partition(11, 0, fetched(None));
        assert_eq!(d.last_stable_offset, 6);
        assert!(
            d.aborted_transactions.is_none(),
            "null for read_uncommitted"
        );
        let (d, _) = partition(3, 0, fetched(Some(vec![txn])));
        assert_eq!(
            d,
            PartitionData::default()
                .with_high_watermark(10)
                .with_log_start_offset(2)
        );
        // And each encodes at every advertised version.
        let (lo, hi) = versions::range(versions::FETCH).unwrap();
        for version in lo..=hi {
            let (d, _) = partition(version, 0, fetched(Some(vec![txn])));
            let r =
                FetchResponse::default().with_responses(vec![
                    FetchableTopicResponse::default().with_partitions(vec![d])
                ]);
            r.encode(&mut BytesMut::new(), version).unwrap();
        }
    }

    #[test]
    fn other_answers_stay_one_buffer() {
        let mut frame = ResponseFrame::new();
        FetchResponse::default()
            .encode_frame(&mut frame, 12)
            .unwrap();
        assert_eq!(frame.finish().unwrap().len(), 1);
    }
}
