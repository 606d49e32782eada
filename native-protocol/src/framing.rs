//! Framing. Request: `[length u32 = 4 + payload][code u32][payload]`. Response:
//! `[status u32 (0 = OK, else the Iggy error code)][length u32][payload]`. One request at a time
//! per connection; no correlation ids.

use bytes::{BufMut, BytesMut};

pub const REQUEST_HEADER_LEN: usize = 8;
pub const RESPONSE_HEADER_LEN: usize = 8;

/// The head of a request, once its 8 bytes have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub code: u32,
    pub payload_len: u32,
}

/// Why a request head is refused; the server answers and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("request length {0} is below 4, the size of the command code")]
    TooShort(u32),
    #[error("request payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u32, max: u32 },
}

impl RequestHeader {
    /// Parses the head of a request, refusing payloads over `max_payload` before any buffer is
    /// allocated for them.
    pub fn parse(head: &[u8; REQUEST_HEADER_LEN], max_payload: u32) -> Result<Self, FrameError> {
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let payload_len = length.checked_sub(4).ok_or(FrameError::TooShort(length))?;
        if payload_len > max_payload {
            return Err(FrameError::TooLarge {
                len: payload_len,
                max: max_payload,
            });
        }
        Ok(RequestHeader { code, payload_len })
    }
}

/// Writes a request frame (for clients and tests).
pub fn encode_request(code: u32, payload: &[u8], out: &mut BytesMut) {
    out.put_u32_le(payload.len() as u32 + 4);
    out.put_u32_le(code);
    out.put_slice(payload);
}

/// The head of a response.
pub fn response_header(status: u32, payload_len: u32) -> [u8; RESPONSE_HEADER_LEN] {
    let mut h = [0u8; RESPONSE_HEADER_LEN];
    h[..4].copy_from_slice(&status.to_le_bytes());
    h[4..].copy_from_slice(&payload_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let mut b = BytesMut::new();
        encode_request(101, b"abc", &mut b);
        let head: [u8; 8] = b[..8].try_into().unwrap();
        assert_eq!(
            RequestHeader::parse(&head, 10).unwrap(),
            RequestHeader {
                code: 101,
                payload_len: 3
            }
        );
        assert_eq!(
            RequestHeader::parse(&head, 2),
            Err(FrameError::TooLarge { len: 3, max: 2 })
        );
        let short = [3, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(
            RequestHeader::parse(&short, 10),
            Err(FrameError::TooShort(3))
        );
        assert_eq!(response_header(0, 5), [0, 0, 0, 0, 5, 0, 0, 0]);
    }
}
