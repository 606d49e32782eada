//! The read-ahead cache of remote data on local disk: remote objects are read in fixed-size
//! chunks, each kept as a file in the cache folder until the cache's byte bound evicts it
//! (least recently used first). A miss fetches, in one ranged read, the missing chunks of the
//! read and the next one ahead (as many as the bound holds). When the store opens, the files
//! the cache writes (`<n>.chunk`, `<n>.tmp`) are removed from the folder and nothing else is:
//! the folder may be one the operator shares. A chunk is written whole (temporary file,
//! rename) before it is read, so a crash never leaves a short chunk behind.
//!
//! The byte bound holds for the folder at every moment, not just between reads: room for a
//! fetch is reserved (evicting older chunks, whose files are removed at once) before its files
//! are written, and a fetch that cannot fit is served from memory without being cached.
//! Concurrent misses of one chunk fetch it once: the first reader fetches, the others wait for
//! it and then read the file.
//!
//! Being the one object every partition's reader shares, the cache also holds what must be
//! bounded store-wide rather than per partition: the parsed indexes of uploaded segments
//! (at most [`MAX_PARSED_INDEX_ENTRIES`] entries in all) and the limit on remote reads in
//! progress (Kafka's `remote.log.reader.threads` and `remote.log.reader.max.pending.tasks`).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};

use super::{RemoteError, RemoteStore};
use crate::index::IndexEntry;
use crate::metrics::RemoteMetrics;

/// Parsed indexes of uploaded segments kept in memory by the whole store, in entries (about
/// 40 bytes each): 1 Mi entries, about 40 MiB, whatever the number of partitions. An index
/// larger than this alone is served but not kept (its bytes stay in the chunk cache).
pub(crate) const MAX_PARSED_INDEX_ENTRIES: usize = 1 << 20;

/// The largest chunk the cache accepts: a chunk is held whole in memory while fetched.
pub(crate) const MAX_CHUNK_SIZE: u64 = 256 << 20;

/// One chunk: the object's key and the chunk's number (its first byte / chunk size).
type ChunkId = (String, u64);

/// A chunk whose file is in the folder.
#[derive(Debug)]
struct Cached {
    /// The file's number (its name is `<file>.chunk`).
    file: u64,
    len: u64,
    /// When it was last read: its key in `State::lru`.
    used: u64,
}

#[derive(Debug, Default)]
struct State {
    chunks: BTreeMap<ChunkId, Cached>,
    /// Least recently used first.
    lru: BTreeMap<u64, ChunkId>,
    /// Chunks being fetched, with the fetch's token; a fetch caches only the chunks still
    /// registered under its token (a `forget` in between unregisters them).
    in_flight: HashMap<ChunkId, u64>,
    /// Bytes of the chunk files in the folder...
    cached: u64,
    /// ...and bytes reserved for files being written: together never above the bound.
    reserved: u64,
    /// Source of file numbers, LRU ticks and fetch tokens.
    counter: u64,
    /// Readers waiting for another reader's fetch of their chunk.
    waiting: usize,
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// The bounded cache of remote chunks.
#[derive(Debug)]
pub(crate) struct ReadCache {
    dir: PathBuf,
    max_bytes: u64,
    chunk_size: u64,
    store: Arc<dyn RemoteStore>,
    metrics: Arc<crate::metrics::StoreMetrics>,
    state: Mutex<State>,
    /// Signalled when fetches finish (waiting readers look again).
    fetched: Condvar,
    /// `cached + reserved`, published under the state lock whenever either changes, so
    /// that the metrics read it without the lock (which eviction holds while removing files).
    held: AtomicU64,
    /// The parsed indexes every reader shares, under one store-wide bound.
    indexes: Mutex<ParsedIndexes>,
    /// Remote reads in progress and waiting, store-wide.
    reads: ReadLimiter,
}

/// Parsed indexes by their object's key, least recently used dropped first.
#[derive(Debug)]
struct ParsedIndexes {
    max_entries: usize,
    held_entries: usize,
    tick: u64,
    by_key: HashMap<String, (u64, Arc<[IndexEntry]>)>,
    lru: BTreeMap<u64, String>,
}

/// The store-wide bound on remote reads: `threads` run at once, up to `max_pending` more wait
/// for a turn, and any further one is refused at once ([`RemoteError::Busy`], retriable), so
/// a slow object store holds at most `threads + max_pending` of the server's blocking threads.
#[derive(Debug)]
pub(crate) struct ReadLimiter {
    threads: usize,
    max_pending: usize,
    state: Mutex<Turns>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Turns {
    running: usize,
    pending: usize,
}

/// A remote read's turn: given back when dropped.
#[derive(Debug)]
pub(crate) struct ReadTurn<'a> {
    limiter: &'a ReadLimiter,
}

impl ReadLimiter {
    pub(crate) fn new(threads: usize, max_pending: usize) -> ReadLimiter {
        ReadLimiter {
            threads: threads.max(1),
            max_pending,
            state: Mutex::new(Turns::default()),
            changed: Condvar::new(),
        }
    }

    /// A turn to read remotely: at once when fewer than `threads` run, after waiting when
    /// fewer than `max_pending` wait, else refused.
    pub(crate) fn turn(&self) -> Result<ReadTurn<'_>, RemoteError> {
        let mut turns = self.state.lock();
        if turns.running >= self.threads {
            if turns.pending >= self.max_pending {
                return Err(RemoteError::Busy {
                    running: turns.running,
                    pending: turns.pending,
                });
            }
            turns.pending += 1;
            self.changed.notify_all();
            while turns.running >= self.threads {
                self.changed.wait(&mut turns);
            }
            turns.pending -= 1;
        }
        turns.running += 1;
        Ok(ReadTurn { limiter: self })
    }

    /// Reads running and waiting now.
    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> (usize, usize) {
        let turns = self.state.lock();
        (turns.running, turns.pending)
    }

    /// Waits (at most `timeout`) until `pending` reads wait for a turn; for tests.
    #[cfg(test)]
    pub(crate) fn wait_for_pending(&self, pending: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut turns = self.state.lock();
        while turns.pending < pending {
            if self.changed.wait_until(&mut turns, deadline).timed_out() {
                return turns.pending >= pending;
            }
        }
        true
    }
}

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        let mut turns = self.limiter.state.lock();
        turns.running -= 1;
        self.limiter.changed.notify_all();
    }
}

/// How a chunk is got: from its file, or fetched by this reader.
enum Plan {
    /// A cached chunk's file, opened under the lock (an eviction may remove the name; the
    /// open file stays readable).
    Hit(File, u64),
    /// Another reader is fetching it: wait, then look again.
    Wait,
    /// This reader fetches `range` of the object (the chunk and, when it fits, the next
    /// one), caching the chunks registered under `token` if `cache` (room is reserved).
    Fetch {
        range: Range<u64>,
        token: u64,
        cache: bool,
    },
}

impl ReadCache {
    /// Opens (and empties) the cache in `dir`, creating it if missing.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        chunk_size: u64,
        store: Arc<dyn RemoteStore>,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> Result<ReadCache, RemoteError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(RemoteError::Config(format!(
                "the remote read chunk size must be between 1 byte and {MAX_CHUNK_SIZE} bytes, \
                 not {chunk_size}"
            )));
        }
        let local = |path: &Path, source: io::Error| RemoteError::Local {
            path: path.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| local(dir, e))?;
        // Only a cache: the chunks and temporary files an earlier run left go. Nothing else
        // is touched: a folder set by mistake to one holding other files loses none of them.
        for entry in fs::read_dir(dir).map_err(|e| local(dir, e))? {
            let entry = entry.map_err(|e| local(dir, e))?;
            let is_file = entry.file_type().map_err(|e| local(dir, e))?.is_file();
            if is_file && is_own_file_name(&entry.file_name()) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| local(&path, e))?;
            }
        }
        Ok(ReadCache {
            dir: dir.to_path_buf(),
            max_bytes,
            chunk_size,
            store,
            metrics,
            state: Mutex::new(State::default()),
            fetched: Condvar::new(),
            held: AtomicU64::new(0),
            indexes: Mutex::new(ParsedIndexes {
                max_entries: MAX_PARSED_INDEX_ENTRIES,
                held_entries: 0,
                tick: 0,
                by_key: HashMap::new(),
                lru: BTreeMap::new(),
            }),
            reads: ReadLimiter::new(
                super::DEFAULT_READER_THREADS,
                super::DEFAULT_READER_MAX_PENDING_TASKS,
            ),
        })
    }

    /// The same cache with `threads` remote reads at once and `max_pending` waiting
    /// (`remote.log.reader.threads`, `remote.log.reader.max.pending.tasks`).
    pub fn with_read_limits(mut self, threads: usize, max_pending: usize) -> ReadCache {
        self.reads = ReadLimiter::new(threads, max_pending);
        self
    }

    /// The store-wide limit on remote reads: every reader takes a turn for each read.
    pub fn reads(&self) -> &ReadLimiter {
        &self.reads
    }

    /// The parsed index of the object `key`, if kept (it becomes the most recent).
    pub fn parsed_index(&self, key: &str) -> Option<Arc<[IndexEntry]>> {
        let mut kept = self.indexes.lock();
        kept.tick += 1;
        let tick = kept.tick;
        let (old, entries) = kept.by_key.get_mut(key).map(|(used, entries)| {
            let old = std::mem::replace(used, tick);
            (old, Arc::clone(entries))
        })?;
        kept.lru.remove(&old);
        kept.lru.insert(tick, key.to_string());
        Some(entries)
    }

    /// Keeps the parsed index of `key`, dropping the least recently used ones until every
    /// reader's together fit the store-wide bound; one larger than the bound alone is not kept.
    pub fn keep_index(&self, key: &str, entries: Arc<[IndexEntry]>) {
        let mut kept = self.indexes.lock();
        kept.remove(key);
        if entries.len() > kept.max_entries {
            return;
        }
        while kept.held_entries + entries.len() > kept.max_entries {
            let Some(oldest) = kept.lru.values().next().cloned() else {
                break;
            };
            kept.remove(&oldest);
        }
        kept.tick += 1;
        let tick = kept.tick;
        kept.held_entries += entries.len();
        kept.lru.insert(tick, key.to_string());
        kept.by_key.insert(key.to_string(), (tick, entries));
    }

    /// Parsed index entries kept now, by every reader together.
    #[cfg(test)]
    pub fn parsed_index_entries(&self) -> usize {
        self.indexes.lock().held_entries
    }

    /// A smaller store-wide bound on parsed index entries (tests of the bound).
    #[cfg(test)]
    pub(crate) fn with_index_bound(self, max_entries: usize) -> ReadCache {
        self.indexes.lock().max_entries = max_entries;
        self
    }

    /// Bytes `range` of the object `key` (whose size is `object_len`), from cached chunks,
    /// fetching the missing ones.
    pub fn read(
        &self,
        key: &str,
        object_len: u64,
        range: Range<u64>,
    ) -> Result<Bytes, RemoteError> {
        if range.start > range.end || range.end > object_len {
            return Err(RemoteError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "bytes {}..{} asked of an object of {object_len} bytes",
                    range.start, range.end
                ),
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let first = range.start / self.chunk_size;
        let last = (range.end - 1) / self.chunk_size;
        let mut out = None::<BytesMut>;
        let mut single = Bytes::new();
        for n in first..=last {
            let (at, piece) = self.chunk(key, object_len, n, &range)?;
            let chunk_end = (n * self.chunk_size + self.chunk_size).min(object_len);
            let from = range.start.max(n * self.chunk_size) - at;
            let to = range.end.min(chunk_end) - at;
            let part = piece.slice(from as usize..to as usize);
            if first == last {
                single = part;
            } else {
                // The caller bounds `range` (whole batches up to its max bytes); the buffer
                // still grows with the bytes actually read, from a bounded start.
                out.get_or_insert_with(|| {
                    BytesMut::with_capacity((range.end - range.start).min(MAX_CHUNK_SIZE) as usize)
                })
                .extend_from_slice(&part);
            }
        }
        let out = out.map_or(single, BytesMut::freeze);
        RemoteMetrics::add(&self.metrics.remote.read_bytes, out.len() as u64);
        Ok(out)
    }

    /// Forgets every chunk of `key` (the object was deleted), removing their files; a fetch
    /// of `key` in progress will not cache what it gets.
    pub fn forget(&self, key: &str) {
        self.indexes.lock().remove(key);
        let mut state = self.state.lock();
        let ids: Vec<ChunkId> = state
            .chunks
            .range((key.to_string(), 0)..=(key.to_string(), u64::MAX))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.evict(&mut state, &id);
        }
        let before = state.in_flight.len();
        state.in_flight.retain(|(k, _), _| k != key);
        if state.in_flight.len() != before {
            self.fetched.notify_all();
        }
    }

    /// Bytes held now (chunk files in the folder, and files being written). Never waits for
    /// the cache's lock: the metrics endpoint reads it on an async worker.
    pub fn cached_bytes(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Publishes `cached + reserved` for [`Self::cached_bytes`]; called under the state lock
    /// after every change of either.
    fn publish(&self, state: &State) {
        self.held
            .store(state.cached + state.reserved, Ordering::Release);
    }

    /// Chunk `n` of `key`, at least the caller's part of it (`wanted`): where the answered
    /// bytes start in the object, and the bytes. A cached chunk answers just that part (read
    /// from its file); a fetched one answers the whole chunk, unless it cannot be cached at
    /// all (bigger than the bound, or no room beside fetches in progress): then only the
    /// caller's part is fetched.
    fn chunk(
        &self,
        key: &str,
        object_len: u64,
        n: u64,
        wanted: &Range<u64>,
    ) -> Result<(u64, Bytes), RemoteError> {
        let id: ChunkId = (key.to_string(), n);
        let start = n * self.chunk_size;
        let len = self.chunk_size.min(object_len - start);
        loop {
            match self.plan(&id, object_len, len, wanted) {
                Plan::Hit(file, file_len) => {
                    // Only the caller's part of the chunk is read from its file.
                    let from = wanted.start.max(start);
                    let to = wanted.end.min(start + len);
                    match read_chunk_file(&file, file_len, len, from - start..to - start) {
                        Ok(bytes) => return Ok((from, bytes)),
                        Err(e) => {
                            // A damaged or short chunk file: drop it and fetch again.
                            tracing::warn!(
                                key,
                                chunk = n,
                                error = %e,
                                "remote read cache: a chunk file could not be read back; fetching again"
                            );
                            let mut state = self.state.lock();
                            self.evict(&mut state, &id);
                        }
                    }
                }
                Plan::Wait => {
                    let mut state = self.state.lock();
                    state.waiting += 1;
                    // Tells whoever watches the waiting readers (tests) there is one more.
                    self.fetched.notify_all();
                    while state.in_flight.contains_key(&id) {
                        self.fetched.wait(&mut state);
                    }
                    state.waiting -= 1;
                }
                Plan::Fetch {
                    range,
                    token,
                    cache,
                } => {
                    let at = range.start;
                    return self
                        .fetch(key, n, len, range, token, cache)
                        .map(|b| (at, b));
                }
            }
        }
    }

    /// Decides, under the lock, how chunk `id` (`len` bytes) is got; reserves room for a
    /// fetch to cache, and counts the hit or the miss.
    fn plan(&self, id: &ChunkId, object_len: u64, len: u64, wanted: &Range<u64>) -> Plan {
        let mut state = self.state.lock();
        if let Some(c) = state.chunks.get(id) {
            let (file, file_len, old) = (c.file, c.len, c.used);
            let path = self.chunk_path(file);
            match File::open(&path) {
                Ok(f) => {
                    let tick = state.next();
                    state.lru.remove(&old);
                    state.lru.insert(tick, id.clone());
                    if let Some(c) = state.chunks.get_mut(id) {
                        c.used = tick;
                    }
                    RemoteMetrics::add(&self.metrics.remote.cache_hits, 1);
                    return Plan::Hit(f, file_len);
                }
                Err(e) => {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "remote read cache: a chunk file is gone; fetching again"
                    );
                    self.evict(&mut state, id);
                }
            }
        }
        if state.in_flight.contains_key(id) {
            return Plan::Wait;
        }
        RemoteMetrics::add(&self.metrics.remote.cache_misses, 1);
        let start = id.1 * self.chunk_size;
        // One ranged get for the run of missing chunks from this one to the end of the
        // caller's range and one chunk ahead, stopping at a chunk cached or being fetched,
        // at the object's end, and at what the bound can hold.
        let last = (wanted.end - 1) / self.chunk_size + 1;
        let mut lens = vec![len];
        let mut total = len;
        for n in id.1 + 1..=last {
            let at = n * self.chunk_size;
            if at >= object_len {
                break;
            }
            let next: ChunkId = (id.0.clone(), n);
            let next_len = self.chunk_size.min(object_len - at);
            if state.chunks.contains_key(&next)
                || state.in_flight.contains_key(&next)
                || total + next_len > self.max_bytes
            {
                break;
            }
            lens.push(next_len);
            total += next_len;
        }
        self.make_room(&mut state, total);
        let free = self.max_bytes.saturating_sub(state.cached + state.reserved);
        // Fetches in progress may hold part of the room: fewer chunks then.
        while total > free && lens.len() > 1 {
            total -= lens.pop().unwrap_or(0);
        }
        if total > free {
            // Cannot be kept (bigger than the bound, or the rest is reserved by fetches in
            // progress): fetch just what the caller wants of it.
            let from = wanted.start.max(start);
            let to = wanted.end.min(start + len);
            return Plan::Fetch {
                range: from..to,
                token: 0,
                cache: false,
            };
        }
        state.reserved += total;
        self.publish(&state);
        let token = state.next();
        for n in id.1..id.1 + lens.len() as u64 {
            state.in_flight.insert((id.0.clone(), n), token);
        }
        Plan::Fetch {
            range: start..start + total,
            token,
            cache: true,
        }
    }

    /// Fetches `range`; with `cache`, it is chunk `n` (`len` bytes) and the chunks after it:
    /// their files are written into the room reserved and published, and chunk `n` answered.
    /// Without, the bytes fetched are answered as they are.
    fn fetch(
        &self,
        key: &str,
        n: u64,
        len: u64,
        range: Range<u64>,
        token: u64,
        cache: bool,
    ) -> Result<Bytes, RemoteError> {
        let want = range.end - range.start;
        let fetched = self.store.get_range(key, range.clone()).and_then(|bytes| {
            if bytes.len() as u64 == want {
                Ok(bytes)
            } else {
                Err(RemoteError::Corrupt {
                    key: key.to_string(),
                    reason: format!(
                        "asked for {want} bytes at {}, got {}",
                        range.start,
                        bytes.len()
                    ),
                })
            }
        });
        let bytes = match fetched {
            Ok(b) => b,
            Err(e) => {
                if cache {
                    let mut state = self.state.lock();
                    state.reserved -= want;
                    self.publish(&state);
                    state.in_flight.retain(|_, t| *t != token);
                    self.fetched.notify_all();
                }
                return Err(e);
            }
        };
        RemoteMetrics::add(&self.metrics.remote.fetched_bytes, want);
        if !cache {
            return Ok(bytes);
        }
        let mut pieces = vec![(n, bytes.slice(..len as usize))];
        let mut at = len;
        while at < want {
            let end = (at + self.chunk_size).min(want);
            pieces.push((
                n + pieces.len() as u64,
                bytes.slice(at as usize..end as usize),
            ));
            at = end;
        }
        let mut written = Vec::with_capacity(pieces.len());
        for (chunk, piece) in &pieces {
            let file = self.state.lock().next();
            match self.write_chunk_file(file, piece) {
                Ok(()) => written.push((*chunk, file, piece.len() as u64)),
                Err(e) => tracing::warn!(
                    key,
                    chunk,
                    error = %e,
                    "remote read cache: could not keep a chunk on disk; served from memory"
                ),
            }
        }
        let mut state = self.state.lock();
        state.reserved -= want;
        for (chunk, file, file_len) in written {
            let id: ChunkId = (key.to_string(), chunk);
            if state.in_flight.get(&id) == Some(&token) && !state.chunks.contains_key(&id) {
                let used = state.next();
                state.lru.insert(used, id.clone());
                state.chunks.insert(
                    id,
                    Cached {
                        file,
                        len: file_len,
                        used,
                    },
                );
                state.cached += file_len;
            } else {
                // Forgotten meanwhile: the object is gone, keep nothing of it.
                let _ = fs::remove_file(self.chunk_path(file));
            }
        }
        self.publish(&state);
        state.in_flight.retain(|_, t| *t != token);
        self.fetched.notify_all();
        drop(state);
        Ok(pieces.swap_remove(0).1)
    }

    /// Evicts least recently used chunks until `more` bytes fit under the bound (reserved
    /// bytes of fetches in progress count as held).
    fn make_room(&self, state: &mut State, more: u64) {
        while state.cached + state.reserved + more > self.max_bytes {
            let Some((_, id)) = state.lru.iter().next().map(|(t, id)| (*t, id.clone())) else {
                break;
            };
            self.evict(state, &id);
        }
    }

    /// Drops chunk `id` and removes its file (under the lock, so the folder never holds more
    /// than the accounting says).
    fn evict(&self, state: &mut State, id: &ChunkId) {
        if let Some(c) = state.chunks.remove(id) {
            state.lru.remove(&c.used);
            state.cached -= c.len;
            self.publish(state);
            let path = self.chunk_path(c.file);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "remote read cache: could not remove an evicted chunk"
                    );
                }
            }
        }
    }

    fn chunk_path(&self, file: u64) -> PathBuf {
        self.dir.join(format!("{file}.chunk"))
    }

    /// Writes a chunk whole under a temporary name, then renames it to its own.
    fn write_chunk_file(&self, file: u64, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{file}.tmp"));
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|()| fs::rename(&tmp, self.chunk_path(file)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

impl ParsedIndexes {
    fn remove(&mut self, key: &str) {
        if let Some((used, entries)) = self.by_key.remove(key) {
            self.lru.remove(&used);
            self.held_entries -= entries.len();
        }
    }
}

/// True for the names the cache writes: `<n>.chunk` and `<n>.tmp`, `n` a decimal number.
fn is_own_file_name(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some((number, ext)) = name.rsplit_once('.') else {
        return false;
    };
    (ext == "chunk" || ext == "tmp")
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Reads bytes `part` of a cached chunk file, which must hold exactly `file_len` bytes (= the
/// chunk's `len`).
fn read_chunk_file(file: &File, file_len: u64, len: u64, part: Range<u64>) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    if file_len != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the chunk file holds {file_len} bytes, the chunk {len}"),
        ));
    }
    let on_disk = file.metadata()?.len();
    if on_disk != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the chunk file is {on_disk} bytes long, {len} expected"),
        ));
    }
    let mut buf = BytesMut::zeroed((part.end - part.start) as usize);
    file.read_exact_at(&mut buf, part.start)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::metrics::StoreMetrics;
    use crate::remote::{FaultyRemote, ObjectStoreRemote, RemoteConfig};

    struct Fixture {
        _remote_dir: tempfile::TempDir,
        cache_dir: tempfile::TempDir,
        remote: Arc<FaultyRemote>,
        metrics: Arc<StoreMetrics>,
    }

    fn fixture() -> Fixture {
        let remote_dir = tempfile::tempdir().expect("temp dir");
        let fs = ObjectStoreRemote::open(RemoteConfig::filesystem(remote_dir.path()))
            .expect("filesystem remote");
        Fixture {
            _remote_dir: remote_dir,
            cache_dir: tempfile::tempdir().expect("temp dir"),
            remote: FaultyRemote::new(Arc::new(fs)),
            metrics: Arc::new(StoreMetrics::default()),
        }
    }

    impl Fixture {
        fn cache(&self, max_bytes: u64, chunk_size: u64) -> ReadCache {
            ReadCache::open(
                self.cache_dir.path(),
                max_bytes,
                chunk_size,
                self.remote.clone(),
                self.metrics.clone(),
            )
            .expect("open cache")
        }

        /// Stores an object of `len` bytes whose every byte depends on the key and position.
        fn object(&self, key: &str, len: usize) -> Vec<u8> {
            let seed = key
                .bytes()
                .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 8) as u8)
                .collect();
            self.remote
                .put(key, &mut &data[..], len as u64)
                .expect("put object");
            data
        }

        /// Bytes of the files in the cache folder, counted on disk.
        fn folder_bytes(&self) -> u64 {
            fs::read_dir(self.cache_dir.path())
                .expect("read cache dir")
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        }

        fn folder_files(&self) -> usize {
            fs::read_dir(self.cache_dir.path())
                .expect("read cache dir")
                .count()
        }

        fn metric(&self, f: impl Fn(&RemoteMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
            RemoteMetrics::get(f(&self.metrics.remote))
        }
    }

    /// A small deterministic generator (xorshift) for read patterns.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Bound attacked: reading far more than `cache_max_bytes` (several objects, sequential
    /// and random ranges, ranges across chunks) never leaves more than `cache_max_bytes` in
    /// the cache folder, counted in bytes on disk after every read; every answer byte-exact.
    #[test]
    fn reads_of_more_than_the_bound_keep_the_folder_under_it() {
        let f = fixture();
        const MAX: u64 = 3_500;
        let cache = f.cache(MAX, 1_000);
        let objects: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| {
                let key = format!("topics/1-1-0/0/{i:020}-1.log");
                let data = f.object(&key, 9_500 + i * 777);
                (key, data)
            })
            .collect();
        let mut read = 0u64;
        // Sequential, in reads that straddle chunks.
        for (key, data) in &objects {
            let mut at = 0;
            while at < data.len() {
                let end = (at + 1_234).min(data.len());
                let got = cache
                    .read(key, data.len() as u64, at as u64..end as u64)
                    .expect("sequential read");
                assert_eq!(&got[..], &data[at..end], "{key} bytes {at}..{end}");
                read += got.len() as u64;
                assert!(
                    f.folder_bytes() <= MAX,
                    "folder {} > {MAX}",
                    f.folder_bytes()
                );
                assert!(cache.cached_bytes() <= MAX);
                at = end;
            }
        }
        // Random ranges over all objects.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let (key, data) = &objects[(next(&mut rng) % 3) as usize];
            let start = next(&mut rng) % data.len() as u64;
            let end = (start + next(&mut rng) % 2_600).min(data.len() as u64);
            let got = cache
                .read(key, data.len() as u64, start..end)
                .expect("random read");
            assert_eq!(&got[..], &data[start as usize..end as usize]);
            read += got.len() as u64;
            let on_disk = f.folder_bytes();
            assert!(on_disk <= MAX, "folder {on_disk} > {MAX} bytes");
            assert_eq!(
                on_disk,
                cache.cached_bytes(),
                "accounting matches the folder"
            );
        }
        assert!(read > 20 * MAX, "the test read {read} bytes only");
        assert_eq!(f.metric(|m| &m.read_bytes), read);
        assert!(f.metric(|m| &m.cache_hits) > 0);
        assert_eq!(
            f.metric(|m| &m.fetched_bytes),
            f.remote.counts().get_range_bytes
        );
    }

    /// Bound attacked from several threads at once: the accounting (which reserves room
    /// before any file is written) never exceeds the bound, and the folder ends under it.
    #[test]
    fn concurrent_readers_stay_under_the_bound() {
        let f = fixture();
        const MAX: u64 = 4_000;
        let cache = Arc::new(f.cache(MAX, 700));
        let objects: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
            (0..4)
                .map(|i| {
                    let key = format!("o{i}");
                    let data = f.object(&key, 6_000 + i * 100);
                    (key, data)
                })
                .collect(),
        );
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (cache, objects) = (cache.clone(), objects.clone());
                std::thread::spawn(move || {
                    let mut rng = 0x1234_5678_9abc_def1u64 ^ (t + 1);
                    for _ in 0..150 {
                        let (key, data) = &objects[(next(&mut rng) % 4) as usize];
                        let start = next(&mut rng) % data.len() as u64;
                        let end = (start + next(&mut rng) % 1_500).min(data.len() as u64);
                        let got = cache
                            .read(key, data.len() as u64, start..end)
                            .expect("read");
                        assert_eq!(&got[..], &data[start as usize..end as usize]);
                        assert!(cache.cached_bytes() <= MAX);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader thread");
        }
        assert!(f.folder_bytes() <= MAX);
        assert_eq!(f.folder_bytes(), cache.cached_bytes());
    }

    /// A miss fetches its chunk and the next one in one ranged get; reading the next chunk
    /// then costs no request. The read-ahead stops at the object's end.
    #[test]
    fn a_miss_fetches_the_chunk_and_the_next_ahead_in_one_get() {
        let f = fixture();
        let cache = f.cache(1 << 20, 1_000);
        let data = f.object("k", 2_500);
        assert_eq!(
            &cache.read("k", 2_500, 10..20).expect("read")[..],
            &data[10..20]
        );
        let c = f.remote.counts();
        assert_eq!((c.get_ranges, c.get_range_bytes), (1, 2_000));
        assert_eq!(
            &cache.read("k", 2_500, 1_000..2_000).expect("read")[..],
            &data[1_000..2_000]
        );
        assert_eq!(f.remote.counts().get_ranges, 1, "chunk 1 came ahead");
        // Chunk 2 is the object's last 500 bytes: nothing beyond it is asked for.
        assert_eq!(
            &cache.read("k", 2_500, 2_400..2_500).expect("read")[..],
            &data[2_400..]
        );
        let c = f.remote.counts();
        assert_eq!((c.get_ranges, c.get_range_bytes), (2, 2_500));
        assert_eq!(f.metric(|m| &m.cache_misses), 2);
        assert_eq!(f.metric(|m| &m.cache_hits), 1);
        assert_eq!(f.metric(|m| &m.fetched_bytes), 2_500);
        assert_eq!(cache.cached_bytes(), 2_500);
        // All cached now: a read across every chunk costs nothing remote.
        assert_eq!(
            &cache.read("k", 2_500, 0..2_500).expect("read")[..],
            &data[..]
        );
        assert_eq!(f.remote.counts().get_ranges, 2);
    }

    /// A read across several missing chunks fetches them (and one ahead) in one ranged get;
    /// a read larger than the bound fetches what fits at a time and stays under it.
    #[test]
    fn a_read_across_missing_chunks_fetches_them_in_one_get() {
        let f = fixture();
        let cache = f.cache(1 << 20, 1_000);
        let data = f.object("k", 10_000);
        assert_eq!(
            &cache.read("k", 10_000, 1_500..5_200).expect("read")[..],
            &data[1_500..5_200]
        );
        let c = f.remote.counts();
        assert_eq!(
            (c.get_ranges, c.get_range_bytes),
            (1, 6_000),
            "chunks 1..=5 and 6 ahead"
        );
        // Chunk 1 is cached: the run stops there and only chunk 0 is fetched.
        assert_eq!(
            &cache.read("k", 10_000, 0..4_000).expect("read")[..],
            &data[..4_000]
        );
        let c = f.remote.counts();
        assert_eq!((c.get_ranges, c.get_range_bytes), (2, 7_000));

        let g = fixture();
        const MAX: u64 = 3_000;
        let small = g.cache(MAX, 1_000);
        let data = g.object("k", 10_000);
        assert_eq!(
            &small.read("k", 10_000, 0..10_000).expect("read")[..],
            &data[..]
        );
        assert!(g.folder_bytes() <= MAX);
        let c = g.remote.counts();
        assert_eq!(c.get_range_bytes, 10_000, "every byte fetched once");
        assert_eq!(c.get_ranges, 4, "3 + 3 + 3 + 1 chunks");
    }

    /// Least recently used chunks go first.
    #[test]
    fn eviction_takes_the_least_recently_used_chunk() {
        let f = fixture();
        let cache = f.cache(3_000, 1_000);
        let data = f.object("k", 10_000);
        cache.read("k", 10_000, 0..10).expect("read"); // fetches 0 and 1
        cache.read("k", 10_000, 0..10).expect("read"); // 0 is now newer than 1
        cache.read("k", 10_000, 5_000..5_010).expect("read"); // 5 and 6: evicts 1
        assert_eq!(f.remote.counts().get_ranges, 2);
        assert_eq!(
            &cache.read("k", 10_000, 0..1_000).expect("read")[..],
            &data[..1_000]
        );
        assert_eq!(f.remote.counts().get_ranges, 2, "chunk 0 was kept");
        cache.read("k", 10_000, 1_000..1_010).expect("read");
        assert_eq!(f.remote.counts().get_ranges, 3, "chunk 1 was evicted");
        assert!(f.folder_bytes() <= 3_000);
    }

    /// Concurrent misses of one chunk fetch it once: the others wait for the first and read
    /// its file.
    #[test]
    fn concurrent_misses_of_one_chunk_fetch_it_once() {
        let f = fixture();
        let cache = Arc::new(f.cache(1 << 20, 1_000));
        let data = f.object("k", 3_000);
        f.remote.set_paused(true);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.read("k", 3_000, 100..900))
            })
            .collect();
        assert!(
            f.remote.wait_for_held_calls(1, Duration::from_secs(10)),
            "no fetch reached the store within 10 s"
        );
        {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut state = cache.state.lock();
            while state.waiting < 3 {
                assert!(
                    !cache.fetched.wait_until(&mut state, deadline).timed_out()
                        || state.waiting >= 3,
                    "3 readers were not waiting for the fetch within 10 s"
                );
            }
        }
        assert_eq!(f.remote.held_calls(), 1, "one fetch only");
        f.remote.set_paused(false);
        for r in readers {
            let got = r.join().expect("reader").expect("read");
            assert_eq!(&got[..], &data[100..900]);
        }
        assert_eq!(f.remote.counts().get_ranges, 1);
        assert_eq!(f.metric(|m| &m.cache_misses), 1);
        assert_eq!(f.metric(|m| &m.cache_hits), 3);
    }

    /// A store that is down fails the read (retriable), leaks no reservation, and leaves no
    /// waiter hanging; once up, the same read works.
    #[test]
    fn a_failed_fetch_leaves_nothing_behind() {
        let f = fixture();
        let cache = f.cache(10_000, 1_000);
        let data = f.object("k", 3_000);
        f.remote.set_down(true);
        let err = cache.read("k", 3_000, 0..10).expect_err("store down");
        assert!(err.is_retriable(), "{err}");
        assert_eq!(cache.cached_bytes(), 0);
        assert_eq!(f.folder_files(), 0);
        assert!(cache.state.lock().in_flight.is_empty());
        f.remote.set_down(false);
        assert_eq!(
            &cache.read("k", 3_000, 0..10).expect("read")[..],
            &data[..10]
        );
        assert_eq!(cache.cached_bytes(), 2_000);
    }

    /// `forget` removes a deleted object's chunks (files and bytes); other objects stay.
    #[test]
    fn forget_removes_the_objects_chunks() {
        let f = fixture();
        let cache = f.cache(10_000, 1_000);
        f.object("a", 2_000);
        f.object("b", 1_000);
        cache.read("a", 2_000, 0..10).expect("read");
        cache.read("b", 1_000, 0..10).expect("read");
        assert_eq!(cache.cached_bytes(), 3_000);
        cache.forget("a");
        assert_eq!(cache.cached_bytes(), 1_000);
        assert_eq!(f.folder_bytes(), 1_000);
        assert_eq!(f.folder_files(), 1);
    }

    /// A chunk bigger than the whole bound is never kept: the read fetches just its bytes.
    #[test]
    fn a_chunk_over_the_bound_is_served_without_caching() {
        let f = fixture();
        let cache = f.cache(500, 1_000);
        let data = f.object("k", 3_000);
        assert_eq!(
            &cache.read("k", 3_000, 900..1_300).expect("read")[..],
            &data[900..1_300]
        );
        assert_eq!(f.remote.counts().get_range_bytes, 400);
        assert_eq!(cache.cached_bytes(), 0);
        assert_eq!(f.folder_files(), 0);
    }

    /// A damaged chunk file (cut short) is noticed and fetched again, not served.
    #[test]
    fn a_damaged_chunk_file_is_fetched_again() {
        let f = fixture();
        let cache = f.cache(10_000, 1_000);
        let data = f.object("k", 1_000);
        cache.read("k", 1_000, 0..10).expect("read");
        let file = fs::read_dir(f.cache_dir.path())
            .expect("dir")
            .next()
            .expect("one chunk file")
            .expect("entry")
            .path();
        fs::write(&file, b"short").expect("damage");
        assert_eq!(
            &cache.read("k", 1_000, 0..1_000).expect("read")[..],
            &data[..]
        );
        assert_eq!(f.remote.counts().get_ranges, 2);
        assert_eq!(f.folder_bytes(), 1_000);
    }

    /// Bound attacked: what opening the cache deletes. Only the cache's own files (`<n>.chunk`,
    /// `<n>.tmp`) of an earlier run go; any other file or folder in `cache_dir` (a data
    /// directory set there by mistake, another program's files) survives untouched.
    #[test]
    fn open_removes_only_the_caches_own_files() {
        let f = fixture();
        let dir = f.cache_dir.path();
        fs::write(dir.join("7.chunk"), b"old").expect("write");
        fs::write(dir.join("8.tmp"), b"half").expect("write");
        let foreign = [
            "catalog",
            "notes.txt",
            "x.chunk",
            "7.chunk.bak",
            "00000000000000000000.log",
        ];
        for name in foreign {
            fs::write(dir.join(name), name.as_bytes()).expect("write");
        }
        fs::create_dir(dir.join("1")).expect("mkdir");
        fs::write(dir.join("1").join("9.chunk"), b"theirs").expect("write");
        fs::create_dir(dir.join("5.chunk")).expect("mkdir");
        let cache = f.cache(10_000, 1_000);
        assert!(!dir.join("7.chunk").exists(), "an old chunk survived");
        assert!(
            !dir.join("8.tmp").exists(),
            "an old temporary file survived"
        );
        for name in foreign {
            assert_eq!(
                fs::read(dir.join(name)).expect("a foreign file was deleted"),
                name.as_bytes()
            );
        }
        assert_eq!(
            fs::read(dir.join("1").join("9.chunk")).expect("a foreign folder was emptied"),
            b"theirs"
        );
        assert!(dir.join("5.chunk").is_dir(), "a foreign folder was deleted");
        assert_eq!(cache.cached_bytes(), 0);
    }

    /// Bound attacked: `cached_bytes` (read by the metrics on an async worker) never waits
    /// for the cache's lock, which eviction holds while it removes files.
    #[test]
    fn cached_bytes_is_read_without_the_caches_lock() {
        let f = fixture();
        let cache = Arc::new(f.cache(10_000, 1_000));
        f.object("k", 2_500);
        cache.read("k", 2_500, 0..10).expect("read");
        let held = cache.state.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = Arc::clone(&cache);
        let t = std::thread::spawn(move || {
            let _ = tx.send(reader.cached_bytes());
        });
        let got = rx.recv_timeout(Duration::from_secs(20));
        let expected = held.cached + held.reserved;
        drop(held);
        t.join().expect("thread");
        assert_eq!(
            got.expect("cached_bytes waited for the cache's lock"),
            expected
        );
        assert_eq!(expected, 2_000);
    }

    /// Bad arguments are errors, never panics or huge allocations.
    #[test]
    fn bad_ranges_and_chunk_sizes_are_refused() {
        let f = fixture();
        for bad in [0, MAX_CHUNK_SIZE + 1] {
            let opened = ReadCache::open(
                f.cache_dir.path(),
                1_000,
                bad,
                f.remote.clone(),
                f.metrics.clone(),
            );
            assert!(
                matches!(opened, Err(RemoteError::Config(_))),
                "chunk size {bad}"
            );
        }
        let cache = f.cache(10_000, 1_000);
        f.object("k", 100);
        assert!(matches!(
            cache.read("k", 100, 50..101),
            Err(RemoteError::Corrupt { .. })
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 60..50;
        assert!(cache.read("k", 100, backwards).is_err());
        assert!(cache.read("k", 100, 100..100).expect("empty").is_empty());
        // The manifest said the object is longer than it is: reported, not cached.
        assert!(matches!(
            cache.read("k", u64::MAX, 0..10),
            Err(RemoteError::Corrupt { .. })
        ));
        assert_eq!(f.folder_files(), 0);
        assert_eq!(cache.cached_bytes(), 0);
    }
}
