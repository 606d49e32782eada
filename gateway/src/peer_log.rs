//! Rate-limited logging of what peers do wrong (refused frames, connections over a cap, requests
//! that do not arrive in time) and of failed accepts, for both doors: at most one line per peer
//! (and per door for accept failures) per interval, the next line carrying the count of what was
//! left out. Memory is bounded: at most [`MAX_TRACKED_PEERS`] peers are tracked, the rest share
//! one entry.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::server::limits::address_key;
use crate::server::{until_stopped, Stopped};

/// Peers tracked at once; further peers share one entry ("other peers") until entries expire.
pub const MAX_TRACKED_PEERS: usize = 4096;

/// What a peer did that is worth an operator's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A frame refused: malformed, too large, or of an unsupported API.
    RefusedFrame,
    /// A connection closed at once because its door or its address was at its cap.
    OverLimit,
    /// A request that started arriving and was not whole within the request read timeout.
    ReadTimeout,
    /// A TLS handshake that failed or was not done within the request read timeout.
    TlsHandshake,
}

const KINDS: usize = 4;

impl Misbehaviour {
    const ALL: [Misbehaviour; KINDS] = [
        Misbehaviour::RefusedFrame,
        Misbehaviour::OverLimit,
        Misbehaviour::ReadTimeout,
        Misbehaviour::TlsHandshake,
    ];

    fn index(self) -> usize {
        match self {
            Misbehaviour::RefusedFrame => 0,
            Misbehaviour::OverLimit => 1,
            Misbehaviour::ReadTimeout => 2,
            Misbehaviour::TlsHandshake => 3,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Misbehaviour::RefusedFrame => "refused frames",
            Misbehaviour::OverLimit => "connections over a limit",
            Misbehaviour::ReadTimeout => "read timeouts",
            Misbehaviour::TlsHandshake => "failed TLS handshakes",
        }
    }
}

/// Events left out of the log since the last line for a peer (or door).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed([u64; KINDS]);

impl Suppressed {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }
    pub fn count(&self, kind: Misbehaviour) -> u64 {
        self.0[kind.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in Misbehaviour::ALL {
            let n = self.count(kind);
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{n} {}", kind.plural())?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Whether an event gets a line of its own.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it, mentioning what was left out since the previous line.
    Log(Suppressed),
    /// Count it for the next line.
    Suppress,
}

/// Who a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Peer(IpAddr),
    /// Peers beyond [`MAX_TRACKED_PEERS`], together.
    OtherPeers,
    /// A door's accept failures (out of descriptors and the like).
    Accept(&'static str),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Peer(ip) => write!(f, "peer {ip}"),
            Subject::OtherPeers => f.write_str("other peers"),
            Subject::Accept(door) => write!(f, "{door} accept"),
        }
    }
}

/// One subject's current interval: when its last line was written, what was left out since.
#[derive(Debug)]
struct Window {
    started: Instant,
    suppressed: Suppressed,
}

/// The rate limiter and its log lines. One per server, shared by both doors.
#[derive(Debug)]
pub struct PeerLog {
    interval: Duration,
    windows: Mutex<HashMap<Subject, Window>>,
}

impl PeerLog {
    pub fn new(interval: Duration) -> PeerLog {
        PeerLog {
            interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `peer` misbehaved on `door`, logging it unless a line about this peer was
    /// written less than an interval ago.
    pub fn note(
        &self,
        door: &'static str,
        peer: IpAddr,
        kind: Misbehaviour,
        what: &dyn fmt::Display,
    ) {
        let (subject, verdict) = self.decide(Subject::Peer(peer), kind);
        if let Verdict::Log(left_out) = verdict {
            if left_out.is_empty() {
                tracing::info!(%door, "{subject}: {what}");
            } else {
                tracing::info!(%door, "{subject}: {what} (and since the last line: {left_out})");
            }
        }
    }

    /// Records a failed accept on `door`: one line per interval, with the count of the others.
    pub fn accept_failed(&self, door: &'static str, error: &std::io::Error) {
        // Accept failures are counted under `RefusedFrame`'s slot: only the total is reported.
        let (_, verdict) = self.decide(Subject::Accept(door), Misbehaviour::RefusedFrame);
        if let Verdict::Log(left_out) = verdict {
            if left_out.is_empty() {
                tracing::warn!("{door} accept failed: {error}");
            } else {
                tracing::warn!(
                    "{door} accept failed: {error} (and {} more since the last line)",
                    left_out.total()
                );
            }
        }
    }

    /// The limiter: whether this event gets a line. Each line starts a new interval for its
    /// subject; a peer that finds the table full is counted under [`Subject::OtherPeers`].
    /// Peers are keyed like the connection caps ([`address_key`]: an IPv6 /64 is one peer), so
    /// one IPv6 host cannot fill the table by itself.
    pub fn decide(&self, subject: Subject, kind: Misbehaviour) -> (Subject, Verdict) {
        let subject = match subject {
            Subject::Peer(ip) => Subject::Peer(address_key(ip)),
            other => other,
        };
        let now = Instant::now();
        let mut windows = self.windows.lock();
        let subject = if matches!(subject, Subject::Peer(_))
            && !windows.contains_key(&subject)
            && windows.len() >= MAX_TRACKED_PEERS
        {
            Subject::OtherPeers
        } else {
            subject
        };
        let verdict = match windows.get_mut(&subject) {
            Some(w) if now < w.started + self.interval => {
                w.suppressed.0[kind.index()] += 1;
                Verdict::Suppress
            }
            Some(w) => {
                let left_out = std::mem::take(&mut w.suppressed);
                w.started = now;
                Verdict::Log(left_out)
            }
            None => {
                windows.insert(
                    subject,
                    Window {
                        started: now,
                        suppressed: Suppressed::default(),
                    },
                );
                Verdict::Log(Suppressed::default())
            }
        };
        (subject, verdict)
    }

    /// Ends the intervals that are over: a subject with events left out gets its summary (and a
    /// new interval, so its next event still waits its turn); a quiet one is forgotten.
    pub fn flush(&self) -> Vec<(Subject, Suppressed)> {
        let now = Instant::now();
        let mut summaries = Vec::new();
        self.windows.lock().retain(|subject, w| {
            if now < w.started + self.interval {
                return true;
            }
            if w.suppressed.is_empty() {
                return false;
            }
            summaries.push((*subject, std::mem::take(&mut w.suppressed)));
            w.started = now;
            true
        });
        summaries
    }

    /// Subjects tracked now (for tests and the bound on memory).
    pub fn tracked(&self) -> usize {
        self.windows.lock().len()
    }

    /// Writes the summaries of ended intervals, once per interval, until the server stops (and
    /// what is left out then).
    pub async fn drive(&self, mut stopped: Stopped) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => break,
                _ = tick.tick() => {}
            }
            write_summaries(self.flush());
        }
        let left_out: Vec<_> = std::mem::take(&mut *self.windows.lock())
            .into_iter()
            .filter(|(_, w)| !w.suppressed.is_empty())
            .map(|(subject, w)| (subject, w.suppressed))
            .collect();
        write_summaries(left_out);
    }
}

fn write_summaries(summaries: Vec<(Subject, Suppressed)>) {
    for (subject, left_out) in summaries {
        match subject {
            Subject::Accept(door) => tracing::warn!(
                "{door} accept failed {} more times in the last interval",
                left_out.total()
            ),
            _ => tracing::info!("{subject}, in the last interval: {left_out}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const INTERVAL: Duration = Duration::from_secs(10);

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_peer_per_interval_with_the_count_of_what_was_left_out() {
        let log = PeerLog::new(INTERVAL);
        let a = Subject::Peer(ip(1));
        let b = Subject::Peer(ip(2));
        // The first event of a peer is logged; the next 99 within the interval are not.
        assert_eq!(
            log.decide(a, Misbehaviour::RefusedFrame).1,
            Verdict::Log(Suppressed::default())
        );
        for _ in 0..99 {
            assert_eq!(
                log.decide(a, Misbehaviour::RefusedFrame).1,
                Verdict::Suppress
            );
        }
        assert_eq!(
            log.decide(a, Misbehaviour::ReadTimeout).1,
            Verdict::Suppress
        );
        // Another peer has its own interval.
        assert!(matches!(
            log.decide(b, Misbehaviour::OverLimit).1,
            Verdict::Log(_)
        ));
        tokio::time::advance(INTERVAL / 2).await;
        assert!(log.flush().is_empty(), "no interval is over yet");
        assert_eq!(
            log.decide(a, Misbehaviour::RefusedFrame).1,
            Verdict::Suppress
        );

        // Once the interval is over, the summary carries exactly what was left out; the quiet
        // peer is forgotten.
        tokio::time::advance(INTERVAL / 2).await;
        let summaries = log.flush();
        assert_eq!(summaries.len(), 1);
        let (subject, left_out) = summaries[0];
        assert_eq!(subject, a);
        assert_eq!(left_out.count(Misbehaviour::RefusedFrame), 100);
        assert_eq!(left_out.count(Misbehaviour::ReadTimeout), 1);
        assert_eq!(left_out.to_string(), "100 refused frames, 1 read timeouts");
        assert_eq!(log.tracked(), 1, "the quiet peer's entry is dropped");
        // The summary started a new interval: the peer's next event waits its turn.
        assert_eq!(
            log.decide(a, Misbehaviour::RefusedFrame).1,
            Verdict::Suppress
        );
        tokio::time::advance(INTERVAL).await;
        let mut expected = Suppressed::default();
        expected.0[Misbehaviour::RefusedFrame.index()] = 1;
        assert_eq!(
            log.decide(a, Misbehaviour::RefusedFrame).1,
            Verdict::Log(expected)
        );
        // Nothing left out since that line: the next flush forgets the peer.
        tokio::time::advance(INTERVAL).await;
        assert!(log.flush().is_empty());
        assert_eq!(log.tracked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn tracked_peers_are_capped_and_the_rest_share_one_line() {
        let log = PeerLog::new(INTERVAL);
        let flood = MAX_TRACKED_PEERS as u32 + 1000;
        let mut lines = 0;
        for n in 0..flood {
            let (subject, verdict) = log.decide(Subject::Peer(ip(n)), Misbehaviour::OverLimit);
            if n >= MAX_TRACKED_PEERS as u32 {
                assert_eq!(subject, Subject::OtherPeers);
            }
            if verdict != Verdict::Suppress {
                lines += 1;
            }
        }
        // Bound: MAX_TRACKED_PEERS entries plus the shared one, and as many lines.
        assert_eq!(log.tracked(), MAX_TRACKED_PEERS + 1);
        assert_eq!(lines, MAX_TRACKED_PEERS + 1);
        tokio::time::advance(INTERVAL).await;
        let summaries = log.flush();
        assert_eq!(
            summaries,
            vec![(Subject::OtherPeers, {
                let mut s = Suppressed::default();
                s.0[Misbehaviour::OverLimit.index()] = 999;
                s
            })]
        );
        // Entries of quiet peers are gone, so new peers are tracked on their own again.
        assert_eq!(log.tracked(), 1);
        assert_eq!(
            log.decide(Subject::Peer(ip(1)), Misbehaviour::OverLimit).0,
            Subject::Peer(ip(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_ipv6_64_is_one_peer_and_mapped_ipv4_is_ipv4() {
        // Bound: a host cycling through the addresses of its /64 takes one entry, not
        // MAX_TRACKED_PEERS of them.
        let log = PeerLog::new(INTERVAL);
        let mut lines = 0;
        for n in 0..(MAX_TRACKED_PEERS as u16 + 10) {
            let peer = IpAddr::from([0x2001, 0xdb8, 7, 7, n, 1, 2, n]);
            let (subject, verdict) = log.decide(Subject::Peer(peer), Misbehaviour::RefusedFrame);
            assert_eq!(
                subject,
                Subject::Peer(IpAddr::from([0x2001, 0xdb8, 7, 7, 0, 0, 0, 0]))
            );
            if verdict != Verdict::Suppress {
                lines += 1;
            }
        }
        assert_eq!((log.tracked(), lines), (1, 1));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped());
        assert_eq!(
            log.decide(Subject::Peer(mapped), Misbehaviour::RefusedFrame)
                .0,
            Subject::Peer(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accept_failures_are_one_line_per_door_per_interval() {
        let log = PeerLog::new(INTERVAL);
        let mut lines = 0;
        for _ in 0..419 {
            if let Verdict::Log(_) = log
                .decide(Subject::Accept("kafka"), Misbehaviour::RefusedFrame)
                .1
            {
                lines += 1;
            }
        }
        assert_eq!(
            lines, 1,
            "419 accept failures within one interval: one line"
        );
        tokio::time::advance(INTERVAL).await;
        let summaries = log.flush();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].1.total(), 418);
    }
}
