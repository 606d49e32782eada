//! Kafka record batches (magic 2) as the broker sees them: the header fields it checks and
//! stamps, CRC-32C validation, bounded decompression, a borrowing walk over the records, an
//! encoder for the uncompressed batches the broker builds when it converts native messages,
//! and the rebuild of a stored batch with fewer records that log compaction asks for
//! ([`retain_records`]: offsets, timestamps and codec kept, records copied verbatim).
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C over bytes 21..), attributes i16 @21, lastOffsetDelta i32
//! @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordsCount i32 @57, records @61.
//!
//! Nothing here allocates from a length read off the wire before the bytes are there: record
//! counts are checked against the bytes that hold them and decompression stops at
//! [`MAX_DECOMPRESSED`].

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the batch header, up to and including `recordsCount`.
pub const HEADER_LEN: usize = 61;
/// Largest size a compressed batch may expand to when the broker has to open it.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

const ATTR_CODEC_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaBatchError {
    #[error("no record batch")]
    Empty,
    #[error("record batch is truncated")]
    Truncated,
    #[error("record batch magic {0} is not 2")]
    Magic(i8),
    #[error("record batch CRC-32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    Codec(i16),
    #[error("control batches cannot be produced")]
    Control,
    #[error("a transactional batch needs a producer id")]
    Transactional,
    #[error("invalid sequence number {0} in a batch with a producer id")]
    NoSequence(i32),
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {count}")]
    Count { last_offset_delta: i32, count: i32 },
    #[error("malformed record {index}: {reason}")]
    Record { index: usize, reason: &'static str },
    /// Kafka's `LogValidator`: "Inner record ... does not have incremental offsets"
    /// (InvalidRecordException, INVALID_RECORD). A produced batch's records sit at offset
    /// deltas 0, 1, 2, ...: the cleaner and every reader rely on it.
    #[error(
        "inner record {index} has offsetDelta {found}, expected {index}: a produced batch's \
         offset deltas must run 0, 1, 2, ..."
    )]
    OffsetDelta { index: usize, found: i32 },
    #[error("cannot decompress the batch: {0}")]
    Decompress(String),
    #[error("cannot compress the batch: {0}")]
    Compress(String),
    /// Kafka's re-validation after recompression (`UnifiedLog.append`: RecordTooLargeException,
    /// MESSAGE_TOO_LARGE): the rebuilt batch would be larger than the topic's
    /// `max.message.bytes`. `size` is what was opened or built when the rebuild stopped: at
    /// most `limit + 1` bytes of records are ever decompressed for an uncompressed target.
    #[error("the rebuilt record batch is larger than {limit} bytes (at least {size})")]
    TooLarge { size: usize, limit: usize },
    /// Kafka's `LogValidator`: "Compressed outer record has more than one batch"
    /// (INVALID_RECORD): a partition's records rebuilt are one batch.
    #[error("a partition's records rebuilt with the topic's codec must be one batch, got {0}")]
    MoreThanOneBatch(usize),
}

/// Compression codecs of the attributes' low three bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The header fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header of the batch at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, KafkaBatchError> {
        if b.len() < HEADER_LEN {
            return Err(KafkaBatchError::Truncated);
        }
        if b[16] as i8 != 2 {
            return Err(KafkaBatchError::Magic(b[16] as i8));
        }
        Ok(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Bytes the whole batch occupies: `batchLength` + 12.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + 12
    }

    pub fn codec(&self) -> Result<Codec, KafkaBatchError> {
        Ok(match self.attributes & ATTR_CODEC_MASK {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(KafkaBatchError::Codec(other)),
        })
    }

    pub fn log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// True for an idempotent (or transactional) producer's batch.
    pub fn has_producer(&self) -> bool {
        self.producer_id >= 0
    }

    /// True for a transactional producer's batch (and for transaction markers).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for a control batch (a transaction marker): no data records.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Sequence number of the batch's last record (sequences wrap at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        add_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// What a control batch's record says (Kafka's `ControlRecordType`): the key is
/// `version i16, type i16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Type 0: the producer's transaction was aborted.
    Abort,
    /// Type 1: the producer's transaction was committed.
    Commit,
    /// Any other type, or a key that cannot be read (Kafka's `UNKNOWN`): still a control
    /// batch, so readers skip it.
    Other(i16),
}

/// The control type of a stored Kafka batch, or `None` when it is not a control batch (or not
/// a magic-2 batch at all). Readers use it to skip markers; it reads only the first record's
/// key and allocates nothing for an uncompressed batch (markers are never compressed).
pub(crate) fn control_type(b: &[u8]) -> Option<ControlType> {
    let h = BatchHeader::parse(b).ok()?;
    if !h.is_control() {
        return None;
    }
    if h.codec() == Ok(Codec::None) {
        let body = b.get(HEADER_LEN..h.total_len().min(b.len()));
        Some(control_type_of(body.and_then(first_record_key)))
    } else {
        let section = records_section(b).ok();
        Some(control_type_of(
            section.as_deref().and_then(first_record_key),
        ))
    }
}

/// Reads a control record's key (`version i16, type i16`); unreadable is `Other(-1)`.
fn control_type_of(key: Option<&[u8]>) -> ControlType {
    match key {
        Some(k) if k.len() >= 4 && be_i16(k, 0) >= 0 => match be_i16(k, 2) {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        },
        _ => ControlType::Other(-1),
    }
}

/// The key of the first record of an uncompressed records section.
fn first_record_key(mut buf: &[u8]) -> Option<&[u8]> {
    let len = usize::try_from(varint(&mut buf)?).ok()?;
    let mut r = buf.get(..len)?;
    take(&mut r, 1)?;
    varlong(&mut r)?;
    varint(&mut r)?;
    nullable(&mut r)?
}

/// True when any batch of `records` (a partition's part of a produce request) is
/// transactional: how Kafka tells a transactional produce (`RequestUtils.hasTransactionalRecords`
/// looks at every batch). Walks the headers in place; a malformed batch ends the walk (the
/// produce refuses such records anyway).
pub fn has_transactional(records: &[u8]) -> bool {
    let mut rest = records;
    while let Ok(h) = BatchHeader::parse(rest) {
        if h.is_transactional() {
            return true;
        }
        match rest.get(h.total_len().max(HEADER_LEN)..) {
            Some(next) => rest = next,
            None => return false,
        }
    }
    false
}

/// `seq + n` in Kafka's wrapping sequence space.
pub fn add_sequence(seq: i32, n: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(n);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Splits a produce request's `records` into its batches, each checked for length only.
pub fn split(records: &Bytes) -> Result<Vec<Bytes>, KafkaBatchError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < 12 {
            return Err(KafkaBatchError::Truncated);
        }
        let len = be_i32(rest, 8);
        let total = usize::try_from(len)
            .map_err(|_| KafkaBatchError::Truncated)?
            .checked_add(12)
            .ok_or(KafkaBatchError::Truncated)?;
        if total < HEADER_LEN || total > rest.len() {
            return Err(KafkaBatchError::Truncated);
        }
        out.push(records.slice(at..at + total));
        at += total;
    }
    Ok(out)
}

/// Everything the broker checks before it stores a batch a client produced: magic, CRC-32C,
/// codec, no control bit (markers are the broker's to write), a producer id and a sequence on
/// a transactional batch, a sequence with a producer id, `lastOffsetDelta == recordsCount - 1`,
/// and for uncompressed batches the structure of every record and offset deltas 0, 1, 2, ...
/// ([`walk_produced`]: the walk is done anyway, so the check is free). A compressed batch's
/// deltas are checked where it is decompressed anyway (a compacted topic's keyless check):
/// decompressing every produced batch only for this would cost the hot path.
pub fn validate(b: &[u8]) -> Result<BatchHeader, KafkaBatchError> {
    let h = BatchHeader::parse(b)?;
    if h.total_len() != b.len() {
        return Err(KafkaBatchError::Truncated);
    }
    let stored = be_i32(b, 17) as u32;
    let computed = crc32c::crc32c(&b[21..]);
    if stored != computed {
        return Err(KafkaBatchError::Crc { stored, computed });
    }
    let codec = h.codec()?;
    if h.attributes & ATTR_CONTROL != 0 {
        return Err(KafkaBatchError::Control);
    }
    if h.is_transactional() && !h.has_producer() {
        return Err(KafkaBatchError::Transactional);
    }
    if h.has_producer() && h.base_sequence < 0 {
        return Err(KafkaBatchError::NoSequence(h.base_sequence));
    }
    if h.records_count <= 0 || h.last_offset_delta != h.records_count - 1 {
        return Err(KafkaBatchError::Count {
            last_offset_delta: h.last_offset_delta,
            count: h.records_count,
        });
    }
    if codec == Codec::None {
        let n = walk_produced(&b[HEADER_LEN..], h.records_count, |_| {})?;
        debug_assert_eq!(n, h.records_count as usize);
    }
    Ok(h)
}

/// Stamps LogAppendTime: sets the timestamp-type bit and `maxTimestamp`, then re-computes the
/// CRC (the only server change that the CRC covers).
pub fn stamp_log_append_time(b: &mut [u8], now_ms: i64) {
    if b.len() < HEADER_LEN {
        return;
    }
    let attrs = be_i16(b, 21) | ATTR_LOG_APPEND_TIME;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    b[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// One record, borrowed from the (decompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The whole record as encoded, its length prefix included: what a rebuilt batch copies.
    pub bytes: &'a [u8],
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// The records section of a batch, decompressed if need be (bounded by [`MAX_DECOMPRESSED`]).
pub fn records_section(b: &[u8]) -> Result<Bytes, KafkaBatchError> {
    let h = BatchHeader::parse(b)?;
    let body = b
        .get(HEADER_LEN..h.total_len().min(b.len()))
        .ok_or(KafkaBatchError::Truncated)?;
    open_body(h.codec()?, body, MAX_DECOMPRESSED).map_err(|e| match e {
        KafkaBatchError::TooLarge { .. } => {
            KafkaBatchError::Decompress("expands past 256 MiB".into())
        }
        e => e,
    })
}

/// A compressed records section opened, stopping as soon as it passes `limit` bytes
/// ([`KafkaBatchError::TooLarge`] with the bytes opened so far, at most `limit + 1` for the
/// streamed codecs).
fn open_body(codec: Codec, body: &[u8], limit: usize) -> Result<Bytes, KafkaBatchError> {
    let bounded = |r: &mut dyn Read| -> Result<Bytes, KafkaBatchError> {
        let mut out = Vec::new();
        r.take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| KafkaBatchError::Decompress(e.to_string()))?;
        if out.len() > limit {
            return Err(KafkaBatchError::TooLarge {
                size: out.len(),
                limit,
            });
        }
        Ok(Bytes::from(out))
    };
    match codec {
        Codec::None if body.len() > limit => Err(KafkaBatchError::TooLarge {
            size: body.len(),
            limit,
        }),
        Codec::None => Ok(Bytes::copy_from_slice(body)),
        Codec::Gzip => bounded(&mut flate2::read::GzDecoder::new(body)),
        Codec::Zstd => bounded(
            &mut zstd::stream::read::Decoder::new(body)
                .map_err(|e| KafkaBatchError::Decompress(e.to_string()))?,
        ),
        Codec::Lz4 => bounded(
            &mut lz4::Decoder::new(body).map_err(|e| KafkaBatchError::Decompress(e.to_string()))?,
        ),
        Codec::Snappy => snappy_decompress(body, limit),
    }
}

/// The first bytes of xerial's snappy framing (Java clients', and Kafka's own, snappy).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The framing's header: the magic, then version 1 and oldest compatible version 1 (i32 BE).
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block, as xerial's `SnappyOutputStream` writes them.
const XERIAL_BLOCK: usize = 32 << 10;

/// True when a snappy body uses xerial's framing rather than one raw block.
fn is_xerial(body: &[u8]) -> bool {
    body.len() >= XERIAL_HEADER_LEN && body[..8] == XERIAL_MAGIC
}

/// Snappy as Kafka writes it: xerial framing (magic, then `[u32 length][raw block]`...), or a
/// single raw block from clients that skip the framing.
fn snappy_decompress(body: &[u8], limit: usize) -> Result<Bytes, KafkaBatchError> {
    let err = |e: snap::Error| KafkaBatchError::Decompress(e.to_string());
    let mut out = Vec::new();
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), KafkaBatchError> {
        let len = snap::raw::decompress_len(block).map_err(err)?;
        if out.len() + len > limit {
            return Err(KafkaBatchError::TooLarge {
                size: out.len() + len,
                limit,
            });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(err)?;
        Ok(())
    };
    if is_xerial(body) {
        let mut at = XERIAL_HEADER_LEN;
        while at < body.len() {
            let len = body
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or(KafkaBatchError::Truncated)?;
            let block = body
                .get(at + 4..at + 4 + len)
                .ok_or(KafkaBatchError::Truncated)?;
            raw_block(block, &mut out)?;
            at += 4 + len;
        }
    } else {
        raw_block(body, &mut out)?;
    }
    Ok(Bytes::from(out))
}

/// Compresses a records section with `codec` as Kafka's clients write it: gzip and zstd
/// frames, an LZ4 frame of independent 64 KiB blocks (Java's `KafkaLZ4BlockInputStream` reads
/// no other kind), snappy in xerial's framing when `xerial_snappy` (else one raw block, as
/// librdkafka writes it).
pub fn compress(codec: Codec, raw: &[u8], xerial_snappy: bool) -> Result<Vec<u8>, KafkaBatchError> {
    compress_at(codec, raw, xerial_snappy, None)
}

/// [`compress`] at a level (Kafka's `compression.*.level`; `None` or gzip's -1: the codec's
/// default). Snappy has no level.
pub fn compress_at(
    codec: Codec,
    raw: &[u8],
    xerial_snappy: bool,
    level: Option<i32>,
) -> Result<Vec<u8>, KafkaBatchError> {
    use std::io::Write;
    let io = |e: std::io::Error| KafkaBatchError::Compress(e.to_string());
    match codec {
        Codec::None => Ok(raw.to_vec()),
        Codec::Gzip => {
            let gzip_level = match level.and_then(|l| u32::try_from(l).ok()) {
                Some(l) if (1..=9).contains(&l) => flate2::Compression::new(l),
                _ => flate2::Compression::default(),
            };
            let mut w = flate2::write::GzEncoder::new(Vec::new(), gzip_level);
            w.write_all(raw).map_err(io)?;
            w.finish().map_err(io)
        }
        Codec::Zstd => zstd::bulk::compress(raw, level.unwrap_or(0)).map_err(io),
        Codec::Lz4 => {
            let mut w = lz4::EncoderBuilder::new()
                .level(level.and_then(|l| u32::try_from(l).ok()).unwrap_or(0))
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(io)?;
            w.write_all(raw).map_err(io)?;
            let (out, done) = w.finish();
            done.map_err(io)?;
            Ok(out)
        }
        Codec::Snappy => {
            let snappy = |e: snap::Error| KafkaBatchError::Compress(e.to_string());
            let mut encoder = snap::raw::Encoder::new();
            if !xerial_snappy {
                return encoder.compress_vec(raw).map_err(snappy);
            }
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + raw.len() / 2);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for chunk in raw.chunks(XERIAL_BLOCK) {
                let block = encoder.compress_vec(chunk).map_err(snappy)?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
    }
}

impl Codec {
    /// The codec's bits in a batch's attributes.
    pub fn bits(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// A produced batch rebuilt with `codec` at `level`, as Kafka's `LogValidator` rebuilds one
/// whose codec is not the topic's `compression.type`: the records (whose offset deltas must
/// run 0, 1, 2, ..., [`walk_produced`]) are kept byte for byte and compressed anew (snappy in
/// xerial's framing, as Kafka's broker writes it); base offset, producer id, epoch, base
/// sequence, the transactional and timestamp-type bits and `baseTimestamp` stay; a CreateTime
/// batch's `maxTimestamp` is its records' newest (as Kafka sets it); length, codec bits and
/// CRC-32C are set anew. Decompression is bounded by [`MAX_DECOMPRESSED`].
pub fn recompress(b: &[u8], codec: Codec, level: Option<i32>) -> Result<Bytes, KafkaBatchError> {
    recompress_within(b, codec, level, usize::MAX).map_err(|e| match e {
        KafkaBatchError::TooLarge { .. } => {
            KafkaBatchError::Decompress("expands past 256 MiB".into())
        }
        e => e,
    })
}

/// [`recompress`] into a batch of at most `max_batch` bytes (the topic's `max.message.bytes`),
/// else [`KafkaBatchError::TooLarge`], as Kafka re-validates a batch's size after it rebuilt
/// it. For an uncompressed target the rebuilt batch is its records, so decompression stops
/// at `max_batch` bytes: a batch that opens to hundreds of MiB is refused having opened no
/// more than the batch it could have become. Other targets open up to
/// [`MAX_DECOMPRESSED`] and check the compressed result. Peak memory per batch: the opened
/// records, plus the compressed body and the rebuilt batch for a compressed target (the
/// rebuilt batch alone for an uncompressed one).
pub fn recompress_within(
    b: &[u8],
    codec: Codec,
    level: Option<i32>,
    max_batch: usize,
) -> Result<Bytes, KafkaBatchError> {
    let h = BatchHeader::parse(b)?;
    let body = b
        .get(HEADER_LEN..h.total_len().min(b.len()))
        .ok_or(KafkaBatchError::Truncated)?;
    let records_limit = max_batch.saturating_sub(HEADER_LEN);
    let open_limit = match codec {
        Codec::None => records_limit.min(MAX_DECOMPRESSED),
        _ => MAX_DECOMPRESSED,
    };
    let section = open_body(h.codec()?, body, open_limit).map_err(|e| match e {
        KafkaBatchError::TooLarge { size, .. }
            if codec == Codec::None && open_limit == records_limit =>
        {
            KafkaBatchError::TooLarge {
                size: size.saturating_add(HEADER_LEN),
                limit: max_batch,
            }
        }
        KafkaBatchError::TooLarge { .. } => {
            KafkaBatchError::Decompress("expands past 256 MiB".into())
        }
        e => e,
    })?;
    let mut max_delta = i64::MIN;
    let count = walk_produced(&section, h.records_count, |r| {
        max_delta = max_delta.max(r.timestamp_delta);
    })?;
    let count = i32::try_from(count).map_err(|_| KafkaBatchError::Truncated)?;
    // Uncompressed: the opened section is the body, no copy of it.
    let compressed;
    let body: &[u8] = match codec {
        Codec::None => &section,
        _ => {
            compressed = compress_at(codec, &section, true, level)?;
            &compressed
        }
    };
    let size = HEADER_LEN.saturating_add(body.len());
    if size > max_batch {
        return Err(KafkaBatchError::TooLarge {
            size,
            limit: max_batch,
        });
    }
    let attributes = (h.attributes & !ATTR_CODEC_MASK) | codec.bits();
    // A CreateTime batch's maxTimestamp is its records' newest; a LogAppendTime one keeps it.
    let max =
        (!h.log_append_time() && count > 0).then(|| h.base_timestamp.saturating_add(max_delta));
    with_records(b, attributes, body, count, max)
}

/// A batch read back from the log, opened for log compaction: its header and its records
/// section (decompressed), after checking its length and its CRC-32C (a damaged batch is
/// never rebuilt with a fresh CRC).
pub fn open_stored(b: &[u8]) -> Result<(BatchHeader, Bytes), KafkaBatchError> {
    let h = BatchHeader::parse(b)?;
    if h.total_len() != b.len() {
        return Err(KafkaBatchError::Truncated);
    }
    let stored = be_i32(b, 17) as u32;
    let computed = crc32c::crc32c(&b[21..]);
    if stored != computed {
        return Err(KafkaBatchError::Crc { stored, computed });
    }
    h.codec()?;
    let section = records_section(b)?;
    Ok((h, section))
}

/// Walks the records of a stored batch opened by [`open_stored`]. A compacted batch may hold
/// fewer records than its offsets span, so the offset deltas are checked for what every
/// reader relies on instead: increasing, and none past `lastOffsetDelta`.
pub fn walk_stored<'a>(
    h: &BatchHeader,
    section: &'a [u8],
    mut each: impl FnMut(RecordView<'a>),
) -> Result<usize, KafkaBatchError> {
    let mut previous = -1i32;
    let mut index = 0usize;
    let mut bad = None;
    let n = walk_records(section, h.records_count, |r| {
        if bad.is_some() {
            return;
        }
        if r.offset_delta <= previous || r.offset_delta > h.last_offset_delta {
            bad = Some(KafkaBatchError::Record {
                index,
                reason: "offsetDelta not increasing within lastOffsetDelta",
            });
            return;
        }
        previous = r.offset_delta;
        index += 1;
        each(r);
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Walks the records of a batch a client produced (an uncompressed records section), refusing
/// the first whose offset delta is not its index, as Kafka's `LogValidator` refuses inner
/// offsets that are not incremental ([`KafkaBatchError::OffsetDelta`]).
pub fn walk_produced<'a>(
    section: &'a [u8],
    count: i32,
    mut each: impl FnMut(RecordView<'a>),
) -> Result<usize, KafkaBatchError> {
    let mut index = 0usize;
    let mut bad = None;
    let n = walk_records(section, count, |r| {
        if bad.is_some() {
            return;
        }
        if usize::try_from(r.offset_delta).ok() != Some(index) {
            bad = Some(KafkaBatchError::OffsetDelta {
                index,
                found: r.offset_delta,
            });
            return;
        }
        index += 1;
        each(r);
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// What [`retain_records`] leaves of a stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record is kept: the batch stays as stored.
    All,
    /// No record is kept.
    Nothing,
    /// Some: the batch rebuilt around them.
    Some(Bytes),
}

/// A stored batch with only the records whose offset delta `keep` accepts, as Kafka's cleaner
/// rebuilds one: `baseOffset`, `lastOffsetDelta` (the offsets it spans), producer, sequence,
/// epoch, attributes and `baseTimestamp` stay; the kept records are copied byte for byte (their
/// offset and timestamp deltas still hold against the unchanged header), recompressed with
/// the batch's codec (snappy in the framing it came in); `recordsCount`, `batchLength`, a
/// CreateTime batch's `maxTimestamp` (its records' newest, as Kafka's cleaner sets it) and the
/// CRC-32C are set anew.
/// `b` is the batch, `h` and `section` what [`open_stored`] made of it.
pub fn retain_records(
    b: &[u8],
    h: &BatchHeader,
    section: &[u8],
    mut keep: impl FnMut(i32) -> bool,
) -> Result<Retained, KafkaBatchError> {
    // Bounded by the section, itself bounded by MAX_DECOMPRESSED.
    let mut kept = Vec::with_capacity(section.len());
    let mut count = 0i32;
    let mut max_delta = i64::MIN;
    let total = walk_stored(h, section, |r| {
        if keep(r.offset_delta) {
            kept.extend_from_slice(r.bytes);
            count += 1;
            max_delta = max_delta.max(r.timestamp_delta);
        }
    })?;
    if count as usize == total {
        return Ok(Retained::All);
    }
    if count == 0 {
        return Ok(Retained::Nothing);
    }
    let codec = h.codec()?;
    let xerial = is_xerial(&b[HEADER_LEN..]);
    let body = compress(codec, &kept, xerial)?;
    // Kafka's cleaner: a CreateTime batch's maxTimestamp is its records' (a LogAppendTime one
    // keeps the append time). The base timestamp stays: the records' deltas hold.
    let max = (!h.log_append_time()).then(|| h.base_timestamp.saturating_add(max_delta));
    let out = with_records(b, h.attributes, &body, count, max)?;
    Ok(Retained::Some(out))
}

/// A stored batch emptied of its records, as Kafka's cleaner keeps a producer's last batch so
/// its sequence survives: the header alone, uncompressed (nothing to compress), zero records,
/// everything else as it was.
pub fn empty_batch_like(b: &[u8]) -> Result<Bytes, KafkaBatchError> {
    let h = BatchHeader::parse(b)?;
    with_records(b, h.attributes & !ATTR_CODEC_MASK, &[], 0, None)
}

/// The header of batch `b` over a new records section of `count` records, with a new
/// `maxTimestamp` when given.
fn with_records(
    b: &[u8],
    attributes: i16,
    body: &[u8],
    count: i32,
    max_timestamp: Option<i64>,
) -> Result<Bytes, KafkaBatchError> {
    let header = b.get(..HEADER_LEN).ok_or(KafkaBatchError::Truncated)?;
    let batch_length = i32::try_from(HEADER_LEN - 12 + body.len())
        .map_err(|_| KafkaBatchError::Compress("rebuilt batch larger than 2 GiB".into()))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_slice(header);
    out.put_slice(body);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    if let Some(max) = max_timestamp {
        out[35..43].copy_from_slice(&max.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

/// Walks `count` records of an uncompressed records section, calling `each` for every one.
/// Returns how many were walked; fails on the first malformed record or trailing bytes.
pub fn walk_records<'a>(
    mut buf: &'a [u8],
    count: i32,
    mut each: impl FnMut(RecordView<'a>),
) -> Result<usize, KafkaBatchError> {
    let mut index = 0usize;
    while index < usize::try_from(count).unwrap_or(0) {
        let bad = |reason| KafkaBatchError::Record { index, reason };
        let whole = buf;
        let len = varint(&mut buf).ok_or(bad("length"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        if len > buf.len() {
            return Err(bad("runs past the end of the batch"));
        }
        let (mut r, rest) = buf.split_at(len);
        let bytes = &whole[..whole.len() - rest.len()];
        buf = rest;
        take(&mut r, 1).ok_or(bad("attributes"))?;
        let timestamp_delta = varlong(&mut r).ok_or(bad("timestampDelta"))?;
        let offset_delta = varint(&mut r).ok_or(bad("offsetDelta"))?;
        let key = nullable(&mut r).ok_or(bad("key"))?;
        let value = nullable(&mut r).ok_or(bad("value"))?;
        let n = varint(&mut r).ok_or(bad("header count"))?;
        let n = usize::try_from(n).map_err(|_| bad("negative header count"))?;
        if n > r.len() {
            return Err(bad("header count larger than the record"));
        }
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let k = nullable(&mut r)
                .ok_or(bad("header key"))?
                .ok_or(bad("null header key"))?;
            let v = nullable(&mut r).ok_or(bad("header value"))?;
            headers.push((k, v));
        }
        if !r.is_empty() {
            return Err(bad("bytes left after the headers"));
        }
        each(RecordView {
            bytes,
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        });
        index += 1;
    }
    if !buf.is_empty() {
        return Err(KafkaBatchError::Record {
            index,
            reason: "bytes after the last record",
        });
    }
    Ok(index)
}

/// A record to encode into a new batch.
#[derive(Debug, Clone, Default)]
pub struct NewRecord<'a> {
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Encodes an uncompressed, CreateTime batch with no producer, offsets `base_offset..`.
pub fn encode_batch(base_offset: i64, records: &[NewRecord<'_>]) -> Bytes {
    let last_offset_delta = records.len().saturating_sub(1) as i32;
    encode_sparse_batch(
        base_offset,
        last_offset_delta,
        records.iter().enumerate().map(|(i, r)| (i as i32, r)),
    )
}

/// Encodes an uncompressed, CreateTime batch with no producer whose records sit at the given
/// offset deltas (increasing) of a batch spanning `base_offset..=base_offset +
/// last_offset_delta`: a compacted log's batch, whose offsets have holes. `recordsCount` is the
/// number of records, which may be below the span (or 0).
pub fn encode_sparse_batch<'r, 'a: 'r>(
    base_offset: i64,
    last_offset_delta: i32,
    records: impl Iterator<Item = (i32, &'r NewRecord<'a>)> + Clone,
) -> Bytes {
    let first_ts = records.clone().next().map_or(0, |(_, r)| r.timestamp_ms);
    let max_ts = records
        .clone()
        .map(|(_, r)| r.timestamp_ms)
        .max()
        .unwrap_or(0);
    let mut body = BytesMut::new();
    let mut rec = Vec::new();
    let mut count = 0i32;
    for (delta, r) in records {
        count += 1;
        rec.clear();
        rec.push(0u8);
        put_varlong(&mut rec, r.timestamp_ms - first_ts);
        put_varlong(&mut rec, i64::from(delta));
        put_nullable(&mut rec, r.key);
        put_nullable(&mut rec, r.value);
        put_varlong(&mut rec, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_nullable(&mut rec, Some(k));
            put_nullable(&mut rec, *v);
        }
        let mut len = Vec::new();
        put_varlong(&mut len, rec.len() as i64);
        body.put_slice(&len);
        body.put_slice(&rec);
    }
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_i64(base_offset);
    b.put_i32((HEADER_LEN - 12 + body.len()) as i32);
    b.put_i32(-1); // partitionLeaderEpoch
    b.put_i8(2);
    b.put_u32(0); // crc, below
    b.put_i16(0);
    b.put_i32(last_offset_delta);
    b.put_i64(first_ts);
    b.put_i64(max_ts);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Encodes a transaction marker as Kafka writes one: an uncompressed CreateTime control batch
/// of `producer_id`/`producer_epoch` (attributes transactional | control, baseSequence -1)
/// holding one record whose key is `[version 0 i16, type i16]` (0 abort, 1 commit) and whose
/// value is `[version 0 i16, coordinator_epoch i32]`, stamped `timestamp_ms`.
pub fn encode_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut rec = vec![0u8]; // attributes
    put_varlong(&mut rec, 0); // timestampDelta
    put_varlong(&mut rec, 0); // offsetDelta
    put_nullable(&mut rec, Some(&key));
    put_nullable(&mut rec, Some(&value));
    put_varlong(&mut rec, 0); // no headers
    let mut len = Vec::new();
    put_varlong(&mut len, rec.len() as i64);
    let body_len = len.len() + rec.len();
    let mut b = BytesMut::with_capacity(HEADER_LEN + body_len);
    b.put_i64(0);
    b.put_i32((HEADER_LEN - 12 + body_len) as i32);
    b.put_i32(-1); // partitionLeaderEpoch, as the broker stores produced batches
    b.put_i8(2);
    b.put_u32(0); // crc, below
    b.put_i16(ATTR_TRANSACTIONAL | ATTR_CONTROL);
    b.put_i32(0); // lastOffsetDelta
    b.put_i64(timestamp_ms);
    b.put_i64(timestamp_ms);
    b.put_i64(producer_id);
    b.put_i16(producer_epoch);
    b.put_i32(-1); // baseSequence: markers carry none
    b.put_i32(1);
    b.put_slice(&len);
    b.put_slice(&rec);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn varlong(buf: &mut &[u8]) -> Option<i64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.first()?;
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

fn varint(buf: &mut &[u8]) -> Option<i32> {
    varlong(buf).and_then(|v| i32::try_from(v).ok())
}

fn nullable<'a>(buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let len = varint(buf)?;
    if len < 0 {
        return (len == -1).then_some(None);
    }
    take(buf, len as usize).map(Some)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bytes {
        encode_batch(
            0,
            &[
                NewRecord {
                    timestamp_ms: 1000,
                    key: Some(b"k1"),
                    value: Some(b"v1"),
                    headers: vec![(b"h", Some(b"x")), (b"h", None)],
                },
                NewRecord {
                    timestamp_ms: 1005,
                    key: None,
                    value: None,
                    headers: vec![],
                },
            ],
        )
    }

    #[test]
    fn encoded_batches_validate_and_walk_back() {
        let b = sample();
        let h = validate(&b).unwrap();
        assert_eq!((h.records_count, h.max_timestamp), (2, 1005));
        let mut seen = Vec::new();
        let section = records_section(&b).unwrap();
        walk_records(&section, 2, |r| seen.push(r.clone())).unwrap();
        assert_eq!(seen[0].key, Some(&b"k1"[..]));
        assert_eq!(seen[0].headers.len(), 2, "duplicate header keys are kept");
        assert_eq!(seen[1].value, None);
        assert_eq!(seen[1].timestamp_delta, 5);
    }

    #[test]
    fn the_crate_agrees_with_our_encoder() {
        let mut b = sample();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).unwrap();
        assert_eq!(sets.records.len(), 2);
        assert_eq!(sets.records[1].timestamp, 1005);
        assert_eq!(sets.records[0].key.as_deref(), Some(&b"k1"[..]));
    }

    #[test]
    fn corruption_is_refused_without_panicking() {
        let b = sample();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] ^= 0x41;
            // Bytes 0..17 except magic are outside the CRC; the rest must fail the CRC.
            let r = validate(&m);
            if i >= 17 {
                assert!(r.is_err(), "mutated byte {i} accepted");
            }
            for cut in [i, b.len() / 2] {
                let _ = validate(&m[..cut]);
                let _ = records_section(&m[..cut]);
            }
        }
        let mut stamped = b.to_vec();
        stamp_log_append_time(&mut stamped, 77);
        let h = validate(&stamped).unwrap();
        assert!(h.log_append_time());
        assert_eq!(h.max_timestamp, 77);
    }

    #[test]
    fn markers_are_control_batches_any_kafka_reader_decodes() {
        for (commit, want) in [(true, ControlType::Commit), (false, ControlType::Abort)] {
            let m = encode_txn_marker(42, 3, commit, 0, 1_700_000_000_000);
            let h = BatchHeader::parse(&m).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(h.total_len(), m.len());
            assert_eq!(be_i32(&m, 17) as u32, crc32c::crc32c(&m[21..]));
            assert_eq!(control_type(&m), Some(want));
            // The kafka-protocol crate (as clients do) sees one control record, type in key.
            let mut wire = m.clone();
            let sets = kafka_protocol::records::RecordBatchDecoder::decode(&mut wire).unwrap();
            let r = &sets.records[0];
            assert!(r.control && r.transactional);
            assert_eq!(r.producer_id, 42);
            assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, u8::from(commit)][..]));
            assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 0][..]));
        }
        // Data batches are not control batches, whatever their producer.
        assert_eq!(control_type(&sample()), None);
        assert_eq!(control_type(b"short"), None);
        // A control batch whose key cannot be read is still one (readers skip it).
        let mut m = encode_txn_marker(1, 0, true, 0, 0).to_vec();
        m[HEADER_LEN + 4] = 0x03; // key length 4 -> -2 (zigzag 3)
        assert_eq!(control_type(&m), Some(ControlType::Other(-1)));
    }

    /// Kafka's `hasTransactionalRecords`: any batch, not only the first (a plain batch ahead
    /// of a transactional one must not hide it from the transactional-id ACL).
    #[test]
    fn transactional_records_are_found_in_any_batch() {
        let plain = sample();
        let mut txn = plain.to_vec();
        txn[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        let both = [&plain[..], &plain[..], &txn[..]].concat();
        assert!(has_transactional(&both));
        assert!(has_transactional(&txn));
        assert!(!has_transactional(&[&plain[..], &plain[..]].concat()));
        assert!(!has_transactional(
            &both[..both.len() - 1][..plain.len() * 2 + 30]
        ));
        assert!(!has_transactional(b""));
        // A length that points past the end ends the walk without reading out of bounds.
        let mut lying = plain.to_vec();
        lying[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(!has_transactional(&[&lying[..], &txn[..]].concat()));
    }

    /// The records of `plain` (an uncompressed batch from [`encode_sparse_batch`]) compressed
    /// with `codec`, header fixed up (length, codec bits, CRC).
    pub(crate) fn compressed(plain: &[u8], codec: Codec, bits: i16) -> Bytes {
        let body = compress(codec, &plain[HEADER_LEN..], false).unwrap();
        with_records(plain, bits, &body, be_i32(plain, 57), None).unwrap()
    }

    /// Kafka's LogValidator: inner offsets of a produced batch run 0, 1, 2, ... An
    /// uncompressed batch whose deltas repeat or go backwards is refused by `validate`, with
    /// `lastOffsetDelta == recordsCount - 1` holding (what was checked before). A compressed
    /// one passes `validate` (no decompression there) and is refused by `walk_produced`.
    #[test]
    fn produced_offset_deltas_must_run_from_zero_one_by_one() {
        let r = NewRecord {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: vec![],
        };
        for (deltas, index, found) in [([0, 0, 0], 1, 0), ([0, 2, 1], 1, 2), ([1, 1, 2], 0, 1)] {
            let plain = encode_sparse_batch(0, 2, deltas.iter().map(|&d| (d, &r)));
            assert_eq!(
                validate(&plain),
                Err(KafkaBatchError::OffsetDelta { index, found }),
                "{deltas:?}"
            );
            let zipped = compressed(&plain, Codec::Gzip, 1);
            let h = validate(&zipped).expect("compressed deltas are not looked at here");
            let section = records_section(&zipped).unwrap();
            assert_eq!(
                walk_produced(&section, h.records_count, |_| {}),
                Err(KafkaBatchError::OffsetDelta { index, found }),
                "{deltas:?}"
            );
        }
        let good = encode_sparse_batch(0, 2, [0, 1, 2].iter().map(|&d| (d, &r)));
        assert_eq!(validate(&good).unwrap().records_count, 3);
    }

    /// Bound: a snappy block that claims more than [`MAX_DECOMPRESSED`] (256 MiB) is refused
    /// from its length header, before anything is allocated for it (the scan, the rebuild and
    /// the keyless check all open batches through `records_section`; the streaming codecs stop
    /// reading at the same bound).
    #[test]
    fn a_snappy_block_claiming_more_than_256_mib_is_refused_unread() {
        let plain = sample();
        let mut body = Vec::new();
        put_varlong_u(&mut body, MAX_DECOMPRESSED as u64 + 1);
        body.extend_from_slice(&[0u8; 8]);
        let b = with_records(&plain, 2, &body, 2, None).unwrap();
        assert!(matches!(
            records_section(&b),
            Err(KafkaBatchError::Decompress(m)) if m.contains("256 MiB")
        ));
    }

    /// Snappy's length header: a plain unsigned varint.
    fn put_varlong_u(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Kafka's `LogValidator` rebuild for a topic whose `compression.type` differs from the
    /// batch's: every codec to every other, the records unchanged, the producer fields and the
    /// transactional bit kept, the codec bits, lengths, maxTimestamp and CRC set anew, the
    /// result a batch every reader (the crate's decoder too) opens.
    #[test]
    fn recompression_keeps_records_and_producer_fields() {
        let plain = sample();
        let raw = records_section(&plain).unwrap();
        // An idempotent, transactional producer's batch whose maxTimestamp the client left 0.
        let mut producer = BytesMut::from(&plain[..]);
        producer[43..51].copy_from_slice(&77i64.to_be_bytes());
        producer[51..53].copy_from_slice(&3i16.to_be_bytes());
        producer[53..57].copy_from_slice(&40i32.to_be_bytes());
        producer[35..43].copy_from_slice(&0i64.to_be_bytes());
        let with_txn = (be_i16(&producer, 21) | ATTR_TRANSACTIONAL).to_be_bytes();
        producer[21..23].copy_from_slice(&with_txn);
        let crc = crc32c::crc32c(&producer[21..]);
        producer[17..21].copy_from_slice(&crc.to_be_bytes());
        let codecs = [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ];
        for from in codecs {
            let source = if from == Codec::None {
                producer.clone().freeze()
            } else {
                compressed(&producer, from, from.bits() | ATTR_TRANSACTIONAL)
            };
            for to in codecs {
                let out = recompress(&source, to, Some(5)).unwrap();
                let h = validate(&out).unwrap();
                assert_eq!(h.codec().unwrap(), to, "{from:?} -> {to:?}");
                assert_eq!(records_section(&out).unwrap(), raw, "{from:?} -> {to:?}");
                assert_eq!(
                    (h.producer_id, h.producer_epoch, h.base_sequence),
                    (77, 3, 40)
                );
                assert!(h.is_transactional());
                assert_eq!(h.records_count, 2);
                let newest = BatchHeader::parse(&plain).unwrap().max_timestamp;
                assert_eq!(
                    h.max_timestamp, newest,
                    "maxTimestamp is the records' newest"
                );
                let mut buf = out.clone();
                let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
                    .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e:?}"));
                assert_eq!(decoded.records.len(), 2);
            }
        }
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(5, 4), 9);
    }
}
