//! Log flooding (issue 14, item 8): before, every malformed frame wrote a warning (1,186 lines
//! for 6,000 frames). Now a peer's misbehaviour is one line per `peer_log_interval` with a count
//! of what was left out. This test captures everything the server logs at INFO and above while one peer sends
//! 1,000 malformed Kafka frames and 1,000 malformed native frames, and counts the lines.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_gateway::config::{Overrides, ServerConfig};

/// Frames of each kind the peer sends.
const FRAMES: usize = 1000;
/// The bound: lines about the peer, for both doors together, within one interval.
const MAX_LINES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_from_one_peer_are_a_line_per_interval_not_a_line_each() {
    let captured = common::capture_logs();

    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
    // Longer than the test runs, so every line after the first is left out.
    config.peer_log_interval = Duration::from_secs(3600);
    let running = wharf_gateway::start(config).await.unwrap();
    let (kafka, native) = (running.kafka_addr, running.native_addr);
    let before = captured.0.lock().len();

    let work = async {
        for _ in 0..FRAMES {
            // A Kafka frame declaring 4 bytes: below the 8-byte header, refused and closed.
            let mut s = TcpStream::connect(kafka).await.unwrap();
            s.write_all(&4i32.to_be_bytes()).await.unwrap();
            s.write_all(&[0; 4]).await.unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        }
        // Native heads whose length is below the 4-byte command code they hold.
        let mut s = TcpStream::connect(native).await.unwrap();
        for _ in 0..FRAMES {
            let mut head = [0u8; 8];
            head[..4].copy_from_slice(&1u32.to_le_bytes());
            if s.write_all(&head).await.is_err() {
                s = TcpStream::connect(native).await.unwrap();
                continue;
            }
            let mut status = [0u8; 8];
            if s.read_exact(&mut status).await.is_err() {
                // The door closed the connection: open another and go on.
                s = TcpStream::connect(native).await.unwrap();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("2,000 malformed frames sent within 120 s");

    let log = String::from_utf8_lossy(&captured.0.lock()[before..]).into_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("127.0.0.1")).collect();
    assert!(
        !lines.is_empty(),
        "the peer's misbehaviour is logged at least once; the log was:\n{log}"
    );
    assert!(
        lines.len() <= MAX_LINES,
        "{} warning lines for {} malformed frames from one peer (bound {MAX_LINES}):\n{}",
        lines.len(),
        2 * FRAMES,
        lines.join("\n")
    );
    running.shutdown().await.unwrap();
}
