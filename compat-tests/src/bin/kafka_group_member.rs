//! A librdkafka group consumer as a process of its own, so group tests can kill it without it
//! leaving the group (as a crashed application would).
//!
//! `kafka-group-member BOOTSTRAP GROUP TOPIC ASSIGNOR SESSION_TIMEOUT_MS [GROUP_INSTANCE_ID]`
//!
//! With a group instance id it is a static member (KIP-345).
//!
//! Subscribes, and for every message prints `MSG <partition> <offset>` and then commits the
//! offset after it synchronously (at-least-once: processed, then committed). Prints
//! `ASSIGNED <p>,<p>,...` (or `ASSIGNED -`) whenever its assignment changes. Closes cleanly
//! (leaving the group) when its standard input ends.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn main() {
    if let Err(e) = run() {
        eprintln!("kafka-group-member: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, instance) = match args.as_slice() {
        [rest @ .., instance] if rest.len() == 5 => (rest, Some(instance)),
        all => (all, None),
    };
    let [bootstrap, group, topic, assignor, session_ms] = args else {
        return Err("usage: kafka-group-member BOOTSTRAP GROUP TOPIC ASSIGNOR \
                    SESSION_TIMEOUT_MS [GROUP_INSTANCE_ID]"
            .into());
    };
    let mut config = ClientConfig::new();
    if let Some(instance) = instance {
        config.set("group.instance.id", instance);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("partition.assignment.strategy", assignor)
        .set("session.timeout.ms", session_ms)
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("cannot subscribe: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        stopper.store(true, Ordering::SeqCst);
    });

    let mut out = std::io::stdout().lock();
    let mut shown: Option<Vec<i32>> = None;
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(100));
        let now: Vec<i32> = consumer
            .assignment()
            .map(|tpl| {
                let mut ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                ps.sort_unstable();
                ps
            })
            .unwrap_or_default();
        if shown.as_ref() != Some(&now) {
            let list: Vec<String> = now.iter().map(i32::to_string).collect();
            let list = if list.is_empty() {
                "-".to_string()
            } else {
                list.join(",")
            };
            writeln!(out, "ASSIGNED {list}").map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            shown = Some(now);
        }
        match polled {
            None => {}
            Some(Err(e)) => eprintln!("kafka-group-member: poll: {e}"),
            Some(Ok(m)) => {
                writeln!(out, "MSG {} {}", m.partition(), m.offset()).map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                    .map_err(|e| e.to_string())?;
                // A commit refused mid-rebalance is fine: the message comes again elsewhere.
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    eprintln!("kafka-group-member: commit: {e}");
                }
            }
        }
    }
    consumer.unsubscribe();
    drop(consumer);
    writeln!(out, "CLOSED").map_err(|e| e.to_string())?;
    Ok(())
}
