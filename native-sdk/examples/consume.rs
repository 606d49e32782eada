//! Consumes `demo/events` as a member of group `demo-readers` until it has seen `--count`
//! messages, then stores its offsets and leaves the group.
//!
//! `cargo run -p wharf-sdk --example consume -- --server 127.0.0.1:8090 [--count N]`

use futures_util::StreamExt;
use wharf_sdk::{AutoCommit, Client, ClientConfig, Consumer, Identifier};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = arg("--server").unwrap_or_else(|| "127.0.0.1:8090".into());
    let count: usize = arg("--count")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(10_000);
    let client = Client::connect(ClientConfig::new(server).with_password("iggy", "iggy")).await?;
    let mut consumer = Consumer::group(
        &client,
        "demo-readers",
        Identifier::Name("demo".into()),
        Identifier::Name("events".into()),
    )
    .auto_commit(AutoCommit::OnPoll)
    .batch(500)
    .build()
    .await?;
    let mut seen = 0;
    while let Some(message) = consumer.next().await {
        let message = message?;
        seen += 1;
        if seen % 1000 == 0 || seen == count {
            println!(
                "partition {} offset {}: {:?}",
                message.partition_id, message.offset, message.payload
            );
        }
        if seen >= count {
            break;
        }
    }
    consumer.shutdown().await?;
    println!("consumed {seen} messages");
    Ok(())
}
