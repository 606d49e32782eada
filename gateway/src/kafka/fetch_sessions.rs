//! Incremental fetch sessions (KIP-227): the cache of sessions the Kafka door keeps between
//! Fetch requests, so a consumer of many partitions names only what changed and hears only
//! about partitions with news.
//!
//! Kafka's rules, as its broker applies them (`FetchSession.scala`):
//! - epoch 0 or -1 is a full request: a session it names is closed; epoch 0 then tries to
//!   create a session for the answer's partitions, -1 never does (sessionless);
//! - any other epoch is incremental: the session must exist (else FETCH_SESSION_ID_NOT_FOUND),
//!   the epoch must be the session's (else INVALID_FETCH_SESSION_EPOCH), and the request must
//!   use topic ids exactly when the session does (v13+; else FETCH_SESSION_TOPIC_ID_ERROR).
//!   The request's partitions are added or updated, its forgotten ones removed; a session left
//!   empty is closed and the request answered sessionless. The answer leaves out partitions
//!   without records whose high watermark and log start offset did not change and which have
//!   no error; partitions that returned records move to the end of the session (fairness);
//! - the cache is `[kafka] max_incremental_fetch_session_cache_slots` sessions (Kafka's
//!   `max.incremental.fetch.session.cache.slots`, 1000) in [`SHARDS`] shards of an equal share,
//!   each owning a range of session ids; a new session goes to the next shard round robin. A
//!   full shard evicts a session unused for more than [`EVICTION_MS`], else the smallest
//!   session created more than [`EVICTION_MS`] ago if the new one has more partitions, else
//!   no session is created (the client goes on with full requests).
//!
//! Kafka's privileged sessions (followers') do not exist here: every session is a consumer's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

/// Kafka's number of cache shards (`KafkaBroker.NumFetchSessionCacheShards`).
pub const SHARDS: usize = 8;
/// Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`: how long a session must be unused
/// before any new session may evict it, and how old it must be before a larger one may.
pub const EVICTION_MS: u64 = 120_000;
/// Kafka's default `max.incremental.fetch.session.cache.slots`.
pub const DEFAULT_SLOTS: u32 = 1000;

pub const INVALID_SESSION_ID: i32 = 0;
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = ResponseError::FetchSessionTopicIdError.code();

/// The epoch after `epoch` (Kafka's `FetchMetadata.nextEpoch`): wraps to 1, never to 0.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// How a session names a topic: by id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

/// A partition a fetch wants, as the request (or the session) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub topic: TopicKey,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: i32,
}

/// What the answer said about one partition, for deciding whether an incremental answer
/// carries it and for remembering what the client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub records_bytes: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub error: i16,
}

/// How a request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// No session: every partition asked is answered; session id 0.
    Sessionless,
    /// Full request at epoch 0: every partition is answered, then a session is created for
    /// them if the cache has room ([`FetchSessions::create`]).
    Full { uses_topic_ids: bool },
    /// Incremental request of session `id`, answered by [`FetchSessions::filter`] at `epoch`
    /// (the session's epoch once this request was taken in).
    Incremental { id: i32, epoch: i32 },
    /// A session error: answered with this top-level error, session id 0, no partitions.
    Error(i16),
}

/// A partition of a session: what the client last asked for it and was last told.
#[derive(Debug, Clone)]
struct Cached {
    topic: TopicKey,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    high_watermark: i64,
    log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    uses_topic_ids: bool,
    created_ms: u64,
    last_used_ms: u64,
    epoch: i32,
    /// The size the cache's indexes were last given (Kafka's `cachedSize`).
    indexed_size: Option<usize>,
    /// The partitions in fetch order: sequence number to partition.
    order: BTreeMap<u64, Cached>,
    at: HashMap<(TopicKey, i32), u64>,
    next_seq: u64,
}

impl Session {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn push(&mut self, c: Cached) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.at.insert((c.topic.clone(), c.partition), seq);
        self.order.insert(seq, c);
    }

    fn remove(&mut self, key: &(TopicKey, i32)) -> Option<Cached> {
        let seq = self.at.remove(key)?;
        self.order.remove(&seq)
    }

    fn wants(&self) -> Vec<Wanted> {
        self.order
            .values()
            .map(|c| Wanted {
                topic: c.topic.clone(),
                partition: c.partition,
                offset: c.offset,
                max_bytes: c.max_bytes,
            })
            .collect()
    }
}

/// One shard: a share of the slots and a range of session ids.
#[derive(Debug)]
struct Shard {
    max_entries: usize,
    /// Session ids `ids.0 <= id < ids.1`.
    ids: (i32, i32),
    sessions: HashMap<i32, Session>,
    /// (last used, id): the stalest first.
    last_used: BTreeSet<(u64, i32)>,
    /// (size, id) of sessions created more than [`EVICTION_MS`] ago when last touched:
    /// Kafka's `evictableByAll`, the smallest first.
    evictable: BTreeSet<(usize, i32)>,
    partitions: usize,
    evictions: u64,
}

impl Shard {
    fn remove(&mut self, id: i32) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        self.last_used.remove(&(s.last_used_ms, id));
        if let Some(size) = s.indexed_size {
            self.evictable.remove(&(size, id));
            self.partitions -= size;
        }
        Some(s)
    }

    /// Kafka's `touch`: re-indexes the session as used now, at its current size.
    fn touch(&mut self, id: i32, now: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        self.last_used.remove(&(s.last_used_ms, id));
        s.last_used_ms = now;
        self.last_used.insert((now, id));
        if let Some(old) = s.indexed_size {
            self.evictable.remove(&(old, id));
            self.partitions -= old;
        }
        let size = s.len();
        s.indexed_size = Some(size);
        if now.saturating_sub(s.created_ms) > EVICTION_MS {
            self.evictable.insert((size, id));
        }
        self.partitions += size;
    }

    /// Kafka's `tryEvict` for a non-privileged session of `size` partitions.
    fn try_evict(&mut self, size: usize, now: u64) -> bool {
        let Some(&(used, stalest)) = self.last_used.first() else {
            return false;
        };
        let victim = if now.saturating_sub(used) > EVICTION_MS {
            stalest
        } else {
            match self.evictable.first() {
                // The new key (size, id 0) must not sort below the victim's (size, id > 0).
                Some(&(victim_size, victim)) if size > victim_size => victim,
                _ => return false,
            }
        };
        self.remove(victim);
        self.evictions += 1;
        true
    }

    fn new_id(&self) -> i32 {
        loop {
            let id = rand::random_range(self.ids.0..self.ids.1);
            if id != INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Counts for tests and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub sessions: usize,
    pub partitions: usize,
    pub evictions: u64,
}

/// The fetch session cache of a Kafka door.
#[derive(Debug)]
pub struct FetchSessions {
    shards: Vec<Mutex<Shard>>,
    id_range: i32,
    next_shard: AtomicUsize,
    started: Instant,
    /// Most partitions one session holds (the server's `max_partitions`: no valid session
    /// needs more). Kafka has no such cap; without it a client grows one session without end.
    max_partitions: usize,
}

impl FetchSessions {
    /// A cache of `slots` sessions, split over [`SHARDS`] shards as Kafka splits it (so fewer
    /// than [`SHARDS`] slots hold none, as in Kafka).
    pub fn new(slots: u32) -> FetchSessions {
        let id_range = i32::MAX / SHARDS as i32;
        let shards = (0..SHARDS as i32)
            .map(|n| {
                Mutex::new(Shard {
                    max_entries: slots as usize / SHARDS,
                    ids: ((n * id_range).max(1), (n + 1) * id_range),
                    sessions: HashMap::new(),
                    last_used: BTreeSet::new(),
                    evictable: BTreeSet::new(),
                    partitions: 0,
                    evictions: 0,
                })
            })
            .collect();
        FetchSessions {
            shards,
            id_range,
            next_shard: AtomicUsize::new(0),
            started: Instant::now(),
            max_partitions: usize::MAX,
        }
    }

    /// Caps each session at `max_partitions` partitions (existing or not): a full request
    /// naming more gets no session, an incremental one taking a session past it closes it
    /// (FETCH_SESSION_ID_NOT_FOUND, so the client goes back to full requests).
    pub fn with_max_partitions(mut self, max_partitions: usize) -> FetchSessions {
        self.max_partitions = max_partitions;
        self
    }

    /// Milliseconds on this cache's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard_of(&self, id: i32) -> Option<&Mutex<Shard>> {
        if id <= INVALID_SESSION_ID {
            return None;
        }
        self.shards.get((id / self.id_range) as usize)
    }

    /// Takes a request in (Kafka's `FetchManager.newContext`): how it is served and the
    /// partitions to read, in order. `wanted` are the request's distinct partitions and
    /// `forgotten` its forgotten ones; `uses_topic_ids` is "the request is v13+".
    pub fn open(
        &self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        wanted: Vec<Wanted>,
        forgotten: Vec<(TopicKey, i32)>,
        now: u64,
    ) -> (Context, Vec<Wanted>) {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if let Some(shard) = self.shard_of(session_id) {
                shard.lock().remove(session_id);
            }
            let context = if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full { uses_topic_ids }
            };
            return (context, wanted);
        }
        let Some(shard) = self.shard_of(session_id) else {
            return (Context::Error(FETCH_SESSION_ID_NOT_FOUND), Vec::new());
        };
        let mut shard = shard.lock();
        let Some(session) = shard.sessions.get_mut(&session_id) else {
            return (Context::Error(FETCH_SESSION_ID_NOT_FOUND), Vec::new());
        };
        if session.epoch != epoch {
            return (Context::Error(INVALID_FETCH_SESSION_EPOCH), Vec::new());
        }
        if session.uses_topic_ids != uses_topic_ids {
            return (Context::Error(FETCH_SESSION_TOPIC_ID_ERROR), Vec::new());
        }
        for w in &wanted {
            let key = (w.topic.clone(), w.partition);
            match session
                .at
                .get(&key)
                .and_then(|seq| session.order.get_mut(seq))
            {
                Some(c) => {
                    c.offset = w.offset;
                    c.max_bytes = w.max_bytes;
                }
                None => session.push(Cached {
                    topic: w.topic.clone(),
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    high_watermark: -1,
                    log_start_offset: -1,
                }),
            }
        }
        for key in &forgotten {
            session.remove(key);
        }
        if session.len() > self.max_partitions {
            shard.remove(session_id);
            return (Context::Error(FETCH_SESSION_ID_NOT_FOUND), Vec::new());
        }
        if session.len() == 0 {
            shard.remove(session_id);
            return (Context::Sessionless, wanted);
        }
        session.epoch = next_epoch(session.epoch);
        let (epoch, wants) = (session.epoch, session.wants());
        shard.touch(session_id, now);
        (
            Context::Incremental {
                id: session_id,
                epoch,
            },
            wants,
        )
    }

    /// After a full request's partitions were read: creates a session holding them (what they
    /// asked and were told), if the next shard has room or can evict. The session id to
    /// answer with, or [`INVALID_SESSION_ID`].
    pub fn create(&self, uses_topic_ids: bool, partitions: &[(Wanted, Told)], now: u64) -> i32 {
        if partitions.len() > self.max_partitions {
            return INVALID_SESSION_ID;
        }
        let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let mut shard = self.shards[n].lock();
        if shard.sessions.len() >= shard.max_entries && !shard.try_evict(partitions.len(), now) {
            return INVALID_SESSION_ID;
        }
        let id = shard.new_id();
        let mut session = Session {
            uses_topic_ids,
            created_ms: now,
            last_used_ms: now,
            epoch: next_epoch(INITIAL_EPOCH),
            indexed_size: None,
            order: BTreeMap::new(),
            at: HashMap::new(),
            next_seq: 0,
        };
        for (w, t) in partitions {
            if session.at.contains_key(&(w.topic.clone(), w.partition)) {
                continue;
            }
            session.push(Cached {
                topic: w.topic.clone(),
                partition: w.partition,
                offset: w.offset,
                max_bytes: w.max_bytes,
                high_watermark: t.high_watermark,
                log_start_offset: t.log_start_offset,
            });
        }
        shard.sessions.insert(id, session);
        shard.last_used.insert((now, id));
        shard.touch(id, now);
        id
    }

    /// After an incremental request's partitions (in the order [`open`](Self::open) gave)
    /// were read: which of them the answer would carry (Kafka's `maybeUpdateResponseData`),
    /// the session left as it is. The answer is measured against the client's quota before
    /// anything is remembered ([`filter`](Self::filter) remembers). Err: the top-level error
    /// the answer carries instead of partitions (a duplicate request moved the epoch on, or
    /// the session is gone).
    pub fn preview(&self, id: i32, epoch: i32, told: &[(Wanted, Told)]) -> Result<Vec<bool>, i16> {
        self.judge(id, epoch, told, false)
    }

    /// As [`preview`](Self::preview), the session remembering what it told: the answer is
    /// sent. Between the two nothing changes the result: every change to a session moves its
    /// epoch on, which this checks under the shard's lock.
    pub fn filter(&self, id: i32, epoch: i32, told: &[(Wanted, Told)]) -> Result<Vec<bool>, i16> {
        self.judge(id, epoch, told, true)
    }

    /// The answer to a throttled incremental request (Kafka's
    /// `IncrementalFetchContext.getThrottledResponse`): no partition of the session is
    /// touched; INVALID_FETCH_SESSION_EPOCH when a duplicate request moved the epoch on, else
    /// no error (a session evicted meanwhile is found out by the next request, as Kafka).
    pub fn throttled(&self, id: i32, epoch: i32) -> i16 {
        let moved_on = self
            .shard_of(id)
            .and_then(|shard| shard.lock().sessions.get(&id).map(|s| s.epoch != epoch))
            .unwrap_or(false);
        if moved_on {
            INVALID_FETCH_SESSION_EPOCH
        } else {
            0
        }
    }

    fn judge(
        &self,
        id: i32,
        epoch: i32,
        told: &[(Wanted, Told)],
        remember: bool,
    ) -> Result<Vec<bool>, i16> {
        let shard = self.shard_of(id).ok_or(FETCH_SESSION_ID_NOT_FOUND)?;
        let mut shard = shard.lock();
        let session = shard
            .sessions
            .get_mut(&id)
            .ok_or(FETCH_SESSION_ID_NOT_FOUND)?;
        if session.epoch != epoch {
            return Err(INVALID_FETCH_SESSION_EPOCH);
        }
        let mut carried = Vec::with_capacity(told.len());
        for (w, t) in told {
            let key = (w.topic.clone(), w.partition);
            let Some(c) = session.at.get(&key).and_then(|s| session.order.get_mut(s)) else {
                carried.push(true);
                continue;
            };
            let respond = t.records_bytes > 0
                || c.high_watermark != t.high_watermark
                || c.log_start_offset != t.log_start_offset
                || t.error != 0;
            carried.push(respond);
            if !remember {
                continue;
            }
            c.high_watermark = t.high_watermark;
            c.log_start_offset = t.log_start_offset;
            if t.error != 0 {
                // So the partition is sent again once the error is gone.
                c.high_watermark = -1;
            }
            if t.records_bytes > 0 {
                if let Some(c) = session.remove(&key) {
                    session.push(c);
                }
            }
        }
        Ok(carried)
    }

    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        for s in &self.shards {
            let s = s.lock();
            stats.sessions += s.sessions.len();
            stats.partitions += s.partitions;
            stats.evictions += s.evictions;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(topic: &str, partition: i32, offset: i64) -> Wanted {
        Wanted {
            topic: TopicKey::Name(Arc::from(topic)),
            partition,
            offset,
            max_bytes: 1 << 20,
        }
    }

    fn told(hw: i64) -> Told {
        Told {
            records_bytes: 0,
            high_watermark: hw,
            log_start_offset: 0,
            error: 0,
        }
    }

    /// A session of `n` partitions of topic "t", created at `now`; its id.
    fn session(cache: &FetchSessions, n: i32, now: u64) -> i32 {
        let parts: Vec<(Wanted, Told)> = (0..n).map(|p| (named("t", p, 0), told(5))).collect();
        cache.create(false, &parts, now)
    }

    #[test]
    fn full_then_incremental_answers_only_what_changed() {
        let cache = FetchSessions::new(1000);
        let wanted = vec![named("t", 0, 0), named("t", 1, 0), named("t", 2, 0)];
        let (ctx, wants) = cache.open(0, INITIAL_EPOCH, false, wanted.clone(), vec![], 0);
        assert_eq!(
            ctx,
            Context::Full {
                uses_topic_ids: false
            }
        );
        assert_eq!(wants, wanted);
        let answered: Vec<(Wanted, Told)> = wants.into_iter().map(|w| (w, told(5))).collect();
        let id = cache.create(false, &answered, 0);
        assert!(id > 0);

        // Incremental at epoch 1 naming nothing: all three are read, none changed.
        let (ctx, wants) = cache.open(id, 1, false, vec![], vec![], 1);
        assert_eq!(ctx, Context::Incremental { id, epoch: 2 });
        assert_eq!(wants.len(), 3);
        let mut told_now: Vec<(Wanted, Told)> = wants.into_iter().map(|w| (w, told(5))).collect();
        told_now[1].1.high_watermark = 6;
        told_now[2].1.records_bytes = 10;
        told_now[2].1.high_watermark = 6;
        assert_eq!(cache.filter(id, 2, &told_now), Ok(vec![false, true, true]));

        // Partition 2 returned records, so it moved to the end; partition 0 is updated by the
        // request, partition 1 forgotten.
        let (ctx, wants) = cache.open(
            id,
            2,
            false,
            vec![named("t", 0, 7)],
            vec![(TopicKey::Name(Arc::from("t")), 1)],
            2,
        );
        assert_eq!(ctx, Context::Incremental { id, epoch: 3 });
        assert_eq!(wants, vec![named("t", 0, 7), named("t", 2, 0)]);
        // An error is always carried, and the partition again once the error is gone.
        let errored = vec![
            (
                wants[0].clone(),
                Told {
                    error: 3,
                    ..told(5)
                },
            ),
            (wants[1].clone(), told(6)),
        ];
        assert_eq!(cache.filter(id, 3, &errored), Ok(vec![true, false]));
        cache.open(id, 3, false, vec![], vec![], 3);
        let healed = vec![(wants[0].clone(), told(5)), (wants[1].clone(), told(6))];
        assert_eq!(cache.filter(id, 4, &healed), Ok(vec![true, false]));
    }

    /// A throttled answer is measured with `preview` and never remembered: the news it
    /// would have carried (a moved high watermark, records that would rotate a partition)
    /// is still news for the next answer, as Kafka's throttled contexts leave the session.
    #[test]
    fn a_preview_leaves_the_session_as_it_was() {
        let cache = FetchSessions::new(1000);
        let id = session(&cache, 2, 0);
        let (ctx, wants) = cache.open(id, 1, false, vec![], vec![], 1);
        assert_eq!(ctx, Context::Incremental { id, epoch: 2 });
        let mut news: Vec<(Wanted, Told)> = wants.into_iter().map(|w| (w, told(5))).collect();
        news[0].1.records_bytes = 10;
        news[1].1.high_watermark = 9;
        // Throttled: measured twice, answered without partitions, nothing remembered.
        assert_eq!(cache.preview(id, 2, &news), Ok(vec![true, true]));
        assert_eq!(cache.preview(id, 2, &news), Ok(vec![true, true]));
        assert_eq!(cache.throttled(id, 2), 0);
        // A duplicate of the request, seen after the next one moved the epoch on.
        assert_eq!(cache.throttled(id, 1), INVALID_FETCH_SESSION_EPOCH);
        // The next request: same order (nothing rotated), the high watermark still news.
        let (ctx, wants) = cache.open(id, 2, false, vec![], vec![], 2);
        assert_eq!(ctx, Context::Incremental { id, epoch: 3 });
        assert_eq!(wants, vec![named("t", 0, 0), named("t", 1, 0)]);
        let mut quiet: Vec<(Wanted, Told)> = wants.into_iter().map(|w| (w, told(5))).collect();
        quiet[1].1.high_watermark = 9;
        assert_eq!(cache.filter(id, 3, &quiet), Ok(vec![false, true]));
        // Remembered now: the same high watermark is no longer news.
        let (_, wants) = cache.open(id, 3, false, vec![], vec![], 3);
        let mut again: Vec<(Wanted, Told)> = wants.into_iter().map(|w| (w, told(5))).collect();
        again[1].1.high_watermark = 9;
        assert_eq!(cache.filter(id, 4, &again), Ok(vec![false, false]));
    }

    #[test]
    fn a_session_never_holds_more_than_max_partitions() {
        // The bound: a session holds at most `max_partitions` (4 here) partitions.
        let cache = FetchSessions::new(1000).with_max_partitions(4);
        assert_eq!(
            session(&cache, 5, 0),
            INVALID_SESSION_ID,
            "too many for a session"
        );
        assert_eq!(cache.stats().sessions, 0);
        let id = session(&cache, 3, 0);
        assert!(id > 0);
        // Naming partitions that do not exist counts against the cap too.
        let more = vec![named("t", 3, 0), named("nowhere", 9, 0)];
        assert_eq!(
            cache.open(id, 1, false, more, vec![], 1).0,
            Context::Error(FETCH_SESSION_ID_NOT_FOUND),
            "a session past the cap is closed"
        );
        assert_eq!(cache.stats().sessions, 0);
        assert!(cache.stats().partitions <= 4);
        // Up to the cap is fine.
        let id = session(&cache, 3, 2);
        let (ctx, wants) = cache.open(id, 1, false, vec![named("t", 3, 0)], vec![], 3);
        assert_eq!(ctx, Context::Incremental { id, epoch: 2 });
        assert_eq!(wants.len(), 4);
        assert_eq!(cache.stats().partitions, 4);
    }

    #[test]
    fn session_errors_are_kafkas() {
        let cache = FetchSessions::new(1000);
        let id = session(&cache, 2, 0);
        assert_eq!(
            cache.open(id + 1, 1, false, vec![], vec![], 0).0,
            Context::Error(FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(
            cache.open(-5, 1, false, vec![], vec![], 0).0,
            Context::Error(FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(
            cache.open(i32::MAX, 1, false, vec![], vec![], 0).0,
            Context::Error(FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(
            cache.open(id, 2, false, vec![], vec![], 0).0,
            Context::Error(INVALID_FETCH_SESSION_EPOCH)
        );
        assert_eq!(
            cache.open(id, 1, true, vec![], vec![], 0).0,
            Context::Error(FETCH_SESSION_TOPIC_ID_ERROR)
        );
        // The errors left the session as it was: epoch 1 still works.
        assert_eq!(
            cache.open(id, 1, false, vec![], vec![], 0).0,
            Context::Incremental { id, epoch: 2 }
        );
        // A duplicate of that request, answered after it: the epoch moved on.
        assert_eq!(cache.filter(id, 1, &[]), Err(INVALID_FETCH_SESSION_EPOCH));
    }

    #[test]
    fn full_requests_close_the_session_they_name() {
        let cache = FetchSessions::new(1000);
        let id = session(&cache, 2, 0);
        let (ctx, _) = cache.open(id, FINAL_EPOCH, false, vec![named("t", 0, 0)], vec![], 0);
        assert_eq!(ctx, Context::Sessionless);
        assert_eq!(cache.stats().sessions, 0);
        let id = session(&cache, 2, 0);
        let (ctx, _) = cache.open(id, INITIAL_EPOCH, false, vec![], vec![], 0);
        assert_eq!(
            ctx,
            Context::Full {
                uses_topic_ids: false
            }
        );
        assert_eq!(cache.stats().sessions, 0);
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let cache = FetchSessions::new(1000);
        let id = session(&cache, 1, 0);
        let (ctx, wants) = cache.open(
            id,
            1,
            false,
            vec![],
            vec![(TopicKey::Name(Arc::from("t")), 0)],
            0,
        );
        assert_eq!(ctx, Context::Sessionless);
        assert!(wants.is_empty());
        assert_eq!(cache.stats(), CacheStats::default());
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    /// Bound: at most `slots` sessions (here 8: one per shard) whatever the clients ask;
    /// a new session evicts only a stale one, or a smaller one past [`EVICTION_MS`].
    #[test]
    fn the_cache_holds_at_most_its_slots_with_kafkas_eviction() {
        let cache = FetchSessions::new(8);
        let ids: Vec<i32> = (0..8).map(|_| session(&cache, 3, 0)).collect();
        assert!(ids.iter().all(|&id| id > 0));
        // Every shard is full: recent sessions are not evicted, whatever the size.
        for _ in 0..SHARDS * 4 {
            assert_eq!(session(&cache, 100, 1000), INVALID_SESSION_ID);
        }
        assert_eq!(cache.stats().sessions, 8);
        assert_eq!(cache.stats().partitions, 24);
        // Past EVICTION_MS of disuse, a session is stale: any new one takes its slot.
        let late = EVICTION_MS + 1;
        let id = session(&cache, 1, late);
        assert!(id > 0);
        assert_eq!(cache.stats().sessions, 8);
        assert_eq!(cache.stats().evictions, 1);
        // Keep the other seven used (touched after their creation + EVICTION_MS: evictable
        // by larger sessions only).
        for &old in &ids {
            cache.open(old, 1, false, vec![], vec![], late);
        }
        let larger = session(&cache, 4, late + 1);
        let smaller = session(&cache, 2, late + 1);
        let counts = [larger, smaller].map(|id| id > 0);
        // Round robin gives each its own shard (1, then 2), each holding a 3-partition
        // session: the larger new session evicts it, the smaller may not.
        assert_eq!(counts, [true, false]);
        assert_eq!(cache.stats().sessions, 8);
    }

    #[test]
    fn session_ids_belong_to_their_shard() {
        let cache = FetchSessions::new(1000);
        for _ in 0..100 {
            let id = session(&cache, 1, 0);
            assert!(id > 0);
            assert!(cache
                .shard_of(id)
                .unwrap()
                .lock()
                .sessions
                .contains_key(&id));
        }
        assert_eq!(cache.stats().sessions, 100);
    }
}
