//! `wharf-server`: starts the broker with its native (Iggy 0.8) and Kafka listeners.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    raise_open_files_limit();
    let args = Args::parse();
    let overrides = Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        native_addr: args.native_addr,
        kafka_addr: args.kafka_addr,
    };
    let config = match ServerConfig::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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

/// Lets the server use every descriptor the operator allowed: the soft `RLIMIT_NOFILE` (often
/// 1,024) goes up to the hard one. The store keeps its segment files within half of it.
fn raise_open_files_limit() {
    let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    match wharf_log_store::raise_open_files_limit() {
        Ok(l) => tracing::info!(
            soft_before = %show(l.soft_before),
            soft = %show(l.soft),
            hard = %show(l.hard),
            "open files limit"
        ),
        Err(e) => {
            let l = wharf_log_store::open_files_limit();
            tracing::warn!(
                soft = %show(l.soft),
                hard = %show(l.hard),
                "cannot raise the open files limit: {e}"
            );
        }
    }
}
