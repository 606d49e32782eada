//! Stream and topic names: 1..255 bytes of UTF-8, no control characters, and (for names that
//! also appear as Kafka topic names `stream.topic`) nothing that makes a path or a lookup ambiguous.

use crate::error::{Result, StoreError};

/// Longest name in bytes: the wire formats carry names with a one-byte length.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a stream or topic name, saying what is wrong with it.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let bad = |why: String| {
        Err(StoreError::InvalidName(format!(
            "{kind} name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!(
            "is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return bad(format!("contains the control character {:?}", c));
    }
    if name.trim() != name {
        return bad("must not start or end with whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        validate_name("stream", "orders").unwrap();
        validate_name("stream", "ü-ñ.x_1").unwrap();
        validate_name("stream", &"a".repeat(255)).unwrap();
        for bad in ["", " x", "x ", "a\nb", &"a".repeat(256)] {
            let err = validate_name("topic", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid name: topic name"), "{err}");
        }
    }
}
