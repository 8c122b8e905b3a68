//! Logging. Lines never carry secrets or tokens: only ids, outcomes, timings.
//!
//! Everything goes to stderr, so that commands keep stdout for their output.
//! `warrant serve` writes one line per token request, through the bounded
//! buffer of [`buffer`] ([`LogOutput::Buffered`]), and formats that line
//! itself ([`log_token_request`]): tracing-subscriber's formatter cost more
//! instructions than any other part of a token request outside HTTP and
//! the signature.
//!
//! [`LogGuard`] lives for the whole process (in `main`): dropping it writes
//! out every buffered line and stops the thread, after which lines go to
//! stderr directly, in order. A SIGTERM/SIGINT stop returns through `main`
//! and so loses nothing; SIGKILL loses at most the last [`FLUSH_DELAY`].

mod buffer;
mod request_line;

use std::io;

use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::configuration::{LogFormat, Settings};

pub use buffer::{CAPACITY, FLUSH_AT, FLUSH_DELAY, LogSink, SinkWriter};
pub use request_line::{TOKEN_TARGET, TokenOutcome, TokenRequestLine, log_token_request};

/// How log lines reach stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// One `write(2)` per line, on the thread that logs: for the CLI, whose
    /// few lines interleave with its own messages on stderr.
    Stderr,
    /// Through a bounded buffer written by a background thread: for
    /// `serve`.
    Buffered,
}

/// Installs the global subscriber. Keep the returned guard alive until the
/// process ends: dropping it writes out the lines still buffered.
pub fn init(settings: &Settings, output: LogOutput) -> LogGuard {
    let level: LevelFilter = settings.log_level.parse().unwrap_or(LevelFilter::INFO);
    let (sink, guard) = match output {
        LogOutput::Stderr => (LogSink::stderr(), LogGuard::default()),
        LogOutput::Buffered => LogSink::buffered(io::stderr),
    };
    // Colours only for a terminal: log files and pipelines get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Already installed (tests start several servers in one process): keep
    // it. The guard then stops a writer thread that never got a line, and
    // the request line, not finding its writer installed, goes through
    // tracing.
    drop(tracing::dispatcher::set_global_default(subscriber(
        level,
        settings.log_format,
        ansi,
        sink,
    )));
    guard
}

/// The subscriber `init` installs, apart so that tests can format with the
/// very same one.
fn subscriber(level: LevelFilter, format: LogFormat, ansi: bool, sink: LogSink) -> Dispatch {
    // sqlx logs every slow statement at info; keep it for real problems.
    let filter = Targets::new()
        .with_default(level)
        .with_target("sqlx", LevelFilter::WARN.min(level));
    let writer = request_line::LineWriter::new(sink, &filter, format, ansi);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => Dispatch::new(registry.with(fmt.json().flatten_event(true))),
        LogFormat::Text => Dispatch::new(registry.with(fmt)),
    }
}

/// Dropping it writes out every buffered line, stops the writer thread and
/// sends later lines straight to stderr.
#[derive(Default)]
pub struct LogGuard {
    writer: Option<buffer::WriterThread>,
}

impl LogGuard {
    /// Writes out what is buffered and stops the writer thread; returns how
    /// many lines had to wait for a full buffer.
    fn close(&mut self) -> u64 {
        self.writer.take().map_or(0, buffer::WriterThread::close)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let stalls = self.close();
        if stalls > 0 {
            tracing::warn!(
                lines = stalls,
                "log lines waited for a full log buffer: stderr took lines slower than the server made them"
            );
        }
    }
}
