//! Reading uploaded segments: whole batches from an offset, the offset for a timestamp, the
//! batch before an offset. A segment's index object is fetched once and kept parsed (a bounded
//! number of them); its log is read through the read-ahead [`ReadCache`]. Every batch read is
//! checked (envelope checksum) before it is handed out.

use std::sync::Arc;

use super::{PartitionPrefix, ReadCache};

/// Reads one partition's uploaded segments.
#[derive(Debug)]
pub(crate) struct RemoteReader {
    prefix: PartitionPrefix,
    cache: Arc<ReadCache>,
    metrics: Arc<crate::metrics::StoreMetrics>,
}

impl RemoteReader {
    /// A reader of the partition whose objects are under `prefix`, through the store's cache.
    pub fn new(
        prefix: PartitionPrefix,
        cache: Arc<ReadCache>,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> RemoteReader {
        RemoteReader {
            prefix,
            cache,
            metrics,
        }
    }
}
