//! Direct versus background producing: 1,000,000 messages of 100 bytes, one `send` call per
//! message, first in direct mode (each send waits for the server) and then in background mode
//! (sends are batched by workers). Prints both throughputs, the ratio, and the p50/p99 time spent
//! inside `send`. Also sends the same volume as pre-built 1000-message batches for reference.
//!
//! `cargo run --release -p wharf-sdk --example background_vs_direct -- --server HOST:PORT [--messages N] [--size BYTES]`
//!
//! It starts nothing itself: run `cargo run --release --bin wharf-server` first.

use std::time::{Duration, Instant};

use wharf_sdk::{
    BackgroundConfig, Client, ClientConfig, Identifier, Message, Partitioner, Producer,
    TopicOptions,
};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(
    label: &str,
    n: usize,
    size: usize,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) -> f64 {
    latencies.sort_unstable();
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<12} {rate:>12.0} msgs/s {:>8.1} MB/s   send p50 {:>9.2?}  p99 {:>9.2?}",
        rate * size as f64 / 1e6,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    rate
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = arg("--server")
        .ok_or("usage: background_vs_direct --server HOST:PORT [--messages N] [--size BYTES]")?;
    let n: usize = arg("--messages")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let size: usize = arg("--size").map(|s| s.parse()).transpose()?.unwrap_or(100);
    let client = Client::connect(ClientConfig::new(server).with_password("iggy", "iggy")).await?;
    let stream_name = format!("bvd-{}", std::process::id());
    client.create_stream(&stream_name).await?;
    let stream = Identifier::Name(stream_name);
    let topic = Identifier::Name("t".into());
    client
        .create_topic(&stream, "t", 1, TopicOptions::default())
        .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);

    let run = |background: bool| {
        let (client, stream, topic, payload) = (
            client.clone(),
            stream.clone(),
            topic.clone(),
            payload.clone(),
        );
        async move {
            let mut builder =
                Producer::builder(&client, stream, topic).partitioner(Partitioner::Partition(0));
            if background {
                builder = builder.background(BackgroundConfig::default());
            }
            let producer = builder.build().await?;
            let mut latencies = Vec::with_capacity(n);
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                producer.send(Message::new(payload.clone())).await?;
                latencies.push(t.elapsed());
            }
            producer.shutdown().await;
            Ok::<_, Box<dyn std::error::Error>>((start.elapsed(), latencies))
        }
    };

    println!("{n} messages of {size} bytes, one partition, one send call per message");
    let (elapsed, lat) = run(false).await?;
    let direct = report("direct", n, size, elapsed, lat.clone());
    let direct_p99 = percentile(
        &{
            let mut l = lat;
            l.sort_unstable();
            l
        },
        0.99,
    );
    let (elapsed, lat) = run(true).await?;
    let background = report("background", n, size, elapsed, lat.clone());
    let background_p99 = percentile(
        &{
            let mut l = lat;
            l.sort_unstable();
            l
        },
        0.99,
    );

    // Reference: the same volume as pre-built batches of 1000, sent directly.
    let producer = Producer::builder(&client, stream.clone(), topic.clone())
        .build()
        .await?;
    let batch: Vec<Message> = (0..1000).map(|_| Message::new(payload.clone())).collect();
    let mut lat = Vec::new();
    let start = Instant::now();
    for _ in 0..n / 1000 {
        let t = Instant::now();
        producer.send_batch(0, &batch).await?;
        lat.push(t.elapsed());
    }
    let batches = report("batches", n / 1000 * 1000, size, start.elapsed(), lat);
    client.delete_stream(&stream).await?;

    println!(
        "background / direct throughput: {:.1}x; p99 send latency {:.1}% lower; background / pre-built batches: {:.0}%",
        background / direct,
        100.0 * (1.0 - background_p99.as_secs_f64() / direct_p99.as_secs_f64()),
        100.0 * background / batches
    );
    Ok(())
}
