//! Throughput with the official Iggy SDK's own producer in direct mode: one producer, one
//! partition, batches of 1000 messages of 1000 bytes; then the same messages polled back.
//!
//! `cargo run --release -p compat-tests --example iggy_throughput [-- SERVER_ADDR [BATCHES]]`
//!
//! Without an address it starts a wharf-server in-process on a temporary directory (under
//! `target/`), so Wharf and Iggy can be compared with the very same client by pointing it at
//! either.

use std::time::Instant;

use bytes::Bytes;
use iggy::prelude::*;

const MESSAGES_PER_BATCH: u64 = 1000;
const MESSAGE_SIZE: usize = 1000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr_arg = args.next().filter(|a| a != "-");
    let batches: u64 = args.next().map(|b| b.parse()).transpose()?.unwrap_or(1000);
    let mut local = None;
    let addr = match addr_arg {
        Some(a) => a,
        None => {
            let root =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
            std::fs::create_dir_all(&root)?;
            let dir = tempfile::tempdir_in(root)?;
            let server = compat_tests::TestServer::start_in(dir.path()).await;
            let addr = server.addr.to_string();
            local = Some((server, dir));
            addr
        }
    };
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(addr.clone())
        .build()?;
    client.connect().await?;
    client
        .login_user(DEFAULT_ROOT_USERNAME, DEFAULT_ROOT_PASSWORD)
        .await?;
    let stream = format!("bench-{}", std::process::id());
    client.create_stream(&stream).await?;
    let stream_id = Identifier::named(&stream)?;
    client
        .create_topic(
            &stream_id,
            "t",
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        )
        .await?;

    let producer = client
        .producer(&stream, "t")?
        .direct(
            DirectConfig::builder()
                .batch_length(MESSAGES_PER_BATCH as u32)
                .build(),
        )
        .partitioning(Partitioning::partition_id(0))
        .build();
    producer.init().await?;
    let payload = Bytes::from(vec![b'w'; MESSAGE_SIZE]);
    let total = batches * MESSAGES_PER_BATCH;
    let start = Instant::now();
    for _ in 0..batches {
        let messages: Vec<IggyMessage> = (0..MESSAGES_PER_BATCH)
            .map(|_| IggyMessage::builder().payload(payload.clone()).build())
            .collect::<Result<_, _>>()?;
        producer.send(messages).await?;
    }
    let sent = start.elapsed().as_secs_f64();

    let consumer = Consumer::new(Identifier::named("bench")?);
    let topic_id = Identifier::named("t")?;
    let start = Instant::now();
    let mut offset = 0u64;
    while offset < total {
        let polled = client
            .poll_messages(
                &stream_id,
                &topic_id,
                Some(0),
                &consumer,
                &PollingStrategy::offset(offset),
                MESSAGES_PER_BATCH as u32,
                false,
            )
            .await?;
        if polled.messages.is_empty() {
            return Err(format!("poll at {offset} returned nothing; {total} were sent").into());
        }
        offset += polled.messages.len() as u64;
    }
    let polled = start.elapsed().as_secs_f64();
    client.delete_stream(&stream_id).await?;

    let mb = (total as f64 * MESSAGE_SIZE as f64) / 1e6;
    println!("server: {addr}; {total} messages of {MESSAGE_SIZE} B in batches of {MESSAGES_PER_BATCH}, one partition");
    println!(
        "send: {:.0} msgs/s, {:.1} MB/s ({sent:.2} s)",
        total as f64 / sent,
        mb / sent
    );
    println!(
        "poll: {:.0} msgs/s, {:.1} MB/s ({polled:.2} s)",
        total as f64 / polled,
        mb / polled
    );
    if let Some((mut server, _dir)) = local {
        server.stop().await;
    }
    Ok(())
}
