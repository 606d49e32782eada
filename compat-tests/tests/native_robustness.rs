//! Hostile input on the native door: random and mutated frames to the decoder and to a live
//! server. Nothing panics, a bad connection gets an error answer or is closed, oversized frames are
//! refused before anything is allocated for them, and a well-behaved client connected at the same
//! time keeps working.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::BytesMut;
use compat_tests::{native_frame, root_login_frame, TestServer};
use iggy::prelude::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_protocol::message::{encode_message, validate_messages, SendMessages};
use wharf_protocol::{codes, Request};

const WAIT: Duration = Duration::from_secs(30);

/// Every command code the server decodes (from the protocol crate's one list), SendMessages and
/// the unsupported ones, plus a few codes it does not know.
fn fuzz_codes() -> Vec<u32> {
    let mut all = Request::CODES.to_vec();
    all.extend_from_slice(Request::UNSUPPORTED_CODES);
    all.extend([0, 7, 999, u32::MAX]);
    all
}

fn valid_send() -> BytesMut {
    let mut blob = BytesMut::new();
    encode_message(0, 1, b"payload", &[], &mut blob);
    encode_message(
        5,
        2,
        b"second",
        &[2, 1, 0, 0, 0, b'k', 1, 1, 0, 0, 0, 9],
        &mut blob,
    );
    let mut out = BytesMut::new();
    SendMessages::encode(
        &wharf_protocol::Identifier::Name("s".into()),
        &wharf_protocol::Identifier::Numeric(0),
        &wharf_protocol::Partitioning::Balanced,
        &blob,
        &mut out,
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_survives_random_payloads(code in proptest::sample::select(fuzz_codes()), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(code, &bytes);
        if let Ok(send) = SendMessages::decode(BytesMut::from(&bytes[..])) {
            let _ = validate_messages(&send.messages, send.messages_count);
        }
    }

    #[test]
    fn decoder_survives_mutated_sends(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut b = valid_send();
        for (at, x) in flips {
            let i = at % b.len();
            b[i] ^= x;
        }
        b.truncate(cut % (b.len() + 1));
        if let Ok(send) = SendMessages::decode(b) {
            let _ = validate_messages(&send.messages, send.messages_count);
        }
    }
}

/// Sends one raw frame and reads the answer: `Some(status)`, or `None` if the server closed.
async fn raw(conn: &mut TcpStream, frame: &[u8]) -> Option<u32> {
    conn.write_all(frame).await.ok()?;
    let mut head = [0u8; 8];
    match tokio::time::timeout(WAIT, conn.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return None,
        Err(_) => panic!("server neither answered nor closed within {WAIT:?}"),
    }
    let status = u32::from_le_bytes(head[..4].try_into().unwrap());
    let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
    assert!(
        status == 0 || len == 0,
        "an error answer must carry no payload"
    );
    assert!(len < 64 << 20, "absurd answer length {len}");
    let mut body = vec![0u8; len];
    tokio::time::timeout(WAIT, conn.read_exact(&mut body))
        .await
        .unwrap()
        .ok()?;
    Some(status)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_server_survives_hostile_frames_while_serving_a_good_client() {
    // Mutated login frames are wrong passwords from this address: the failed-login limit (a
    // lockout after 5) would refuse the later good logins this test needs. Each failure starts
    // a new window here, so nothing is ever locked (the limit has its own tests).
    let server = TestServer::start_with(|c| c.logins.failed_login_window = Duration::ZERO).await;
    let good = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .build()
        .unwrap();
    good.connect().await.unwrap();
    good.login_user("iggy", "iggy").await.unwrap();
    compat_tests::create_stream_with_topic(&good, "s", "t", 1).await;

    // A length below the code's size: refused and closed.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(raw(&mut c, &[3, 0, 0, 0, 1, 0, 0, 0]).await, Some(3));
    assert_eq!(
        raw(&mut c, &native_frame(codes::PING, &[])).await,
        None,
        "connection should be closed"
    );

    // A declared 4 GiB payload: refused at once, nothing allocated, connection closed.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        raw(&mut c, &[0xff, 0xff, 0xff, 0xff, 101, 0, 0, 0]).await,
        Some(3)
    );

    // Before login only ping works; unknown codes and malformed payloads get errors and the
    // connection stays usable.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(raw(&mut c, &native_frame(codes::PING, &[])).await, Some(0));
    assert_eq!(
        raw(&mut c, &native_frame(codes::GET_STREAMS, &[])).await,
        Some(40)
    );
    assert_eq!(raw(&mut c, &native_frame(999, &[1, 2, 3])).await, Some(3));
    assert_eq!(raw(&mut c, &root_login_frame()).await, Some(0));
    assert_eq!(
        raw(&mut c, &native_frame(codes::GET_STREAM, &[2, 200, b'x'])).await,
        Some(4)
    );
    // A send claiming four billion messages is refused without trusting the count.
    let mut huge_count = valid_send();
    let count_at = 4 + 3 + 6 + 2; // metadata length, stream "s", topic 0, balanced
    huge_count[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        raw(&mut c, &native_frame(codes::SEND_MESSAGES, &huge_count)).await,
        Some(4)
    );
    assert_eq!(raw(&mut c, &native_frame(codes::PING, &[])).await, Some(0));

    // A payload announced but never finished: the server drops the connection when we do.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(&[104, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    drop(c);

    // Random mutations of valid frames, some before and some after login.
    let mut rng = Rng(0x00C0_FFEE_1234_5678);
    let templates: Vec<Vec<u8>> = vec![
        native_frame(codes::SEND_MESSAGES, &valid_send()),
        root_login_frame(),
        native_frame(codes::GET_STREAM, &[2, 1, b's']),
        native_frame(
            codes::CREATE_TOPIC,
            &[
                2, 1, b's', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                b'x',
            ],
        ),
        native_frame(
            codes::POLL_MESSAGES,
            &[
                1, 2, 1, b'c', 2, 1, b's', 2, 1, b't', 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0,
                10, 0, 0, 0, 0,
            ],
        ),
    ];
    let mut closed = 0;
    let mut answered = 0;
    for round in 0..40 {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        if round % 2 == 0 {
            assert_eq!(raw(&mut c, &root_login_frame()).await, Some(0));
        }
        for _ in 0..25 {
            let mut f = templates[(rng.next() % templates.len() as u64) as usize].clone();
            // Keep the 4-byte length honest most of the time so mutations reach the decoder.
            for _ in 0..1 + rng.next() % 4 {
                let i = 4 + (rng.next() as usize % (f.len() - 4));
                f[i] ^= (rng.next() % 255 + 1) as u8;
            }
            if rng.next().is_multiple_of(10) {
                // A wrong length desynchronises the stream: the server may wait for bytes that
                // never come, so we end the connection and the server must let it go.
                let i = (rng.next() % 4) as usize;
                f[i] ^= (rng.next() % 255 + 1) as u8;
                c.write_all(&f).await.unwrap();
                c.shutdown().await.unwrap();
                let mut rest = Vec::new();
                tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
                    .await
                    .expect("server kept a half-closed connection open")
                    .ok();
                closed += 1;
                break;
            }
            match raw(&mut c, &f).await {
                Some(_) => answered += 1,
                None => {
                    closed += 1;
                    break;
                }
            }
        }
    }
    assert!(answered > 0);
    eprintln!("hostile frames: {answered} answered, {closed} connections closed by the server");

    // The well-behaved client never noticed.
    good.ping().await.unwrap();
    let mut messages = vec![IggyMessage::builder()
        .payload("still here".into())
        .build()
        .unwrap()];
    good.send_messages(
        &Identifier::named("s").unwrap(),
        &Identifier::named("t").unwrap(),
        &Partitioning::partition_id(0),
        &mut messages,
    )
    .await
    .unwrap();
    let polled = good
        .poll_messages(
            &Identifier::named("s").unwrap(),
            &Identifier::named("t").unwrap(),
            Some(0),
            &Consumer::new(Identifier::named("c").unwrap()),
            &PollingStrategy::last(),
            1,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        polled.messages.last().unwrap().payload.as_ref(),
        b"still here"
    );
}
