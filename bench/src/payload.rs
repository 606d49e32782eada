//! The benchmark's message bodies: each starts with the time it was sent (µs since the Unix
//! epoch, little endian) and a byte that says whether it belongs to the measured phase (1) or
//! the warm-up (0); the rest is zeros up to the message size.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `n` payloads of `size` bytes in one allocation, stamped now.
pub fn batch(n: usize, size: usize, measured: bool) -> Vec<Bytes> {
    let mut buf = BytesMut::zeroed(n * size);
    let now = now_us();
    for chunk in buf.chunks_mut(size) {
        stamp_into(chunk, now, measured);
    }
    let all = buf.freeze();
    (0..n)
        .map(|i| all.slice(i * size..(i + 1) * size))
        .collect()
}

/// Writes the header into the first 9 bytes of `payload`.
pub fn stamp_into(payload: &mut [u8], now: u64, measured: bool) {
    let mut head = &mut payload[..9];
    head.put_u64_le(now);
    head.put_u8(u8::from(measured));
}

/// (send time, measured) of a payload, `None` when it is not one of ours.
pub fn read(payload: &[u8]) -> Option<(u64, bool)> {
    let ts = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let measured = *payload.get(8)? == 1;
    Some((ts, measured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_stamp() {
        let b = batch(3, 20, true);
        assert_eq!(b.len(), 3);
        let (ts, measured) = read(&b[2]).unwrap();
        assert!(measured && ts > 1_600_000_000_000_000);
        assert_eq!(b[1].len(), 20);
        assert!(!read(&batch(1, 9, false)[0]).unwrap().1);
        assert_eq!(read(&[1, 2, 3]), None);
    }
}
