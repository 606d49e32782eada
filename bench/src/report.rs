//! What a run measured: each actor's counts and latency histogram, the live progress line, and
//! the final report (text, whose last line is the summary, and JSON).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::settings::Settings;

/// Latencies are recorded in µs, from 1 µs to an hour, with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Records `us` (clamped into the histogram's range) `count` times.
pub fn record(h: &mut Histogram<u64>, us: u64, count: u64) {
    let v = us.clamp(1, h.high());
    let _ = h.record_n(v, count);
}

/// What latency an actor measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyKind {
    /// Producer: from sending a message to its acknowledgement.
    Send,
    /// Transactional producer: from sending a message to the commit of its transaction.
    Commit,
    /// Consumer: one poll request (native), or receiving one batch's worth (Kafka).
    Poll,
    /// Consumer in end-to-end: from the producer's timestamp in the payload to receipt.
    EndToEnd,
    /// One connection made ready (TCP, TLS handshake, login or first Metadata answer).
    Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Producer,
    Consumer,
    /// Opens connections one after another (the `connect` workload).
    Connector,
}

/// A transactional producer's transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TxnCounts {
    pub committed: u64,
    /// Aborted after an abortable error; their messages count as errors.
    pub aborted: u64,
}

/// One producer's or consumer's result.
#[derive(Debug)]
pub struct ActorStats {
    pub role: Role,
    pub id: u32,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    /// `Some` for a transactional producer.
    pub transactions: Option<TxnCounts>,
    pub elapsed: Duration,
    pub latency_kind: LatencyKind,
    pub latency: Histogram<u64>,
    /// Consumers: the measured messages read from each partition (shows which partitions one
    /// consumer covered, e.g. all four with `--consumers 1 --partitions 4`).
    pub per_partition: BTreeMap<u32, u64>,
}

impl ActorStats {
    pub fn new(role: Role, id: u32, latency_kind: LatencyKind) -> ActorStats {
        ActorStats {
            role,
            id,
            messages: 0,
            bytes: 0,
            errors: 0,
            transactions: None,
            elapsed: Duration::ZERO,
            latency_kind,
            latency: histogram(),
            per_partition: BTreeMap::new(),
        }
    }
}

/// Counters every actor adds to, for the progress line and shared stopping rules.
#[derive(Debug, Default)]
pub struct Progress {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub target: AtomicU64,
    pub phase: Phase,
}

/// How far a consumer group has read each partition (its members stop together once it has
/// read everything; a message read twice after a rebalance does not count twice here).
#[derive(Debug)]
pub struct Coverage(Vec<AtomicU64>);

impl Coverage {
    pub fn new(partitions: u32) -> Coverage {
        Coverage((0..partitions).map(|_| AtomicU64::new(0)).collect())
    }

    /// Notes that `offset` of `partition` was read.
    pub fn saw(&self, partition: u32, offset: u64) {
        if let Some(end) = self.0.get(partition as usize) {
            end.fetch_max(offset + 1, Ordering::Relaxed);
        }
    }

    /// Messages read, counting each offset once (partitions are read from offset 0).
    pub fn total(&self) -> u64 {
        self.0.iter().map(|e| e.load(Ordering::Relaxed)).sum()
    }
}

/// What the progress line says is happening.
#[derive(Debug, Default)]
pub struct Phase(std::sync::Mutex<String>);

impl Phase {
    pub fn set(&self, s: &str) {
        if let Ok(mut p) = self.0.lock() {
            s.clone_into(&mut p);
        }
    }

    pub fn get(&self) -> String {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Progress {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Starts a new phase of `target` messages.
    pub fn begin(&self, phase: &str, target: u64) {
        self.phase.set(phase);
        self.messages.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.target.store(target, Ordering::Relaxed);
    }
}

/// Draws the progress line on standard error until `stop` is set: a bar redrawn in place on a
/// terminal, a line every 5 s otherwise.
pub async fn show_progress(progress: Arc<Progress>, stop: Arc<AtomicBool>) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let done = progress.messages.load(Ordering::Relaxed);
        let bytes = progress.bytes.load(Ordering::Relaxed);
        let target = progress.target.load(Ordering::Relaxed).max(1);
        let secs = last.0.elapsed().as_secs_f64().max(1e-9);
        let mb_s = bytes.saturating_sub(last.1) as f64 / secs / 1e6;
        last = (Instant::now(), bytes);
        let share = (done as f64 / target as f64).min(1.0);
        let filled = (share * 30.0) as usize;
        let line = format!(
            "{:<12} [{}{}] {:>5.1}% {done}/{target} msgs {mb_s:>8.1} MB/s errors {}",
            progress.phase.get(),
            "=".repeat(filled),
            " ".repeat(30 - filled),
            share * 100.0,
            progress.errors.load(Ordering::Relaxed),
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
    if tty {
        let _ = writeln!(std::io::stderr());
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub kind: LatencyKind,
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(kind: LatencyKind, h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            kind,
            samples: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActorReport {
    pub role: Role,
    pub id: u32,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TxnCounts>,
    pub elapsed_s: f64,
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
    pub latency: Percentiles,
    /// Consumers: measured messages read per partition (JSON keys are the partition ids).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<u32, u64>,
}

/// The whole run, as written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub settings: Settings,
    /// Payload messages and bytes moved in the measured phase (consumers' in end-to-end).
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Transactional runs: the producers' transactions, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TxnCounts>,
    pub elapsed_s: f64,
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
    /// The headline latency: end-to-end if measured, else the producers', else the consumers'.
    pub latency: Percentiles,
    /// Every latency measured, by kind.
    pub latencies: Vec<Percentiles>,
    pub producers: Option<Totals>,
    pub consumers: Option<Totals>,
    pub actors: Vec<ActorReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub messages: u64,
    pub bytes: u64,
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

impl Report {
    pub fn new(settings: Settings, actors: Vec<ActorStats>) -> Report {
        let totals = |role: Role| {
            let mine: Vec<&ActorStats> = actors.iter().filter(|a| a.role == role).collect();
            if mine.is_empty() {
                return None;
            }
            let messages = mine.iter().map(|a| a.messages).sum();
            let bytes = mine.iter().map(|a| a.bytes).sum();
            let elapsed = mine.iter().map(|a| a.elapsed).max().unwrap_or_default();
            Some((
                Totals {
                    messages,
                    bytes,
                    mb_per_s: rate(bytes, elapsed) / 1e6,
                    msgs_per_s: rate(messages, elapsed),
                },
                elapsed,
            ))
        };
        let producers = totals(Role::Producer);
        let consumers = totals(Role::Consumer);
        let connectors = totals(Role::Connector);
        let mut latencies = Vec::new();
        for kind in [
            LatencyKind::EndToEnd,
            LatencyKind::Send,
            LatencyKind::Commit,
            LatencyKind::Poll,
            LatencyKind::Connect,
        ] {
            let mut merged = histogram();
            let mut any = false;
            for a in actors.iter().filter(|a| a.latency_kind == kind) {
                let _ = merged.add(&a.latency);
                any = true;
            }
            if any {
                latencies.push(Percentiles::of(kind, &merged));
            }
        }
        let headline = latencies
            .first()
            .cloned()
            .unwrap_or_else(|| Percentiles::of(LatencyKind::Send, &histogram()));
        // The consumers' side counts in end-to-end (a message counts once it arrived).
        // The connect workload counts connections.
        let (main, elapsed) = match (&connectors, &consumers, &producers) {
            (Some(c), _, _) => c.clone(),
            (None, Some(c), _) if settings.workload.consumes() => c.clone(),
            (None, _, Some(p)) => p.clone(),
            (None, Some(c), None) => c.clone(),
            (None, None, None) => (
                Totals {
                    messages: 0,
                    bytes: 0,
                    mb_per_s: 0.0,
                    msgs_per_s: 0.0,
                },
                Duration::ZERO,
            ),
        };
        Report {
            tool: "wharf-bench",
            messages: main.messages,
            bytes: main.bytes,
            errors: actors.iter().map(|a| a.errors).sum(),
            transactions: actors
                .iter()
                .filter_map(|a| a.transactions)
                .reduce(|a, b| TxnCounts {
                    committed: a.committed + b.committed,
                    aborted: a.aborted + b.aborted,
                }),
            elapsed_s: elapsed.as_secs_f64(),
            mb_per_s: main.mb_per_s,
            msgs_per_s: main.msgs_per_s,
            latency: headline,
            latencies,
            producers: producers.map(|(t, _)| t),
            consumers: consumers.map(|(t, _)| t),
            actors: actors
                .iter()
                .map(|a| ActorReport {
                    role: a.role,
                    id: a.id,
                    messages: a.messages,
                    bytes: a.bytes,
                    errors: a.errors,
                    transactions: a.transactions,
                    elapsed_s: a.elapsed.as_secs_f64(),
                    mb_per_s: rate(a.bytes, a.elapsed) / 1e6,
                    msgs_per_s: rate(a.messages, a.elapsed),
                    latency: Percentiles::of(a.latency_kind, &a.latency),
                    partitions: a.per_partition.clone(),
                })
                .collect(),
            settings,
        }
    }

    /// The human summary; its last line is `throughput: <MB/s> MB/s, <msgs/s> msgs/s, p99:
    /// <ms> ms`.
    pub fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        let tls = if s.tls.is_some() { " (TLS)" } else { "" };
        if s.workload == crate::settings::Workload::Connect {
            let ready = match s.protocol {
                crate::settings::Protocol::Native if s.login => "logged in",
                crate::settings::Protocol::Native => "one ping answered",
                crate::settings::Protocol::Kafka => "first Metadata answered",
            };
            line(format!(
                "connect over {:?} at {}{tls}: {} connections one after another per connector, each timed until {ready}",
                s.protocol, s.server, s.messages
            ));
        } else {
            line(format!(
            "{} over {:?} at {}{tls}: {} producer(s), {} consumer(s), {} partition(s), {} B messages, {} per batch{}{}{}{}{}",
            s.workload.name(),
            s.protocol,
            s.server,
            if s.workload.produces() { s.producers } else { 0 },
            if s.workload.consumes() { s.consumers } else { 0 },
            s.partitions,
            s.message_size,
            s.batch,
            s.rate.map_or(String::new(), |r| format!(", limited to {r} msgs/s")),
            s.durability.map_or(String::new(), |d| format!(", durability {d:?}")),
            s.transactions.as_ref().map_or(String::new(), |t| format!(
                ", transactional (commit every {} ms)",
                t.commit_interval.as_millis()
            )),
            s.keys.map_or(String::new(), |n| format!(", keyed over {n} keys")),
            if s.topic_configs.is_empty() {
                String::new()
            } else {
                let c: Vec<String> = s.topic_configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(", topic configs {}", c.join(" "))
            },
        ));
        }
        for a in &self.actors {
            line(format!(
                "  {:?} {:>2}: {:>10} msgs {:>9.1} MB/s {:>11.0} msgs/s  {:?} p50 {:.3} ms p99 {:.3} ms{}{}",
                a.role,
                a.id,
                a.messages,
                a.mb_per_s,
                a.msgs_per_s,
                a.latency.kind,
                a.latency.p50,
                a.latency.p99,
                a.transactions.map_or(String::new(), |t| format!(
                    "  transactions {} committed, {} aborted",
                    t.committed, t.aborted
                )),
                if a.errors > 0 {
                    format!("  errors {}", a.errors)
                } else {
                    String::new()
                }
            ));
        }
        for (name, t) in [
            ("producers", &self.producers),
            ("consumers", &self.consumers),
        ] {
            if let Some(t) = t {
                line(format!(
                    "  {name} total: {} msgs, {:.1} MB/s, {:.0} msgs/s",
                    t.messages, t.mb_per_s, t.msgs_per_s
                ));
            }
        }
        for p in &self.latencies {
            line(format!(
                "  latency {:?} ({} samples): p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                p.kind, p.samples, p.p50, p.p90, p.p99, p.p999, p.max
            ));
        }
        line(format!(
            "  errors: {}, elapsed {:.3} s",
            self.errors, self.elapsed_s
        ));
        line(format!(
            "throughput: {:.2} MB/s, {:.0} msgs/s, p99: {:.3} ms",
            self.mb_per_s, self.msgs_per_s, self.latency.p99
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Args, Settings};
    use clap::Parser;

    #[test]
    fn the_last_line_is_the_summary_and_totals_add_up() {
        let settings = Settings::from_args(Args::parse_from([
            "wharf-bench",
            "pinned-producer",
            "--producers",
            "2",
        ]))
        .unwrap();
        let mut actors = Vec::new();
        for id in 0..2 {
            let mut a = ActorStats::new(Role::Producer, id, LatencyKind::Send);
            a.messages = 1000;
            a.bytes = 1_000_000;
            a.elapsed = Duration::from_secs(1);
            record(&mut a.latency, 2_000, 1000);
            actors.push(a);
        }
        let r = Report::new(settings, actors);
        assert_eq!((r.messages, r.bytes), (2000, 2_000_000));
        assert!((r.mb_per_s - 2.0).abs() < 1e-9);
        let text = r.text();
        let last = text.lines().last().unwrap();
        assert_eq!(last, "throughput: 2.00 MB/s, 2000 msgs/s, p99: 2.000 ms");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["settings"]["workload"], "pinned-producer");
        assert_eq!(json["actors"].as_array().unwrap().len(), 2);
    }
}
