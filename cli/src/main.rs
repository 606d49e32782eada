//! `wharf`: the command-line tool for Wharf (and Iggy 0.8) servers, in the noun-verb shape of
//! Iggy's CLI. See `wharf --help`.

mod args;
mod commands;
mod context;
mod output;
mod top;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let follow = matches!(
        &cli.command,
        args::Command::Message(args::MessageCmd::Poll { follow: true, .. })
            | args::Command::Top { .. }
    );
    let result = runtime.block_on(async {
        if follow {
            // `--follow` and `top` run until interrupted; Ctrl-C ends them cleanly.
            tokio::select! {
                r = commands::run(cli) => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        } else {
            commands::run(cli).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(u8::try_from(e.code).unwrap_or(1))
        }
    }
}
