//! [`ObjectStoreRemote`]: the [`RemoteStore`] over the `object_store` crate, for S3 and
//! S3-compatible servers (endpoint, region, bucket, credentials from the config or the usual
//! `AWS_*` environment variables, path-style addressing) and for a local folder (tests and
//! single-machine archives).
//!
//! `object_store` is async; the log store is not. The remote store owns a small tokio runtime
//! of its own: each call is spawned onto it and the caller waits on a channel, bounded by the
//! request timeout. Waiting on a channel never panics, wherever it is called from (a runtime's
//! `block_on` would, inside another runtime).

use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{RemoteError, RemoteStore, MAX_GET_BYTES};

/// Keys a streamed listing hands over per request to the store's runtime: the most a listing
/// holds in memory at once, whatever the number of objects under the prefix.
const LIST_PAGE: usize = 1_000;

/// Objects up to this size are sent with one request; larger ones in parts of this size (S3
/// wants parts of at least 5 MiB), so an upload holds one part in memory whatever its size.
pub const PART_SIZE: usize = 8 << 20;

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
    /// One request's limit (one part of an upload, one ranged read), the client's own
    /// retries included; past it the call is `Unavailable`.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl RemoteConfig {
    /// A local folder as the remote store (tests, single-machine archives).
    pub fn filesystem(root: impl Into<PathBuf>) -> RemoteConfig {
        RemoteConfig {
            kind: RemoteKind::Filesystem { root: root.into() },
            prefix: String::new(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The object store behind the remote tier.
pub struct ObjectStoreRemote {
    store: Arc<dyn ObjectStore>,
    /// Normalised: empty, or ending with `/`.
    prefix: String,
    request_timeout: Duration,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    description: String,
}

impl std::fmt::Debug for ObjectStoreRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreRemote")
            .field("store", &self.description)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for ObjectStoreRemote {
    fn drop(&mut self) {
        // A runtime dropped on an async worker would panic; this one may be dropped anywhere.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Config(format!("{what}: {e}"))
}

impl ObjectStoreRemote {
    /// Builds the client. No request is made: a store that is down is found out at the first
    /// call, so a server starts while its object store is unreachable.
    pub fn open(config: RemoteConfig) -> Result<ObjectStoreRemote, RemoteError> {
        let (store, description): (Arc<dyn ObjectStore>, String) = match &config.kind {
            RemoteKind::Filesystem { root } => {
                std::fs::create_dir_all(root).map_err(|source| RemoteError::Local {
                    path: root.clone(),
                    source,
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| config_error("local folder", e))?;
                (Arc::new(fs), format!("folder {}", root.display()))
            }
            RemoteKind::S3(s3) => {
                if s3.bucket.is_empty() {
                    return Err(RemoteError::Config("the S3 bucket is not set".into()));
                }
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_allow_http(s3.allow_http)
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_allow_http(s3.allow_http)
                            .with_timeout(config.request_timeout)
                            .with_connect_timeout(config.connect_timeout),
                    )
                    .with_retry(object_store::RetryConfig {
                        backoff: object_store::BackoffConfig::default(),
                        max_retries: 3,
                        retry_timeout: config.request_timeout,
                    });
                if let Some(region) = &s3.region {
                    b = b.with_region(region);
                } else if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    b = b.with_region("us-east-1");
                }
                if let Some(endpoint) = &s3.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(k) = &s3.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s3.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(t) = &s3.session_token {
                    b = b.with_token(t);
                }
                let store = b.build().map_err(|e| config_error("S3", e))?;
                let at = s3.endpoint.as_deref().unwrap_or("AWS");
                (Arc::new(store), format!("s3://{} at {at}", s3.bucket))
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wharf-remote")
            .enable_all()
            .build()
            .map_err(|e| config_error("starting the remote store's runtime", e))?;
        let mut prefix = config.prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        Ok(ObjectStoreRemote {
            store,
            prefix,
            request_timeout: config.request_timeout,
            runtime: Some(runtime),
            description,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    /// Runs `fut` on the store's runtime and waits for it, at most the request timeout.
    fn run<T, F>(&self, key: &str, fut: F) -> Result<T, RemoteError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = object_store::Result<T>> + Send + 'static,
    {
        let unavailable = |reason: String| RemoteError::Unavailable {
            key: key.to_string(),
            reason,
        };
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| unavailable("the remote store is closing".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.request_timeout;
        runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, fut).await;
            let _ = tx.send(result);
        });
        // The task's own timeout answers first; this one only guards against a runtime that
        // cannot run it at all.
        match rx.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(object_store::Error::NotFound { .. }))) => {
                Err(RemoteError::NotFound(key.to_string()))
            }
            Ok(Ok(Err(e))) => Err(unavailable(e.to_string())),
            Ok(Err(_)) | Err(_) => Err(unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// Reads exactly `buf.len()` bytes, naming the object being uploaded when the source is short.
fn read_part(source: &mut dyn Read, buf: &mut [u8], key: &str) -> Result<(), RemoteError> {
    source.read_exact(buf).map_err(|source| RemoteError::Local {
        path: PathBuf::from(format!("(source of {key})")),
        source,
    })
}

impl RemoteStore for ObjectStoreRemote {
    fn put(&self, key: &str, source: &mut dyn Read, len: u64) -> Result<(), RemoteError> {
        let path = self.path(key);
        let store = Arc::clone(&self.store);
        if len <= PART_SIZE as u64 {
            let mut buf = vec![0u8; len as usize];
            read_part(source, &mut buf, key)?;
            self.run(key, async move {
                store.put(&path, PutPayload::from(buf)).await.map(|_| ())
            })?;
            return Ok(());
        }
        let upload_path = path.clone();
        let mut upload = self.run(key, async move { store.put_multipart(&upload_path).await })?;
        let mut left = len;
        let sent: Result<(), RemoteError> = (|| {
            while left > 0 {
                let n = left.min(PART_SIZE as u64) as usize;
                let mut buf = vec![0u8; n];
                read_part(source, &mut buf, key)?;
                let part = upload.put_part(PutPayload::from(buf));
                self.run(key, part)?;
                left -= n as u64;
            }
            Ok(())
        })();
        let finish = match sent {
            Ok(()) => self.run(key, async move {
                let done = upload.complete().await.map(|_| ());
                if done.is_err() {
                    let _ = upload.abort().await;
                }
                done
            }),
            Err(e) => {
                // Best effort: a part-made upload is invisible, and the store's own lifecycle
                // rules (or the next attempt) clean it up if this fails too.
                let _ = self.run(key, async move { upload.abort().await });
                Err(e)
            }
        };
        finish
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, RemoteError> {
        let path = self.path(key);
        let store = Arc::clone(&self.store);
        // The size the store announces is checked before the body is read, and the body is
        // counted as it arrives (a store may announce one size and send more): nothing over
        // the bound is ever held.
        let got = self.run(key, async move {
            let result = store.get(&path).await?;
            let size = result.meta.size;
            if size > MAX_GET_BYTES {
                return Ok(Err(size));
            }
            let mut body = bytes::BytesMut::with_capacity(size.min(1 << 20) as usize);
            let mut stream = result.into_stream();
            while let Some(piece) = stream.next().await {
                let piece = piece?;
                let len = (body.len() + piece.len()) as u64;
                if len > MAX_GET_BYTES {
                    return Ok(Err(len));
                }
                body.extend_from_slice(&piece);
            }
            Ok(Ok(body.freeze()))
        });
        match got {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(size)) => Err(RemoteError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "{size} bytes or more, over the {MAX_GET_BYTES} bytes a manifest or catalog may have"
                ),
            }),
            Err(RemoteError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        let want = range.end.saturating_sub(range.start);
        let path = self.path(key);
        let store = Arc::clone(&self.store);
        let bytes = self.run(key, async move { store.get_range(&path, range).await })?;
        if bytes.len() as u64 != want {
            return Err(RemoteError::Corrupt {
                key: key.to_string(),
                reason: format!("asked for {want} bytes, got {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        let path = self.path(key);
        let store = Arc::clone(&self.store);
        match self.run(key, async move { store.delete(&path).await }) {
            Ok(()) | Err(RemoteError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let mut keys = Vec::new();
        self.list_each(prefix, &mut |key| {
            keys.push(key);
            Ok(())
        })?;
        Ok(keys)
    }

    fn list_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(String) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        let full = format!("{}{prefix}", self.prefix);
        let dir = ObjectPath::from(full.trim_end_matches('/'));
        // The listing stays on the store's runtime and is drained a page at a time, each page
        // one call bounded by the request timeout.
        let listing = Arc::new(tokio::sync::Mutex::new(self.store.list(Some(&dir))));
        let strip = self.prefix.len();
        loop {
            let listing = Arc::clone(&listing);
            let page = self.run(prefix, async move {
                let mut listing = listing.lock().await;
                let mut page = Vec::with_capacity(LIST_PAGE);
                while page.len() < LIST_PAGE {
                    match listing.next().await {
                        Some(meta) => page.push(meta?.location.to_string()),
                        None => break,
                    }
                }
                Ok(page)
            })?;
            let last = page.len() < LIST_PAGE;
            for key in page {
                // Listing is by folder; keep the keys the string prefix names.
                if key.starts_with(&full) {
                    each(key[strip..].to_string())?;
                }
            }
            if last {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, ObjectStoreRemote) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = RemoteConfig::filesystem(dir.path().join("bucket"));
        config.prefix = "/wharf/test/".into();
        (dir, ObjectStoreRemote::open(config).expect("local store"))
    }

    #[test]
    fn puts_gets_ranges_lists_and_deletes() {
        let (_dir, store) = local();
        let data: Vec<u8> = (0..100u8).collect();
        store
            .put("topics/1-1-7/0/manifest", &mut &data[..], 100)
            .expect("put");
        assert_eq!(
            store
                .get("topics/1-1-7/0/manifest")
                .expect("get")
                .as_deref(),
            Some(&data[..])
        );
        assert_eq!(
            &store
                .get_range("topics/1-1-7/0/manifest", 10..20)
                .expect("range")[..],
            &data[10..20]
        );
        assert!(store.get("topics/1-1-7/0/missing").expect("get").is_none());
        assert!(matches!(
            store.get_range("topics/1-1-7/0/missing", 0..1),
            Err(RemoteError::NotFound(_))
        ));
        store
            .put("topics/1-1-7/1/x", &mut &data[..3], 3)
            .expect("put");
        store
            .put("topics/1-2-7/0/y", &mut &data[..3], 3)
            .expect("put");
        let mut keys = store.list("topics/1-1-7/").expect("list");
        keys.sort();
        assert_eq!(keys, vec!["topics/1-1-7/0/manifest", "topics/1-1-7/1/x"]);
        store.delete("topics/1-1-7/0/manifest").expect("delete");
        store
            .delete("topics/1-1-7/0/manifest")
            .expect("deleting twice is fine");
        assert!(store.get("topics/1-1-7/0/manifest").expect("get").is_none());
    }

    /// Bound attacked: a whole-object get (manifests, the catalog) never holds more than
    /// MAX_GET_BYTES: a bigger object at a manifest key is Corrupt, refused on its announced
    /// size before its body is read (the object here is sparse: 600 MiB announced).
    #[test]
    fn a_get_over_max_get_bytes_is_corrupt_without_reading_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("bucket");
        let store = ObjectStoreRemote::open(RemoteConfig::filesystem(&root)).expect("store");
        let key = "topics/1-1-7/0/manifest";
        std::fs::create_dir_all(root.join("topics/1-1-7/0")).expect("mkdir");
        let file = std::fs::File::create(root.join(key)).expect("create");
        const ANNOUNCED: u64 = 600 << 20;
        const _: () = assert!(ANNOUNCED > MAX_GET_BYTES);
        file.set_len(ANNOUNCED).expect("sparse 600 MiB");
        let got = store.get(key);
        assert!(
            matches!(&got, Err(RemoteError::Corrupt { key: k, .. }) if k == key),
            "{:?}",
            got.map(|b| b.map(|b| b.len()))
        );
        // One at the bound's side of it is still got whole.
        file.set_len(1 << 10).expect("truncate");
        assert_eq!(store.get(key).expect("get").map(|b| b.len()), Some(1 << 10));
    }

    /// Bound attacked: a listing is handed over page by page (LIST_PAGE keys per call to the
    /// store's runtime) and can be stopped by the caller; every key comes exactly once.
    #[test]
    fn a_listing_streams_its_keys_a_page_at_a_time() {
        let (_dir, store) = local();
        let n = LIST_PAGE * 2 + 7;
        for i in 0..n {
            store
                .put(&format!("topics/1-1-7/0/{i:06}.log"), &mut &b"x"[..], 1)
                .expect("put");
        }
        store
            .put("topics/1-1-70/0/other", &mut &b"x"[..], 1)
            .expect("put");
        let mut seen = Vec::new();
        store
            .list_each("topics/1-1-7/", &mut |k| {
                seen.push(k);
                Ok(())
            })
            .expect("list");
        seen.sort();
        let expected: Vec<String> = (0..n)
            .map(|i| format!("topics/1-1-7/0/{i:06}.log"))
            .collect();
        assert_eq!(seen, expected);
        // The caller stops it: no more keys after the error.
        let mut taken = 0;
        let stopped = store.list_each("topics/1-1-7/", &mut |_| {
            taken += 1;
            if taken == 3 {
                Err(RemoteError::Config("enough".into()))
            } else {
                Ok(())
            }
        });
        assert!(matches!(stopped, Err(RemoteError::Config(_))));
        assert_eq!(taken, 3);
    }

    #[test]
    fn large_objects_go_in_parts_and_a_short_source_fails() {
        let (_dir, store) = local();
        let len = PART_SIZE * 2 + 123;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        store.put("big", &mut &data[..], len as u64).expect("put");
        assert_eq!(store.get("big").expect("get").as_deref(), Some(&data[..]));
        let short = store.put("short", &mut &data[..10], 20);
        assert!(matches!(short, Err(RemoteError::Local { .. })), "{short:?}");
        let short = store.put("short", &mut &data[..PART_SIZE + 1], len as u64);
        assert!(matches!(short, Err(RemoteError::Local { .. })), "{short:?}");
        assert!(store.get("short").expect("get").is_none());
    }

    #[test]
    fn an_unreachable_s3_endpoint_is_unavailable_not_a_panic() {
        // A loopback port nobody listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let store = ObjectStoreRemote::open(RemoteConfig {
            kind: RemoteKind::S3(S3Config {
                bucket: "b".into(),
                region: Some("us-east-1".into()),
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                session_token: None,
                path_style: true,
                allow_http: true,
            }),
            prefix: String::new(),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
        })
        .expect("building makes no request");
        let e = store.get("x").expect_err("nobody listens");
        assert!(e.is_retriable(), "{e}");
    }
}
