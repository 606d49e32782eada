//! `wharf-bench`: the load generator. One tool drives both of Wharf's protocols the same way
//! and can be pointed at any server that speaks them (Wharf, Iggy 0.8, any Kafka broker).
//!
//! - [`settings`]: the command line and the checked run description;
//! - [`native`] and [`kafka`]: the workloads over each protocol;
//! - [`payload`]: message bodies that carry their send time;
//! - [`report`]: per-actor counts and HDR latency histograms, the progress line, the report.

mod kafka;
mod native;
mod payload;
mod report;
mod settings;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use report::{Progress, Report};
use settings::{Args, Protocol, Settings};

/// A consumer that sees nothing new for this long gives up (the producer side failed).
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("native protocol: {0}")]
    Native(#[from] wharf_sdk::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("setup: {0}")]
    Setup(String),
    #[error("{0}")]
    Run(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_args(Args::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wharf-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(settings).await {
        Ok(report) => {
            print!("{}", report.text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wharf-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<Report, BenchError> {
    let settings = Arc::new(settings);
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let bar = (!settings.quiet).then(|| {
        tokio::spawn(report::show_progress(
            Arc::clone(&progress),
            Arc::clone(&stop),
        ))
    });
    let actors = match settings.protocol {
        Protocol::Native => native::run(Arc::clone(&settings), Arc::clone(&progress)).await,
        Protocol::Kafka => kafka::run(Arc::clone(&settings), Arc::clone(&progress)).await,
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        let _ = bar.await;
    }
    let report = Report::new((*settings).clone(), actors?);
    if let Some(path) = &settings.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| BenchError::Write {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        std::fs::write(path, json).map_err(|source| BenchError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}
