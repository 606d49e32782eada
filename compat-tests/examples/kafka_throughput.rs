//! librdkafka against a running server's Kafka door: produce N messages of S bytes to one
//! partition (acks=all, linger.ms=5, batch.size=1 MB), then consume them back, and report
//! MB/s and messages/s for both. Works against any Kafka broker.
//!
//! cargo run --release -p compat-tests --example kafka_throughput -- 127.0.0.1:9092 \
//!     [--messages 1000000] [--size 1000] [--compression none]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let count: usize = arg(&args, "--messages", "1000000").parse()?;
    let size: usize = arg(&args, "--size", "1000").parse()?;
    let compression = arg(&args, "--compression", "none");
    let topic = format!("throughput-{}", std::process::id());

    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", &server);
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let made = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    if let Some(Err((t, e))) = made.first() {
        return Err(format!("cannot create {t}: {e}").into());
    }

    let producer: BaseProducer = base
        .clone()
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.codec", &compression)
        .create()?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < count {
        match producer.send(
            BaseRecord::<(), _>::to(&topic)
                .partition(0)
                .payload(&payload),
        ) {
            Ok(()) => sent += 1,
            Err((e, _))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
        if sent.is_multiple_of(1000) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let produced = start.elapsed();
    report("produce", count, size, produced);

    let consumer: BaseConsumer = base
        .clone()
        .set("group.id", "throughput-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut read = 0usize;
    let deadline = start + Duration::from_secs(300);
    while read < count {
        if Instant::now() > deadline {
            return Err(format!("consumed only {read} of {count}").into());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            read += 1;
        }
    }
    report("consume", count, size, start.elapsed());
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    Ok(())
}

fn report(what: &str, count: usize, size: usize, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{what}: {count} x {size} B in {secs:.2} s: {:.1} MB/s, {:.0} msgs/s",
        (count * size) as f64 / secs / 1e6,
        count as f64 / secs
    );
}
