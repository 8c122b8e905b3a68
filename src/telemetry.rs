//! Logging. Lines never carry secrets or tokens: only ids, outcomes, timings.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::configuration::{LogFormat, Settings};

/// Installs the global subscriber; logs go to stderr so that commands can
/// keep stdout for their output.
pub fn init(settings: &Settings) {
    let level: LevelFilter = settings.log_level.parse().unwrap_or(LevelFilter::INFO);
    // sqlx logs every slow statement at info; keep it for real problems.
    let filter = Targets::new()
        .with_default(level)
        .with_target("sqlx", LevelFilter::WARN.min(level));
    // Colours only for a terminal: log files and pipelines get plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.log_format {
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
        LogFormat::Text => registry.with(fmt).try_init(),
    };
    // Already installed (tests start several servers in one process): keep it.
    drop(result);
}
