//! Bounds guard for Kafka request frames, run before `kafka-protocol` decodes them.
//!
//! Why it exists: `kafka-protocol` 0.18 decodes every array by calling
//! `Vec::with_capacity(n)` with the element count the client put on the wire
//! (`Array` / `CompactArray` in `protocol/types.rs`), before it reads a single element. A
//! 15-byte Metadata v0 frame that declares 2^31-1 topics makes it ask for over 100 GiB, and
//! an allocation failure aborts the process: one packet from anyone who can reach the port
//! takes the broker down, and no `Result` or `catch_unwind` can stop it.
//!
//! What it owns: [`check_request`] walks the raw frame (request header, then body) with the
//! schema of every `(api_key, api_version)` Wharf serves, field by field in the order the
//! crate's `decode` reads them, allocating nothing. It rejects the frame unless every array
//! count and every string, bytes and tagged-field length fits in the bytes that remain, no
//! array holds more than [`MAX_ARRAY_LEN`] elements, and the request holds no more than
//! [`MAX_TOTAL_ELEMENTS`] in all. Every element of every array in these schemas takes at
//! least one byte, so once a frame passes, each `with_capacity` the crate makes is backed by
//! elements actually present in the frame.
//!
//! Anything not in the schema table `APIS` is [`GuardError::Unsupported`] and must not be
//! handed to the crate. To serve a new API or version, add it to `APIS` (with its walker, if
//! new) and a sample to the tests, which check each walker against the crate's own encoder
//! and decoder byte for byte.
//!
//! The walkers mirror the crate's decoders, including one of its quirks: the known tagged
//! fields of Fetch are read from the stream as typed fields and their declared size is
//! ignored, so the guard walks them the same way rather than skipping by size. The guard is
//! stricter than the crate in two places, both only reachable by malformed frames: a varint
//! whose fifth byte has bits beyond `u32` (the crate silently drops them) is rejected, and so
//! is a Fetch tag the crate itself rejects for the version. It is laxer in one: it accepts the
//! null length -1 in every string, bytes and array, nullable or not; the crate then fails
//! such a frame with an ordinary decode error, which allocates nothing.

/// Why a frame was rejected. `at` is the byte offset, within the frame, where the offending
/// field starts; `what` names that field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The frame ends inside a fixed-size field or a varint.
    #[error("frame truncated at byte {at}, reading {what}")]
    Truncated { at: usize, what: &'static str },
    /// A length or count that claims more bytes or elements than remain in the frame.
    #[error("{what} at byte {at} declares {len}, but only {remaining} bytes remain")]
    LengthExceedsFrame {
        at: usize,
        what: &'static str,
        len: u64,
        remaining: usize,
    },
    /// An array (or tagged-field section) with more than [`MAX_ARRAY_LEN`] entries.
    #[error("{what} at byte {at} declares {count} elements, more than the limit of {limit}")]
    ArrayTooLong {
        at: usize,
        what: &'static str,
        count: usize,
        limit: usize,
    },
    /// The request's arrays hold more than [`MAX_TOTAL_ELEMENTS`] elements in all.
    #[error("array at byte {at} takes the request past {limit} array elements in total")]
    TooManyElements { at: usize, limit: usize },
    /// A length below -1 (-1 is the null marker).
    #[error("{what} at byte {at} has negative length {len}")]
    NegativeLength {
        at: usize,
        what: &'static str,
        len: i64,
    },
    /// An unsigned varint longer than 5 bytes, or whose value does not fit in a `u32`.
    #[error("{what} at byte {at} is a varint longer than 5 bytes or above u32::MAX")]
    BadVarint { at: usize, what: &'static str },
    /// A known tagged field used at a version that does not define it (the crate rejects it too).
    #[error("tagged field {tag} at byte {at} is not valid for version {api_version}")]
    InvalidTag {
        at: usize,
        tag: u32,
        api_version: i16,
    },
    /// An API or version whose schema the guard does not know.
    #[error("unsupported request: api_key {api_key} version {api_version}")]
    Unsupported { api_key: i16, api_version: i16 },
}

/// Largest element count accepted for any one array.
pub const MAX_ARRAY_LEN: usize = 65_536;
/// Largest total number of array elements in one request.
pub const MAX_TOTAL_ELEMENTS: usize = 1_000_000;

/// Walks a whole request frame (the bytes after the 4-byte size prefix: request header, then body).
/// Ok means every length and count in the header and body is within bounds, so the crate's
/// decoders cannot allocate more than the frame justifies.
///
/// # Errors
///
/// The first [`GuardError`] met in the frame; the frame must then be dropped (or, for
/// [`GuardError::Unsupported`], answered with UNSUPPORTED_VERSION) without decoding it.
pub fn check_request(frame: &[u8]) -> Result<(), GuardError> {
    walk(frame).map(drop)
}

/// True when (api_key, api_version) is one the guard knows the schema of (the table below).
#[must_use]
pub fn is_known(api_key: i16, api_version: i16) -> bool {
    lookup(api_key, api_version).is_some()
}

type Res<T = ()> = Result<T, GuardError>;
type Walker = fn(&mut Cursor<'_>, i16, bool) -> Res;

/// One API the guard knows: its key, the versions served, the first flexible version (header
/// v2, compact encodings, tagged fields) and the walker for its body.
struct Api {
    key: i16,
    min: i16,
    max: i16,
    flexible_from: i16,
    walk: Walker,
}

/// Used as `flexible_from` by an API with no flexible version.
const NEVER: i16 = i16::MAX;

/// The requests Wharf serves: anything else is [`GuardError::Unsupported`].
#[rustfmt::skip]
static APIS: &[Api] = &[
    Api { key: 0, min: 3, max: 13, flexible_from: 9, walk: produce },
    Api { key: 1, min: 4, max: 18, flexible_from: 12, walk: fetch },
    Api { key: 2, min: 1, max: 10, flexible_from: 6, walk: list_offsets },
    Api { key: 3, min: 0, max: 13, flexible_from: 9, walk: metadata },
    Api { key: 8, min: 2, max: 9, flexible_from: 8, walk: offset_commit },
    Api { key: 9, min: 1, max: 9, flexible_from: 6, walk: offset_fetch },
    Api { key: 10, min: 0, max: 3, flexible_from: 3, walk: find_coordinator },
    Api { key: 11, min: 0, max: 9, flexible_from: 6, walk: join_group },
    Api { key: 12, min: 0, max: 4, flexible_from: 4, walk: heartbeat },
    Api { key: 13, min: 0, max: 5, flexible_from: 4, walk: leave_group },
    Api { key: 14, min: 0, max: 5, flexible_from: 4, walk: sync_group },
    Api { key: 15, min: 0, max: 6, flexible_from: 5, walk: describe_groups },
    Api { key: 16, min: 0, max: 5, flexible_from: 3, walk: list_groups },
    Api { key: 18, min: 0, max: 4, flexible_from: 3, walk: api_versions },
    Api { key: 19, min: 2, max: 7, flexible_from: 5, walk: create_topics },
    Api { key: 20, min: 1, max: 5, flexible_from: 4, walk: delete_topics },
    Api { key: 21, min: 0, max: 2, flexible_from: 2, walk: delete_records },
    Api { key: 22, min: 0, max: 4, flexible_from: 2, walk: init_producer_id },
    Api { key: 24, min: 0, max: 3, flexible_from: 3, walk: add_partitions_to_txn },
    Api { key: 25, min: 0, max: 4, flexible_from: 3, walk: add_offsets_to_txn },
    Api { key: 26, min: 0, max: 4, flexible_from: 3, walk: end_txn },
    Api { key: 28, min: 0, max: 4, flexible_from: 3, walk: txn_offset_commit },
    Api { key: 65, min: 0, max: 0, flexible_from: 0, walk: describe_transactions },
    Api { key: 66, min: 0, max: 1, flexible_from: 0, walk: list_transactions },
    Api { key: 29, min: 1, max: 3, flexible_from: 2, walk: describe_acls },
    Api { key: 30, min: 1, max: 3, flexible_from: 2, walk: create_acls },
    Api { key: 31, min: 1, max: 3, flexible_from: 2, walk: delete_acls },
    Api { key: 32, min: 1, max: 4, flexible_from: 4, walk: describe_configs },
    Api { key: 33, min: 0, max: 2, flexible_from: 2, walk: alter_configs },
    Api { key: 37, min: 0, max: 3, flexible_from: 2, walk: create_partitions },
    Api { key: 42, min: 0, max: 2, flexible_from: 2, walk: delete_groups },
    Api { key: 44, min: 0, max: 1, flexible_from: 1, walk: incremental_alter_configs },
    Api { key: 47, min: 0, max: 0, flexible_from: NEVER, walk: offset_delete },
    Api { key: 60, min: 0, max: 2, flexible_from: 0, walk: describe_cluster },
    Api { key: 17, min: 1, max: 1, flexible_from: NEVER, walk: sasl_handshake },
    Api { key: 36, min: 0, max: 2, flexible_from: 2, walk: sasl_authenticate },
    Api { key: 50, min: 0, max: 0, flexible_from: 0, walk: describe_user_scram_credentials },
    Api { key: 51, min: 0, max: 0, flexible_from: 0, walk: alter_user_scram_credentials },
    // ---- admin ----
    Api { key: 35, min: 1, max: 4, flexible_from: 2, walk: describe_log_dirs },
    Api { key: 34, min: 1, max: 2, flexible_from: 2, walk: alter_replica_log_dirs },
    Api { key: 43, min: 0, max: 2, flexible_from: 2, walk: elect_leaders },
    Api { key: 46, min: 0, max: 0, flexible_from: 0, walk: list_partition_reassignments },
    Api { key: 45, min: 0, max: 1, flexible_from: 0, walk: alter_partition_reassignments },
    Api { key: 55, min: 0, max: 2, flexible_from: 0, walk: describe_quorum },
    Api { key: 74, min: 0, max: 1, flexible_from: 0, walk: list_config_resources },
    Api { key: 61, min: 0, max: 0, flexible_from: 0, walk: describe_producers },
    // quotas
    Api { key: 48, min: 0, max: 1, flexible_from: 1, walk: describe_client_quotas },
    Api { key: 49, min: 0, max: 1, flexible_from: 1, walk: alter_client_quotas },
    // ---- versions ----
    Api { key: 75, min: 0, max: 0, flexible_from: 0, walk: describe_topic_partitions },
    // ---- kip848 ----
    Api { key: 68, min: 0, max: 1, flexible_from: 0, walk: consumer_group_heartbeat },
    Api { key: 69, min: 0, max: 1, flexible_from: 0, walk: consumer_group_describe },
];

fn lookup(api_key: i16, api_version: i16) -> Option<&'static Api> {
    APIS.iter()
        .find(|a| a.key == api_key && (a.min..=a.max).contains(&api_version))
}

/// Walks the frame and returns how many bytes the header and body take; the crate ignores
/// (and the guard accepts) anything after that.
fn walk(frame: &[u8]) -> Res<usize> {
    walk_with(frame, lookup)
}

/// [`walk`] with the table lookup passed in, so the tests can also run the walkers on
/// versions the crate has but Wharf does not serve yet.
fn walk_with(frame: &[u8], lookup: fn(i16, i16) -> Option<&'static Api>) -> Res<usize> {
    let mut c = Cursor {
        buf: frame,
        pos: 0,
        elements: 0,
    };
    let api_key = i16::from_be_bytes(c.fixed("api_key")?);
    let api_version = i16::from_be_bytes(c.fixed("api_version")?);
    let api = lookup(api_key, api_version).ok_or(GuardError::Unsupported {
        api_key,
        api_version,
    })?;
    let flexible = api_version >= api.flexible_from;
    c.i32("correlation_id")?;
    // Header v2 keeps v1's i16-length client_id; only the tagged fields are added.
    c.string(false, "client_id")?;
    c.tags(flexible)?;
    (api.walk)(&mut c, api_version, flexible)?;
    Ok(c.pos)
}

/// A read position in the frame. Every method either consumes exactly the bytes of one
/// field or fails; `pos` never passes the end of `buf`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Array elements declared so far, for [`MAX_TOTAL_ELEMENTS`].
    elements: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Res<&'a [u8]> {
        let at = self.pos;
        let (bytes, end) = at
            .checked_add(n)
            .and_then(|end| Some((self.buf.get(at..end)?, end)))
            .ok_or(GuardError::Truncated { at, what })?;
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self, what: &'static str) -> Res<[u8; N]> {
        let at = self.pos;
        self.take(N, what)?
            .try_into()
            .map_err(|_| GuardError::Truncated { at, what })
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Res {
        self.take(n, what).map(drop)
    }

    fn bool(&mut self, what: &'static str) -> Res {
        self.skip(1, what)
    }

    fn i8(&mut self, what: &'static str) -> Res {
        self.skip(1, what)
    }

    fn i16(&mut self, what: &'static str) -> Res {
        self.skip(2, what)
    }

    fn i32(&mut self, what: &'static str) -> Res {
        self.skip(4, what)
    }

    fn i64(&mut self, what: &'static str) -> Res {
        self.skip(8, what)
    }

    fn uuid(&mut self, what: &'static str) -> Res {
        self.skip(16, what)
    }

    /// Unsigned LEB128 varint, at most 5 bytes and at most `u32::MAX`.
    fn uvarint(&mut self, what: &'static str) -> Res<u32> {
        let at = self.pos;
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.fixed(what)?;
            if i == 4 && b > 0x0f {
                break; // continues past 5 bytes, or carries bits beyond u32
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(GuardError::BadVarint { at, what })
    }

    /// `len` as a usize if it fits in the bytes that remain.
    fn fits(&self, at: usize, what: &'static str, len: u64) -> Res<usize> {
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(GuardError::LengthExceedsFrame {
                at,
                what,
                len,
                remaining,
            }),
        }
    }

    /// Length prefix of a string, bytes or array; `None` is null. Compact when `flex`
    /// (unsigned varint holding length + 1, 0 = null), else a big-endian `i32` (`wide`) or
    /// `i16` where -1 = null. The length must fit in the bytes that remain.
    fn length(&mut self, flex: bool, wide: bool, what: &'static str) -> Res<Option<usize>> {
        let at = self.pos;
        let len = if flex {
            match self.uvarint(what)? {
                0 => return Ok(None),
                n => i64::from(n) - 1,
            }
        } else if wide {
            i64::from(i32::from_be_bytes(self.fixed(what)?))
        } else {
            i64::from(i16::from_be_bytes(self.fixed(what)?))
        };
        match u64::try_from(len) {
            Ok(n) => self.fits(at, what, n).map(Some),
            Err(_) if len == -1 => Ok(None),
            Err(_) => Err(GuardError::NegativeLength { at, what, len }),
        }
    }

    /// STRING / NULLABLE_STRING (i16 length), or their compact forms when `flex`.
    fn string(&mut self, flex: bool, what: &'static str) -> Res {
        match self.length(flex, false, what)? {
            Some(n) => self.skip(n, what),
            None => Ok(()),
        }
    }

    /// BYTES / NULLABLE_BYTES (i32 length), or their compact forms when `flex`.
    fn bytes(&mut self, flex: bool, what: &'static str) -> Res {
        match self.length(flex, true, what)? {
            Some(n) => self.skip(n, what),
            None => Ok(()),
        }
    }

    /// ARRAY (i32 count, -1 = null) or COMPACT_ARRAY when `flex`; `element` walks one element.
    fn array(
        &mut self,
        flex: bool,
        what: &'static str,
        mut element: impl FnMut(&mut Self) -> Res,
    ) -> Res {
        let at = self.pos;
        let Some(count) = self.length(flex, true, what)? else {
            return Ok(());
        };
        self.limit(at, what, count)?;
        self.elements = self.elements.saturating_add(count);
        if self.elements > MAX_TOTAL_ELEMENTS {
            return Err(GuardError::TooManyElements {
                at,
                limit: MAX_TOTAL_ELEMENTS,
            });
        }
        for _ in 0..count {
            element(self)?;
        }
        Ok(())
    }

    fn limit(&self, at: usize, what: &'static str, count: usize) -> Res {
        if count > MAX_ARRAY_LEN {
            return Err(GuardError::ArrayTooLong {
                at,
                what,
                count,
                limit: MAX_ARRAY_LEN,
            });
        }
        Ok(())
    }

    /// Tagged-field section of a flexible struct; nothing when `!flex`.
    fn tags(&mut self, flex: bool) -> Res {
        self.tags_with(flex, |_, _, _| Ok(false))
    }

    /// Tagged-field section: an unsigned-varint count, then per field a tag, a size and the
    /// value. `known(cursor, tag, at)` walks a field the crate decodes by tag: the crate reads
    /// it from the stream as a typed field and ignores the size, so it must too, returning
    /// Ok(true). Ok(false) means an unknown tag, which the crate keeps as `size` opaque bytes.
    fn tags_with(
        &mut self,
        flex: bool,
        mut known: impl FnMut(&mut Self, u32, usize) -> Res<bool>,
    ) -> Res {
        if !flex {
            return Ok(());
        }
        let at = self.pos;
        let what = "tagged fields";
        let count = self.uvarint(what)?;
        // Each field takes at least two bytes (tag and size), so this bound is loose but safe.
        let count = self.fits(at, what, u64::from(count))?;
        self.limit(at, what, count)?;
        for _ in 0..count {
            let at = self.pos;
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            if !known(self, tag, at)? {
                let n = self.fits(self.pos, "tagged field", u64::from(size))?;
                self.skip(n, "tagged field")?;
            }
        }
        Ok(())
    }
}

// One walker per API. Each mirrors `decode` in the crate's `src/messages/*_request.rs`
// at version `v`, field by field, with the same version conditions; `f` is "flexible".

fn produce(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "transactional_id")?;
    c.i16("acks")?;
    c.i32("timeout_ms")?;
    c.array(f, "topic_data", |c| {
        if v <= 12 {
            c.string(f, "topic name")?;
        }
        if v >= 13 {
            c.uuid("topic_id")?;
        }
        c.array(f, "partition_data", |c| {
            c.i32("index")?;
            c.bytes(f, "records")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn fetch(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v <= 14 {
        c.i32("replica_id")?;
    }
    c.i32("max_wait_ms")?;
    c.i32("min_bytes")?;
    c.i32("max_bytes")?;
    c.i8("isolation_level")?;
    if v >= 7 {
        c.i32("session_id")?;
        c.i32("session_epoch")?;
    }
    c.array(f, "topics", |c| {
        if v <= 12 {
            c.string(f, "topic")?;
        }
        if v >= 13 {
            c.uuid("topic_id")?;
        }
        c.array(f, "partitions", |c| {
            c.i32("partition")?;
            if v >= 9 {
                c.i32("current_leader_epoch")?;
            }
            c.i64("fetch_offset")?;
            if v >= 12 {
                c.i32("last_fetched_epoch")?;
            }
            if v >= 5 {
                c.i64("log_start_offset")?;
            }
            c.i32("partition_max_bytes")?;
            c.tags_with(f, |c, tag, at| match tag {
                0 if v >= 17 => c.uuid("replica_directory_id").map(|()| true),
                1 if v >= 18 => c.i64("high_watermark").map(|()| true),
                0 | 1 => Err(GuardError::InvalidTag {
                    at,
                    tag,
                    api_version: v,
                }),
                _ => Ok(false),
            })
        })?;
        c.tags(f)
    })?;
    if v >= 7 {
        c.array(f, "forgotten_topics_data", |c| {
            if v <= 12 {
                c.string(f, "forgotten topic")?;
            }
            if v >= 13 {
                c.uuid("forgotten topic_id")?;
            }
            c.array(f, "forgotten partitions", |c| c.i32("partition"))?;
            c.tags(f)
        })?;
    }
    if v >= 11 {
        c.string(f, "rack_id")?;
    }
    c.tags_with(f, |c, tag, at| match tag {
        0 => c.string(f, "cluster_id").map(|()| true),
        1 if v >= 15 => {
            c.i32("replica_state.replica_id")?;
            c.i64("replica_state.replica_epoch")?;
            c.tags(true).map(|()| true)
        }
        1 => Err(GuardError::InvalidTag {
            at,
            tag,
            api_version: v,
        }),
        _ => Ok(false),
    })
}

fn list_offsets(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.i32("replica_id")?;
    if v >= 2 {
        c.i8("isolation_level")?;
    }
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            if v >= 4 {
                c.i32("current_leader_epoch")?;
            }
            c.i64("timestamp")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    if v >= 10 {
        c.i32("timeout_ms")?;
    }
    c.tags(f)
}

fn metadata(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        if v >= 10 {
            c.uuid("topic_id")?;
        }
        c.string(f, "topic name")?;
        c.tags(f)
    })?;
    if v >= 4 {
        c.bool("allow_auto_topic_creation")?;
    }
    if (8..=10).contains(&v) {
        c.bool("include_cluster_authorized_operations")?;
    }
    if v >= 8 {
        c.bool("include_topic_authorized_operations")?;
    }
    c.tags(f)
}

fn offset_commit(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    c.i32("generation_id_or_member_epoch")?;
    c.string(f, "member_id")?;
    if v >= 7 {
        c.string(f, "group_instance_id")?;
    }
    if v <= 4 {
        c.i64("retention_time_ms")?;
    }
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            c.i64("committed_offset")?;
            if v >= 6 {
                c.i32("committed_leader_epoch")?;
            }
            c.string(f, "committed_metadata")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn offset_fetch(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v <= 7 {
        c.string(f, "group_id")?;
        c.array(f, "topics", |c| {
            c.string(f, "topic name")?;
            c.array(f, "partition_indexes", |c| c.i32("partition_index"))?;
            c.tags(f)
        })?;
    }
    if v >= 8 {
        c.array(f, "groups", |c| {
            c.string(f, "group_id")?;
            if v >= 9 {
                c.string(f, "member_id")?;
                c.i32("member_epoch")?;
            }
            c.array(f, "group topics", |c| {
                c.string(f, "topic name")?;
                c.array(f, "partition_indexes", |c| c.i32("partition_index"))?;
                c.tags(f)
            })?;
            c.tags(f)
        })?;
    }
    if v >= 7 {
        c.bool("require_stable")?;
    }
    c.tags(f)
}

fn find_coordinator(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v <= 3 {
        c.string(f, "key")?;
    }
    if v >= 1 {
        c.i8("key_type")?;
    }
    if v >= 4 {
        c.array(f, "coordinator_keys", |c| c.string(f, "coordinator key"))?;
    }
    c.tags(f)
}

fn join_group(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    c.i32("session_timeout_ms")?;
    if v >= 1 {
        c.i32("rebalance_timeout_ms")?;
    }
    c.string(f, "member_id")?;
    if v >= 5 {
        c.string(f, "group_instance_id")?;
    }
    c.string(f, "protocol_type")?;
    c.array(f, "protocols", |c| {
        c.string(f, "protocol name")?;
        c.bytes(f, "protocol metadata")?;
        c.tags(f)
    })?;
    if v >= 8 {
        c.string(f, "reason")?;
    }
    c.tags(f)
}

fn heartbeat(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    c.i32("generation_id")?;
    c.string(f, "member_id")?;
    if v >= 3 {
        c.string(f, "group_instance_id")?;
    }
    c.tags(f)
}

fn leave_group(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    if v <= 2 {
        c.string(f, "member_id")?;
    }
    if v >= 3 {
        c.array(f, "members", |c| {
            c.string(f, "member_id")?;
            c.string(f, "group_instance_id")?;
            if v >= 5 {
                c.string(f, "reason")?;
            }
            c.tags(f)
        })?;
    }
    c.tags(f)
}

fn sync_group(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    c.i32("generation_id")?;
    c.string(f, "member_id")?;
    if v >= 3 {
        c.string(f, "group_instance_id")?;
    }
    if v >= 5 {
        c.string(f, "protocol_type")?;
        c.string(f, "protocol_name")?;
    }
    c.array(f, "assignments", |c| {
        c.string(f, "assignment member_id")?;
        c.bytes(f, "assignment")?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn describe_groups(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "groups", |c| c.string(f, "group id"))?;
    if v >= 3 {
        c.bool("include_authorized_operations")?;
    }
    c.tags(f)
}

fn list_groups(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v >= 4 {
        c.array(f, "states_filter", |c| c.string(f, "state"))?;
    }
    if v >= 5 {
        c.array(f, "types_filter", |c| c.string(f, "type"))?;
    }
    c.tags(f)
}

fn api_versions(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v >= 3 {
        c.string(f, "client_software_name")?;
        c.string(f, "client_software_version")?;
    }
    c.tags(f)
}

fn create_topics(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.i32("num_partitions")?;
        c.i16("replication_factor")?;
        c.array(f, "assignments", |c| {
            c.i32("partition_index")?;
            c.array(f, "broker_ids", |c| c.i32("broker_id"))?;
            c.tags(f)
        })?;
        c.array(f, "configs", |c| {
            c.string(f, "config name")?;
            c.string(f, "config value")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.i32("timeout_ms")?;
    c.bool("validate_only")?;
    c.tags(f)
}

fn delete_topics(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v >= 6 {
        c.array(f, "topics", |c| {
            c.string(f, "topic name")?;
            c.uuid("topic_id")?;
            c.tags(f)
        })?;
    }
    if v <= 5 {
        c.array(f, "topic_names", |c| c.string(f, "topic name"))?;
    }
    c.i32("timeout_ms")?;
    c.tags(f)
}

fn delete_records(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            c.i64("offset")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.i32("timeout_ms")?;
    c.tags(f)
}

fn init_producer_id(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "transactional_id")?;
    c.i32("transaction_timeout_ms")?;
    if v >= 3 {
        c.i64("producer_id")?;
        c.i16("producer_epoch")?;
    }
    c.tags(f)
}

/// v0-3 is the client's form; v4+ (brokers' batches of transactions) is not served.
fn add_partitions_to_txn(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    let topics = |c: &mut Cursor<'_>| {
        c.array(f, "topics", |c| {
            c.string(f, "topic name")?;
            c.array(f, "partitions", |c| c.i32("partition"))?;
            c.tags(f)
        })
    };
    if v >= 4 {
        c.array(f, "transactions", |c| {
            c.string(f, "transactional_id")?;
            c.i64("producer_id")?;
            c.i16("producer_epoch")?;
            c.bool("verify_only")?;
            topics(c)?;
            c.tags(f)
        })?;
    } else {
        c.string(f, "transactional_id")?;
        c.i64("producer_id")?;
        c.i16("producer_epoch")?;
        topics(c)?;
    }
    c.tags(f)
}

fn add_offsets_to_txn(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.string(f, "transactional_id")?;
    c.i64("producer_id")?;
    c.i16("producer_epoch")?;
    c.string(f, "group_id")?;
    c.tags(f)
}

fn end_txn(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.string(f, "transactional_id")?;
    c.i64("producer_id")?;
    c.i16("producer_epoch")?;
    c.bool("committed")?;
    c.tags(f)
}

fn txn_offset_commit(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "transactional_id")?;
    c.string(f, "group_id")?;
    c.i64("producer_id")?;
    c.i16("producer_epoch")?;
    if v >= 3 {
        c.i32("generation_id")?;
        c.string(f, "member_id")?;
        c.string(f, "group_instance_id")?;
    }
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            c.i64("committed_offset")?;
            if v >= 2 {
                c.i32("committed_leader_epoch")?;
            }
            c.string(f, "committed_metadata")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn describe_transactions(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "transactional_ids", |c| c.string(f, "transactional id"))?;
    c.tags(f)
}

fn list_transactions(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "state_filters", |c| c.string(f, "state"))?;
    c.array(f, "producer_id_filters", |c| c.i64("producer id"))?;
    if v >= 1 {
        c.i64("duration_filter")?;
    }
    if v >= 2 {
        c.string(f, "transactional_id_pattern")?;
    }
    c.tags(f)
}

fn describe_configs(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "resources", |c| {
        c.i8("resource_type")?;
        c.string(f, "resource_name")?;
        c.array(f, "configuration_keys", |c| {
            c.string(f, "configuration key")
        })?;
        c.tags(f)
    })?;
    c.bool("include_synonyms")?;
    if v >= 3 {
        c.bool("include_documentation")?;
    }
    c.tags(f)
}

fn alter_configs(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "resources", |c| {
        c.i8("resource_type")?;
        c.string(f, "resource_name")?;
        c.array(f, "configs", |c| {
            c.string(f, "config name")?;
            c.string(f, "config value")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.bool("validate_only")?;
    c.tags(f)
}

fn create_partitions(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.i32("count")?;
        c.array(f, "assignments", |c| {
            c.array(f, "broker_ids", |c| c.i32("broker_id"))?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.i32("timeout_ms")?;
    c.bool("validate_only")?;
    c.tags(f)
}

fn delete_groups(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "groups_names", |c| c.string(f, "group name"))?;
    c.tags(f)
}

fn incremental_alter_configs(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "resources", |c| {
        c.i8("resource_type")?;
        c.string(f, "resource_name")?;
        c.array(f, "configs", |c| {
            c.string(f, "config name")?;
            c.i8("config_operation")?;
            c.string(f, "config value")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.bool("validate_only")?;
    c.tags(f)
}

fn offset_delete(c: &mut Cursor<'_>, _v: i16, _f: bool) -> Res {
    c.string(false, "group_id")?;
    c.array(false, "topics", |c| {
        c.string(false, "topic name")?;
        c.array(false, "partitions", |c| c.i32("partition_index"))
    })
}

/// One ACL binding filter (DescribeAcls' body, DeleteAcls' filters), without its tags.
fn acl_filter(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.i8("resource_type_filter")?;
    c.string(f, "resource_name_filter")?;
    if v >= 1 {
        c.i8("pattern_type_filter")?;
    }
    c.string(f, "principal_filter")?;
    c.string(f, "host_filter")?;
    c.i8("operation")?;
    c.i8("permission_type")
}

fn describe_acls(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    acl_filter(c, v, f)?;
    c.tags(f)
}

fn create_acls(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "creations", |c| {
        c.i8("resource_type")?;
        c.string(f, "resource_name")?;
        if v >= 1 {
            c.i8("resource_pattern_type")?;
        }
        c.string(f, "principal")?;
        c.string(f, "host")?;
        c.i8("operation")?;
        c.i8("permission_type")?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn delete_acls(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.array(f, "filters", |c| {
        acl_filter(c, v, f)?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn describe_cluster(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.bool("include_cluster_authorized_operations")?;
    if v >= 1 {
        c.i8("endpoint_type")?;
    }
    if v >= 2 {
        c.bool("include_fenced_brokers")?;
    }
    c.tags(f)
}

fn sasl_handshake(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.string(f, "mechanism")
}

fn sasl_authenticate(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.bytes(f, "auth_bytes")?;
    c.tags(f)
}

fn describe_user_scram_credentials(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "users", |c| {
        c.string(f, "user name")?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn alter_user_scram_credentials(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "deletions", |c| {
        c.string(f, "deletion name")?;
        c.i8("mechanism")?;
        c.tags(f)
    })?;
    c.array(f, "upsertions", |c| {
        c.string(f, "upsertion name")?;
        c.i8("mechanism")?;
        c.i32("iterations")?;
        c.bytes(f, "salt")?;
        c.bytes(f, "salted_password")?;
        c.tags(f)
    })?;
    c.tags(f)
}

// ---- admin ----

/// A topic name and a list of partition indexes, then the element's tags (the shape of most
/// admin requests' topic entries).
fn topic_partitions(c: &mut Cursor<'_>, f: bool) -> Res {
    c.string(f, "topic name")?;
    c.array(f, "partitions", |c| c.i32("partition"))?;
    c.tags(f)
}

fn describe_log_dirs(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| topic_partitions(c, f))?;
    c.tags(f)
}

fn alter_replica_log_dirs(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "dirs", |c| {
        c.string(f, "path")?;
        c.array(f, "topics", |c| topic_partitions(c, f))?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn elect_leaders(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v >= 1 {
        c.i8("election_type")?;
    }
    c.array(f, "topic_partitions", |c| topic_partitions(c, f))?;
    c.i32("timeout_ms")?;
    c.tags(f)
}

fn list_partition_reassignments(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.i32("timeout_ms")?;
    c.array(f, "topics", |c| topic_partitions(c, f))?;
    c.tags(f)
}

fn alter_partition_reassignments(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.i32("timeout_ms")?;
    if v >= 1 {
        c.bool("allow_replication_factor_change")?;
    }
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            c.array(f, "replicas", |c| c.i32("replica"))?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn describe_quorum(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        c.string(f, "topic_name")?;
        c.array(f, "partitions", |c| {
            c.i32("partition_index")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn list_config_resources(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    if v >= 1 {
        c.array(f, "resource_types", |c| c.i8("resource type"))?;
    }
    c.tags(f)
}

fn describe_producers(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| topic_partitions(c, f))?;
    c.tags(f)
}

// ---- quotas ----

fn describe_client_quotas(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "components", |c| {
        c.string(f, "entity_type")?;
        c.i8("match_type")?;
        c.string(f, "match")?;
        c.tags(f)
    })?;
    c.bool("strict")?;
    c.tags(f)
}

fn alter_client_quotas(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "entries", |c| {
        c.array(f, "entity", |c| {
            c.string(f, "entity_type")?;
            c.string(f, "entity_name")?;
            c.tags(f)
        })?;
        c.array(f, "ops", |c| {
            c.string(f, "key")?;
            c.i64("value")?;
            c.bool("remove")?;
            c.tags(f)
        })?;
        c.tags(f)
    })?;
    c.bool("validate_only")?;
    c.tags(f)
}

// ---- versions ----

fn describe_topic_partitions(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "topics", |c| {
        c.string(f, "topic name")?;
        c.tags(f)
    })?;
    c.i32("response_partition_limit")?;
    // A nullable struct: an i8 presence marker, 1 = present (anything else: null, as the
    // crate reads it).
    let [present] = c.fixed("cursor")?;
    if present == 1 {
        c.string(f, "cursor topic_name")?;
        c.i32("cursor partition_index")?;
        c.tags(f)?;
    }
    c.tags(f)
}

// ---- kip848 ----

fn consumer_group_heartbeat(c: &mut Cursor<'_>, v: i16, f: bool) -> Res {
    c.string(f, "group_id")?;
    c.string(f, "member_id")?;
    c.i32("member_epoch")?;
    c.string(f, "instance_id")?;
    c.string(f, "rack_id")?;
    c.i32("rebalance_timeout_ms")?;
    c.array(f, "subscribed_topic_names", |c| c.string(f, "topic name"))?;
    if v >= 1 {
        c.string(f, "subscribed_topic_regex")?;
    }
    c.string(f, "server_assignor")?;
    c.array(f, "topic_partitions", |c| {
        c.uuid("topic_id")?;
        c.array(f, "partitions", |c| c.i32("partition"))?;
        c.tags(f)
    })?;
    c.tags(f)
}

fn consumer_group_describe(c: &mut Cursor<'_>, _v: i16, f: bool) -> Res {
    c.array(f, "group_ids", |c| c.string(f, "group id"))?;
    c.bool("include_authorized_operations")?;
    c.tags(f)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{
        alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion},
        describe_user_scram_credentials_request::UserName,
    };
    use kafka_protocol::messages::{
        create_acls_request::*, create_partitions_request::*, create_topics_request::*,
        delete_acls_request::*, delete_records_request::*, delete_topics_request::*,
        describe_configs_request::*, fetch_request::*, incremental_alter_configs_request::*,
        join_group_request::*, leave_group_request::*, list_offsets_request::*,
        metadata_request::*, offset_commit_request::*, offset_delete_request::*,
        offset_fetch_request::*, produce_request::*, sync_group_request::*, *,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes, VersionRange};

    /// Tag number used for unknown tagged fields in the samples.
    const TAG: i32 = 99;

    fn s(x: &'static str) -> StrBytes {
        StrBytes::from_static_str(x)
    }

    fn tag() -> Bytes {
        Bytes::from_static(b"opaque")
    }

    fn topic(n: &'static str) -> TopicName {
        TopicName(s(n))
    }

    /// A struct whose `topic_id` is a non-nil UUID. The crate's `Uuid` comes from the `uuid`
    /// crate, which is not a dependency here, so borrow one by decoding it.
    fn with_uuid() -> MetadataRequestTopic {
        let mut wire = vec![0xab; 16];
        wire.extend([1, 0]); // empty compact name, no tagged fields
        MetadataRequestTopic::decode(&mut Bytes::from(wire), 10).unwrap()
    }

    // ---- one sample per API: every array non-empty (two elements at each level), every
    // ---- string non-empty, every field valid at version `v` set to a non-default value.

    fn produce(v: i16) -> ProduceRequest {
        let part = |i| {
            PartitionProduceData::default()
                .with_index(i)
                .with_records(Some(Bytes::from_static(b"not-really-a-record-batch")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let data = |n| {
            let t = TopicProduceData::default()
                .with_partition_data(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag());
            if v >= 13 {
                t.with_topic_id(with_uuid().topic_id)
            } else {
                t.with_name(topic(n))
            }
        };
        ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("txn"))))
            .with_acks(-1)
            .with_timeout_ms(1500)
            .with_topic_data(vec![data("a"), data("b")])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn fetch(v: i16) -> FetchRequest {
        let part = |p| {
            let mut x = FetchPartition::default()
                .with_partition(p)
                .with_current_leader_epoch(3)
                .with_fetch_offset(100)
                .with_log_start_offset(7)
                .with_partition_max_bytes(1 << 20)
                .with_unknown_tagged_field(TAG, tag());
            if v >= 12 {
                x.last_fetched_epoch = 2;
            }
            if v >= 17 {
                x.replica_directory_id = with_uuid().topic_id;
            }
            if v >= 18 {
                x.high_watermark = 55;
            }
            x
        };
        let fetch_topic = |n| {
            let t = FetchTopic::default()
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag());
            if v >= 13 {
                t.with_topic_id(with_uuid().topic_id)
            } else {
                t.with_topic(topic(n))
            }
        };
        let forgotten = |n| {
            let t = ForgottenTopic::default()
                .with_partitions(vec![4, 5])
                .with_unknown_tagged_field(TAG, tag());
            if v >= 13 {
                t.with_topic_id(with_uuid().topic_id)
            } else {
                t.with_topic(topic(n))
            }
        };
        let mut r = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 24)
            .with_isolation_level(1)
            .with_session_id(9)
            .with_session_epoch(2)
            .with_topics(vec![fetch_topic("a"), fetch_topic("b")])
            .with_unknown_tagged_field(TAG, tag());
        if v <= 14 {
            r.replica_id = BrokerId(-1);
        } else {
            r.replica_state = ReplicaState::default()
                .with_replica_id(BrokerId(1))
                .with_replica_epoch(2);
        }
        if v >= 7 {
            r.forgotten_topics_data = vec![forgotten("c"), forgotten("d")];
        }
        if v >= 11 {
            r.rack_id = s("rack-1");
        }
        if v >= 12 {
            r.cluster_id = Some(s("cluster-1")); // known tag 0
        }
        r
    }

    fn list_offsets(v: i16) -> ListOffsetsRequest {
        let part = |p| {
            ListOffsetsPartition::default()
                .with_partition_index(p)
                .with_current_leader_epoch(4)
                .with_timestamp(-1)
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            ListOffsetsTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag())
        };
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(v >= 2))
            .with_topics(vec![t("a"), t("b")])
            .with_timeout_ms(if v >= 10 { 300 } else { 0 })
            .with_unknown_tagged_field(TAG, tag())
    }

    fn metadata(v: i16) -> MetadataRequest {
        let t = |n| {
            MetadataRequestTopic::default()
                .with_topic_id(if v >= 10 {
                    with_uuid().topic_id
                } else {
                    Default::default()
                })
                .with_name(Some(topic(n)))
                .with_unknown_tagged_field(TAG, tag())
        };
        MetadataRequest::default()
            .with_topics(Some(vec![t("a"), t("b")]))
            .with_allow_auto_topic_creation(v < 4)
            .with_include_cluster_authorized_operations((8..=10).contains(&v))
            .with_include_topic_authorized_operations(v >= 8)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn offset_commit(v: i16) -> OffsetCommitRequest {
        let part = |p| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(1000)
                .with_committed_leader_epoch(if v >= 6 { 3 } else { -1 })
                .with_committed_metadata(Some(s("meta")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            OffsetCommitRequestTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag())
        };
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_generation_id_or_member_epoch(5)
            .with_member_id(s("member"))
            .with_group_instance_id((v >= 7).then(|| s("instance")))
            .with_retention_time_ms(if v <= 4 { 60_000 } else { -1 })
            .with_topics(vec![t("a"), t("b")])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn offset_fetch(v: i16) -> OffsetFetchRequest {
        let t = |n| {
            OffsetFetchRequestTopic::default()
                .with_name(topic(n))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_field(TAG, tag())
        };
        let gt = |n| {
            OffsetFetchRequestTopics::default()
                .with_name(topic(n))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_field(TAG, tag())
        };
        let g = |n| {
            let g = OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(n)))
                .with_topics(Some(vec![gt("a"), gt("b")]))
                .with_unknown_tagged_field(TAG, tag());
            if v >= 9 {
                g.with_member_id(Some(s("member"))).with_member_epoch(3)
            } else {
                g
            }
        };
        let mut r = OffsetFetchRequest::default()
            .with_require_stable(v >= 7)
            .with_unknown_tagged_field(TAG, tag());
        if v <= 7 {
            r.group_id = GroupId(s("group"));
            r.topics = Some(vec![t("a"), t("b")]);
        } else {
            r.groups = vec![g("g1"), g("g2")];
        }
        r
    }

    fn find_coordinator(v: i16) -> FindCoordinatorRequest {
        let mut r = FindCoordinatorRequest::default().with_unknown_tagged_field(TAG, tag());
        if v <= 3 {
            r.key = s("group");
        } else {
            r.coordinator_keys = vec![s("g1"), s("g2")];
        }
        if v >= 1 {
            r.key_type = 1;
        }
        r
    }

    fn join_group(v: i16) -> JoinGroupRequest {
        let p = |n| {
            JoinGroupRequestProtocol::default()
                .with_name(s(n))
                .with_metadata(Bytes::from_static(b"subscription"))
                .with_unknown_tagged_field(TAG, tag())
        };
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if v >= 1 { 20_000 } else { -1 })
            .with_member_id(s("member"))
            .with_group_instance_id((v >= 5).then(|| s("instance")))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![p("range"), p("roundrobin")])
            .with_reason((v >= 8).then(|| s("because")))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn heartbeat(v: i16) -> HeartbeatRequest {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_generation_id(5)
            .with_member_id(s("member"))
            .with_group_instance_id((v >= 3).then(|| s("instance")))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn leave_group(v: i16) -> LeaveGroupRequest {
        let m = |n| {
            MemberIdentity::default()
                .with_member_id(s(n))
                .with_group_instance_id(Some(s("instance")))
                .with_reason((v >= 5).then(|| s("bye")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let mut r = LeaveGroupRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_unknown_tagged_field(TAG, tag());
        if v <= 2 {
            r.member_id = s("member");
        } else {
            r.members = vec![m("m1"), m("m2")];
        }
        r
    }

    fn sync_group(v: i16) -> SyncGroupRequest {
        let a = |n| {
            SyncGroupRequestAssignment::default()
                .with_member_id(s(n))
                .with_assignment(Bytes::from_static(b"assignment"))
                .with_unknown_tagged_field(TAG, tag())
        };
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_generation_id(5)
            .with_member_id(s("member"))
            .with_group_instance_id((v >= 3).then(|| s("instance")))
            .with_protocol_type((v >= 5).then(|| s("consumer")))
            .with_protocol_name((v >= 5).then(|| s("range")))
            .with_assignments(vec![a("m1"), a("m2")])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_groups(v: i16) -> DescribeGroupsRequest {
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g1")), GroupId(s("g2"))])
            .with_include_authorized_operations(v >= 3)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn list_groups(v: i16) -> ListGroupsRequest {
        let mut r = ListGroupsRequest::default().with_unknown_tagged_field(TAG, tag());
        if v >= 4 {
            r.states_filter = vec![s("Stable"), s("Empty")];
        }
        if v >= 5 {
            r.types_filter = vec![s("classic"), s("consumer")];
        }
        r
    }

    fn api_versions(v: i16) -> ApiVersionsRequest {
        let r = ApiVersionsRequest::default().with_unknown_tagged_field(TAG, tag());
        if v >= 3 {
            r.with_client_software_name(s("wharf-test"))
                .with_client_software_version(s("0.1.0"))
        } else {
            r
        }
    }

    fn create_topics(_v: i16) -> CreateTopicsRequest {
        let a = |p| {
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                .with_unknown_tagged_field(TAG, tag())
        };
        let cfg = |k| {
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s("compact")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            CreatableTopic::default()
                .with_name(topic(n))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![a(0), a(1)])
                .with_configs(vec![cfg("cleanup.policy"), cfg("x")])
                .with_unknown_tagged_field(TAG, tag())
        };
        CreateTopicsRequest::default()
            .with_topics(vec![t("a"), t("b")])
            .with_timeout_ms(1000)
            .with_validate_only(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn delete_topics(v: i16) -> DeleteTopicsRequest {
        let st = |n| {
            DeleteTopicState::default()
                .with_name(Some(topic(n)))
                .with_topic_id(with_uuid().topic_id)
                .with_unknown_tagged_field(TAG, tag())
        };
        let mut r = DeleteTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_unknown_tagged_field(TAG, tag());
        if v >= 6 {
            r.topics = vec![st("a"), st("b")];
        } else {
            r.topic_names = vec![topic("a"), topic("b")];
        }
        r
    }

    fn delete_records(_v: i16) -> DeleteRecordsRequest {
        let part = |p| {
            DeleteRecordsPartition::default()
                .with_partition_index(p)
                .with_offset(10)
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            DeleteRecordsTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag())
        };
        DeleteRecordsRequest::default()
            .with_topics(vec![t("a"), t("b")])
            .with_timeout_ms(1000)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn init_producer_id(v: i16) -> InitProducerIdRequest {
        let r = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("txn"))))
            .with_transaction_timeout_ms(60_000)
            .with_unknown_tagged_field(TAG, tag());
        if v >= 3 {
            r.with_producer_id(ProducerId(5)).with_producer_epoch(1)
        } else {
            r
        }
    }

    fn add_partitions_to_txn(v: i16) -> AddPartitionsToTxnRequest {
        use add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        let t = |n| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![0, 1])
                .with_unknown_tagged_field(TAG, tag())
        };
        let r = AddPartitionsToTxnRequest::default().with_unknown_tagged_field(TAG, tag());
        if v >= 4 {
            r.with_transactions(vec![AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s("txn")))
                .with_producer_id(ProducerId(5))
                .with_producer_epoch(1)
                .with_verify_only(true)
                .with_topics(vec![t("a"), t("b")])
                .with_unknown_tagged_field(TAG, tag())])
        } else {
            r.with_v3_and_below_transactional_id(TransactionalId(s("txn")))
                .with_v3_and_below_producer_id(ProducerId(5))
                .with_v3_and_below_producer_epoch(1)
                .with_v3_and_below_topics(vec![t("a"), t("b")])
        }
    }

    fn add_offsets_to_txn(_v: i16) -> AddOffsetsToTxnRequest {
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s("txn")))
            .with_producer_id(ProducerId(5))
            .with_producer_epoch(1)
            .with_group_id(GroupId(s("group")))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn end_txn(_v: i16) -> EndTxnRequest {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("txn")))
            .with_producer_id(ProducerId(5))
            .with_producer_epoch(1)
            .with_committed(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn txn_offset_commit(v: i16) -> TxnOffsetCommitRequest {
        let part = |p| {
            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(1000)
                .with_committed_leader_epoch(if v >= 2 { 3 } else { -1 })
                .with_committed_metadata(Some(s("meta")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_field(TAG, tag())
        };
        let r = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("txn")))
            .with_group_id(GroupId(s("group")))
            .with_producer_id(ProducerId(5))
            .with_producer_epoch(1)
            .with_topics(vec![t("a"), t("b")])
            .with_unknown_tagged_field(TAG, tag());
        if v >= 3 {
            r.with_generation_id(4)
                .with_member_id(s("member"))
                .with_group_instance_id(Some(s("instance")))
        } else {
            r
        }
    }

    fn describe_transactions(_v: i16) -> DescribeTransactionsRequest {
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s("a")), TransactionalId(s("b"))])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn list_transactions(v: i16) -> ListTransactionsRequest {
        ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing")])
            .with_producer_id_filters(vec![ProducerId(5), ProducerId(6)])
            .with_duration_filter(if v >= 1 { 1000 } else { -1 })
            .with_transactional_id_pattern((v >= 2).then(|| s("t.*")))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_configs(v: i16) -> DescribeConfigsRequest {
        let res = |n| {
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_configuration_keys(Some(vec![s("retention.ms"), s("segment.bytes")]))
                .with_unknown_tagged_field(TAG, tag())
        };
        DescribeConfigsRequest::default()
            .with_resources(vec![res("a"), res("b")])
            .with_include_synonyms(true)
            .with_include_documentation(v >= 3)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn create_partitions(_v: i16) -> CreatePartitionsRequest {
        let a = || {
            CreatePartitionsAssignment::default()
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                .with_unknown_tagged_field(TAG, tag())
        };
        let t = |n| {
            CreatePartitionsTopic::default()
                .with_name(topic(n))
                .with_count(4)
                .with_assignments(Some(vec![a(), a()]))
                .with_unknown_tagged_field(TAG, tag())
        };
        CreatePartitionsRequest::default()
            .with_topics(vec![t("a"), t("b")])
            .with_timeout_ms(1000)
            .with_validate_only(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn delete_groups(_v: i16) -> DeleteGroupsRequest {
        DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("g1")), GroupId(s("g2"))])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn alter_configs(_v: i16) -> AlterConfigsRequest {
        use kafka_protocol::messages::alter_configs_request as legacy;
        let cfg = |k, v: Option<&'static str>| {
            legacy::AlterableConfig::default()
                .with_name(s(k))
                .with_value(v.map(s))
                .with_unknown_tagged_field(TAG, tag())
        };
        let res = |n| {
            legacy::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_configs(vec![
                    cfg("cleanup.policy", Some("compact")),
                    cfg("segment.ms", None),
                ])
                .with_unknown_tagged_field(TAG, tag())
        };
        AlterConfigsRequest::default()
            .with_resources(vec![res("a"), res("b")])
            .with_validate_only(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn incremental_alter_configs(_v: i16) -> IncrementalAlterConfigsRequest {
        let cfg = |k| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s("1000")))
                .with_unknown_tagged_field(TAG, tag())
        };
        let res = |n| {
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_configs(vec![cfg("retention.ms"), cfg("segment.ms")])
                .with_unknown_tagged_field(TAG, tag())
        };
        IncrementalAlterConfigsRequest::default()
            .with_resources(vec![res("a"), res("b")])
            .with_validate_only(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn offset_delete(_v: i16) -> OffsetDeleteRequest {
        let part = |p| OffsetDeleteRequestPartition::default().with_partition_index(p);
        let t = |n| {
            OffsetDeleteRequestTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![part(0), part(1)])
        };
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("group")))
            .with_topics(vec![t("a"), t("b")])
    }

    fn describe_acls(v: i16) -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(if v >= 1 { 2 } else { 3 })
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(3)
            .with_permission_type(3)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn create_acls(v: i16) -> CreateAclsRequest {
        let c = |n| {
            AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_resource_pattern_type(if v >= 1 { 4 } else { 3 })
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)
                .with_unknown_tagged_field(TAG, tag())
        };
        CreateAclsRequest::default()
            .with_creations(vec![c("a"), c("b")])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn delete_acls(v: i16) -> DeleteAclsRequest {
        let f = |n| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(n)
                .with_pattern_type_filter(if v >= 1 { 1 } else { 3 })
                .with_principal_filter(Some(s("User:alice")))
                .with_host_filter(Some(s("*")))
                .with_operation(1)
                .with_permission_type(1)
                .with_unknown_tagged_field(TAG, tag())
        };
        DeleteAclsRequest::default()
            .with_filters(vec![f(Some(s("a"))), f(None)])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_cluster(v: i16) -> DescribeClusterRequest {
        DescribeClusterRequest::default()
            .with_include_cluster_authorized_operations(true)
            .with_endpoint_type(if v >= 1 { 2 } else { 1 })
            .with_include_fenced_brokers(v >= 2)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn sasl_handshake(_v: i16) -> SaslHandshakeRequest {
        SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512"))
    }

    fn sasl_authenticate(_v: i16) -> SaslAuthenticateRequest {
        SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=user,r=abc"))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_user_scram_credentials(_v: i16) -> DescribeUserScramCredentialsRequest {
        let user = |n| {
            UserName::default()
                .with_name(s(n))
                .with_unknown_tagged_field(TAG, tag())
        };
        DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![user("alice"), user("bob")]))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn alter_user_scram_credentials(_v: i16) -> AlterUserScramCredentialsRequest {
        AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![ScramCredentialDeletion::default()
                .with_name(s("alice"))
                .with_mechanism(1)
                .with_unknown_tagged_field(TAG, tag())])
            .with_upsertions(vec![ScramCredentialUpsertion::default()
                .with_name(s("bob"))
                .with_mechanism(2)
                .with_iterations(8192)
                .with_salt(Bytes::from_static(b"salt"))
                .with_salted_password(Bytes::from_static(&[7; 64]))
                .with_unknown_tagged_field(TAG, tag())])
            .with_unknown_tagged_field(TAG, tag())
    }

    // ---- admin ----

    fn describe_log_dirs(_v: i16) -> DescribeLogDirsRequest {
        use describe_log_dirs_request::DescribableLogDirTopic;
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(topic("a"))
                    .with_partitions(vec![0, 1])
                    .with_unknown_tagged_field(TAG, tag()),
                DescribableLogDirTopic::default()
                    .with_topic(topic("b"))
                    .with_partitions(vec![2, 3]),
            ]))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn alter_replica_log_dirs(_v: i16) -> AlterReplicaLogDirsRequest {
        use alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
        let topics = || {
            vec![
                AlterReplicaLogDirTopic::default()
                    .with_name(topic("a"))
                    .with_partitions(vec![0, 1])
                    .with_unknown_tagged_field(TAG, tag()),
                AlterReplicaLogDirTopic::default()
                    .with_name(topic("b"))
                    .with_partitions(vec![2, 3]),
            ]
        };
        AlterReplicaLogDirsRequest::default()
            .with_dirs(vec![
                AlterReplicaLogDir::default()
                    .with_path(s("/data/one"))
                    .with_topics(topics())
                    .with_unknown_tagged_field(TAG, tag()),
                AlterReplicaLogDir::default()
                    .with_path(s("/data/two"))
                    .with_topics(topics()),
            ])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn elect_leaders(v: i16) -> ElectLeadersRequest {
        use elect_leaders_request::TopicPartitions;
        ElectLeadersRequest::default()
            .with_election_type(if v >= 1 { 1 } else { 0 })
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic("a"))
                    .with_partitions(vec![0, 1])
                    .with_unknown_tagged_field(TAG, tag()),
                TopicPartitions::default()
                    .with_topic(topic("b"))
                    .with_partitions(vec![2, 3]),
            ]))
            .with_timeout_ms(1234)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn list_partition_reassignments(_v: i16) -> ListPartitionReassignmentsRequest {
        use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
        ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(1234)
            .with_topics(Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic("a"))
                    .with_partition_indexes(vec![0, 1])
                    .with_unknown_tagged_field(TAG, tag()),
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic("b"))
                    .with_partition_indexes(vec![2, 3]),
            ]))
            .with_unknown_tagged_field(TAG, tag())
    }

    fn alter_partition_reassignments(v: i16) -> AlterPartitionReassignmentsRequest {
        use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
        let partitions = || {
            vec![
                ReassignablePartition::default()
                    .with_partition_index(1)
                    .with_replicas(Some(vec![BrokerId(1), BrokerId(2)]))
                    .with_unknown_tagged_field(TAG, tag()),
                ReassignablePartition::default()
                    .with_partition_index(2)
                    .with_replicas(Some(vec![BrokerId(3), BrokerId(4)])),
            ]
        };
        AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(1234)
            // Only v1+ has the field; v0 decodes it as its default, true.
            .with_allow_replication_factor_change(v < 1)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic("a"))
                    .with_partitions(partitions())
                    .with_unknown_tagged_field(TAG, tag()),
                ReassignableTopic::default()
                    .with_name(topic("b"))
                    .with_partitions(partitions()),
            ])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_quorum(_v: i16) -> DescribeQuorumRequest {
        use describe_quorum_request::{PartitionData, TopicData};
        let partitions = || {
            vec![
                PartitionData::default()
                    .with_partition_index(1)
                    .with_unknown_tagged_field(TAG, tag()),
                PartitionData::default().with_partition_index(2),
            ]
        };
        DescribeQuorumRequest::default()
            .with_topics(vec![
                TopicData::default()
                    .with_topic_name(topic("__cluster_metadata"))
                    .with_partitions(partitions())
                    .with_unknown_tagged_field(TAG, tag()),
                TopicData::default()
                    .with_topic_name(topic("b"))
                    .with_partitions(partitions()),
            ])
            .with_unknown_tagged_field(TAG, tag())
    }

    fn list_config_resources(v: i16) -> ListConfigResourcesRequest {
        let types = if v >= 1 { vec![2, 4] } else { vec![] };
        ListConfigResourcesRequest::default()
            .with_resource_types(types)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn describe_producers(_v: i16) -> DescribeProducersRequest {
        use describe_producers_request::TopicRequest;
        DescribeProducersRequest::default()
            .with_topics(vec![
                TopicRequest::default()
                    .with_name(topic("a"))
                    .with_partition_indexes(vec![0, 1])
                    .with_unknown_tagged_field(TAG, tag()),
                TopicRequest::default()
                    .with_name(topic("b"))
                    .with_partition_indexes(vec![2, 3]),
            ])
            .with_unknown_tagged_field(TAG, tag())
    }

    // ---- quotas ----

    fn describe_client_quotas(_v: i16) -> DescribeClientQuotasRequest {
        use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
        let component = |t, m, name| {
            ComponentData::default()
                .with_entity_type(s(t))
                .with_match_type(m)
                .with_match(name)
                .with_unknown_tagged_field(TAG, tag())
        };
        DescribeClientQuotasRequest::default()
            .with_components(vec![
                component("user", 0, Some(s("alice"))),
                component("client-id", 1, None),
            ])
            .with_strict(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    fn alter_client_quotas(_v: i16) -> AlterClientQuotasRequest {
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        let entity = |t, name| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(name)
                .with_unknown_tagged_field(TAG, tag())
        };
        let op = |k, v, remove| {
            OpData::default()
                .with_key(s(k))
                .with_value(v)
                .with_remove(remove)
                .with_unknown_tagged_field(TAG, tag())
        };
        let entry = || {
            EntryData::default()
                .with_entity(vec![
                    entity("user", Some(s("alice"))),
                    entity("client-id", None),
                ])
                .with_ops(vec![
                    op("producer_byte_rate", 1024.0, false),
                    op("consumer_byte_rate", 0.0, true),
                ])
                .with_unknown_tagged_field(TAG, tag())
        };
        AlterClientQuotasRequest::default()
            .with_entries(vec![entry(), entry()])
            .with_validate_only(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    // ---- versions ----

    fn describe_topic_partitions(v: i16) -> DescribeTopicPartitionsRequest {
        use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
        DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(s("alpha")))
                    .with_unknown_tagged_field(TAG, tag()),
                TopicRequest::default().with_name(TopicName(s("beta"))),
            ])
            .with_response_partition_limit(7)
            .with_cursor((v == 0).then(|| {
                Cursor::default()
                    .with_topic_name(TopicName(s("beta")))
                    .with_partition_index(3)
                    .with_unknown_tagged_field(TAG, tag())
            }))
            .with_unknown_tagged_field(TAG, tag())
    }

    // ---- kip848 ----

    fn consumer_group_heartbeat(v: i16) -> ConsumerGroupHeartbeatRequest {
        use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
        let r = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("m"))
            .with_member_epoch(3)
            .with_instance_id(Some(s("i")))
            .with_rack_id(None)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic("a"), topic("b")]))
            .with_server_assignor(Some(s("uniform")))
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic_id(uuid::Uuid::from_bytes([7; 16]))
                .with_partitions(vec![0, 2])
                .with_unknown_tagged_field(TAG, tag())]))
            .with_unknown_tagged_field(TAG, tag());
        if v >= 1 {
            r.with_subscribed_topic_regex(Some(s("a.*")))
        } else {
            r
        }
    }

    fn consumer_group_describe(_v: i16) -> ConsumerGroupDescribeRequest {
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(s("g")), GroupId(s("h"))])
            .with_include_authorized_operations(true)
            .with_unknown_tagged_field(TAG, tag())
    }

    /// Encodes header + `body` with the crate, checks that the crate decodes the frame back
    /// (to something that re-encodes to the same bytes), and returns the frame.
    fn encode<T: Encodable + Decodable>(key: ApiKey, v: i16, body: T) -> Vec<u8> {
        let hv = key.request_header_version(v);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(42)
            .with_client_id(Some(s("wharf-guard-test")))
            .with_unknown_tagged_field(TAG, tag()); // written only by header v2
        let mut buf = BytesMut::new();
        header.encode(&mut buf, hv).unwrap();
        body.encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        let frame = buf.to_vec();

        let mut rd = Bytes::from(frame.clone());
        let header = RequestHeader::decode(&mut rd, hv).unwrap();
        let body = T::decode(&mut rd, v).unwrap();
        assert!(rd.is_empty(), "{key:?} v{v}: crate left bytes over");
        let mut again = BytesMut::new();
        header.encode(&mut again, hv).unwrap();
        body.encode(&mut again, v).unwrap();
        assert_eq!(
            again.to_vec(),
            frame,
            "{key:?} v{v}: crate round trip differs"
        );
        frame
    }

    /// A valid frame for `key` at `v`, encoded by the crate.
    fn sample(key: ApiKey, v: i16) -> Vec<u8> {
        match key {
            ApiKey::Produce => encode(key, v, produce(v)),
            ApiKey::Fetch => encode(key, v, fetch(v)),
            ApiKey::ListOffsets => encode(key, v, list_offsets(v)),
            ApiKey::Metadata => encode(key, v, metadata(v)),
            ApiKey::OffsetCommit => encode(key, v, offset_commit(v)),
            ApiKey::OffsetFetch => encode(key, v, offset_fetch(v)),
            ApiKey::FindCoordinator => encode(key, v, find_coordinator(v)),
            ApiKey::JoinGroup => encode(key, v, join_group(v)),
            ApiKey::Heartbeat => encode(key, v, heartbeat(v)),
            ApiKey::LeaveGroup => encode(key, v, leave_group(v)),
            ApiKey::SyncGroup => encode(key, v, sync_group(v)),
            ApiKey::DescribeGroups => encode(key, v, describe_groups(v)),
            ApiKey::ListGroups => encode(key, v, list_groups(v)),
            ApiKey::ApiVersions => encode(key, v, api_versions(v)),
            ApiKey::CreateTopics => encode(key, v, create_topics(v)),
            ApiKey::DeleteTopics => encode(key, v, delete_topics(v)),
            ApiKey::DeleteRecords => encode(key, v, delete_records(v)),
            ApiKey::InitProducerId => encode(key, v, init_producer_id(v)),
            ApiKey::AddPartitionsToTxn => encode(key, v, add_partitions_to_txn(v)),
            ApiKey::AddOffsetsToTxn => encode(key, v, add_offsets_to_txn(v)),
            ApiKey::EndTxn => encode(key, v, end_txn(v)),
            ApiKey::TxnOffsetCommit => encode(key, v, txn_offset_commit(v)),
            ApiKey::DescribeTransactions => encode(key, v, describe_transactions(v)),
            ApiKey::ListTransactions => encode(key, v, list_transactions(v)),
            ApiKey::DescribeConfigs => encode(key, v, describe_configs(v)),
            ApiKey::AlterConfigs => encode(key, v, alter_configs(v)),
            ApiKey::CreatePartitions => encode(key, v, create_partitions(v)),
            ApiKey::DeleteGroups => encode(key, v, delete_groups(v)),
            ApiKey::IncrementalAlterConfigs => encode(key, v, incremental_alter_configs(v)),
            ApiKey::OffsetDelete => encode(key, v, offset_delete(v)),
            ApiKey::DescribeCluster => encode(key, v, describe_cluster(v)),
            ApiKey::DescribeAcls => encode(key, v, describe_acls(v)),
            ApiKey::CreateAcls => encode(key, v, create_acls(v)),
            ApiKey::DeleteAcls => encode(key, v, delete_acls(v)),
            ApiKey::SaslHandshake => encode(key, v, sasl_handshake(v)),
            ApiKey::SaslAuthenticate => encode(key, v, sasl_authenticate(v)),
            ApiKey::DescribeUserScramCredentials => {
                encode(key, v, describe_user_scram_credentials(v))
            }
            ApiKey::AlterUserScramCredentials => encode(key, v, alter_user_scram_credentials(v)),
            // ---- admin ----
            ApiKey::DescribeLogDirs => encode(key, v, describe_log_dirs(v)),
            ApiKey::AlterReplicaLogDirs => encode(key, v, alter_replica_log_dirs(v)),
            ApiKey::ElectLeaders => encode(key, v, elect_leaders(v)),
            ApiKey::ListPartitionReassignments => encode(key, v, list_partition_reassignments(v)),
            ApiKey::AlterPartitionReassignments => encode(key, v, alter_partition_reassignments(v)),
            ApiKey::DescribeQuorum => encode(key, v, describe_quorum(v)),
            ApiKey::ListConfigResources => encode(key, v, list_config_resources(v)),
            ApiKey::DescribeProducers => encode(key, v, describe_producers(v)),
            // quotas
            ApiKey::DescribeClientQuotas => encode(key, v, describe_client_quotas(v)),
            ApiKey::AlterClientQuotas => encode(key, v, alter_client_quotas(v)),
            ApiKey::DescribeTopicPartitions => encode(key, v, describe_topic_partitions(v)),
            // ---- kip848 ----
            ApiKey::ConsumerGroupHeartbeat => encode(key, v, consumer_group_heartbeat(v)),
            ApiKey::ConsumerGroupDescribe => encode(key, v, consumer_group_describe(v)),
            other => panic!("no sample for {other:?}"),
        }
    }

    /// Runs `$body` with `$t` naming the crate's request type for `$key`, or gives `$none`.
    macro_rules! with_request_type {
        ($key:expr, $t:ident => $body:expr, $none:expr) => {
            with_request_type!(@ $key, $t, $body, $none, Produce => ProduceRequest,
                Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
                Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
                OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
                JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
                LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
                DescribeGroups => DescribeGroupsRequest, ListGroups => ListGroupsRequest,
                ApiVersions => ApiVersionsRequest, CreateTopics => CreateTopicsRequest,
                DeleteTopics => DeleteTopicsRequest, DeleteRecords => DeleteRecordsRequest,
                InitProducerId => InitProducerIdRequest, DescribeConfigs => DescribeConfigsRequest,
                AlterConfigs => AlterConfigsRequest,
                AddPartitionsToTxn => AddPartitionsToTxnRequest,
                AddOffsetsToTxn => AddOffsetsToTxnRequest, EndTxn => EndTxnRequest,
                TxnOffsetCommit => TxnOffsetCommitRequest,
                DescribeTransactions => DescribeTransactionsRequest,
                ListTransactions => ListTransactionsRequest,
                CreatePartitions => CreatePartitionsRequest, DeleteGroups => DeleteGroupsRequest,
                IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
                OffsetDelete => OffsetDeleteRequest, DescribeCluster => DescribeClusterRequest,
                DescribeAcls => DescribeAclsRequest, CreateAcls => CreateAclsRequest,
                DeleteAcls => DeleteAclsRequest,
                SaslHandshake => SaslHandshakeRequest, SaslAuthenticate => SaslAuthenticateRequest,
                DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
                AlterUserScramCredentials => AlterUserScramCredentialsRequest,
                // ---- admin ----
                DescribeLogDirs => DescribeLogDirsRequest,
                AlterReplicaLogDirs => AlterReplicaLogDirsRequest,
                ElectLeaders => ElectLeadersRequest,
                ListPartitionReassignments => ListPartitionReassignmentsRequest,
                AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
                DescribeQuorum => DescribeQuorumRequest,
                ListConfigResources => ListConfigResourcesRequest,
                DescribeProducers => DescribeProducersRequest,
                DescribeClientQuotas => DescribeClientQuotasRequest,
                AlterClientQuotas => AlterClientQuotasRequest,
                DescribeTopicPartitions => DescribeTopicPartitionsRequest,
                ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
                ConsumerGroupDescribe => ConsumerGroupDescribeRequest)
        };
        (@ $key:expr, $t:ident, $body:expr, $none:expr, $($k:ident => $ty:ty),*) => {
            match $key {
                $(ApiKey::$k => {
                    type $t = $ty;
                    $body
                })*
                _ => $none,
            }
        };
    }

    /// Decodes `frame` with the crate, header then the body its header names; the number of
    /// bytes it consumed, or None if the crate rejects the frame.
    fn crate_decode(frame: &[u8]) -> Option<usize> {
        let key = ApiKey::try_from(i16::from_be_bytes([*frame.first()?, *frame.get(1)?])).ok()?;
        let v = i16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]);
        let mut buf = Bytes::copy_from_slice(frame);
        RequestHeader::decode(&mut buf, key.request_header_version(v)).ok()?;
        with_request_type!(key, T => T::decode(&mut buf, v).ok().map(drop), None)?;
        Some(frame.len() - buf.len())
    }

    /// The versions the crate's request struct for `key` can encode and decode. (Not
    /// `ApiKey::valid_versions`, which overstates some: OffsetCommit and OffsetFetch up to
    /// v10 and InitProducerId up to v6, where the structs stop at 9, 9 and 5.)
    fn crate_versions(key: ApiKey) -> VersionRange {
        with_request_type!(key, T => T::VERSIONS, panic!("{key:?}"))
    }

    fn api_key(api: &Api) -> ApiKey {
        ApiKey::try_from(api.key).unwrap()
    }

    /// Every (api, version) the guard serves, with a crate-encoded sample frame.
    fn served_samples() -> Vec<(ApiKey, i16, Vec<u8>)> {
        APIS.iter()
            .flat_map(|a| (a.min..=a.max).map(move |v| (api_key(a), v)))
            .map(|(k, v)| (k, v, sample(k, v)))
            .collect()
    }

    /// A hand-made request header (client_id "c").
    fn header(key: i16, v: i16) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend(key.to_be_bytes());
        h.extend(v.to_be_bytes());
        h.extend(7i32.to_be_bytes());
        h.extend([0, 1, b'c']);
        if lookup(key, v).is_some_and(|a| v >= a.flexible_from) {
            h.push(0); // no tagged fields
        }
        h
    }

    #[test]
    fn every_served_version_walks_exactly_like_the_crate() {
        let samples = served_samples();
        let expected: usize = APIS
            .iter()
            .map(|a| usize::try_from(a.max - a.min + 1).unwrap())
            .sum();
        assert_eq!(samples.len(), expected);
        for (key, v, frame) in samples {
            assert!(is_known(key as i16, v));
            assert_eq!(walk(&frame), Ok(frame.len()), "{key:?} v{v}");
            assert_eq!(crate_decode(&frame), Some(frame.len()), "{key:?} v{v}");
            assert_eq!(check_request(&frame), Ok(()));
            let mut trailing = frame.clone();
            trailing.extend([0xff; 9]);
            assert_eq!(
                walk(&trailing),
                Ok(frame.len()),
                "{key:?} v{v} + trailing bytes"
            );
        }
    }

    #[test]
    fn walkers_match_the_crate_beyond_the_served_versions() {
        // Not served yet, but the walkers already carry the crate's later-version fields;
        // this keeps them honest for the day the table grows.
        let any_version: fn(i16, i16) -> Option<&'static Api> =
            |key, _| APIS.iter().find(|a| a.key == key);
        for api in APIS {
            let key = api_key(api);
            for v in api.max + 1..=crate_versions(key).max {
                let frame = sample(key, v);
                assert_eq!(
                    walk_with(&frame, any_version),
                    Ok(frame.len()),
                    "{key:?} v{v}"
                );
                assert_eq!(
                    check_request(&frame),
                    Err(GuardError::Unsupported {
                        api_key: api.key,
                        api_version: v
                    })
                );
            }
        }
    }

    #[test]
    fn flexible_versions_match_the_crate_header_versions() {
        for api in APIS {
            let key = api_key(api);
            let crate_versions = crate_versions(key);
            for v in crate_versions.min..=crate_versions.max {
                let hv = if v >= api.flexible_from { 2 } else { 1 };
                assert_eq!(key.request_header_version(v), hv, "{key:?} v{v}");
            }
            assert!(crate_versions.min <= api.min && api.max <= crate_versions.max);
        }
    }

    #[test]
    fn unknown_apis_and_versions_are_unsupported() {
        assert!(is_known(18, 0) && is_known(18, 3) && is_known(47, 0) && is_known(60, 1));
        for (key, v) in [
            (18, 5),
            (18, -1),
            (0, 2),
            (0, 14),
            (1, 3),
            (17, 0),
            (-1, 0),
            (60, 3),
        ] {
            assert!(!is_known(key, v), "{key} v{v}");
            let frame = header(key, v);
            assert_eq!(
                check_request(&frame),
                Err(GuardError::Unsupported {
                    api_key: key,
                    api_version: v
                })
            );
        }
        assert_eq!(
            GuardError::Unsupported {
                api_key: 17,
                api_version: 0
            }
            .to_string(),
            "unsupported request: api_key 17 version 0"
        );
        assert!(matches!(
            walk(&[0, 3, 0]),
            Err(GuardError::Truncated { at: 2, .. })
        ));
    }

    #[test]
    fn metadata_v0_declaring_2_pow_31_topics_is_rejected() {
        let mut frame = header(3, 0);
        frame.extend(i32::MAX.to_be_bytes());
        assert!(frame.len() <= 20);
        let err = check_request(&frame).unwrap_err();
        assert_eq!(
            err,
            GuardError::LengthExceedsFrame {
                at: 11,
                what: "topics",
                len: i32::MAX as u64,
                remaining: 0
            }
        );
        assert_eq!(
            err.to_string(),
            "topics at byte 11 declares 2147483647, but only 0 bytes remain"
        );
    }

    #[test]
    fn create_topics_v5_huge_compact_count_is_rejected() {
        let mut frame = header(19, 5);
        frame.extend([0xff, 0xff, 0xff, 0xff, 0x0f]); // u32::MAX: 2^32 - 2 topics
        frame.extend([0; 8]);
        assert!(matches!(
            check_request(&frame),
            Err(GuardError::LengthExceedsFrame {
                what: "topics",
                len: 0xffff_fffe,
                remaining: 8,
                ..
            })
        ));
    }

    #[test]
    fn arrays_longer_than_the_limit_are_rejected_even_if_they_fit() {
        let groups = |n: usize| {
            let mut frame = header(15, 0);
            frame.extend(i32::try_from(n).unwrap().to_be_bytes());
            frame.extend(std::iter::repeat_n([0u8, 0], n).flatten()); // empty group ids
            frame
        };
        let ok = groups(MAX_ARRAY_LEN);
        assert_eq!(walk(&ok), Ok(ok.len()));
        assert_eq!(crate_decode(&ok), Some(ok.len()));
        assert!(matches!(
            check_request(&groups(MAX_ARRAY_LEN + 1)),
            Err(GuardError::ArrayTooLong {
                at: 11,
                count: 65_537,
                limit: MAX_ARRAY_LEN,
                ..
            })
        ));
    }

    #[test]
    fn too_many_elements_in_total_are_rejected() {
        // DescribeConfigs v1: `resources` of full `configuration_keys` arrays of empty strings.
        let resources = |n: usize| {
            let mut frame = header(32, 1);
            frame.extend(i32::try_from(n).unwrap().to_be_bytes());
            for _ in 0..n {
                frame.extend([2, 0, 0]); // resource_type, empty resource_name
                frame.extend(i32::try_from(MAX_ARRAY_LEN).unwrap().to_be_bytes());
                frame.extend(std::iter::repeat_n([0u8, 0], MAX_ARRAY_LEN).flatten());
            }
            frame.push(1); // include_synonyms
            frame
        };
        let ok = resources(15); // 15 + 15 * 65_536 = 983_055 elements
        assert_eq!(walk(&ok), Ok(ok.len()));
        let too_many = resources(16); // 1_048_592 elements
        assert!(matches!(
            check_request(&too_many),
            Err(GuardError::TooManyElements {
                limit: MAX_TOTAL_ELEMENTS,
                ..
            })
        ));
    }

    #[test]
    fn negative_lengths_other_than_null_are_rejected() {
        let with = |key, v, body: &[u8]| {
            let mut f = header(key, v);
            f.extend(body);
            f
        };
        // Null topics (-1) is "all topics": fine for the guard and the crate.
        let null = with(3, 0, &(-1i32).to_be_bytes());
        assert_eq!(walk(&null), Ok(null.len()));
        assert_eq!(crate_decode(&null), Some(null.len()));
        assert!(matches!(
            check_request(&with(3, 0, &(-2i32).to_be_bytes())),
            Err(GuardError::NegativeLength {
                at: 11,
                what: "topics",
                len: -2
            })
        ));
        assert!(matches!(
            check_request(&with(3, 0, &[0, 0, 0, 1, 0x80, 0])),
            Err(GuardError::NegativeLength {
                at: 15,
                what: "topic name",
                len: -32768
            })
        ));
        // Produce v3: transactional_id null, acks, timeout, 1 topic "t", 1 partition, records -2.
        let produce = [
            &[0xff, 0xff, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 1, b't'][..],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe],
        ]
        .concat();
        assert!(matches!(
            check_request(&with(0, 3, &produce)),
            Err(GuardError::NegativeLength {
                what: "records",
                len: -2,
                ..
            })
        ));
        assert!(matches!(
            check_request(&with(3, 0, &[0x80, 0, 0, 0])),
            Err(GuardError::NegativeLength {
                len: -2_147_483_648,
                ..
            })
        ));
        // Negative client_id length in the header.
        let mut bad_client = header(3, 0);
        bad_client.truncate(8);
        bad_client.extend([0xff, 0xfe]);
        assert!(matches!(
            check_request(&bad_client),
            Err(GuardError::NegativeLength {
                at: 8,
                what: "client_id",
                len: -2
            })
        ));
    }

    #[test]
    fn overlong_and_overflowing_varints_are_rejected() {
        for bad in [
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
        ] {
            let mut frame = header(19, 5);
            frame.extend(bad);
            assert!(
                matches!(
                    check_request(&frame),
                    Err(GuardError::BadVarint {
                        at: 12,
                        what: "topics"
                    })
                ),
                "{bad:?}"
            );
        }
        // The largest 5-byte varint is fine as a varint (then too long for the frame).
        let mut frame = header(19, 5);
        frame.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            check_request(&frame),
            Err(GuardError::LengthExceedsFrame { .. })
        ));
        // A truncated varint is truncation.
        let mut frame = header(19, 5);
        frame.extend([0x80, 0x80]);
        assert!(matches!(
            check_request(&frame),
            Err(GuardError::Truncated { at: 14, .. })
        ));
    }

    #[test]
    fn tagged_fields_are_bounded() {
        // ApiVersions v3: two empty compact strings, then the body's tagged fields.
        let body = |tags: &[u8]| {
            let mut f = header(18, 3);
            f.extend([1, 1]);
            f.extend(tags);
            f
        };
        let ok = body(&[2, 0, 1, 0xaa, 5, 0]); // tag 0 (1 byte), tag 5 (0 bytes)
        assert_eq!(walk(&ok), Ok(ok.len()));
        assert_eq!(crate_decode(&ok), Some(ok.len()));
        assert!(matches!(
            check_request(&body(&[0xff, 0xff, 0xff, 0xff, 0x0f])),
            Err(GuardError::LengthExceedsFrame {
                what: "tagged fields",
                ..
            })
        ));
        assert!(matches!(
            check_request(&body(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])),
            Err(GuardError::LengthExceedsFrame {
                what: "tagged field",
                len: 0xffff_ffff,
                remaining: 2,
                ..
            })
        ));
        // Header v2 tagged fields are checked too.
        let mut frame = header(18, 3);
        frame.pop();
        frame.extend([1, 0, 9]);
        assert!(matches!(
            check_request(&frame),
            Err(GuardError::LengthExceedsFrame {
                what: "tagged field",
                len: 9,
                remaining: 0,
                ..
            })
        ));
    }

    /// Fetch v12 body with empty topics/forgotten topics/rack, followed by `tags`.
    fn fetch_v12(topics: &[u8], tags: &[u8]) -> Vec<u8> {
        let mut f = header(1, 12);
        f.extend([0xff; 4]); // replica_id
        f.extend([0; 12]); // max_wait_ms, min_bytes, max_bytes
        f.push(0); // isolation_level
        f.extend([0; 8]); // session_id, session_epoch
        f.extend(topics);
        f.extend([1, 1]); // no forgotten topics, empty rack_id
        f.extend(tags);
        f
    }

    #[test]
    fn fetch_known_tags_are_walked_like_the_crate() {
        // cluster_id (tag 0) is read as a compact string; its declared size (0 here) is
        // ignored by the crate, so the guard ignores it too and stays in step.
        let frame = fetch_v12(&[1], &[2, 0, 0, 4, b'a', b'b', b'c', 7, 1, 0xee]);
        assert_eq!(walk(&frame), Ok(frame.len()));
        assert_eq!(crate_decode(&frame), Some(frame.len()));
        // ...including its length, which must fit.
        let frame = fetch_v12(&[1], &[1, 0, 4, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            check_request(&frame),
            Err(GuardError::LengthExceedsFrame {
                what: "cluster_id",
                ..
            })
        ));
        // replica_state (tag 1) only exists from v15; the crate rejects it at v12.
        let frame = fetch_v12(&[1], &[1, 1, 0]);
        assert_eq!(
            check_request(&frame),
            Err(GuardError::InvalidTag {
                at: frame.len() - 2,
                tag: 1,
                api_version: 12
            })
        );
        assert_eq!(crate_decode(&frame), None);
        // A partition's tags 0 and 1 only exist from v17 and v18.
        for t in [0, 1] {
            let mut topic = vec![2, 2, b't', 2]; // one topic "t", one partition
            topic.extend([0; 32]); // partition .. partition_max_bytes
            topic.extend([1, t, 0]); // partition tagged field
            topic.push(0); // topic tagged fields
            let frame = fetch_v12(&topic, &[0]);
            assert!(
                matches!(check_request(&frame), Err(GuardError::InvalidTag { tag, api_version: 12, .. }) if tag == u32::from(t))
            );
            assert_eq!(crate_decode(&frame), None);
            let at = topic.len() - 3;
            topic[at] = 2; // tag 2 is unknown: opaque, fine
            let frame = fetch_v12(&topic, &[0]);
            assert_eq!(walk(&frame), Ok(frame.len()));
            assert_eq!(crate_decode(&frame), Some(frame.len()));
        }
    }

    #[test]
    fn every_truncation_is_rejected_without_panicking() {
        for (key, v, frame) in served_samples() {
            for len in 0..frame.len() {
                let cut = &frame[..len];
                assert!(walk(cut).is_err(), "{key:?} v{v} cut at {len}");
            }
        }
    }

    /// Deterministic xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }
    }

    #[test]
    fn mutated_frames_never_panic_and_agree_with_the_crate() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut rejected) = (0, 0);
        for (key, v, frame) in served_samples() {
            for _ in 0..400 {
                let mut m = frame.clone();
                for _ in 0..=rng.below(3) {
                    let i = rng.below(m.len());
                    m[i] = match rng.below(6) {
                        0 => 0x00,
                        1 => 0xff,
                        2 => 0x7f,
                        3 => 0x80,
                        4 => m[i].wrapping_add(1),
                        _ => rng.next().to_le_bytes()[0],
                    };
                }
                if rng.below(4) == 0 {
                    m.truncate(rng.below(m.len() + 1));
                }
                match walk(&m) {
                    Ok(n) => {
                        accepted += 1;
                        assert!(n <= m.len());
                        // Whatever the guard accepts the crate can decode without aborting;
                        // when it succeeds, it read exactly the bytes the guard walked.
                        if let Some(used) = crate_decode(&m) {
                            assert_eq!(used, n, "{key:?} v{v} mutated: {m:?}");
                        }
                    }
                    Err(_) => rejected += 1,
                }
            }
        }
        assert!(
            accepted > 1000 && rejected > 1000,
            "{accepted} accepted, {rejected} rejected"
        );
    }
}
