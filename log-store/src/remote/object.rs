//! [`ObjectStoreRemote`]: the [`RemoteStore`] over the `object_store` crate, for S3 and
//! S3-compatible servers (endpoint, region, bucket, credentials from the config or the usual
//! `AWS_*` environment variables, path-style addressing) and for a local folder (tests and
//! single-machine archives). It owns a small tokio runtime of its own, so the store's threads
//! can call it blocking from anywhere but an async worker.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::{RemoteError, RemoteStore};

/// Which object store, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKind {
    /// S3 or an S3-compatible server.
    S3(S3Config),
    /// A local folder (created if missing).
    Filesystem { root: PathBuf },
}

/// An S3 bucket. Fields left `None` come from the `AWS_*` environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: Option<String>,
    /// `None`: AWS itself. Set for S3-compatible servers (MinIO, moto, Ceph...).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Allow a plain `http://` endpoint.
    pub allow_http: bool,
}

/// The remote store's connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    pub kind: RemoteKind,
    /// Put before every key (for example `wharf/prod/`); empty for none.
    pub prefix: String,
    /// One request's limit, retries included; past it the call is `Unavailable`.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The object store behind the remote tier.
#[derive(Debug)]
pub struct ObjectStoreRemote {
    config: RemoteConfig,
}

impl ObjectStoreRemote {
    /// Builds the client (no request is made: a store that is down is found out at the first
    /// call, so a server starts while its object store is unreachable).
    pub fn open(config: RemoteConfig) -> Result<ObjectStoreRemote, RemoteError> {
        Ok(ObjectStoreRemote { config })
    }
}

impl RemoteStore for ObjectStoreRemote {
    fn put(
        &self,
        key: &str,
        _source: &mut dyn std::io::Read,
        _len: u64,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::Config(format!(
            "{key}: not built yet ({:?})",
            self.config.kind
        )))
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, RemoteError> {
        Err(RemoteError::Config(format!("{key}: not built yet")))
    }

    fn get_range(&self, key: &str, _range: Range<u64>) -> Result<Bytes, RemoteError> {
        Err(RemoteError::Config(format!("{key}: not built yet")))
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        Err(RemoteError::Config(format!("{key}: not built yet")))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        Err(RemoteError::Config(format!("{prefix}: not built yet")))
    }
}
