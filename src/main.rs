use std::process::ExitCode;

use clap::Parser as _;
use warrant::cli::{self, Cli, Command};
use warrant::configuration::Settings;
use warrant::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Settings::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The server's request lines go through a buffer written by a
    // background thread; `logs` writes out what is left when it is dropped,
    // so it lives until the end of `main` (a SIGTERM/SIGINT stop returns
    // here too). The CLI's few lines go straight to stderr.
    let output = match cli.command {
        Command::Serve => telemetry::LogOutput::Buffered,
        _ => telemetry::LogOutput::Stderr,
    };
    let logs = telemetry::init(&loaded.settings, output);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Command::Serve => cli::serve_command(loaded.settings).await,
        Command::Migrate => cli::migrate_command(loaded.settings).await,
        Command::Verify(args) => match cli::verify::exec(loaded.settings, args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Client(command) => cli::client::exec(loaded.settings, command).await,
        Command::Keys(command) => cli::keys::exec(loaded.settings, command).await,
    };
    // Every log line out before the final message.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`warrant client list | head`): nothing is
        // wrong, and nobody is left to read a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
