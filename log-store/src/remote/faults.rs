//! [`FaultyRemote`]: a [`RemoteStore`] wrapper for tests that makes a real remote store fail
//! on demand and counts what went through it. It owns no storage: every call that is let
//! through goes to the wrapped store, so what tests observe is the real store's behaviour
//! plus the faults they asked for.
//!
//! - down/up: while down, every call fails with [`RemoteError::Unavailable`] before reaching
//!   the store (an unreachable or timed-out object store);
//! - failing puts: puts whose key contains a pattern fail (a kill or an error between the
//!   segment objects and the manifest), optionally only after a number of puts succeeded;
//! - pause: calls wait until resumed (a slow store; lets a test hold a call in flight and
//!   act meanwhile, with a bounded wait for the held calls instead of a sleep);
//! - counts: calls and bytes per operation, failures included in the calls.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use super::{RemoteError, RemoteStore};

/// Calls and bytes that went through a [`FaultyRemote`] (calls include failed ones; bytes
/// count only what the wrapped store accepted or answered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteCallCounts {
    pub puts: u64,
    pub put_bytes: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub get_ranges: u64,
    pub get_range_bytes: u64,
    pub deletes: u64,
    /// Whole listings ([`RemoteStore::list`]).
    pub lists: u64,
    /// Streamed listings ([`RemoteStore::list_each`]), forwarded as streams.
    pub streamed_lists: u64,
    /// Calls refused by a fault (down, or a failing put).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    put_bytes: AtomicU64,
    gets: AtomicU64,
    get_bytes: AtomicU64,
    get_ranges: AtomicU64,
    get_range_bytes: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    streamed_lists: AtomicU64,
    failed: AtomicU64,
}

/// Which puts fail.
#[derive(Debug, Default)]
struct PutFault {
    /// Puts whose key contains this fail; `None`: no put fails by key.
    pattern: Option<String>,
    /// Matching puts still let through before they start failing.
    allowed: u64,
}

#[derive(Debug, Default)]
struct Pause {
    paused: bool,
    /// Calls waiting now.
    waiting: usize,
}

/// A remote store that fails when told to (tests only). Build it with [`FaultyRemote::new`]
/// and hand the `Arc` to the store as its `Arc<dyn RemoteStore>`; keep a clone to steer it.
#[doc(hidden)]
#[derive(Debug)]
pub struct FaultyRemote {
    inner: Arc<dyn RemoteStore>,
    down: AtomicBool,
    put_fault: Mutex<PutFault>,
    pause: Mutex<Pause>,
    resumed: Condvar,
    counters: Counters,
}

impl FaultyRemote {
    /// Wraps `inner`, up and without faults.
    pub fn new(inner: Arc<dyn RemoteStore>) -> Arc<FaultyRemote> {
        Arc::new(FaultyRemote {
            inner,
            down: AtomicBool::new(false),
            put_fault: Mutex::new(PutFault::default()),
            pause: Mutex::new(Pause::default()),
            resumed: Condvar::new(),
            counters: Counters::default(),
        })
    }

    /// The wrapped store (to look at what really is there, bypassing the faults).
    pub fn inner(&self) -> &Arc<dyn RemoteStore> {
        &self.inner
    }

    /// Takes the store down (`true`: every call fails `Unavailable`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Makes every put whose key contains `pattern` fail `Unavailable` (for example
    /// `"manifest"`: the segment objects go up, the manifest does not); `None` clears it.
    pub fn fail_puts_matching(&self, pattern: Option<&str>) {
        self.fail_puts_matching_after(pattern, 0);
    }

    /// Like [`FaultyRemote::fail_puts_matching`], but lets the first `allowed` matching puts
    /// through (for example `(".log", 1)`: the second segment's upload fails).
    pub fn fail_puts_matching_after(&self, pattern: Option<&str>, allowed: u64) {
        *self.put_fault.lock() = PutFault {
            pattern: pattern.map(str::to_string),
            allowed,
        };
    }

    /// Holds every call (`true`) until resumed (`false`), like a store that does not answer.
    pub fn set_paused(&self, paused: bool) {
        let mut pause = self.pause.lock();
        pause.paused = paused;
        if !paused {
            self.resumed.notify_all();
        }
    }

    /// Waits until at least `calls` calls are held by the pause, at most `timeout`; false if
    /// they were not there in time.
    pub fn wait_for_held_calls(&self, calls: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pause = self.pause.lock();
        while pause.waiting < calls {
            if self.resumed.wait_until(&mut pause, deadline).timed_out() {
                return pause.waiting >= calls;
            }
        }
        true
    }

    /// Calls held by the pause now.
    pub fn held_calls(&self) -> usize {
        self.pause.lock().waiting
    }

    /// What went through so far.
    pub fn counts(&self) -> RemoteCallCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        RemoteCallCounts {
            puts: get(&c.puts),
            put_bytes: get(&c.put_bytes),
            gets: get(&c.gets),
            get_bytes: get(&c.get_bytes),
            get_ranges: get(&c.get_ranges),
            get_range_bytes: get(&c.get_range_bytes),
            deletes: get(&c.deletes),
            lists: get(&c.lists),
            streamed_lists: get(&c.streamed_lists),
            failed: get(&c.failed),
        }
    }

    /// Sets every count back to zero.
    pub fn reset_counts(&self) {
        let c = &self.counters;
        for a in [
            &c.puts,
            &c.put_bytes,
            &c.gets,
            &c.get_bytes,
            &c.get_ranges,
            &c.get_range_bytes,
            &c.deletes,
            &c.lists,
            &c.streamed_lists,
            &c.failed,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }

    /// Counts the call, waits while paused, then fails it if the store is down.
    fn enter(&self, counter: &AtomicU64, key: &str) -> Result<(), RemoteError> {
        counter.fetch_add(1, Ordering::SeqCst);
        {
            let mut pause = self.pause.lock();
            if pause.paused {
                pause.waiting += 1;
                // Wakes whoever waits for held calls.
                self.resumed.notify_all();
                while pause.paused {
                    self.resumed.wait(&mut pause);
                }
                pause.waiting -= 1;
            }
        }
        if self.is_down() {
            return Err(self.refuse(key, "the store is down (test fault)"));
        }
        Ok(())
    }

    fn refuse(&self, key: &str, reason: &str) -> RemoteError {
        self.counters.failed.fetch_add(1, Ordering::SeqCst);
        RemoteError::Unavailable {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    /// True when this put must fail by its key.
    fn put_fails(&self, key: &str) -> bool {
        let mut fault = self.put_fault.lock();
        let matches = fault.pattern.as_deref().is_some_and(|p| key.contains(p));
        if !matches {
            return false;
        }
        if fault.allowed > 0 {
            fault.allowed -= 1;
            return false;
        }
        true
    }
}

impl RemoteStore for FaultyRemote {
    fn put(&self, key: &str, source: &mut dyn std::io::Read, len: u64) -> Result<(), RemoteError> {
        self.enter(&self.counters.puts, key)?;
        if self.put_fails(key) {
            return Err(self.refuse(key, "puts of this key fail (test fault)"));
        }
        self.inner.put(key, source, len)?;
        self.counters.put_bytes.fetch_add(len, Ordering::SeqCst);
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, RemoteError> {
        self.enter(&self.counters.gets, key)?;
        let got = self.inner.get(key)?;
        if let Some(bytes) = &got {
            self.counters
                .get_bytes
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
        }
        Ok(got)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        self.enter(&self.counters.get_ranges, key)?;
        let got = self.inner.get_range(key, range)?;
        self.counters
            .get_range_bytes
            .fetch_add(got.len() as u64, Ordering::SeqCst);
        Ok(got)
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        self.enter(&self.counters.deletes, key)?;
        self.inner.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        self.enter(&self.counters.lists, prefix)?;
        self.inner.list(prefix)
    }

    fn list_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(String) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        self.enter(&self.counters.streamed_lists, prefix)?;
        self.inner.list_each(prefix, each)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{ObjectStoreRemote, RemoteConfig};

    fn faulty() -> (tempfile::TempDir, Arc<FaultyRemote>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let fs = ObjectStoreRemote::open(RemoteConfig::filesystem(dir.path())).expect("open");
        (dir, FaultyRemote::new(Arc::new(fs)))
    }

    fn put(store: &dyn RemoteStore, key: &str, data: &[u8]) -> Result<(), RemoteError> {
        store.put(key, &mut &data[..], data.len() as u64)
    }

    #[test]
    fn down_fails_every_call_and_up_lets_them_through() {
        let (_dir, remote) = faulty();
        put(&*remote, "a", b"hello").expect("put while up");
        remote.set_down(true);
        assert!(matches!(
            put(&*remote, "b", b"x"),
            Err(RemoteError::Unavailable { .. })
        ));
        assert!(matches!(
            remote.get("a"),
            Err(RemoteError::Unavailable { .. })
        ));
        assert!(matches!(
            remote.get_range("a", 0..1),
            Err(RemoteError::Unavailable { .. })
        ));
        assert!(remote.delete("a").is_err());
        assert!(remote.list("").is_err());
        // Nothing reached the store while down.
        assert_eq!(remote.inner().get("b").expect("inner get"), None);
        remote.set_down(false);
        assert_eq!(
            remote.get("a").expect("get").as_deref(),
            Some(&b"hello"[..])
        );
        let c = remote.counts();
        assert_eq!(
            (c.puts, c.gets, c.get_ranges, c.deletes, c.lists),
            (2, 2, 1, 1, 1)
        );
        assert_eq!((c.put_bytes, c.get_bytes, c.failed), (5, 5, 5));
    }

    #[test]
    fn puts_matching_fail_after_the_allowed_ones() {
        let (_dir, remote) = faulty();
        remote.fail_puts_matching_after(Some(".log"), 1);
        put(&*remote, "p/1.log", b"one").expect("first .log allowed");
        assert!(put(&*remote, "p/2.log", b"two").is_err());
        put(&*remote, "p/manifest", b"m").expect("other keys unaffected");
        remote.fail_puts_matching(None);
        put(&*remote, "p/2.log", b"two").expect("cleared");
        let mut keys = remote.list("p/").expect("list");
        keys.sort();
        assert_eq!(keys, vec!["p/1.log", "p/2.log", "p/manifest"]);
        assert_eq!(remote.counts().failed, 1);
        remote.reset_counts();
        assert_eq!(remote.counts(), RemoteCallCounts::default());
    }

    #[test]
    fn paused_calls_wait_until_resumed() {
        let (_dir, remote) = faulty();
        put(&*remote, "k", b"value").expect("put");
        remote.set_paused(true);
        let reader = {
            let remote = Arc::clone(&remote);
            std::thread::spawn(move || remote.get("k"))
        };
        assert!(
            remote.wait_for_held_calls(1, Duration::from_secs(10)),
            "the get was not held within 10 s"
        );
        assert_eq!(remote.held_calls(), 1);
        remote.set_paused(false);
        let got = reader.join().expect("reader thread").expect("get");
        assert_eq!(got.as_deref(), Some(&b"value"[..]));
        assert_eq!(remote.held_calls(), 0);
    }
}
