//! `/metrics` expositions made one at a time. A scrape that arrives while one is being made
//! waits for it and shares its text (when it asked for the same format), so any number of
//! concurrent scrapes costs one exposition (a walk of `/proc`, the lag list, every partition),
//! not one each. The waiters are bounded by `[http] max_connections` and each waits at most
//! `request_timeout` (the listener's bound on an answer).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

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
}

/// Counts a scrape as waiting until dropped (also when the scrape gives up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Expositions {
    /// The exposition in `format`: the one being made when this scrape arrived, if it is in
    /// that format, or else a new one from `make` (run on the blocking pool, after the one
    /// being made).
    pub async fn get<F>(&self, format: Format, make: F) -> Result<Arc<str>, ExpositionFailed>
    where
        F: FnOnce() -> String + Send + 'static,
    {
        let arrived = self.made.load(Ordering::Acquire);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        let mut latest = Arc::clone(&self.latest).lock_owned().await;
        drop(waiting);
        // Finished after this scrape arrived: it was being made meanwhile, so it is as fresh
        // as one made now would be.
        if let Some(made) = latest
            .as_ref()
            .filter(|m| m.number > arrived && m.format == format)
        {
            return Ok(Arc::clone(&made.text));
        }
        let made = Arc::clone(&self.made);
        // A task of its own keeps the lock until the exposition is made: a scrape that gives
        // up (its time ran out) neither stops it nor lets a second one start beside it.
        let making = tokio::spawn(async move {
            let text: Arc<str> = tokio::task::spawn_blocking(make)
                .await
                .map_err(|e| ExpositionFailed(e.to_string()))?
                .into();
            let number = made.fetch_add(1, Ordering::AcqRel) + 1;
            *latest = Some(Made {
                format,
                number,
                text: Arc::clone(&text),
            });
            Ok(text)
        });
        making.await.map_err(|e| ExpositionFailed(e.to_string()))?
    }

    /// Expositions made so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Acquire)
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
}
