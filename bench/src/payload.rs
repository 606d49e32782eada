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

/// Batches of payloads built in one buffer that is used again once a batch has been sent (a
/// fresh megabyte per batch would cost more in page faults than building it).
#[derive(Debug, Default)]
pub struct Pool(Option<BytesMut>);

impl Pool {
    /// `n` payloads of `size` bytes stamped now; hand the first value back with
    /// [`Pool::give_back`] once the payloads are dropped.
    pub fn batch(&mut self, n: usize, size: usize, measured: bool) -> (Bytes, Vec<Bytes>) {
        let mut buf = self.0.take().unwrap_or_default();
        buf.clear();
        buf.resize(n * size, 0);
        let now = now_us();
        for chunk in buf.chunks_mut(size) {
            stamp_into(chunk, now, measured);
        }
        let all = buf.freeze();
        let parts = (0..n)
            .map(|i| all.slice(i * size..(i + 1) * size))
            .collect();
        (all, parts)
    }

    /// Takes the buffer back for the next batch, if nothing else holds it any more.
    pub fn give_back(&mut self, all: Bytes) {
        if let Ok(buf) = all.try_into_mut() {
            self.0 = Some(buf);
        }
    }
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
    fn payloads_carry_their_stamp_and_the_buffer_is_used_again() {
        let mut pool = Pool::default();
        let (all, b) = pool.batch(3, 20, true);
        assert_eq!(b.len(), 3);
        let (ts, measured) = read(&b[2]).unwrap();
        assert!(measured && ts > 1_600_000_000_000_000);
        assert_eq!(b[1].len(), 20);
        let at = all.as_ptr();
        drop(b);
        pool.give_back(all);
        let (again, b) = pool.batch(1, 9, false);
        assert_eq!(again.as_ptr(), at, "the same buffer");
        assert!(!read(&b[0]).unwrap().1);
        assert_eq!(read(&[1, 2, 3]), None);
    }
}
