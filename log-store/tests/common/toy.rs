//! A toy record format for compaction tests and benches: native messages whose body is
//! `[flags u8][key length u8][key][value]` (flags: 1 tombstone, 2 keyless, 3 transaction
//! marker, reported as [`CleanRecord::Control`]), and the [`RecordKeys`] that reads it. The
//! message id carries a producer id (0: none).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use wharf_log_store::compaction::{BatchFacts, CleanRecord, CodecError, RecordKeys};
use wharf_log_store::{NewBatch, Partition, PartitionKey, StoredBatch, NATIVE_MESSAGE_HEADER_LEN};

/// One record of the toy format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Toy {
    Value {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Tombstone {
        key: Vec<u8>,
    },
    Keyless {
        value: Vec<u8>,
    },
    /// A transaction marker (a control record) of the batch's producer.
    Marker,
}

impl Toy {
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Toy::Value { key, .. } | Toy::Tombstone { key } => Some(key),
            Toy::Keyless { .. } | Toy::Marker => None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (flags, key, value): (u8, &[u8], &[u8]) = match self {
            Toy::Value { key, value } => (0, key, value),
            Toy::Tombstone { key } => (1, key, &[]),
            Toy::Keyless { value } => (2, &[], value),
            Toy::Marker => (3, &[], &[]),
        };
        let mut b = vec![flags, key.len() as u8];
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        b
    }

    fn decode(body: &[u8]) -> Option<Toy> {
        let (&flags, rest) = body.split_first()?;
        let (&klen, rest) = rest.split_first()?;
        let key = rest.get(..klen as usize)?.to_vec();
        let value = rest.get(klen as usize..)?.to_vec();
        match flags {
            0 => Some(Toy::Value { key, value }),
            1 => Some(Toy::Tombstone { key }),
            2 => Some(Toy::Keyless { value }),
            3 => Some(Toy::Marker),
            _ => None,
        }
    }
}

/// A native batch of toy records, written by `producer` (0: none).
pub fn toy_batch(records: &[Toy], producer: u64) -> NewBatch {
    let mut out = BytesMut::new();
    for r in records {
        let body = r.encode();
        let mut header = [0u8; NATIVE_MESSAGE_HEADER_LEN];
        header[8..24].copy_from_slice(&u128::from(producer).to_le_bytes());
        header[52..56].copy_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
    }
    NewBatch::native(out).unwrap()
}

/// The messages of a stored native payload: (offset, whole message bytes).
fn messages(payload: &[u8]) -> Result<Vec<(u64, std::ops::Range<usize>)>, CodecError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let m = payload
            .get(pos..pos + NATIVE_MESSAGE_HEADER_LEN)
            .ok_or_else(|| CodecError("truncated message".into()))?;
        let offset = u64::from_le_bytes(m[24..32].try_into().unwrap());
        let h = u32::from_le_bytes(m[48..52].try_into().unwrap()) as usize;
        let p = u32::from_le_bytes(m[52..56].try_into().unwrap()) as usize;
        let end = pos + NATIVE_MESSAGE_HEADER_LEN + p + h;
        if end > payload.len() {
            return Err(CodecError("message runs past the batch".into()));
        }
        out.push((offset, pos..end));
        pos = end;
    }
    Ok(out)
}

/// The records of a stored batch of toy records: (offset, record).
pub fn toy_records(batch: &StoredBatch) -> Vec<(u64, Toy)> {
    let payload = batch.payload();
    messages(&payload)
        .unwrap()
        .into_iter()
        .map(|(offset, range)| {
            let m = &payload[range];
            (
                offset,
                Toy::decode(&m[NATIVE_MESSAGE_HEADER_LEN..]).unwrap(),
            )
        })
        .collect()
}

/// Every record of `p`, read in one pass from its log start; checks that offsets strictly grow.
pub fn read_all(p: &Partition) -> Vec<(u64, Toy)> {
    let mut out: Vec<(u64, Toy)> = Vec::new();
    let mut from = 0;
    loop {
        let r = p.read(from, 64 << 10).unwrap();
        if r.batches.is_empty() {
            break;
        }
        for b in &r.batches {
            assert!(
                b.base_offset() >= from || out.is_empty(),
                "batch at {} read from {from}",
                b.base_offset()
            );
            for (offset, rec) in toy_records(b) {
                assert!(
                    offset >= b.base_offset() && offset <= b.last_offset(),
                    "record {offset} outside its batch {}..={}",
                    b.base_offset(),
                    b.last_offset()
                );
                if let Some(&(prev, _)) = out.last() {
                    assert!(offset > prev, "offset {offset} after {prev}");
                }
                out.push((offset, rec));
            }
            from = b.last_offset() + 1;
        }
    }
    out
}

/// The toy format's [`RecordKeys`]: the stable offset is settable (u64::MAX at first).
#[derive(Debug)]
pub struct ToyKeys {
    pub stable: AtomicU64,
}

impl Default for ToyKeys {
    fn default() -> Self {
        ToyKeys {
            stable: AtomicU64::new(u64::MAX),
        }
    }
}

impl RecordKeys for ToyKeys {
    fn stable_offset(&self, _partition: PartitionKey) -> u64 {
        self.stable.load(Ordering::Acquire)
    }

    fn scan(
        &self,
        _partition: PartitionKey,
        batch: &StoredBatch,
        visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError> {
        let payload = batch.payload();
        let mut producer = None;
        for (offset, range) in messages(&payload)? {
            let m = &payload[range];
            let id = u128::from_le_bytes(m[8..24].try_into().unwrap());
            if id != 0 {
                producer = Some(id as i64);
            }
            match Toy::decode(&m[NATIVE_MESSAGE_HEADER_LEN..]) {
                Some(Toy::Value { .. }) | Some(Toy::Tombstone { .. }) => {
                    let body = &m[NATIVE_MESSAGE_HEADER_LEN..];
                    let klen = body[1] as usize;
                    visit(CleanRecord::Keyed {
                        offset,
                        key: &body[2..2 + klen],
                        tombstone: body[0] == 1,
                    });
                }
                Some(Toy::Keyless { .. }) => visit(CleanRecord::Keyless { offset }),
                Some(Toy::Marker) => visit(CleanRecord::Control { offset }),
                None => return Err(CodecError(format!("record {offset} is not a toy record"))),
            }
        }
        Ok(BatchFacts {
            producer_id: producer,
        })
    }

    fn retain(
        &self,
        _partition: PartitionKey,
        batch: &StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        let payload = batch.payload();
        let mut out = BytesMut::new();
        for (offset, range) in messages(&payload)? {
            if keep(offset) {
                out.extend_from_slice(&payload[range]);
            }
        }
        Ok((!out.is_empty() || keep_empty).then(|| out.freeze()))
    }
}
