//! Reading, for both doors: Kafka fetches (whole batches in the Kafka format, the server's cap on
//! one answer with KIP-74's "at least one batch", partitions past the cap answered without a
//! read, long polls woken by appends), native polls
//! (partition choice for groups, offset strategies, auto-commit, a cap on the bytes of one
//! answer), offset look-ups by time, moving a log start, and flushes.
//!
//! Reads are positional file reads. A read is first tried from the page cache alone
//! ([`Partition::read_cached`]: no thread hop for the common read of recent data); when some of
//! it would have to come from the disk, the read runs on the blocking pool instead, so a slow
//! disk never stalls a runtime worker. Long polls wait on the partitions' watermarks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use wharf_log_store::{LogStore, Partition};
use wharf_protocol::message::Messages;
use wharf_protocol::{Consumer, PollingStrategy};

use super::{translate, Broker, BrokerError, Ident, OffsetKey, PartitionStats, StoreError};

/// Longest long poll honoured, whatever the client asks.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Bytes read from the store per step while collecting a poll's messages.
const READ_STEP: u64 = 4 << 20;

/// One partition a Kafka fetch asks for. The topic's name is shared by all its partitions'
/// wants (a request may list many).
#[derive(Debug, Clone)]
pub struct FetchWant {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
}

/// The limits of a whole Kafka fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Most record bytes in the answer, past which no further batch is added; the first batch
    /// of the first partition with data comes whole even when larger (KIP-74).
    pub max_bytes: usize,
    pub min_bytes: usize,
    pub max_wait: Duration,
}

impl FetchLimits {
    /// The limits a fetch gets, as Kafka sets them: the answer holds at most the smaller of
    /// what the client asked for and the server's `fetch.max.bytes` (`server_max_bytes`), and
    /// a long poll never waits for more bytes than that.
    pub fn new(
        requested_max_bytes: usize,
        server_max_bytes: usize,
        min_bytes: usize,
        max_wait: Duration,
    ) -> FetchLimits {
        let max_bytes = requested_max_bytes.min(server_max_bytes);
        FetchLimits {
            max_bytes,
            min_bytes: min_bytes.min(max_bytes),
            max_wait,
        }
    }
}

/// A fetched partition: its bounds (when it exists) and its record batches (in the Kafka
/// format, in order, each a slice of what the store read: nothing is copied to join them) or
/// why there are none.
#[derive(Debug)]
pub struct Fetched {
    pub bounds: Option<PartitionStats>,
    pub records: Result<Vec<Bytes>, BrokerError>,
}

/// What a native poll found: the partition, its last offset, and the messages as slices of the
/// stored batches.
#[derive(Debug, Default)]
pub struct Polled {
    pub partition: u32,
    pub current_offset: u64,
    pub count: u32,
    pub messages: Vec<Bytes>,
}

/// A native poll.
#[derive(Debug, Clone)]
pub struct PollRequest {
    pub client_id: u32,
    pub consumer: Consumer,
    pub stream: u32,
    pub topic: u32,
    pub partition: Option<u32>,
    pub strategy: PollingStrategy,
    pub count: u32,
    pub auto_commit: bool,
}

impl Broker {
    pub(crate) fn partition_handle(
        &self,
        stream: u32,
        topic: u32,
        partition: u32,
    ) -> Result<Arc<Partition>, BrokerError> {
        Ok(self
            .store
            .partition(Ident::Id(stream), Ident::Id(topic), partition)?)
    }

    fn kafka_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, BrokerError> {
        let t = self.kafka_topic(topic)?;
        let p = u32::try_from(index).map_err(|_| StoreError::PartitionNotFound {
            topic: t.name.clone(),
            partition: u32::MAX,
            count: t.partitions,
        })?;
        self.partition_handle(t.stream_id, t.id, p)
    }

    /// A Kafka fetch: reads every wanted partition, and when fewer than `min_bytes` came, waits
    /// (up to `max_wait`, at most [`MAX_FETCH_WAIT`]) for appends and reads again. `wants` are
    /// distinct partitions (the Kafka door keeps one per partition, as Kafka does), so the
    /// waits are bounded by the partitions that exist.
    pub async fn fetch(&self, wants: Vec<FetchWant>, limits: FetchLimits) -> Vec<Fetched> {
        self.fetch_tallied(wants, limits).await.0
    }

    /// [`Broker::fetch`], also saying what it read from the store.
    pub(crate) async fn fetch_tallied(
        &self,
        wants: Vec<FetchWant>,
        limits: FetchLimits,
    ) -> (Vec<Fetched>, ReadTally) {
        let deadline = Instant::now() + limits.max_wait.min(MAX_FETCH_WAIT);
        let count = wants.len();
        let mut targets = Vec::with_capacity(count);
        let mut unknown = Vec::new();
        for (slot, w) in wants.into_iter().enumerate() {
            match self.kafka_partition(&w.topic, w.partition) {
                Ok(partition) => targets.push(FetchTarget {
                    slot,
                    partition,
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                }),
                Err(e) => unknown.push((slot, e)),
            }
        }
        let targets = Arc::new(targets);
        let mut tally = ReadTally::default();
        let fetched = loop {
            let pass = read_all(&targets, limits.max_bytes).await;
            tally.add(pass.tally);
            if pass.bytes >= limits.min_bytes.max(1) || Instant::now() >= deadline {
                break pass.fetched;
            }
            if !wait_for_any(&targets, deadline).await {
                // Nothing arrived in time: answer with what there is (which is nothing new).
                let pass = read_all(&targets, limits.max_bytes).await;
                tally.add(pass.tally);
                break pass.fetched;
            }
        };
        // Back into request order, with the partitions that do not exist.
        let mut slots: Vec<Option<Fetched>> = (0..count).map(|_| None).collect();
        for (t, f) in targets.iter().zip(fetched) {
            slots[t.slot] = Some(f);
        }
        for (slot, e) in unknown {
            slots[slot] = Some(Fetched {
                bounds: None,
                records: Err(e),
            });
        }
        (slots.into_iter().flatten().collect(), tally)
    }

    /// Kafka ListOffsets for one partition: `(offset, timestamp ms)`, `(-1, -1)` when nothing
    /// matches. -1 latest, -2 earliest, -3 the record with the largest timestamp, else the first
    /// record at or after the timestamp.
    pub async fn kafka_offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), BrokerError> {
        let p = self.kafka_partition(topic, partition)?;
        blocking(move || Ok(look_up(&p, timestamp))).await
    }

    /// Kafka DeleteRecords: moves the log start (durably) to `offset`, -1 meaning the high
    /// watermark. Returns the new log start.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<u64, BrokerError> {
        let p = self.kafka_partition(topic, partition)?;
        let hw = p.high_watermark();
        let target = match offset {
            -1 => hw,
            o if o >= 0 && (o as u64) <= hw => o as u64,
            _ => {
                return Err(BrokerError::OffsetOutOfRange {
                    offset,
                    log_start: p.log_start_offset(),
                    high_watermark: hw,
                })
            }
        };
        blocking(move || Ok(p.delete_records_before(target)?)).await
    }

    /// Makes what a partition acknowledged durable now (`fsync`), or does nothing: every
    /// acknowledged batch is already with the kernel.
    pub async fn flush(
        &self,
        stream: u32,
        topic: u32,
        partition: u32,
        fsync: bool,
    ) -> Result<(), BrokerError> {
        let p = self.partition_handle(stream, topic, partition)?;
        if fsync {
            blocking(move || Ok(p.sync()?)).await?;
        }
        Ok(())
    }

    /// A native poll: picks the partition (a group member's own, in turn), finds where to start
    /// by the strategy, collects up to `count` messages (at most `max_count`, and no more
    /// message bytes than `max_bytes` past the first message) and, with auto-commit, stores the
    /// position after the last one.
    pub async fn poll_messages(
        &self,
        req: PollRequest,
        max_count: u32,
        max_bytes: usize,
    ) -> Result<Polled, BrokerError> {
        let t = self.topic(Ident::Id(req.stream), Ident::Id(req.topic))?;
        let partition_id = match &req.consumer {
            Consumer::Single(_) => req.partition.unwrap_or(0),
            Consumer::Group(group) => {
                let gid = super::offsets::group_ident(group);
                if self.groups.name_of(t.stream_id, t.id, gid).is_none() {
                    return Err(BrokerError::GroupNotFound(group.to_string()));
                }
                let next = self.groups.next_partition(
                    t.stream_id,
                    t.id,
                    gid,
                    req.client_id,
                    t.partitions,
                )?;
                match (req.partition, next) {
                    (_, None) => return Ok(Polled::default()),
                    (Some(p), Some(_))
                        if self.groups.owns(
                            t.stream_id,
                            t.id,
                            gid,
                            req.client_id,
                            p,
                            t.partitions,
                        ) =>
                    {
                        p
                    }
                    (Some(_), Some(_)) => return Ok(Polled::default()),
                    (None, Some(p)) => p,
                }
            }
        };
        let partition = self.partition_handle(t.stream_id, t.id, partition_id)?;
        let stats = partition.stats();
        let current = stats.high_watermark.saturating_sub(1);
        let nothing = Polled {
            partition: partition_id,
            current_offset: current,
            ..Polled::default()
        };
        let count = req.count.min(max_count);
        if count == 0 || stats.high_watermark == 0 {
            return Ok(nothing);
        }
        let key = OffsetKey {
            owner: self.offset_owner(&req.consumer, t.stream_id, t.id)?,
            stream: t.stream_id,
            topic: t.id,
            partition: partition_id,
        };
        // Where to start needs no disk: the time index and the positions are in memory.
        let (start, min_ts) = match req.strategy {
            PollingStrategy::Offset(o) if o > current => return Ok(nothing),
            PollingStrategy::Offset(o) => (o, None),
            PollingStrategy::Timestamp(ts) => match partition.offset_for_timestamp(ts) {
                Some(o) => (o, Some(ts)),
                None => return Ok(nothing),
            },
            PollingStrategy::First => (stats.log_start_offset, None),
            PollingStrategy::Last => (stats.high_watermark.saturating_sub(u64::from(count)), None),
            PollingStrategy::Next => (
                self.store.offsets().get(&key).map_or(0, |c| c.next_offset),
                None,
            ),
        };
        let start = start.max(stats.log_start_offset);
        let want = Want {
            start,
            count,
            max_bytes,
            min_timestamp: min_ts,
        };
        let collected = match collect_native(&partition, want, true)? {
            Some(c) => c,
            None => {
                blocking(move || {
                    collect_native(&partition, want, false).map(Option::unwrap_or_default)
                })
                .await?
            }
        };
        if req.auto_commit {
            if let Some(last) = collected.last_offset {
                self.blocking(move |store| commit_position(store, key, last + 1))
                    .await?;
            }
        }
        Ok(Polled {
            partition: partition_id,
            current_offset: current,
            count: collected.count,
            messages: collected.parts,
        })
    }
}

/// Stores a native consumer's next position.
pub(crate) fn commit_position(
    store: &LogStore,
    key: OffsetKey,
    next_offset: u64,
) -> Result<(), BrokerError> {
    let value = super::CommittedOffset {
        next_offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: super::now_us(),
    };
    Ok(store.offsets().commit(key, value)?)
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
}

struct FetchTarget {
    /// Where its answer goes in the request's order.
    slot: usize,
    partition: Arc<Partition>,
    offset: i64,
    max_bytes: usize,
}

/// What a fetch read from the store: read calls, and the stored bytes they returned (read
/// and then possibly dropped when they did not fit).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadTally {
    pub store_reads: u64,
    pub stored_bytes: u64,
}

impl ReadTally {
    fn add(&mut self, other: ReadTally) {
        self.store_reads += other.store_reads;
        self.stored_bytes += other.stored_bytes;
    }
}

/// One pass over a fetch's targets: the answers, the record bytes in them, and what was read.
struct ReadPass {
    fetched: Vec<Fetched>,
    bytes: usize,
    tally: ReadTally,
}

/// Reads every target once: from the page cache on this worker when it holds everything asked
/// for, else on the blocking pool.
async fn read_all(targets: &Arc<Vec<FetchTarget>>, max_bytes: usize) -> ReadPass {
    let mut tally = ReadTally::default();
    if let Some(pass) = read_all_now(targets, max_bytes, true, &mut tally) {
        return pass;
    }
    let mine = Arc::clone(targets);
    let read = tokio::task::spawn_blocking(move || {
        let mut blocking_tally = ReadTally::default();
        let pass = read_all_now(&mine, max_bytes, false, &mut blocking_tally);
        (pass, blocking_tally)
    })
    .await;
    match read {
        Ok((Some(mut pass), blocking_tally)) => {
            tally.add(blocking_tally);
            pass.tally = tally;
            pass
        }
        Ok((None, _)) | Err(_) => {
            let e = BrokerError::Internal("fetch read task failed".into());
            super::log_server_failure("fetch", &e);
            let fetched = targets
                .iter()
                .map(|_| Fetched {
                    bounds: None,
                    records: Err(BrokerError::Internal("fetch read task failed".into())),
                })
                .collect();
            ReadPass {
                fetched,
                bytes: 0,
                tally,
            }
        }
    }
}

/// One pass over the targets; `None` when `cached_only` and something was not in the page
/// cache. Adds what it read to `tally` (also when it gives up).
///
/// As in Kafka, once the answer holds records its byte limit only shrinks: a later partition
/// gets what still fits, and once nothing does, its bounds and no records, without a read.
fn read_all_now(
    targets: &[FetchTarget],
    max_bytes: usize,
    cached_only: bool,
    tally: &mut ReadTally,
) -> Option<ReadPass> {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let p = &t.partition;
        let stats = p.stats();
        let in_range = u64::try_from(t.offset)
            .ok()
            .filter(|&o| o >= stats.log_start_offset && o <= stats.high_watermark);
        let Some(from) = in_range else {
            out.push(Fetched {
                bounds: Some(stats),
                records: Err(BrokerError::OffsetOutOfRange {
                    offset: t.offset,
                    log_start: stats.log_start_offset,
                    high_watermark: stats.high_watermark,
                }),
            });
            continue;
        };
        let budget = t.max_bytes.min(max_bytes.saturating_sub(total));
        // Only the first partition with records may go past the limits (KIP-74); after it, a
        // partition with no room left is not read at all.
        let first_in_response = total == 0;
        let records = if from == stats.high_watermark || (budget == 0 && !first_in_response) {
            Ok(Vec::new())
        } else {
            match read_kafka(p, from, budget, first_in_response, cached_only, tally) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => return None,
                Err(e) => {
                    let e = BrokerError::from(e);
                    super::log_server_failure(&format!("fetch from {}", p.key()), &e);
                    Err(e)
                }
            }
        };
        if let Ok(r) = &records {
            total += r.iter().map(Bytes::len).sum::<usize>();
        }
        out.push(Fetched {
            bounds: Some(stats),
            records,
        });
    }
    Some(ReadPass {
        fetched: out,
        bytes: total,
        tally: *tally,
    })
}

/// Whole batches from `from`, in the Kafka format, within `budget` bytes, or one batch past it
/// when `first_in_response` (KIP-74: a consumer must always be able to make progress).
///
/// The store counts stored bytes (each batch behind its envelope, native batches in their own
/// format), so what it returns for `budget` may hold fewer Kafka bytes than fit: the rest of
/// the budget is read in further steps, each of at least one batch, until a batch no longer
/// fits or the partition ends. What is held stays within the budget plus one batch.
fn read_kafka(
    p: &Partition,
    from: u64,
    budget: usize,
    first_in_response: bool,
    cached_only: bool,
    tally: &mut ReadTally,
) -> Result<Option<Vec<Bytes>>, StoreError> {
    let mut batches: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    let mut from = from;
    'read: loop {
        let step = budget.saturating_sub(size).max(1) as u64;
        let result = if cached_only {
            match p.read_cached(from, step)? {
                Some(r) => r,
                None => return Ok(None),
            }
        } else {
            p.read(from, step)?
        };
        tally.store_reads += 1;
        tally.stored_bytes += result
            .batches
            .iter()
            .map(|b| b.as_bytes().len() as u64)
            .sum::<u64>();
        if result.batches.is_empty() {
            break;
        }
        for b in &result.batches {
            let kafka = translate::as_kafka(b);
            if size + kafka.len() > budget && !(first_in_response && batches.is_empty()) {
                break 'read;
            }
            size += kafka.len();
            batches.push(kafka);
            from = b.last_offset() + 1;
        }
        if size >= budget {
            break;
        }
    }
    Ok(Some(batches))
}

/// Waits until a target gets data past its fetch offset, or the deadline. True when something
/// arrived. One future per target, polled together on this task (no task per partition); the
/// targets are distinct partitions, so this is bounded by the partitions that exist.
async fn wait_for_any(targets: &[FetchTarget], deadline: Instant) -> bool {
    let mut waits: FuturesUnordered<_> = targets
        .iter()
        .filter_map(|t| {
            let offset = u64::try_from(t.offset).ok()?;
            Some(t.partition.wait_for_data(offset, deadline))
        })
        .collect();
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    while let Some(arrived) = waits.next().await {
        // A wait also ends without data when its partition closes; the others go on.
        if arrived {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
    false
}

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// `(offset, timestamp)` for a ListOffsets timestamp; `(-1, -1)` when nothing matches. Look-ups
/// go through the time index to a batch, then through that batch's records.
fn look_up(p: &Partition, timestamp: i64) -> (i64, i64) {
    let stats = p.stats();
    match timestamp {
        LATEST => (stats.high_watermark as i64, -1),
        EARLIEST => (stats.log_start_offset as i64, -1),
        MAX_TIMESTAMP => {
            let Some((batch_offset, _)) = p.max_timestamp() else {
                return (-1, -1);
            };
            record_times(p, batch_offset)
                .into_iter()
                .filter(|&(o, _)| o >= stats.log_start_offset as i64)
                .fold(None, |best: Option<(i64, i64)>, (o, ts)| match best {
                    Some((_, b)) if b >= ts => best,
                    _ => Some((o, ts)),
                })
                .unwrap_or((-1, -1))
        }
        ts if ts >= 0 => {
            let Some(batch_offset) = p.offset_for_timestamp((ts as u64).saturating_mul(1000))
            else {
                return (-1, -1);
            };
            // The batch found is the first whose newest record is recent enough; the answer is
            // its first record at or after the timestamp, or the next batch's first.
            let mut from = batch_offset;
            loop {
                let times = record_times(p, from);
                let Some(&(last, _)) = times.last() else {
                    return (-1, -1);
                };
                if let Some(&(o, t)) = times
                    .iter()
                    .find(|&&(o, t)| t >= ts && o >= stats.log_start_offset as i64)
                {
                    return (o, t);
                }
                from = last as u64 + 1;
                if from >= stats.high_watermark {
                    return (-1, -1);
                }
            }
        }
        _ => (-1, -1),
    }
}

/// `(offset, timestamp ms)` of every record of the batch that holds `offset`.
fn record_times(p: &Partition, offset: u64) -> Vec<(i64, i64)> {
    let Ok(read) = p.read(offset, 1) else {
        return Vec::new();
    };
    let Some(batch) = read.batches.first() else {
        return Vec::new();
    };
    let Ok(native) = translate::as_native(batch) else {
        return Vec::new();
    };
    Messages::new(&native)
        .map(|m| {
            let us = if m.origin_timestamp() > 0 {
                m.origin_timestamp()
            } else {
                m.timestamp()
            };
            (m.offset() as i64, (us / 1000) as i64)
        })
        .collect()
}

/// Messages of a poll: slices of stored batches, and what they cover.
#[derive(Default)]
struct Collected {
    parts: Vec<Bytes>,
    count: u32,
    last_offset: Option<u64>,
}

/// What a poll collects.
#[derive(Debug, Clone, Copy)]
struct Want {
    start: u64,
    count: u32,
    /// Most message bytes; the first message comes whatever its size.
    max_bytes: usize,
    min_timestamp: Option<u64>,
}

/// Collects up to `want.count` native messages from `want.start` on (with timestamps at or
/// after `want.min_timestamp`, if given) and within `want.max_bytes`, as zero-copy slices of
/// the stored batches.
fn collect_native(
    partition: &Partition,
    want: Want,
    cached_only: bool,
) -> Result<Option<Collected>, BrokerError> {
    let Want {
        start,
        count,
        max_bytes,
        min_timestamp,
    } = want;
    let mut out = Collected {
        parts: Vec::new(),
        count: 0,
        last_offset: None,
    };
    let mut from = start;
    let mut bytes = 0usize;
    let mut full = false;
    'read: while out.count < count && !full && !(out.count > 0 && bytes >= max_bytes) {
        // The store always gives at least one batch, so a small step still makes progress.
        let step = READ_STEP.min(max_bytes.saturating_sub(bytes).max(1) as u64);
        let read = if cached_only {
            match partition.read_cached(from, step)? {
                Some(r) => r,
                None => return Ok(None),
            }
        } else {
            partition.read(from, step)?
        };
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            from = batch.last_offset() + 1;
            // Kafka-format batches are converted to native messages.
            let payload = match translate::as_native(batch) {
                Ok(p) => p,
                Err(e) => {
                    super::log_server_failure(
                        &format!(
                            "cannot convert the stored Kafka batch at offset {} of {} for a native reader",
                            batch.base_offset(),
                            partition.key()
                        ),
                        &BrokerError::Internal(e.to_string()),
                    );
                    continue;
                }
            };
            let base = payload.as_ptr() as usize;
            let (mut first, mut end) = (None, 0);
            for m in Messages::new(&payload) {
                if out.count >= count {
                    break;
                }
                if m.offset() < start || min_timestamp.is_some_and(|ts| m.timestamp() < ts) {
                    continue;
                }
                let at = m.bytes().as_ptr() as usize - base;
                let next_end = at + m.bytes().len();
                if out.count > 0 && bytes + (next_end - first.unwrap_or(at)) > max_bytes {
                    full = true;
                    break;
                }
                first.get_or_insert(at);
                end = next_end;
                out.count += 1;
                out.last_offset = Some(m.offset());
            }
            if let Some(first) = first {
                bytes += end - first;
                out.parts.push(payload.slice(first..end));
            }
            if out.count >= count || full {
                break 'read;
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use bytes::BytesMut;
    use wharf_log_store::{NewBatch, StoreConfig};

    use super::*;
    use crate::broker::BrokerSettings;

    /// The server's cap on one answer in these tests.
    const CAP: usize = 64 << 10;

    async fn broker(dir: &std::path::Path) -> Broker {
        let settings = BrokerSettings {
            root_username: "iggy".into(),
            root_password: "iggy".into(),
            kafka_default_stream: "default".into(),
            groups: Default::default(),
            transactions: Default::default(),
            logins: Default::default(),
            max_partitions_per_topic: 1000,
            max_partitions: 100_000,
        };
        Broker::open(dir, StoreConfig::default(), settings).unwrap()
    }

    /// Creates Kafka topic `name` with `partitions` partitions; returns its handles.
    async fn topic(b: &Broker, name: &str, partitions: u32) -> Vec<Arc<Partition>> {
        let t = b
            .create_kafka_topic(name, partitions, Default::default(), false)
            .await
            .unwrap()
            .unwrap();
        (0..partitions)
            .map(|p| b.partition_handle(t.stream_id, t.id, p).unwrap())
            .collect()
    }

    /// Appends one batch of `messages` messages of `size` bytes each.
    async fn append(p: &Arc<Partition>, messages: usize, size: usize) {
        let mut blob = BytesMut::new();
        for i in 0..messages {
            let payload = vec![i as u8; size];
            wharf_protocol::message::encode_message(i as u128 + 1, 0, &payload, &[], &mut blob);
        }
        p.append(NewBatch::native(blob).unwrap()).await.unwrap();
    }

    fn want(topic: &Arc<str>, partition: i32) -> FetchWant {
        FetchWant {
            topic: Arc::clone(topic),
            partition,
            offset: 0,
            max_bytes: i32::MAX as usize,
        }
    }

    fn no_wait() -> FetchLimits {
        FetchLimits::new(i32::MAX as usize, CAP, 0, Duration::ZERO)
    }

    /// Bound: a partition listed 10,000 times, whose one batch is larger than the cap, costs one
    /// store read (of that batch) in one fetch, not one per listing: once the answer is over
    /// its cap, the other listings are answered without reading.
    #[tokio::test]
    async fn a_partition_listed_10_000_times_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let p = topic(&b, "big", 1).await;
        append(&p[0], 2, CAP).await;
        let name: Arc<str> = Arc::from("big");
        let wants = vec![want(&name, 0); 10_000];
        let (fetched, tally) = b.fetch_tallied(wants, no_wait()).await;
        assert_eq!(fetched.len(), 10_000);
        let first = fetched[0].records.as_ref().unwrap();
        assert_eq!(first.len(), 1, "KIP-74: the first batch comes whole");
        assert!(first[0].len() > CAP);
        for f in &fetched[1..] {
            assert!(f.records.as_ref().unwrap().is_empty());
            assert_eq!(f.bounds.unwrap().high_watermark, 2);
        }
        assert_eq!(tally.store_reads, 1, "store reads: {tally:?}");
        assert!(
            tally.stored_bytes < 2 * CAP as u64 + 4096,
            "one batch read: {tally:?}"
        );
    }

    /// Bound: once the answer holds the cap, the later partitions (each holding a batch) are not
    /// read at all; they answer no records and their own high watermarks.
    #[tokio::test]
    async fn partitions_after_the_cap_is_reached_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let partitions = 40;
        let ps = topic(&b, "many", partitions).await;
        for (i, p) in ps.iter().enumerate() {
            // Partition i holds i + 1 messages in one batch larger than the cap.
            append(p, i + 1, CAP / (i + 1) + 1).await;
        }
        let name: Arc<str> = Arc::from("many");
        let wants = (0..partitions as i32).map(|p| want(&name, p)).collect();
        let (fetched, tally) = b.fetch_tallied(wants, no_wait()).await;
        assert_eq!(fetched[0].records.as_ref().unwrap().len(), 1);
        for (i, f) in fetched.iter().enumerate().skip(1) {
            assert!(f.records.as_ref().unwrap().is_empty(), "partition {i}");
            assert_eq!(f.bounds.unwrap().high_watermark, i as u64 + 1);
        }
        assert_eq!(tally.store_reads, 1, "store reads: {tally:?}");
    }

    /// Bound: a long poll over many partitions spawns no task per partition (it waits on all of
    /// them from its own task), and an append to any one of them still ends it.
    #[tokio::test]
    async fn a_long_poll_over_many_partitions_waits_without_a_task_each() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let partitions = 50;
        let ps = topic(&b, "quiet", partitions).await;
        let name: Arc<str> = Arc::from("quiet");
        let wants = (0..partitions as i32).map(|p| want(&name, p)).collect();
        let limits = FetchLimits::new(i32::MAX as usize, CAP, 1, Duration::from_secs(30));
        let tasks_before = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let mut poll = Box::pin(b.fetch(wants, limits));
        tokio::select! {
            biased;
            _ = &mut poll => panic!("the fetch answered before anything was appended"),
            _ = std::future::ready(()) => {}
        }
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(tasks, tasks_before, "tasks alive while the fetch waits");
        append(&ps[partitions as usize - 1], 1, 10).await;
        let fetched = tokio::time::timeout(Duration::from_secs(20), poll)
            .await
            .expect("the append ends the long poll");
        assert_eq!(
            fetched[partitions as usize - 1]
                .records
                .as_ref()
                .unwrap()
                .len(),
            1
        );
    }
}
