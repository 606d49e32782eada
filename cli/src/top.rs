//! `wharf top`: a live view of a server, redrawn every interval from its metrics snapshot
//! (Wharf's command 10_006): throughput per topic, connections per door, the server process's
//! CPU and memory, and the consumer group partitions with the largest lag.
//!
//! The server sends totals; rates are the difference of two snapshots over the difference of
//! their server uptimes, so the first frame has totals only. On a terminal each frame replaces
//! the last (ANSI clear and home); otherwise, and with `--output json` (one object a line),
//! frames follow each other, as `top -b` prints them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wharf_sdk::units::{format_duration, format_size};
use wharf_sdk::wire::{MetricsSnapshotWire, TopicTrafficWire};
use wharf_sdk::{Client, Error};

use crate::commands::{emit, lag_json, lag_table};
use crate::output::Table;

/// What to show and how often.
#[derive(Debug)]
pub struct View<'a> {
    pub server: &'a str,
    pub every: Duration,
    /// Frames before stopping; `None`: until interrupted.
    pub iterations: Option<u64>,
    /// Most topics and lag rows shown.
    pub limit: u32,
    pub json: bool,
}

/// One topic's per-second rates between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub messages_in: f64,
    pub messages_out: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
}

/// One topic's line: its totals and, from the second frame on, its rates.
#[derive(Debug)]
struct TopicLine<'a> {
    traffic: &'a TopicTrafficWire,
    rates: Option<Rates>,
}

/// One frame: a snapshot and what the one before it makes of it.
#[derive(Debug)]
struct Frame<'a> {
    number: u64,
    snapshot: &'a MetricsSnapshotWire,
    /// Seconds between the two snapshots; `None` on the first frame.
    seconds: Option<f64>,
    /// The server's CPU use over those seconds, in percent of one core.
    cpu_percent: Option<f64>,
    /// The busiest topics first, at most the limit.
    topics: Vec<TopicLine<'a>>,
    /// Topics left out by the limit.
    more_topics: usize,
}

fn per_second(now: u64, before: u64, seconds: f64) -> f64 {
    // A counter that went down belongs to a topic deleted and created again: count from 0.
    let delta = if now >= before { now - before } else { now };
    delta as f64 / seconds
}

fn rates(now: &TopicTrafficWire, before: Option<&TopicTrafficWire>, seconds: f64) -> Rates {
    let zero = TopicTrafficWire {
        stream: String::new(),
        topic: String::new(),
        bytes_in: 0,
        messages_in: 0,
        bytes_out: 0,
        messages_out: 0,
    };
    let b = before.unwrap_or(&zero);
    Rates {
        messages_in: per_second(now.messages_in, b.messages_in, seconds),
        messages_out: per_second(now.messages_out, b.messages_out, seconds),
        bytes_in: per_second(now.bytes_in, b.bytes_in, seconds),
        bytes_out: per_second(now.bytes_out, b.bytes_out, seconds),
    }
}

/// The frame of `now`, with rates against `before` (taken `elapsed` earlier by this client's
/// clock, used only if the server's uptime did not move).
fn frame<'a>(
    number: u64,
    before: Option<&MetricsSnapshotWire>,
    now: &'a MetricsSnapshotWire,
    elapsed: Duration,
    limit: usize,
) -> Frame<'a> {
    let seconds = before.and_then(|b| {
        let server = now.uptime_us.saturating_sub(b.uptime_us) as f64 / 1e6;
        let s = if server > 0.0 {
            server
        } else {
            elapsed.as_secs_f64()
        };
        (s > 0.0).then_some(s)
    });
    let cpu_percent = before
        .zip(seconds)
        .map(|(b, s)| (100.0 * (now.cpu_seconds - b.cpu_seconds) / s).max(0.0));
    let previous: HashMap<(&str, &str), &TopicTrafficWire> = before
        .map(|b| {
            b.topics
                .iter()
                .map(|t| ((t.stream.as_str(), t.topic.as_str()), t))
                .collect()
        })
        .unwrap_or_default();
    let mut topics: Vec<TopicLine<'a>> = now
        .topics
        .iter()
        .map(|t| TopicLine {
            traffic: t,
            rates: seconds.map(|s| {
                rates(
                    t,
                    previous
                        .get(&(t.stream.as_str(), t.topic.as_str()))
                        .copied(),
                    s,
                )
            }),
        })
        .collect();
    // Busiest first: by bytes a second when there are rates, else by total bytes; then name.
    let weight = |l: &TopicLine<'_>| match l.rates {
        Some(r) => r.bytes_in + r.bytes_out,
        None => (l.traffic.bytes_in.saturating_add(l.traffic.bytes_out)) as f64,
    };
    topics.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then_with(|| a.traffic.topic.cmp(&b.traffic.topic))
    });
    let more_topics = topics.len().saturating_sub(limit);
    topics.truncate(limit);
    Frame {
        number,
        snapshot: now,
        seconds,
        cpu_percent,
        topics,
        more_topics,
    }
}

/// Whole days, hours, minutes and seconds: `2d 3h 4m 5s`, `4m 5s`.
fn uptime_text(us: u64) -> String {
    let s = us / 1_000_000;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn rate_text(rates: Option<Rates>, pick: fn(&Rates) -> f64, bytes: bool) -> String {
    match rates {
        None => "-".into(),
        Some(r) if bytes => format_size(pick(&r).round() as u64),
        Some(r) => format!("{:.1}", pick(&r)),
    }
}

fn render_text(view: &View<'_>, f: &Frame<'_>) -> String {
    let s = f.snapshot;
    let of = view.iterations.map(|n| format!("/{n}")).unwrap_or_default();
    let mut out = format!(
        "wharf top - {} - up {} - frame {}{of} every {}\n",
        view.server,
        uptime_text(s.uptime_us),
        f.number,
        format_duration(view.every)
    );
    out.push_str(&format!(
        "process  cpu {}  memory {}  threads {}  open files {}\n",
        f.cpu_percent
            .map_or_else(|| "-".into(), |c| format!("{c:.1} %")),
        format_size(s.resident_bytes),
        s.threads,
        s.open_fds
    ));
    out.push_str(&format!(
        "connections  native {}  kafka {}\n",
        s.native_connections, s.kafka_connections
    ));
    if !s.metrics_enabled {
        out.push_str("traffic is not counted on this server ([metrics] enable = false)\n");
    }
    out.push('\n');
    let mut t = Table::new(&[
        "TOPIC",
        "STREAM",
        "MSG IN/S",
        "MSG OUT/S",
        "BYTES IN/S",
        "BYTES OUT/S",
        "MSG IN",
        "MSG OUT",
        "BYTES IN",
        "BYTES OUT",
    ]);
    for l in &f.topics {
        let tr = l.traffic;
        t.row(vec![
            tr.topic.clone(),
            tr.stream.clone(),
            rate_text(l.rates, |r| r.messages_in, false),
            rate_text(l.rates, |r| r.messages_out, false),
            rate_text(l.rates, |r| r.bytes_in, true),
            rate_text(l.rates, |r| r.bytes_out, true),
            tr.messages_in.to_string(),
            tr.messages_out.to_string(),
            format_size(tr.bytes_in),
            format_size(tr.bytes_out),
        ]);
    }
    out.push_str(&t.render());
    if f.more_topics > 0 {
        out.push_str(&format!("\n(and {} more topics)", f.more_topics));
    }
    out.push_str("\n\n");
    if s.lag.is_empty() {
        out.push_str("no consumer group has committed offsets");
    } else {
        out.push_str(&lag_table(&s.lag));
    }
    out
}

fn rate_json(rates: Option<Rates>, pick: fn(&Rates) -> f64) -> Value {
    rates.map_or(Value::Null, |r| json!(pick(&r)))
}

fn render_json(f: &Frame<'_>) -> Value {
    let s = f.snapshot;
    json!({
        "frame": f.number,
        "uptime_us": s.uptime_us,
        "seconds": f.seconds,
        "metrics_enabled": s.metrics_enabled,
        "connections": {"native": s.native_connections, "kafka": s.kafka_connections},
        "process": {"cpu_percent": f.cpu_percent, "cpu_seconds": s.cpu_seconds,
                    "resident_bytes": s.resident_bytes, "virtual_bytes": s.virtual_bytes,
                    "threads": s.threads, "open_fds": s.open_fds},
        "topics": f.topics.iter().map(|l| {
            let t = l.traffic;
            json!({"stream": t.stream, "topic": t.topic,
                   "messages_in": t.messages_in, "messages_out": t.messages_out,
                   "bytes_in": t.bytes_in, "bytes_out": t.bytes_out,
                   "messages_in_per_s": rate_json(l.rates, |r| r.messages_in),
                   "messages_out_per_s": rate_json(l.rates, |r| r.messages_out),
                   "bytes_in_per_s": rate_json(l.rates, |r| r.bytes_in),
                   "bytes_out_per_s": rate_json(l.rates, |r| r.bytes_out)})
        }).collect::<Vec<_>>(),
        "more_topics": f.more_topics,
        "lag": s.lag.iter().map(lag_json).collect::<Vec<_>>(),
    })
}

/// Draws frames until `view.iterations` have been shown (or forever).
pub async fn run(client: &Client, view: &View<'_>) -> Result<(), Error> {
    let terminal = !view.json && std::io::stdout().is_terminal();
    let mut ticks = tokio::time::interval(view.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before: Option<(MetricsSnapshotWire, Instant)> = None;
    for number in 1.. {
        ticks.tick().await;
        let snapshot = client.metrics_snapshot(view.limit).await?;
        let at = Instant::now();
        let f = frame(
            number,
            before.as_ref().map(|(s, _)| s),
            &snapshot,
            before
                .as_ref()
                .map_or(Duration::ZERO, |(_, t)| at.duration_since(*t)),
            view.limit as usize,
        );
        if view.json {
            emit(&render_json(&f).to_string());
        } else if terminal {
            emit(&format!("\x1b[H\x1b[2J{}", render_text(view, &f)));
        } else {
            if number > 1 {
                emit("");
            }
            emit(&render_text(view, &f));
        }
        if view.iterations.is_some_and(|n| number >= n) {
            break;
        }
        before = Some((snapshot, at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_sdk::wire::PartitionLagWire;

    fn traffic(topic: &str, messages_in: u64, bytes_in: u64) -> TopicTrafficWire {
        TopicTrafficWire {
            stream: "default".into(),
            topic: topic.into(),
            bytes_in,
            messages_in,
            bytes_out: 0,
            messages_out: 0,
        }
    }

    fn snapshot(uptime_s: u64, cpu: f64, topics: Vec<TopicTrafficWire>) -> MetricsSnapshotWire {
        MetricsSnapshotWire {
            uptime_us: uptime_s * 1_000_000,
            metrics_enabled: true,
            cpu_seconds: cpu,
            topics,
            ..MetricsSnapshotWire::default()
        }
    }

    /// Rates are the difference of the totals over the difference of the server's uptimes
    /// (not this client's clock); the busiest topic comes first; a counter that went down
    /// (topic re-created) counts from 0; a new topic counts from 0.
    #[test]
    fn rates_come_from_two_snapshots_over_the_server_uptime() {
        let a = snapshot(
            10,
            1.0,
            vec![traffic("quiet", 5, 50), traffic("busy", 100, 1000)],
        );
        let b = snapshot(
            12,
            1.5,
            vec![
                traffic("quiet", 7, 70),
                traffic("busy", 1100, 11_000),
                traffic("new", 4, 40),
                traffic("recreated", 0, 0),
            ],
        );
        let f = frame(2, Some(&a), &b, Duration::from_secs(99), 3);
        assert_eq!(f.seconds, Some(2.0));
        assert_eq!(f.cpu_percent, Some(25.0));
        let names: Vec<&str> = f.topics.iter().map(|l| l.traffic.topic.as_str()).collect();
        assert_eq!(names, ["busy", "new", "quiet"]);
        assert_eq!(f.more_topics, 1);
        assert_eq!(
            f.topics[0].rates,
            Some(Rates {
                messages_in: 500.0,
                messages_out: 0.0,
                bytes_in: 5000.0,
                bytes_out: 0.0
            })
        );
        assert_eq!(f.topics[1].rates.map(|r| r.messages_in), Some(2.0));
        assert_eq!(per_second(3, 10, 1.0), 3.0);

        // The first frame: totals only, ordered by total bytes.
        let first = frame(1, None, &a, Duration::ZERO, 10);
        assert_eq!((first.seconds, first.cpu_percent), (None, None));
        assert!(first.topics.iter().all(|l| l.rates.is_none()));
        assert_eq!(first.topics[0].traffic.topic, "busy");
    }

    #[test]
    fn text_and_json_frames() {
        let mut b = snapshot(3723, 2.0, vec![traffic("orders", 10, 1024)]);
        b.native_connections = 2;
        b.kafka_connections = 1;
        b.lag = vec![PartitionLagWire {
            group: "workers".into(),
            stream: "default".into(),
            topic: "orders".into(),
            partition: 0,
            committed: 4,
            end_offset: 10,
            lag: 6,
        }];
        let a = snapshot(3722, 1.5, vec![traffic("orders", 0, 0)]);
        let view = View {
            server: "127.0.0.1:8090",
            every: Duration::from_secs(1),
            iterations: Some(2),
            limit: 10,
            json: false,
        };
        let f = frame(2, Some(&a), &b, Duration::ZERO, 10);
        let text = render_text(&view, &f);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "wharf top - 127.0.0.1:8090 - up 1h 2m 3s - frame 2/2 every 1 s"
        );
        assert!(lines[1].starts_with("process  cpu 50.0 %"), "{}", lines[1]);
        assert_eq!(lines[2], "connections  native 2  kafka 1");
        let row: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "orders", "default", "10.0", "0.0", "1.0", "KiB", "0", "B", "10", "0", "1.0",
                "KiB", "0", "B"
            ]
        );
        let lag: Vec<&str> = lines[8].split_whitespace().collect();
        assert_eq!(lag, ["workers", "orders", "0", "4", "10", "6"]);

        let v = render_json(&f);
        assert_eq!(v["topics"][0]["messages_in_per_s"], 10.0);
        assert_eq!(v["lag"][0]["lag"], 6);
        assert_eq!(v["process"]["cpu_percent"], 50.0);
        assert_eq!(v["connections"]["kafka"], 1);
    }
}
