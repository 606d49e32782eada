//! `wharf-server`: starts the broker with its native (Iggy 0.8) and Kafka listeners.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use wharf_gateway::config::{Overrides, ServerConfig};

/// Wharf: a single-binary streaming server speaking Apache Iggy's native protocol and Kafka's.
#[derive(Debug, Parser)]
#[command(name = "wharf-server", version, about)]
struct Args {
    /// A TOML file overriding `configs/server.toml` (the embedded defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where data is kept (`[server] data_dir`, default ./data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Native TCP listener address (`[native] address`, default 127.0.0.1:8090).
    #[arg(long, value_name = "HOST:PORT")]
    native_addr: Option<String>,
    /// Kafka TCP listener address (`[kafka] address`, default 127.0.0.1:9092).
    #[arg(long, value_name = "HOST:PORT")]
    kafka_addr: Option<String>,
    /// HTTP listener for /metrics, /health and /ready (`[http] address`, default off; "" turns
    /// it off).
    #[arg(long, value_name = "HOST:PORT")]
    http_addr: Option<String>,
    /// How log lines are written: `text` for people, `json` (one object per line) for log
    /// collectors. `RUST_LOG` chooses which lines, as ever.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Rebuild a lost data directory from the remote tier first (`[remote_storage]` must be
    /// on): the catalog's copy and every partition's manifest are fetched, so everything that
    /// was uploaded is readable again and new messages follow it. Refused when the data
    /// directory already holds a catalog. The server then starts as usual.
    #[arg(long)]
    restore_from_remote: bool,
}

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Installs the process's log subscriber: `RUST_LOG` (default `info`) in `format`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // The event's fields (its message among them) at the top level of each object, beside
        // timestamp, level and target: what log collectors index without a nested path.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    // Arguments first: the log format is one of them, and a bad one is clap's usage error.
    let args = Args::parse();
    init_logging(args.log_format);
    let limit = raise_open_files_limit();
    let overrides = Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        native_addr: args.native_addr,
        kafka_addr: args.kafka_addr,
        http_addr: args.http_addr,
    };
    let mut config = match ServerConfig::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    fit_connections_to_limit(&mut config, limit.soft);
    if args.restore_from_remote {
        match restore_from_remote(&config) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Signal handlers go in before anything listens, so an early SIGTERM still stops cleanly.
    let result = runtime.block_on(async {
        let stop = wharf_gateway::shutdown_signal();
        wharf_gateway::run(config, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--restore-from-remote`: fills the (empty) data directory from the remote tier and says
/// what came back. Runs before the server's runtime starts: the remote store has its own.
fn restore_from_remote(config: &ServerConfig) -> Result<String, String> {
    let dir = config.data_dir();
    if config.store.remote.is_none() {
        return Err(
            "--restore-from-remote needs the remote tier: set [remote_storage] enable = true \
             (and where the objects are) in the config"
                .into(),
        );
    }
    tracing::info!(data_dir = %dir.display(), "restoring the data directory from the remote tier");
    let r = wharf_log_store::LogStore::restore_from_remote(dir, &config.store).map_err(|e| {
        format!(
            "cannot restore {} from the remote tier: {e} (the data directory must hold no \
             catalog; start without --restore-from-remote to keep what it holds)",
            dir.display()
        )
    })?;
    Ok(format!(
        "restored {} from the remote tier: {} streams, {} topics, {} partitions, {} uploaded \
         segments ({} bytes) readable again; {} topics without remote storage and {} \
         partitions with nothing uploaded come back empty; consumer offsets, users and \
         groups are not in the remote tier",
        dir.display(),
        r.streams,
        r.topics,
        r.partitions,
        r.segments,
        r.bytes,
        r.local_only_topics,
        r.partitions_without_manifest
    ))
}

/// Lets the server use every descriptor the operator allowed: the soft `RLIMIT_NOFILE` (often
/// 1,024) goes up to the hard one. The store keeps its segment files within half of it.
fn raise_open_files_limit() -> wharf_log_store::OpenFilesLimit {
    let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    match wharf_log_store::raise_open_files_limit() {
        Ok(l) => {
            tracing::info!(
                soft_before = %show(l.soft_before),
                soft = %show(l.soft),
                hard = %show(l.hard),
                "open files limit"
            );
            l
        }
        Err(e) => {
            let l = wharf_log_store::open_files_limit();
            tracing::warn!(
                soft = %show(l.soft),
                hard = %show(l.hard),
                "cannot raise the open files limit: {e}"
            );
            l
        }
    }
}

/// Descriptors kept for everything but connections and cached segment files: the listeners,
/// the runtime's own, the store's lock file and offsets journal, a file a sync, a roll or
/// recovery holds for the length of a call, the users and catalog documents being saved.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Lowers the doors' `max_connections` so that both doors full, the store's open-files cache
/// full, [`RESERVED_DESCRIPTORS`] and the HTTP listener's connections (when it is on) together
/// fit the soft open-files limit: a connection flood
/// is then refused at the door rather than taking the descriptors appends and reads need.
fn fit_connections_to_limit(config: &mut ServerConfig, soft: Option<u64>) {
    let native = config.native.limits.max_connections;
    let kafka = config.kafka.limits.max_connections;
    let Some((fit_native, fit_kafka)) = connections_within(
        soft,
        config.store.max_open_files,
        reserved(config),
        native,
        kafka,
    ) else {
        return;
    };
    tracing::warn!(
        soft_limit = soft.unwrap_or_default(),
        "max_connections of the two doors ({native} native, {kafka} Kafka) do not fit the open \
         files limit beside the segment-file cache; keeping {fit_native} native and {fit_kafka} \
         Kafka connections"
    );
    config.native.limits.max_connections = fit_native;
    config.kafka.limits.max_connections = fit_kafka;
}

/// Descriptors kept beside the doors' connections and the segment-file cache: the reserve, and
/// the HTTP listener's `max_connections` when it listens.
fn reserved(config: &ServerConfig) -> u64 {
    let http = match config.http.address {
        Some(_) => u64::from(config.http.max_connections),
        None => 0,
    };
    RESERVED_DESCRIPTORS + http
}

/// The doors' connection caps that fit `soft` beside a segment-file cache of `max_open_files`
/// (which the store keeps within half the limit) and `reserved` descriptors, shared in the
/// proportion configured, at least one each; `None` when the configured caps fit as they are.
fn connections_within(
    soft: Option<u64>,
    max_open_files: usize,
    reserved: u64,
    native: u32,
    kafka: u32,
) -> Option<(u32, u32)> {
    let soft = soft?;
    // The store's own rule (`capacity_within_limit` in the log store): at most half the limit.
    let cache = u64::try_from(max_open_files)
        .unwrap_or(u64::MAX)
        .min(soft / 2)
        .max(1);
    let room = soft.saturating_sub(cache + reserved);
    let wanted = u64::from(native) + u64::from(kafka);
    if wanted <= room {
        return None;
    }
    let fit_native = (room * u64::from(native) / wanted.max(1)).max(1);
    let fit_kafka = room.saturating_sub(fit_native).max(1);
    let cap = |n: u64, configured: u32| u32::try_from(n).unwrap_or(configured).min(configured);
    Some((cap(fit_native, native), cap(fit_kafka, kafka)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_doors_the_file_cache_and_the_reserve_fit_the_open_files_limit() {
        // The defaults under the common limit: 4,096 + 4,096 connections cannot fit 1,024.
        let (native, kafka) =
            connections_within(Some(1024), 512, RESERVED_DESCRIPTORS, 4096, 4096).unwrap();
        assert!(
            u64::from(native) + u64::from(kafka) + 512 + RESERVED_DESCRIPTORS <= 1024,
            "{native} + {kafka} connections, 512 files and the reserve exceed 1,024"
        );
        assert_eq!((native, kafka), (224, 224), "shared as configured");
        // Uneven caps keep their proportion.
        let (native, kafka) =
            connections_within(Some(1024), 512, RESERVED_DESCRIPTORS, 1000, 3000).unwrap();
        assert!(
            native + kafka <= 1024 - 512 - 64 && native * 3 == kafka,
            "{native} {kafka}"
        );
        // Caps that fit, and an unlimited limit, change nothing.
        assert_eq!(
            connections_within(Some(1 << 20), 512, RESERVED_DESCRIPTORS, 4096, 4096),
            None
        );
        assert_eq!(
            connections_within(None, 512, RESERVED_DESCRIPTORS, 4096, 4096),
            None
        );
        // A tiny limit still leaves each door one connection.
        assert_eq!(
            connections_within(Some(100), 512, RESERVED_DESCRIPTORS, 4096, 4096),
            Some((1, 1))
        );
    }

    #[test]
    fn restoring_needs_the_remote_tier() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.path().join("data")),
            ..Overrides::default()
        };
        let config = ServerConfig::load_from(&overrides, &[]).unwrap();
        let e = restore_from_remote(&config).unwrap_err();
        assert!(e.contains("[remote_storage] enable = true"), "{e}");
        assert!(
            !dir.path().join("data").exists(),
            "nothing is made when refused"
        );
    }

    /// A server config over `data` with a folder as the remote tier.
    fn tiered_config(data: &std::path::Path, bucket: &std::path::Path) -> ServerConfig {
        let file = data.with_extension("toml");
        std::fs::write(
            &file,
            format!(
                "[remote_storage]\nenable = true\nkind = \"filesystem\"\nroot = \"{}\"\n",
                bucket.display()
            ),
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            data_dir: Some(data.to_path_buf()),
            ..Overrides::default()
        };
        let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
        config.store.background_tasks = false;
        config
    }

    /// The restore brings back the catalog's topics (a remote-storage one and a local-only
    /// one) and says what does not come back; a second restore over the result is refused
    /// and says why, leaving the directory as it was.
    #[test]
    fn restore_rebuilds_the_catalog_and_refuses_a_directory_that_has_one() {
        use wharf_log_store::{Ident, LogStore, TopicSettings};
        let tmp = tempfile::tempdir().unwrap();
        let bucket = tmp.path().join("bucket");
        let lost = tmp.path().join("lost");
        let config = tiered_config(&lost, &bucket);
        {
            let (store, _) = LogStore::open(&lost, config.store.clone()).unwrap();
            store.create_stream("shop").unwrap();
            let tiered = TopicSettings {
                remote_storage: true,
                ..TopicSettings::default()
            };
            store
                .create_topic(Ident::Name("shop"), "audit", 2, tiered)
                .unwrap();
            store
                .create_topic(Ident::Name("shop"), "cache", 1, TopicSettings::default())
                .unwrap();
            // One round stores the catalog's copy (nothing is sealed, so no segment).
            store.tier_once(1).unwrap();
            store.close().unwrap();
        }
        let fresh = tmp.path().join("fresh");
        let config = tiered_config(&fresh, &bucket);
        let report = restore_from_remote(&config).unwrap();
        assert!(
            report.contains("1 streams, 2 topics, 3 partitions, 0 uploaded segments (0 bytes)"),
            "{report}"
        );
        assert!(
            report.contains("1 topics without remote storage and 2 partitions with nothing"),
            "{report}"
        );
        let (store, _) = LogStore::open(&fresh, config.store.clone()).unwrap();
        let audit = store
            .topic(Ident::Name("shop"), Ident::Name("audit"))
            .unwrap();
        assert!(audit.settings.remote_storage);
        store.close().unwrap();
        drop(store);
        let e = restore_from_remote(&config).unwrap_err();
        assert!(e.contains("already holds a catalog"), "{e}");
        assert!(e.contains("start without --restore-from-remote"), "{e}");
    }

    #[test]
    fn the_http_listeners_connections_are_kept_out_of_the_doors_share() {
        let mut config = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(
            reserved(&config),
            RESERVED_DESCRIPTORS,
            "HTTP off: nothing more"
        );
        config.http.address = Some("127.0.0.1:8091".parse().unwrap());
        assert_eq!(reserved(&config), RESERVED_DESCRIPTORS + 64);
        // 1,024 - 512 files - 64 reserved - 64 HTTP = 384 for the doors.
        let (native, kafka) =
            connections_within(Some(1024), 512, reserved(&config), 4096, 4096).unwrap();
        assert_eq!((native, kafka), (192, 192));
    }
}
