//! `/metrics` expositions made one at a time. A scrape that arrives while one is being made
//! waits for it and shares its text (when it asked for the same format), so any number of
//! concurrent scrapes costs one exposition (a walk of `/proc`, the lag list, every partition),
//! not one each. The waiters are bounded by `[http] max_connections` and each waits at most
//! `request_timeout` (the listener's bound on an answer).
//!
//! An exposition that the scrape which started it gave up on (it was slower than
//! `request_timeout`) is also served to scrapes that arrive while it is younger than
//! [`kept_for`]`(request_timeout)`: otherwise such an exposition would never be served (each
//! scrape gives up, the next starts a new one, and every scrape fails). One that was delivered
//! is not served again: a scrape after a change sees it. Any kept text is dropped once older
//! than that bound, so no exposition (MBs with many partitions) is kept for long.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Mutex};
use tokio::time::Instant;

/// Longest a finished exposition is served again: half of `request_timeout` (a scraper's
/// answer is never older than that plus the time it waited), at most 5 s.
pub fn kept_for(request_timeout: Duration) -> Duration {
    (request_timeout / 2).min(Duration::from_secs(5))
}

/// The text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics text 1.0.0 (ends with `# EOF`).
    OpenMetrics,
}

/// The last exposition made.
#[derive(Debug)]
struct Made {
    format: Format,
    /// Its number among the expositions made (from 1).
    number: u64,
    /// When it was finished.
    finished: Instant,
    /// The scrape that started it had given up by then: served again while young.
    unclaimed: bool,
    text: Arc<str>,
}

/// Why a scrape got no exposition.
#[derive(Debug, thiserror::Error)]
#[error("the exposition failed: {0}")]
pub struct ExpositionFailed(String);

/// Makes expositions one at a time and shares each with the scrapes that waited for it.
#[derive(Debug, Default)]
pub struct Expositions {
    /// Held while one is made; holds the last one made.
    latest: Arc<Mutex<Option<Made>>>,
    /// Expositions made so far.
    made: Arc<AtomicU64>,
    /// Scrapes waiting for the one being made.
    waiting: AtomicUsize,
    /// How long a finished exposition is served again and kept, in nanoseconds (0 until
    /// [`Expositions::keep_for`]: only scrapes that waited for it share it).
    kept_for_nanos: AtomicU64,
}

/// Counts a scrape as waiting until dropped (also when the scrape gives up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Expositions {
    /// Serves a finished exposition again while it is younger than `kept_for` (see
    /// [`kept_for`]), and drops its text after that.
    pub fn keep_for(&self, kept_for: Duration) {
        let nanos = u64::try_from(kept_for.as_nanos()).unwrap_or(u64::MAX);
        self.kept_for_nanos.store(nanos, Ordering::Release);
    }

    fn kept_for(&self) -> Duration {
        Duration::from_nanos(self.kept_for_nanos.load(Ordering::Acquire))
    }

    /// The exposition in `format`: the one being made when this scrape arrived or one
    /// finished less than `kept_for` ago, if it is in that format, or else a new one from
    /// `make` (run on the blocking pool, after the one being made).
    pub async fn get<F>(&self, format: Format, make: F) -> Result<Arc<str>, ExpositionFailed>
    where
        F: FnOnce() -> String + Send + 'static,
    {
        let arrived = self.made.load(Ordering::Acquire);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        let mut latest = Arc::clone(&self.latest).lock_owned().await;
        drop(waiting);
        let kept_for = self.kept_for();
        // Finished after this scrape arrived: it was being made meanwhile, so it is as fresh
        // as one made now would be. Or finished moments ago (perhaps for scrapes that gave up
        // waiting for it).
        if let Some(made) = latest.as_ref().filter(|m| {
            m.format == format
                && (m.number > arrived || (m.unclaimed && m.finished.elapsed() < kept_for))
        }) {
            return Ok(Arc::clone(&made.text));
        }
        let made = Arc::clone(&self.made);
        let kept = Arc::clone(&self.latest);
        // A task of its own keeps the lock until the exposition is made: a scrape that gives
        // up (its time ran out) neither stops it nor lets a second one start beside it.
        let (deliver, delivered) = oneshot::channel();
        tokio::spawn(async move {
            let text: Arc<str> = match tokio::task::spawn_blocking(make).await {
                Ok(text) => text.into(),
                Err(e) => {
                    let _ = deliver.send(Err(ExpositionFailed(e.to_string())));
                    return;
                }
            };
            let number = made.fetch_add(1, Ordering::AcqRel) + 1;
            let unclaimed = deliver.send(Ok(Arc::clone(&text))).is_err();
            *latest = Some(Made {
                format,
                number,
                finished: Instant::now(),
                unclaimed,
                text,
            });
            drop(latest);
            // Dropped once too old to be served again. The lock is fair: the scrapes already
            // waiting for this one take it first.
            tokio::spawn(async move {
                tokio::time::sleep(kept_for).await;
                let mut kept = kept.lock().await;
                if kept.as_ref().is_some_and(|m| m.number == number) {
                    *kept = None;
                }
            });
        });
        delivered
            .await
            .map_err(|_| ExpositionFailed("its task ended".to_string()))?
    }

    /// Expositions made so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Acquire)
    }

    /// Whether the text of a finished exposition is kept (none is being made).
    pub fn keeps_one(&self) -> bool {
        self.latest.try_lock().is_ok_and(|l| l.is_some())
    }

    /// Whether an exposition is being made now.
    pub fn busy(&self) -> bool {
        self.latest.try_lock().is_err()
    }

    /// Scrapes waiting now for the exposition being made.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (without sleeping) until `n` scrapes wait for the one being made.
    async fn until_waiting(expositions: &Expositions, n: usize) {
        for _ in 0..10_000 {
            if expositions.waiting() == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{} scrapes waiting, not {n}", expositions.waiting());
    }

    /// Waits (without sleeping) until an exposition is being made (the lock is held).
    async fn until_being_made(expositions: &Expositions) {
        for _ in 0..10_000 {
            if expositions.latest.try_lock().is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("no exposition is being made");
    }

    #[tokio::test]
    async fn concurrent_scrapes_share_one_exposition() {
        // Bound: one exposition made at a time; scrapes arriving meanwhile share it.
        const SCRAPES: usize = 8;
        let expositions = Arc::new(Expositions::default());
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let e = Arc::clone(&expositions);
            tokio::spawn(async move {
                e.get(Format::Prometheus, move || {
                    // Held until the others wait: a slow exposition.
                    let _ = held.recv();
                    "first\n".to_string()
                })
                .await
            })
        };
        until_being_made(&expositions).await;
        let mut others = Vec::new();
        for _ in 0..SCRAPES {
            let e = Arc::clone(&expositions);
            others.push(tokio::spawn(async move {
                e.get(Format::Prometheus, || "made again\n".to_string())
                    .await
            }));
        }
        until_waiting(&expositions, SCRAPES).await;
        release.send(()).unwrap();
        assert_eq!(&*first.await.unwrap().unwrap(), "first\n");
        for o in others {
            assert_eq!(&*o.await.unwrap().unwrap(), "first\n");
        }
        assert_eq!(
            expositions.made(),
            1,
            "one exposition for {} scrapes",
            SCRAPES + 1
        );

        // Once none is being made, a scrape gets a new one; another format is never shared.
        let e = &expositions;
        assert_eq!(
            &*e.get(Format::Prometheus, || "second\n".into())
                .await
                .unwrap(),
            "second\n"
        );
        assert_eq!(
            &*e.get(Format::OpenMetrics, || "# EOF\n".into())
                .await
                .unwrap(),
            "# EOF\n"
        );
        assert_eq!(e.made(), 3);
    }

    #[tokio::test]
    async fn a_scrape_that_gives_up_lets_no_second_exposition_start() {
        let expositions = Arc::new(Expositions::default());
        let (release, held) = std::sync::mpsc::channel::<()>();
        let e = Arc::clone(&expositions);
        let giving_up = tokio::spawn(async move {
            e.get(Format::Prometheus, move || {
                let _ = held.recv();
                "slow\n".to_string()
            })
            .await
        });
        until_being_made(&expositions).await;
        giving_up.abort();
        assert!(giving_up.await.unwrap_err().is_cancelled());
        // Still being made: the lock is held by its own task, and the next scrape waits.
        assert!(expositions.latest.try_lock().is_err());
        let e = Arc::clone(&expositions);
        let next =
            tokio::spawn(async move { e.get(Format::Prometheus, || "next\n".to_string()).await });
        until_waiting(&expositions, 1).await;
        release.send(()).unwrap();
        // The slow one finished after `next` arrived: shared.
        assert_eq!(&*next.await.unwrap().unwrap(), "slow\n");
        assert_eq!(expositions.made(), 1);
    }

    #[test]
    fn kept_for_is_half_the_request_timeout_at_most_5_s() {
        assert_eq!(kept_for(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(kept_for(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(kept_for(Duration::from_secs(60)), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_exposition_slower_than_the_scrapes_is_served_while_kept_then_dropped() {
        // Bound: a finished exposition is served again for KEPT_FOR, and its text dropped
        // after that. Without it, every scrape gives up on an exposition slower than its
        // request_timeout and the next one starts another: none is ever served.
        const KEPT_FOR: Duration = Duration::from_secs(5);
        let expositions = Arc::new(Expositions::default());
        expositions.keep_for(KEPT_FOR);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let e = Arc::clone(&expositions);
        let giving_up = tokio::spawn(async move {
            e.get(Format::Prometheus, move || {
                let _ = held.recv();
                "slow\n".to_string()
            })
            .await
        });
        until_being_made(&expositions).await;
        // The scrape's time runs out (the listener answers 503) before it is made.
        giving_up.abort();
        assert!(giving_up.await.unwrap_err().is_cancelled());
        release.send(()).unwrap();
        // Finished: its own task let go of the lock.
        drop(expositions.latest.lock().await);
        assert_eq!(expositions.made(), 1);
        assert!(expositions.keeps_one());

        // A scrape arriving after it finished, within KEPT_FOR, is served it: none is made.
        tokio::time::advance(KEPT_FOR - Duration::from_millis(1)).await;
        let got = expositions
            .get(Format::Prometheus, || "made again\n".to_string())
            .await
            .unwrap();
        assert_eq!(&*got, "slow\n");
        assert_eq!(expositions.made(), 1);
        // Another format is not served it.
        let om = expositions
            .get(Format::OpenMetrics, || "# EOF\n".to_string())
            .await
            .unwrap();
        assert_eq!(&*om, "# EOF\n");
        assert_eq!(expositions.made(), 2);

        // One that was delivered is not served again, however young: a scrape sees changes.
        let got = expositions
            .get(Format::Prometheus, || "fresh\n".to_string())
            .await
            .unwrap();
        assert_eq!(&*got, "fresh\n");
        assert_eq!(expositions.made(), 3);

        // KEPT_FOR after each finished, its text is dropped; the next scrape makes a new one.
        tokio::time::sleep(KEPT_FOR).await;
        for _ in 0..10_000 {
            if !expositions.keeps_one() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            !expositions.keeps_one(),
            "an exposition kept past {KEPT_FOR:?}"
        );
        let got = expositions
            .get(Format::Prometheus, || "new\n".to_string())
            .await
            .unwrap();
        assert_eq!(&*got, "new\n");
        assert_eq!(expositions.made(), 4);
    }
}
