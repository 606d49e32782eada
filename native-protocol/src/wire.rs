//! Bounded reading of untrusted bytes and little-endian writing. Every read checks the bytes are
//! there first, and every error names the field it was reading.

use bytes::{BufMut, BytesMut};

/// A payload that could not be decoded, naming the field and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DecodeError {
    pub field: &'static str,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("payload ends early")]
    Truncated,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("length {len} exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("unknown value {0}")]
    Unknown(u64),
}

pub(crate) fn err(field: &'static str, problem: Problem) -> DecodeError {
    DecodeError { field, problem }
}

pub(crate) fn invalid(field: &'static str, why: &'static str) -> DecodeError {
    err(field, Problem::Invalid(why))
}

/// A cursor over a received payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(err(field, Problem::Truncated));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(err(field, Problem::Unknown(u64::from(v)))),
        }
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        let b = self.take(16, field)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(u128::from_le_bytes(a))
    }

    /// A string with a one-byte length: 1..=255 bytes of UTF-8.
    pub fn name(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u8(field)? as usize;
        if len == 0 {
            return Err(invalid(field, "must not be empty"));
        }
        self.utf8(len, field)
    }

    /// A string of `len` bytes (already bounded by the caller's length field type).
    pub fn utf8(&mut self, len: usize, field: &'static str) -> Result<String, DecodeError> {
        let b = self.take(len, field)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| err(field, Problem::NotUtf8))
    }

    /// A string with a u32 length, refused above `max` bytes before anything is allocated.
    pub fn string_u32(&mut self, max: usize, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(err(field, Problem::TooLong { len, max }));
        }
        self.utf8(len, field)
    }

    /// Fails if bytes are left over: a payload longer than its command allows is malformed.
    pub fn finish(&self, command: &'static str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(invalid(command, "trailing bytes after the payload"))
        }
    }
}

/// Little-endian writing helpers for responses.
pub trait WriteExt {
    fn name(&mut self, s: &str);
    fn bool(&mut self, b: bool);
}

impl WriteExt for BytesMut {
    /// Writes a one-byte-length string; callers keep names within 255 bytes (the store does).
    fn name(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(255)];
        self.put_u8(b.len() as u8);
        self.put_slice(b);
    }
    fn bool(&mut self, b: bool) {
        self.put_u8(u8::from(b));
    }
}
