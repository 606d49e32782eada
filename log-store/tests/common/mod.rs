//! Builders shared by the integration tests: native and Kafka batches with known contents.
#![allow(dead_code, clippy::unwrap_used)]

pub mod power;
pub mod remote;
pub mod toy;

use bytes::BytesMut;
use wharf_log_store::{LogStore, NewBatch, StoreConfig, NATIVE_MESSAGE_HEADER_LEN};

/// A store config with the background thread off, so tests drive sync and retention.
pub fn config() -> StoreConfig {
    StoreConfig {
        background_tasks: false,
        ..StoreConfig::default()
    }
}

pub fn open(dir: &std::path::Path) -> LogStore {
    LogStore::open(dir, config()).expect("open store").0
}

/// Iggy 0.8 messages with the given bodies (no user headers).
pub fn native_payload<B: AsRef<[u8]>>(bodies: &[B]) -> BytesMut {
    let mut out = BytesMut::new();
    for (i, b) in bodies.iter().enumerate() {
        let b = b.as_ref();
        let mut header = [0u8; NATIVE_MESSAGE_HEADER_LEN];
        header[8..24].copy_from_slice(&(i as u128 + 1).to_le_bytes());
        header[52..56].copy_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(b);
    }
    out
}

pub fn native_batch<B: AsRef<[u8]>>(bodies: &[B]) -> NewBatch {
    NewBatch::native(native_payload(bodies)).expect("valid native batch")
}

/// `count` messages of `size` bytes whose contents derive from `seed`.
pub fn seeded_batch(seed: u64, count: usize, size: usize) -> NewBatch {
    let bodies: Vec<Vec<u8>> = (0..count).map(|i| seeded_body(seed, i, size)).collect();
    native_batch(&bodies)
}

pub fn seeded_body(seed: u64, i: usize, size: usize) -> Vec<u8> {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The bodies of the messages in a stored native payload.
pub fn native_bodies(payload: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let m = &payload[pos..];
        let h = u32::from_le_bytes(m[48..52].try_into().unwrap()) as usize;
        let p = u32::from_le_bytes(m[52..56].try_into().unwrap()) as usize;
        out.push(m[64..64 + p].to_vec());
        pos += 64 + p + h;
    }
    out
}

/// Offsets stamped into a stored native payload.
pub fn native_offsets(payload: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let m = &payload[pos..];
        out.push(u64::from_le_bytes(m[24..32].try_into().unwrap()));
        let h = u32::from_le_bytes(m[48..52].try_into().unwrap()) as usize;
        let p = u32::from_le_bytes(m[52..56].try_into().unwrap()) as usize;
        pos += 64 + p + h;
    }
    out
}

/// A Kafka record batch v2 header with `count` records; the record bytes are filler, which the
/// store treats as opaque.
pub fn kafka_batch(count: u32, first_ms: i64, max_ms: i64, filler: usize) -> NewBatch {
    let mut b = vec![0u8; 61 + filler];
    let len = b.len() as i32 - 12;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(count as i32 - 1).to_be_bytes());
    b[27..35].copy_from_slice(&first_ms.to_be_bytes());
    b[35..43].copy_from_slice(&max_ms.to_be_bytes());
    b[57..61].copy_from_slice(&(count as i32).to_be_bytes());
    let crc = crc32c_of(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    NewBatch::kafka(BytesMut::from(&b[..])).expect("valid kafka batch")
}

fn crc32c_of(data: &[u8]) -> u32 {
    // Bitwise CRC-32C: the tests must not trust the implementation they test.
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The seed for randomised tests: fixed, so a run is repeatable, unless `WHARF_TEST_SEED`
/// asks for another.
pub fn test_seed() -> u64 {
    std::env::var("WHARF_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5EED_CAFE_F00D_0001)
        | 1
}

/// A small seeded xorshift generator: the randomised tests must replay exactly from a seed.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
