//! The request budget: request bytes held in memory at once across both doors (Kafka's
//! `queued.max.request.bytes`, its MemoryPool). A connection takes a grant for a frame's whole
//! declared size after the size prefix has been checked and before any memory is reserved for
//! the body, and gives it back once the request is answered. A connection whose frame does not
//! fit waits, unread (backpressure): its bytes stay in the kernel's socket buffer, not in ours.
//!
//! So that one client cannot make everybody wait, a grant is taken in two steps:
//! 1. the address's share ([`RequestBudget::share`]): one address ([`address_key`]: an IPv6 /64
//!    counts as one) holds at most `max(capacity / 4, largest frame)` at once. Its connections
//!    over that wait here, in a line of the address's own, so nobody else queues behind them;
//! 2. the memory itself, from one of two pools that together are the capacity:
//!    - the general pool (`capacity - reserve`), first come first served, so a large request is
//!      not overtaken by small ones forever;
//!    - the small-request reserve (`capacity / 16`, less if the largest frame needs it), for
//!      requests of at most [`SMALL_REQUEST`] bytes (heartbeats, commits, metadata, pings) that
//!      find the general pool taken or queued for: they do not wait behind large requests.
//!
//! A connection holds at most one grant and waits for at most one at a time, and it waits for
//! memory only while holding its address's share for the same request (never another grant),
//! so waits cannot form a cycle: every grant held belongs to a request being read or answered,
//! which ends within the read timeout or the answer's idle timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::address_key;

/// Requests up to this size may use the small-request reserve.
pub const SMALL_REQUEST: usize = 64 * 1024;

/// Why a grant cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("a request of {bytes} bytes is larger than the request budget allows ({capacity} B)")]
    LargerThanBudget { bytes: usize, capacity: u64 },
}

/// The budget, with gauges of its use (bytes granted now, the most ever granted at once, and
/// connections waiting for a grant).
#[derive(Debug)]
pub struct RequestBudget {
    capacity: u64,
    /// The most one address holds at once.
    share: u64,
    general: Arc<Semaphore>,
    general_capacity: u64,
    reserve: Arc<Semaphore>,
    reserve_capacity: u64,
    addresses: Mutex<Addresses>,
    in_use: AtomicU64,
    peak: AtomicU64,
    waiting: AtomicU64,
}

/// Each address's share, while some connection of it holds or waits for part of it. A share
/// lives as long as its permits and waiters (they hold it strongly); dead entries are swept
/// when the table has doubled since the last sweep, so it stays within twice the addresses
/// that hold or wait for budget (at most one per connection).
#[derive(Debug)]
struct Addresses {
    shares: HashMap<IpAddr, Weak<Semaphore>>,
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

impl RequestBudget {
    /// A budget of `capacity` bytes, for doors whose largest frame is `largest_request` bytes.
    pub fn new(capacity: u64, largest_request: u64) -> Arc<RequestBudget> {
        let capacity = capacity.min(Semaphore::MAX_PERMITS as u64);
        // Never so large that the largest frame no longer fits the general pool.
        let reserve_capacity = (capacity / 16).min(capacity.saturating_sub(largest_request));
        let general_capacity = capacity - reserve_capacity;
        let share = (capacity / 4).max(largest_request).min(capacity);
        // All within MAX_PERMITS, so within usize.
        let permits = |n: u64| usize::try_from(n).unwrap_or(0);
        Arc::new(RequestBudget {
            capacity,
            share,
            general: Arc::new(Semaphore::new(permits(general_capacity))),
            general_capacity,
            reserve: Arc::new(Semaphore::new(permits(reserve_capacity))),
            reserve_capacity,
            addresses: Mutex::new(Addresses {
                shares: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
        })
    }

    /// Waits until `bytes` fit in `peer`'s share and in the budget, and takes them.
    pub async fn acquire(
        self: &Arc<Self>,
        peer: IpAddr,
        bytes: usize,
    ) -> Result<BudgetGrant, BudgetError> {
        let too_large = || BudgetError::LargerThanBudget {
            bytes,
            capacity: self.capacity,
        };
        let small = bytes <= SMALL_REQUEST && bytes as u64 <= self.reserve_capacity;
        if bytes as u64 > self.share || (!small && bytes as u64 > self.general_capacity) {
            return Err(too_large());
        }
        let n = u32::try_from(bytes).map_err(|_| too_large())?;
        let share = self.share_of(address_key(peer));
        let mut waiting = None;
        // Step 1: the address's own line.
        let address = match Arc::clone(&share).try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                waiting = Some(Waiting::new(&self.waiting));
                share
                    .acquire_many_owned(n)
                    .await
                    // The semaphores are never closed.
                    .map_err(|_| too_large())?
            }
        };
        // Step 2: the memory. A small request that finds the general pool taken (or a line
        // before it) uses the reserve instead of queuing behind large ones.
        let memory = match Arc::clone(&self.general).try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                if waiting.is_none() {
                    waiting = Some(Waiting::new(&self.waiting));
                }
                let pool = if small { &self.reserve } else { &self.general };
                Arc::clone(pool)
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| too_large())?
            }
        };
        drop(waiting);
        let now = self.in_use.fetch_add(bytes as u64, Ordering::AcqRel) + bytes as u64;
        self.peak.fetch_max(now, Ordering::AcqRel);
        Ok(BudgetGrant {
            _memory: memory,
            _address: address,
            bytes: bytes as u64,
            budget: Arc::clone(self),
        })
    }

    /// The share of the address `key`, made if nobody holds or waits for it.
    fn share_of(&self, key: IpAddr) -> Arc<Semaphore> {
        let mut addresses = self.addresses.lock();
        if let Some(live) = addresses.shares.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        if addresses.shares.len() >= addresses.sweep_at {
            addresses.shares.retain(|_, s| s.strong_count() > 0);
            addresses.sweep_at = (2 * addresses.shares.len()).max(MIN_SWEEP);
        }
        // Within MAX_PERMITS (share <= capacity).
        let share = Arc::new(Semaphore::new(usize::try_from(self.share).unwrap_or(0)));
        addresses.shares.insert(key, Arc::downgrade(&share));
        share
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }
    /// The most one address holds at once.
    pub fn share(&self) -> u64 {
        self.share
    }
    /// The part of the capacity kept for requests of at most [`SMALL_REQUEST`] bytes.
    pub fn small_reserve(&self) -> u64 {
        self.reserve_capacity
    }
    /// Bytes granted now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Acquire)
    }
    /// The most bytes ever granted at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
    /// Connections waiting for a grant (for their address's share or for memory).
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }
}

/// Counts a waiter for as long as it waits, including when its wait is abandoned.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes of the budget held by one request; given back when dropped.
#[derive(Debug)]
pub struct BudgetGrant {
    _memory: OwnedSemaphorePermit,
    _address: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<RequestBudget>,
}

impl Drop for BudgetGrant {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    async fn until_waiting(budget: &RequestBudget, n: u64) {
        while budget.waiting() < n {
            tokio::task::yield_now().await;
        }
    }

    fn spawn_acquire(
        budget: &Arc<RequestBudget>,
        peer: IpAddr,
        bytes: usize,
    ) -> tokio::task::JoinHandle<Result<BudgetGrant, BudgetError>> {
        let budget = Arc::clone(budget);
        tokio::spawn(async move { budget.acquire(peer, bytes).await })
    }

    #[tokio::test(start_paused = true)]
    async fn large_grants_never_exceed_the_capacity_and_wait_in_order() {
        // 1600 B: reserve 100, general 1500, share max(400, 500) = 500.
        let budget = RequestBudget::new(1600, 500);
        assert_eq!(
            (budget.small_reserve(), budget.share()),
            (100, 500),
            "reserve = capacity / 16, share = max(capacity / 4, largest request)"
        );
        let a = budget.acquire(ip(1), 500).await.unwrap();
        let b = budget.acquire(ip(2), 500).await.unwrap();
        let c = budget.acquire(ip(3), 400).await.unwrap();
        // 100 left in the general pool: a large request waits, a second one behind it too,
        // though the first-come one needs more than is freed first.
        let large = spawn_acquire(&budget, ip(4), 300);
        until_waiting(&budget, 1).await;
        let behind = spawn_acquire(&budget, ip(5), 200);
        until_waiting(&budget, 2).await;
        drop(c); // 500 free: the first in line (300) is served, then the one behind (200).
        let large = large.await.unwrap().unwrap();
        let behind = behind.await.unwrap().unwrap();
        assert_eq!(budget.in_use(), 1500);
        assert_eq!(budget.waiting(), 0);
        drop((a, b, large, behind));
        assert_eq!(budget.in_use(), 0);
        assert!(budget.peak() <= 1600, "bound: peak <= capacity (1600)");
        assert!(matches!(
            budget.acquire(ip(1), 501).await,
            Err(BudgetError::LargerThanBudget { bytes: 501, .. })
        ));
        // A budget of just the largest frame keeps no reserve, so that frame still fits.
        let tight = RequestBudget::new(500, 500);
        assert_eq!((tight.small_reserve(), tight.share()), (0, 500));
        drop(tight.acquire(ip(1), 500).await.unwrap());
        drop(tight.acquire(ip(1), 10).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_over_its_share_waits_without_delaying_other_addresses() {
        // Bound: one address holds at most share = max(capacity / 4, largest request) = 4000.
        let budget = RequestBudget::new(16_000, 4000);
        let hog = budget.acquire(ip(1), 4000).await.unwrap();
        // The hog's further frames wait in its own line, even though memory is free ...
        let more: Vec<_> = (0..5)
            .map(|_| spawn_acquire(&budget, ip(1), 4000))
            .collect();
        until_waiting(&budget, 5).await;
        assert_eq!(budget.in_use(), 4000, "bound: one address's share");
        // ... and another address, large or small, is granted at once.
        let other = budget.acquire(ip(2), 4000).await.unwrap();
        let small = budget.acquire(ip(3), 10).await.unwrap();
        assert_eq!(budget.in_use(), 8010);
        // An IPv6 host is one address for its whole /64.
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let v6_hog = budget.acquire(v6(1), 4000).await.unwrap();
        let v6_more = spawn_acquire(&budget, v6(2), 1);
        until_waiting(&budget, 6).await;
        assert!(!v6_more.is_finished(), "a /64 shares one share");
        drop(v6_hog);
        drop(v6_more.await.unwrap().unwrap());
        // The hog's waiters are served one by one as it gives back.
        drop(hog);
        let mut granted = 0;
        for w in more {
            let g = tokio::time::timeout(std::time::Duration::from_secs(1), w).await;
            if let Ok(Ok(Ok(g))) = g {
                granted += 1;
                drop(g);
            }
        }
        assert_eq!(granted, 5);
        drop((other, small));
        assert_eq!((budget.in_use(), budget.waiting()), (0, 0));
        assert!(budget.peak() <= 16_000, "bound: peak <= capacity");
        // Shares nobody holds are swept: the table does not grow with addresses seen.
        for n in 0..=255u8 {
            drop(
                budget
                    .acquire(IpAddr::from([10, 1, 0, n]), 1)
                    .await
                    .unwrap(),
            );
        }
        assert!(budget.addresses.lock().shares.len() <= 2 * MIN_SWEEP);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_request_is_not_queued_behind_large_ones() {
        // Bound: requests <= SMALL_REQUEST use the reserve (capacity / 16) when large ones
        // wait; the total granted stays within the capacity.
        const CAPACITY: u64 = 16 << 20;
        let budget = RequestBudget::new(CAPACITY, 4 << 20);
        let mut held = Vec::new();
        for n in 0..3 {
            held.push(budget.acquire(ip(n), 4 << 20).await.unwrap());
        }
        // 3 MiB left in the general pool; 4 MiB requests from other addresses wait.
        let large: Vec<_> = (10..14)
            .map(|n| spawn_acquire(&budget, ip(n), 4 << 20))
            .collect();
        until_waiting(&budget, 4).await;
        // Small requests are granted at once while the large ones wait: from the reserve
        // once the general pool has a line.
        let mut smalls = Vec::new();
        for n in 0..16u8 {
            smalls.push(budget.acquire(ip(100 + n), SMALL_REQUEST).await.unwrap());
        }
        assert_eq!(budget.waiting(), 4);
        assert_eq!(budget.in_use(), (12 << 20) + 16 * SMALL_REQUEST as u64);
        // The reserve (1 MiB) is full now: the next small one waits for a small one.
        let next = spawn_acquire(&budget, ip(200), SMALL_REQUEST);
        until_waiting(&budget, 5).await;
        smalls.pop();
        drop(next.await.unwrap().unwrap());
        assert!(
            budget.in_use() <= CAPACITY && budget.peak() <= CAPACITY,
            "bound: in use {} / peak {} <= capacity {CAPACITY}",
            budget.in_use(),
            budget.peak()
        );
        drop(smalls);
        drop(held);
        for w in large {
            drop(w.await.unwrap().unwrap());
        }
        assert_eq!((budget.in_use(), budget.waiting()), (0, 0));
        assert!(budget.peak() <= CAPACITY, "bound: peak <= capacity");
    }
}
