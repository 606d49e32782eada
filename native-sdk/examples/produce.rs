//! Sends messages in the background, waits for the last one's delivery, and shuts down.
//!
//! `cargo run -p wharf-sdk --example produce -- --server 127.0.0.1:8090 [--count N]`
//! (creates stream `demo` and topic `events` if missing).

use std::time::Duration;

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = arg("--server").unwrap_or_else(|| "127.0.0.1:8090".into());
    let count: u64 = arg("--count")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(10_000);
    let client = Client::connect(ClientConfig::new(server).with_password("iggy", "iggy")).await?;
    let (stream, topic) = (
        Identifier::Name("demo".into()),
        Identifier::Name("events".into()),
    );
    if client.get_stream(&stream).await?.is_none() {
        client.create_stream("demo").await?;
    }
    if client.get_topic(&stream, &topic).await?.is_none() {
        client
            .create_topic(&stream, "events", 3, TopicOptions::default())
            .await?;
    }
    let producer = Producer::builder(&client, stream, topic)
        .background(BackgroundConfig {
            linger: Duration::from_millis(10),
            ..BackgroundConfig::default()
        })
        .partitioner(Partitioner::Key)
        .on_error(|failure| {
            eprintln!(
                "{} messages not delivered: {}",
                failure.messages.len(),
                failure.error
            )
        })
        .build()
        .await?;
    let mut last = None;
    for i in 0..count {
        let message = Message::new(format!("event {i}"))
            .with_header("seq", i)
            .with_key(format!("user-{}", i % 10));
        last = Some(producer.send(message).await?);
    }
    if let Some(delivery) = last {
        println!(
            "last message delivered to partition {}",
            delivery.await?.partition
        );
    }
    producer.shutdown().await;
    println!("sent {count} messages");
    Ok(())
}
