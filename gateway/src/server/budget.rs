//! The request budget: request bytes held in memory at once across both doors (Kafka's
//! `queued.max.request.bytes`, its MemoryPool). A connection takes a grant for a frame's whole
//! declared size after the size prefix has been checked and before any memory is reserved for
//! the body, and gives it back once the request is answered. A connection whose frame does not
//! fit waits, unread, in arrival order (backpressure): its bytes stay in the kernel's socket
//! buffer, not in ours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a grant cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("a request of {bytes} bytes is larger than the whole request budget ({capacity} B)")]
    LargerThanBudget { bytes: usize, capacity: u64 },
}

/// The budget, with gauges of its use (bytes granted now, the most ever granted at once, and
/// connections waiting for a grant).
#[derive(Debug)]
pub struct RequestBudget {
    capacity: u64,
    permits: Arc<Semaphore>,
    in_use: AtomicU64,
    peak: AtomicU64,
    waiting: AtomicU64,
}

impl RequestBudget {
    pub fn new(capacity: u64) -> Arc<RequestBudget> {
        let capacity = capacity.min(Semaphore::MAX_PERMITS as u64);
        Arc::new(RequestBudget {
            capacity,
            // Within MAX_PERMITS, so within usize.
            permits: Arc::new(Semaphore::new(usize::try_from(capacity).unwrap_or(0))),
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
        })
    }

    /// Waits until `bytes` fit in the budget (first come, first served: a large request is not
    /// overtaken by small ones forever) and takes them.
    pub async fn acquire(self: &Arc<Self>, bytes: usize) -> Result<BudgetGrant, BudgetError> {
        let too_large = || BudgetError::LargerThanBudget {
            bytes,
            capacity: self.capacity,
        };
        if bytes as u64 > self.capacity {
            return Err(too_large());
        }
        let n = u32::try_from(bytes).map_err(|_| too_large())?;
        let permit = {
            let _waiting = Waiting::new(&self.waiting);
            Arc::clone(&self.permits)
                .acquire_many_owned(n)
                .await
                // The semaphore is never closed.
                .map_err(|_| too_large())?
        };
        let now = self.in_use.fetch_add(bytes as u64, Ordering::AcqRel) + bytes as u64;
        self.peak.fetch_max(now, Ordering::AcqRel);
        Ok(BudgetGrant {
            _permit: permit,
            bytes: bytes as u64,
            budget: Arc::clone(self),
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }
    /// Bytes granted now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Acquire)
    }
    /// The most bytes ever granted at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
    /// Connections waiting for a grant.
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
    _permit: OwnedSemaphorePermit,
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

    #[tokio::test(start_paused = true)]
    async fn grants_never_exceed_the_capacity_and_waiters_are_served_in_order() {
        let budget = RequestBudget::new(100);
        let a = budget.acquire(60).await.unwrap();
        let b = budget.acquire(40).await.unwrap();
        assert_eq!(budget.in_use(), 100);
        // A large request waits; a small one behind it does not overtake it.
        let large = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.acquire(70).await.map(|g| g.bytes) }
        });
        while budget.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        let small = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.acquire(10).await.map(|g| g.bytes) }
        });
        while budget.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        drop(b); // 40 free: enough for the small one, but the large one is first in line
        tokio::task::yield_now().await;
        assert!(
            !small.is_finished(),
            "a small request overtook a waiting large one"
        );
        drop(a);
        assert_eq!(large.await.unwrap().unwrap(), 70);
        assert_eq!(small.await.unwrap().unwrap(), 10);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 100, "bound: peak <= capacity (100)");
        assert_eq!(budget.waiting(), 0);
        assert!(matches!(
            budget.acquire(101).await,
            Err(BudgetError::LargerThanBudget { bytes: 101, .. })
        ));
    }
}
