use std::process::ExitCode;

use clap::Parser as _;
use warrant::cli::{
    Cli, Command, client_command, keys_command, migrate_command, serve_command, verify_command,
};
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
        Command::Serve => serve_command(loaded.settings).await,
        Command::Migrate => migrate_command(loaded.settings).await,
        Command::Verify { token, audience } => {
            match verify_command(loaded.settings, &token, audience).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Client(command) => client_command(loaded.settings, command).await,
        Command::Keys(command) => keys_command(loaded.settings, command).await,
    };
    // Every log line out before the final message.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
