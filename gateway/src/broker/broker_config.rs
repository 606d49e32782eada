//! Dynamic broker configs (Kafka's KIP-226): the server settings an operator changes at run
//! time with IncrementalAlterConfigs or AlterConfigs on the BROKER resource, cluster-wide (the
//! resource named "") or for this node (named by its id; a node's value wins over the
//! cluster-wide one), persisted in the data directory. Wharf's dynamic settings are the ones it
//! can honour at once: the topic defaults the broker core applies itself on produce,
//! `compression.type` and `compression.{gzip,lz4,zstd}.level` (Kafka's dynamic log configs of
//! those names). Every other broker setting lives in `server.toml` and is refused here as
//! Kafka refuses a setting that is not dynamic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use wharf_log_store::{read_durable, write_durable};

use super::topic_config::{
    compression_level, compression_type, AlterMode, ConfigChange, ConfigOp, ConfigSource,
    GZIP_LEVEL, LZ4_LEVEL, ZSTD_LEVEL,
};
use super::BrokerError;

/// The broker configs that can change at run time.
pub const DYNAMIC: &[&str] = &["compression.type", GZIP_LEVEL, LZ4_LEVEL, ZSTD_LEVEL];

/// Which BROKER resource a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The resource with an empty name: the cluster-wide default.
    Cluster,
    /// This node, named by its id.
    Node,
}

/// Why a broker config change is refused, with Kafka's error.
#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    /// INVALID_REQUEST: a setting that is not dynamic, or a value its validator refuses (Kafka
    /// answers a broker config's bad value so, KAFKA-13609).
    #[error("{0}")]
    InvalidRequest(String),
    /// INVALID_CONFIG: APPEND or SUBTRACT on a setting that is not a list.
    #[error("{0}")]
    InvalidConfig(String),
    /// The document could not be written.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Dynamic {
    #[serde(default)]
    cluster: BTreeMap<String, String>,
    #[serde(default)]
    node: BTreeMap<String, String>,
}

impl Dynamic {
    fn scope(&mut self, scope: Scope) -> &mut BTreeMap<String, String> {
        match scope {
            Scope::Cluster => &mut self.cluster,
            Scope::Node => &mut self.node,
        }
    }
}

/// How a settings document is written (durably; a test stalls it to show nobody waits).
pub(crate) type WriteDocument =
    Box<dyn Fn(&Path, &[u8]) -> Result<(), wharf_log_store::StoreError> + Send + Sync>;

/// The dynamic broker configs set, persisted as one JSON document (`broker_configs`).
/// Readers (every Kafka produce asks for the compression settings) take `state` only to read
/// it; a change is computed and written under `changes` alone and swapped in after the
/// write, so no reader waits for the disk.
pub struct BrokerConfigs {
    path: PathBuf,
    state: Mutex<Dynamic>,
    /// Serialises changes, so each is written whole before the next is computed.
    changes: Mutex<()>,
    write: WriteDocument,
}

impl std::fmt::Debug for BrokerConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfigs")
            .field("path", &self.path)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Checks one dynamic setting's value with the validator of the topic config it defaults.
fn check_value(name: &str, value: &str) -> Result<(), BrokerConfigError> {
    let checked = match name {
        "compression.type" => compression_type(name, value),
        _ => compression_level(name, value).map(drop),
    };
    checked.map_err(|e| BrokerConfigError::InvalidRequest(e.0))
}

impl BrokerConfigs {
    pub fn open(data_dir: &Path) -> Result<BrokerConfigs, BrokerError> {
        let path = data_dir.join("broker_configs");
        let state = match read_durable(&path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                BrokerError::Internal(format!("broker configs document is unreadable: {e}"))
            })?,
            None => Dynamic::default(),
        };
        Ok(BrokerConfigs {
            path,
            state: Mutex::new(state),
            changes: Mutex::new(()),
            write: Box::new(write_durable),
        })
    }

    /// These configs written with `write` instead of `write_durable`.
    #[cfg(test)]
    pub(crate) fn with_writer(self, write: WriteDocument) -> BrokerConfigs {
        BrokerConfigs { write, ..self }
    }

    /// A dynamic setting's value in force and where it comes from: this node's, else the
    /// cluster-wide one; `None` when neither is set.
    pub fn value(&self, name: &str) -> Option<(String, ConfigSource)> {
        let state = self.state.lock();
        state
            .node
            .get(name)
            .map(|v| (v.clone(), ConfigSource::DynamicBroker))
            .or_else(|| {
                state
                    .cluster
                    .get(name)
                    .map(|v| (v.clone(), ConfigSource::DynamicDefaultBroker))
            })
    }

    /// The settings of one scope (what DescribeConfigs of the cluster-wide resource lists).
    pub fn of(&self, scope: Scope) -> BTreeMap<String, String> {
        self.state.lock().scope(scope).clone()
    }

    /// Changes the settings of `scope` (in [`AlterMode::Replace`], `changes` are its whole set,
    /// as legacy AlterConfigs has it), as Kafka's broker checks a BROKER resource change:
    /// APPEND and SUBTRACT only on lists (none of Wharf's dynamic settings is one), then every
    /// setting in the result must be dynamic, then each value must pass its validator. Stored
    /// unless `validate_only`. Blocks on the disk: callers are on the blocking pool
    /// ([`super::Broker::alter_broker_config`]).
    pub(super) fn alter(
        &self,
        scope: Scope,
        mode: AlterMode,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> Result<(), BrokerConfigError> {
        // Held across the write: two changes do not undo each other. Readers take `state`
        // only, never this.
        let _change = self.changes.lock();
        let mut next = self.state.lock().clone();
        let mut props = match mode {
            AlterMode::Incremental => next.scope(scope).clone(),
            AlterMode::Replace => BTreeMap::new(),
        };
        for c in changes {
            match &c.op {
                ConfigOp::Set(v) => {
                    props.insert(c.name.clone(), v.clone());
                }
                ConfigOp::Delete => {
                    props.remove(&c.name);
                }
                ConfigOp::Append(_) | ConfigOp::Subtract(_) => {
                    let op = if matches!(c.op, ConfigOp::Append(_)) {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(BrokerConfigError::InvalidConfig(format!(
                        "Config value {op} is not allowed for config key: {}",
                        c.name
                    )));
                }
            }
        }
        let fixed: Vec<&str> = props
            .keys()
            .map(String::as_str)
            .filter(|n| !DYNAMIC.contains(n))
            .collect();
        if !fixed.is_empty() {
            return Err(BrokerConfigError::InvalidRequest(format!(
                "Cannot update these configs dynamically: Set({})",
                fixed.join(", ")
            )));
        }
        for (name, value) in &props {
            check_value(name, value)?;
        }
        if validate_only || *next.scope(scope) == props {
            return Ok(());
        }
        *next.scope(scope) = props;
        let b = serde_json::to_vec(&next).map_err(|e| BrokerError::Internal(e.to_string()))?;
        (self.write)(&self.path, &b).map_err(BrokerError::from)?;
        *self.state.lock() = next;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer that says it started and then waits to be let go: a write stalled on a slow
    /// disk, deterministically.
    pub(crate) fn stalled_writer() -> (
        WriteDocument,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::SyncSender<()>,
    ) {
        let (entered, entered_rx) = std::sync::mpsc::sync_channel(1);
        let (release, release_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let release_rx = Mutex::new(release_rx);
        let write: WriteDocument = Box::new(move |path, b| {
            let _ = entered.send(());
            let _ = release_rx.lock().recv();
            write_durable(path, b)
        });
        (write, entered_rx, release)
    }

    /// Review 18a #4: while a change is being written (the write stalled), readers of the
    /// settings (every Kafka produce) get the old value at once instead of waiting for the
    /// disk; the new value is read once it is written. Bound: no reader waits on a write.
    #[test]
    fn readers_do_not_wait_for_a_change_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let (write, entered, release) = stalled_writer();
        let b = std::sync::Arc::new(BrokerConfigs::open(dir.path()).unwrap().with_writer(write));
        let writer = {
            let b = std::sync::Arc::clone(&b);
            std::thread::spawn(move || {
                b.alter(
                    Scope::Cluster,
                    AlterMode::Incremental,
                    &[ConfigChange::set("compression.type", "zstd")],
                    false,
                )
            })
        };
        entered
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the change never reached its write");
        let (read, read_rx) = std::sync::mpsc::channel();
        let reader = {
            let b = std::sync::Arc::clone(&b);
            std::thread::spawn(move || read.send(b.value("compression.type")))
        };
        let seen = read_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a reader waited for the write of a change");
        assert_eq!(
            seen, None,
            "the change is not in force before it is written"
        );
        release.send(()).unwrap();
        writer.join().unwrap().unwrap();
        reader.join().unwrap().unwrap();
        assert_eq!(
            b.value("compression.type"),
            Some(("zstd".into(), ConfigSource::DynamicDefaultBroker))
        );
    }

    /// Kafka's checks of a BROKER resource change, a node's value over the cluster's, and the
    /// settings surviving a restart.
    #[test]
    fn dynamic_broker_configs_are_checked_layered_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let b = BrokerConfigs::open(dir.path()).unwrap();
        let set = ConfigChange::set;
        let inc = AlterMode::Incremental;
        let refused = |r: Result<(), BrokerConfigError>| match r {
            Err(BrokerConfigError::InvalidRequest(why)) => why,
            other => panic!("not refused as INVALID_REQUEST: {other:?}"),
        };
        assert_eq!(
            refused(b.alter(Scope::Cluster, inc, &[set("num.partitions", "3")], false)),
            "Cannot update these configs dynamically: Set(num.partitions)"
        );
        assert_eq!(
            refused(b.alter(
                Scope::Cluster,
                inc,
                &[set("compression.type", "brotli")],
                false
            )),
            "Invalid value brotli for configuration compression.type: String must be one of: \
             uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert!(matches!(
            b.alter(
                Scope::Cluster,
                inc,
                &[ConfigChange {
                    name: "compression.type".into(),
                    op: ConfigOp::Append("gzip".into())
                }],
                false
            ),
            Err(BrokerConfigError::InvalidConfig(_))
        ));
        b.alter(
            Scope::Cluster,
            inc,
            &[set("compression.type", "zstd")],
            true,
        )
        .unwrap();
        assert_eq!(
            b.value("compression.type"),
            None,
            "validate_only stores nothing"
        );
        b.alter(
            Scope::Cluster,
            inc,
            &[set("compression.type", "gzip")],
            false,
        )
        .unwrap();
        assert_eq!(
            b.value("compression.type"),
            Some(("gzip".into(), ConfigSource::DynamicDefaultBroker))
        );
        b.alter(Scope::Node, inc, &[set("compression.type", "lz4")], false)
            .unwrap();
        assert_eq!(
            b.value("compression.type"),
            Some(("lz4".into(), ConfigSource::DynamicBroker))
        );
        drop(b);
        let b = BrokerConfigs::open(dir.path()).unwrap();
        assert_eq!(
            b.value("compression.type"),
            Some(("lz4".into(), ConfigSource::DynamicBroker))
        );
        b.alter(
            Scope::Node,
            inc,
            &[ConfigChange::delete("compression.type")],
            false,
        )
        .unwrap();
        assert_eq!(
            b.value("compression.type"),
            Some(("gzip".into(), ConfigSource::DynamicDefaultBroker))
        );
        // Legacy AlterConfigs replaces the whole set of its scope.
        b.alter(
            Scope::Cluster,
            AlterMode::Replace,
            &[set(ZSTD_LEVEL, "7")],
            false,
        )
        .unwrap();
        assert_eq!(b.value("compression.type"), None);
        assert_eq!(
            b.of(Scope::Cluster).get(ZSTD_LEVEL).map(String::as_str),
            Some("7")
        );
    }
}
