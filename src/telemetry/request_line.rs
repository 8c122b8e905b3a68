//! The token endpoint's per-request log line, formatted by hand.
//!
//! tracing-subscriber formats an event through `core::fmt`, one visitor
//! call per field and ANSI style wrappers even when colours are off: ~14k
//! instructions for this one line, more than the client authentication. The
//! line is always the same fields in the same order, so [`log_token_request`]
//! writes it directly, byte for byte as tracing-subscriber would, into the
//! same sink.
//!
//! It does so only when it can be sure of that: the subscriber in force is
//! the one [`super::init`] built (found by its writer, [`LineWriter`]),
//! without colours, and no span is entered (tracing-subscriber would print
//! it). Otherwise, e.g. under the tests' own subscriber, the line goes
//! through `tracing::info!` with the same target, fields and order.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;
use tracing::level_filters::STATIC_MAX_LEVEL;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;

use super::{LogFormat, LogSink, SinkWriter};

/// The target of the request line: the handler's module, as when the line
/// was a `tracing::info!` there, so that filters and readers see no change.
pub const TOKEN_TARGET: &str = "warrant::routes::token";

/// One token request, as its log line tells it.
pub struct TokenRequestLine<'a> {
    /// The request's id (visible ASCII, at most 64 characters).
    pub request_id: &'a str,
    /// `None` until the client is known; logged as `-`.
    pub client_id: Option<&'a str>,
    pub outcome: TokenOutcome<'a>,
    pub latency_us: u64,
}

/// How a token request ended. Internal errors are not here: they are rare
/// and log their cause chain through `tracing::error!`.
pub enum TokenOutcome<'a> {
    /// Logged as `outcome="issued"` with the token's scope, audience, key
    /// id and jti.
    Issued {
        scope: &'a str,
        aud: &'a str,
        kid: &'a str,
        jti: &'a str,
    },
    /// Logged as `outcome=<code>` with the reason.
    Refused {
        /// The OAuth error code.
        code: &'static str,
        reason: &'a dyn fmt::Display,
    },
}

/// Logs the line at info level for [`TOKEN_TARGET`], exactly as
/// `tracing::info!(target: TOKEN_TARGET, request_id, client_id, outcome,
/// scope = %scope, aud = %aud, kid = %kid, jti = %jti, latency_us,
/// "token request")` (or `reason = %reason` for a refusal) would.
// Not inlined, so that profiles name it (bench/callgrind_split.py).
#[inline(never)]
pub fn log_token_request(line: &TokenRequestLine<'_>) {
    if !log_directly(line) {
        log_with_tracing(line);
    }
}

/// Writes the line without tracing if the subscriber in force is the one
/// `init` built, and says whether the line is dealt with (written, or
/// filtered out as tracing would).
fn log_directly(line: &TokenRequestLine<'_>) -> bool {
    tracing::dispatcher::get_default(|dispatch| {
        let Some(writer) = dispatch.downcast_ref::<LineWriter>() else {
            return false;
        };
        match writer.fast {
            None => false,
            Some(FastPath { enabled: false, .. }) => true,
            // tracing-subscriber would print the span.
            Some(_) if dispatch.current_span().id().is_some() => false,
            Some(FastPath { json, .. }) => write_line(&writer.sink, line, json),
        }
    })
}

fn log_with_tracing(line: &TokenRequestLine<'_>) {
    let TokenRequestLine {
        request_id,
        client_id,
        latency_us,
        ..
    } = *line;
    let client_id = client_id.unwrap_or("-");
    match line.outcome {
        TokenOutcome::Issued {
            scope,
            aud,
            kid,
            jti,
        } => tracing::info!(
            target: TOKEN_TARGET, request_id, client_id, outcome = "issued", scope = %scope,
            aud = %aud, kid = %kid, jti = %jti, latency_us, "token request"
        ),
        TokenOutcome::Refused { code, reason } => tracing::info!(
            target: TOKEN_TARGET, request_id, client_id, outcome = code, reason = %reason,
            latency_us, "token request"
        ),
    }
}

/// The writer of the log layer that [`super::init`] installs: the sink,
/// and what the request line needs to write to it directly. Finding it in
/// the subscriber in force is how the line knows that subscriber.
pub(super) struct LineWriter {
    sink: LogSink,
    /// `None` with colours: tracing-subscriber's output then has escape
    /// codes this module does not reproduce.
    fast: Option<FastPath>,
}

#[derive(Clone, Copy)]
struct FastPath {
    json: bool,
    /// The filter lets the line through, decided once: the filter is fixed.
    enabled: bool,
}

impl LineWriter {
    pub(super) fn new(sink: LogSink, filter: &Targets, format: LogFormat, ansi: bool) -> Self {
        let enabled =
            Level::INFO <= STATIC_MAX_LEVEL && filter.would_enable(TOKEN_TARGET, &Level::INFO);
        Self {
            sink,
            fast: (!ansi).then_some(FastPath {
                json: format == LogFormat::Json,
                enabled,
            }),
        }
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.sink.make_writer()
    }
}

/// Formats and writes the line; `false` if it could not be formatted here
/// (a clock outside 1970-9999).
fn write_line(sink: &LogSink, line: &TokenRequestLine<'_>, json: bool) -> bool {
    with_buffers(|out, scratch| {
        if format_line(out, scratch, line, json, SystemTime::now()).is_err() {
            return false;
        }
        // As tracing-subscriber reports a failed write.
        if let Err(e) = sink.make_writer().write_all(out) {
            eprintln!(
                "[tracing-subscriber] Unable to write an event to the Writer for this Subscriber! Error: {e}\n"
            );
        }
        true
    })
}

/// Per-thread buffers for the line and for a reason's text, reused from
/// line to line like tracing-subscriber's.
fn with_buffers<R>(f: impl FnOnce(&mut Vec<u8>, &mut String) -> R) -> R {
    thread_local! {
        static BUFFERS: Cell<(Vec<u8>, String)> = const { Cell::new((Vec::new(), String::new())) };
    }
    let (mut out, mut scratch) = BUFFERS.try_with(Cell::take).unwrap_or_default();
    out.clear();
    scratch.clear();
    let result = f(&mut out, &mut scratch);
    // A huge reason must not stay allocated on every worker.
    out.shrink_to(MAX_KEPT);
    scratch.shrink_to(MAX_KEPT);
    // A thread being torn down keeps no buffers.
    let _ = BUFFERS.try_with(|buffers| buffers.set((out, scratch)));
    result
}

const MAX_KEPT: usize = 16 * 1024;

/// An error of `format_line`: the line cannot be written here.
#[derive(Debug)]
struct Unformattable;

impl From<io::Error> for Unformattable {
    fn from(_: io::Error) -> Self {
        Self
    }
}

impl From<fmt::Error> for Unformattable {
    fn from(_: fmt::Error) -> Self {
        Self
    }
}

/// The bytes tracing-subscriber's fmt layer writes for the event, with
/// `now` as its timestamp: `Format<Full>` with `DefaultFields` for text,
/// `Format<Json>` with `flatten_event(true)` for JSON, no colours, no span.
fn format_line(
    out: &mut Vec<u8>,
    scratch: &mut String,
    line: &TokenRequestLine<'_>,
    json: bool,
    now: SystemTime,
) -> Result<(), Unformattable> {
    let client_id = line.client_id.unwrap_or("-");
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(out, now)?;
        out.extend_from_slice(
            b"\",\"level\":\"INFO\",\"message\":\"token request\",\"request_id\":",
        );
        json_str(out, line.request_id)?;
        out.extend_from_slice(b",\"client_id\":");
        json_str(out, client_id)?;
        out.extend_from_slice(b",\"outcome\":");
        match line.outcome {
            TokenOutcome::Issued {
                scope,
                aud,
                kid,
                jti,
            } => {
                out.extend_from_slice(b"\"issued\",\"scope\":");
                json_str(out, scope)?;
                out.extend_from_slice(b",\"aud\":");
                json_str(out, aud)?;
                out.extend_from_slice(b",\"kid\":");
                json_str(out, kid)?;
                out.extend_from_slice(b",\"jti\":");
                json_str(out, jti)?;
            }
            TokenOutcome::Refused { code, reason } => {
                json_str(out, code)?;
                out.extend_from_slice(b",\"reason\":");
                write!(scratch, "{reason}")?;
                json_str(out, scratch)?;
            }
        }
        out.extend_from_slice(b",\"latency_us\":");
        decimal(out, line.latency_us);
        out.extend_from_slice(b",\"target\":\"");
        out.extend_from_slice(TOKEN_TARGET.as_bytes());
        out.extend_from_slice(b"\"}\n");
    } else {
        write_timestamp(out, now)?;
        // The level padded to five, the target, then the message.
        out.extend_from_slice(b"  INFO ");
        out.extend_from_slice(TOKEN_TARGET.as_bytes());
        out.extend_from_slice(b": token request request_id=");
        debug_str(out, line.request_id)?;
        out.extend_from_slice(b" client_id=");
        debug_str(out, client_id)?;
        out.extend_from_slice(b" outcome=");
        // `%value` fields are written with `Display`: no quotes.
        match line.outcome {
            TokenOutcome::Issued {
                scope,
                aud,
                kid,
                jti,
            } => {
                out.extend_from_slice(b"\"issued\" scope=");
                out.extend_from_slice(scope.as_bytes());
                out.extend_from_slice(b" aud=");
                out.extend_from_slice(aud.as_bytes());
                out.extend_from_slice(b" kid=");
                out.extend_from_slice(kid.as_bytes());
                out.extend_from_slice(b" jti=");
                out.extend_from_slice(jti.as_bytes());
            }
            TokenOutcome::Refused { code, reason } => {
                debug_str(out, code)?;
                out.extend_from_slice(b" reason=");
                write!(out, "{reason}")?;
            }
        }
        out.extend_from_slice(b" latency_us=");
        decimal(out, line.latency_us);
        out.push(b'\n');
    }
    Ok(())
}

/// A string field in text: `{:?}`, i.e. quoted and escaped.
fn debug_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        write!(out, "{s:?}")
    }
}

/// A string in JSON, as serde_json writes it.
fn json_str(out: &mut Vec<u8>, s: &str) -> Result<(), Unformattable> {
    if s.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s).map_err(|_| Unformattable)
    }
}

fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The last second of 9999: later years are not four digits.
const MAX_SECS: u64 = 253_402_300_799;

/// `now` as tracing-subscriber's default timer writes it (RFC 3339, UTC,
/// microseconds): `2026-11-30T08:12:00.123456Z`.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) -> Result<(), Unformattable> {
    let since = now.duration_since(UNIX_EPOCH).map_err(|_| Unformattable)?;
    let secs = since.as_secs();
    if secs > MAX_SECS {
        return Err(Unformattable);
    }
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    fill(&mut text[0..4], year);
    fill(&mut text[5..7], month);
    fill(&mut text[8..10], day);
    fill(&mut text[11..13], of_day / 3600);
    fill(&mut text[14..16], of_day / 60 % 60);
    fill(&mut text[17..19], of_day % 60);
    fill(&mut text[20..26], u64::from(since.subsec_micros()));
    out.extend_from_slice(&text);
    Ok(())
}

/// Writes the last `digits.len()` decimal digits of `n` into `digits`.
fn fill(digits: &mut [u8], mut n: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// (year, month, day) of the `days`-th day after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days from the epoch on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // From 0000-03-01, so that the leap day ends each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use proptest::prelude::*;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::fmt::time::FormatTime as _;

    use super::*;

    const STAMP: usize = "2026-11-30T08:12:00.123456Z".len();

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Out {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` writes through the subscriber `init` builds (without
    /// colours), with its buffered sink.
    fn through_init(format: LogFormat, level: LevelFilter, emit: impl FnOnce()) -> Vec<u8> {
        let out = Out::default();
        let (sink, mut guard) = LogSink::buffered({
            let out = out.clone();
            move || out
        });
        let dispatch = super::super::subscriber(level, format, false, sink);
        tracing::dispatcher::with_default(&dispatch, emit);
        guard.close();
        out.0.lock().unwrap().clone()
    }

    /// The line with its timestamp (checked for its shape) blanked out.
    fn masked(mut line: Vec<u8>, json: bool) -> Vec<u8> {
        let at = if json { "{\"timestamp\":\"".len() } else { 0 };
        let stamp = &mut line[at..at + STAMP];
        let shape: Vec<u8> = stamp
            .iter()
            .map(|b| if b.is_ascii_digit() { b'0' } else { *b })
            .collect();
        assert_eq!(
            shape,
            b"0000-00-00T00:00:00.000000Z",
            "{}",
            String::from_utf8_lossy(stamp)
        );
        stamp.fill(b'#');
        line
    }

    fn formatted(line: &TokenRequestLine<'_>, json: bool) -> Vec<u8> {
        let mut out = Vec::new();
        format_line(&mut out, &mut String::new(), line, json, SystemTime::now()).unwrap();
        out
    }

    fn format_of(json: bool) -> LogFormat {
        if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }

    /// The two `tracing::info!` of the token handler before this module,
    /// verbatim but for the target (this is another module).
    fn as_the_handler_logged(line: &TokenRequestLine<'_>) {
        let request_id = line.request_id.to_owned();
        let client_id = line.client_id.unwrap_or("-");
        let latency_us = line.latency_us;
        match line.outcome {
            TokenOutcome::Issued {
                scope,
                aud,
                kid,
                jti,
            } => {
                let scope = scope.to_owned();
                let jti = jti.to_owned();
                tracing::info!(
                    target: TOKEN_TARGET,
                    request_id, client_id, outcome = "issued", scope = %scope, aud = %aud,
                    kid = %kid, jti = %jti, latency_us, "token request"
                );
            }
            TokenOutcome::Refused { code, reason } => {
                tracing::info!(target: TOKEN_TARGET, request_id, client_id, outcome = code, reason = %reason, latency_us, "token request");
            }
        }
    }

    /// Every way of writing `line` gives tracing-subscriber's bytes.
    fn assert_same_everywhere(line: &TokenRequestLine<'_>) {
        for json in [false, true] {
            let format = format_of(json);
            let handler = through_init(format, LevelFilter::INFO, || as_the_handler_logged(line));
            let text = String::from_utf8_lossy(&handler).into_owned();
            let expected = masked(handler, json);
            let fallback = through_init(format, LevelFilter::INFO, || log_with_tracing(line));
            assert_eq!(masked(fallback, json), expected, "fallback: {text}");
            assert_eq!(
                masked(formatted(line, json), json),
                expected,
                "formatter: {text}"
            );
            let mut direct = false;
            let logged = through_init(format, LevelFilter::INFO, || {
                direct = log_directly(line);
            });
            assert!(direct, "not written directly: {text}");
            assert_eq!(masked(logged, json), expected, "direct: {text}");
        }
    }

    fn issued<'a>(request_id: &'a str, client_id: Option<&'a str>) -> TokenRequestLine<'a> {
        TokenRequestLine {
            request_id,
            client_id,
            outcome: TokenOutcome::Issued {
                scope: "read write",
                aud: "https://api.example.com/v1?x=\"1\"",
                kid: "k-2026-11-30",
                jti: "Q2x3bV9hYmNkZWZnaGlqaw",
            },
            latency_us: 1234,
        }
    }

    #[test]
    fn the_request_line_is_byte_for_byte_what_tracing_subscriber_writes() {
        assert_same_everywhere(&issued("Zm9vYmFy", Some("c_0123456789abcdef")));
        // Request ids are visible ASCII, quotes and backslashes included.
        assert_same_everywhere(&issued(r#"a"b\c'd{}"#, None));
        assert_same_everywhere(&issued("-", Some("")));
        for reason in [
            "invalid_client: unknown client",
            "invalid_request: unknown parameter \"scope\\x\" (tab\there)",
            "invalid_scope: 'admin' is not granted\nsecond line\r\u{1b}[31m red \u{7f}",
            "invalid_request: é ü ∑ 😀 \u{0301} \u{85} \u{200b}",
            "",
        ] {
            for latency_us in [0, 7, 1_000_000, u64::MAX] {
                assert_same_everywhere(&TokenRequestLine {
                    request_id: "r\"1\\",
                    client_id: Some("c_\u{0}\u{1}\"é"),
                    outcome: TokenOutcome::Refused {
                        code: "invalid_request",
                        reason: &reason,
                    },
                    latency_us,
                });
            }
        }
    }

    #[test]
    fn a_filtered_out_request_line_is_not_written() {
        let line = issued("r", None);
        for json in [false, true] {
            let mut direct = false;
            let logged = through_init(format_of(json), LevelFilter::WARN, || {
                direct = log_directly(&line);
            });
            assert!(direct);
            assert!(logged.is_empty(), "{}", String::from_utf8_lossy(&logged));
            let handler = through_init(format_of(json), LevelFilter::WARN, || {
                as_the_handler_logged(&line);
            });
            assert!(handler.is_empty());
            let logged = through_init(format_of(json), LevelFilter::DEBUG, || {
                log_token_request(&line);
            });
            assert_eq!(logged.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }

    #[test]
    fn inside_a_span_the_request_line_goes_through_tracing() {
        let line = issued("r", Some("c"));
        for json in [false, true] {
            let mut direct = true;
            let logged = through_init(format_of(json), LevelFilter::INFO, || {
                tracing::info_span!("outer", id = 7).in_scope(|| {
                    direct = log_directly(&line);
                    log_token_request(&line);
                });
            });
            assert!(!direct);
            let handler = through_init(format_of(json), LevelFilter::INFO, || {
                tracing::info_span!("outer", id = 7).in_scope(|| as_the_handler_logged(&line));
            });
            let text = String::from_utf8_lossy(&handler).into_owned();
            assert!(text.contains("outer"), "{text}");
            assert_eq!(masked(logged, json), masked(handler, json));
        }
    }

    #[test]
    fn under_another_subscriber_the_request_line_goes_through_tracing() {
        use tracing_subscriber::prelude::*;
        let out = Out::default();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer({
                let out = out.clone();
                move || out.clone()
            });
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let line = issued("r", Some("c_1"));
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!log_directly(&line));
            log_token_request(&line);
        });
        let logged = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&logged).unwrap();
        assert_eq!(value["message"], "token request");
        assert_eq!(value["client_id"], "c_1");
        assert_eq!(value["target"], TOKEN_TARGET);
        // With colours, too.
        let out = Out::default();
        let (sink, mut guard) = LogSink::buffered({
            let out = out.clone();
            move || out
        });
        let dispatch = super::super::subscriber(LevelFilter::INFO, LogFormat::Text, true, sink);
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!log_directly(&line));
            log_token_request(&line);
        });
        guard.close();
        assert!(out.0.lock().unwrap().starts_with(b"\x1b["));
    }

    fn stamp(now: SystemTime) -> String {
        let mut out = Vec::new();
        write_timestamp(&mut out, now).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_timestamp_is_that_of_tracing_subscribers_default_timer() {
        for _ in 0..100 {
            let before = SystemTime::now();
            let mut theirs = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut tracing_subscriber::fmt::format::Writer::new(
                    &mut theirs,
                ))
                .unwrap();
            let after = SystemTime::now();
            // Fixed width: the string order is the time order.
            assert!(
                stamp(before) <= theirs && theirs <= stamp(after),
                "{theirs}"
            );
        }
        let at = |secs: u64, micros: u64| {
            stamp(UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_795_940_201, 999_999), "2026-11-29T08:16:41.999999Z");
        assert_eq!(at(4_107_542_399, 500), "2100-02-28T23:59:59.000500Z");
        assert_eq!(at(MAX_SECS, 0), "9999-12-31T23:59:59.000000Z");
        assert!(
            write_timestamp(
                &mut Vec::new(),
                UNIX_EPOCH + Duration::from_secs(MAX_SECS + 1)
            )
            .is_err()
        );
        assert!(write_timestamp(&mut Vec::new(), UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }

    /// The calendar the slow way: whole years, then whole months.
    fn civil_by_counting(mut days: u64) -> (u64, u64, u64) {
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let mut year = 1970;
        loop {
            let length = if leap(year) { 366 } else { 365 };
            if days < length {
                break;
            }
            days -= length;
            year += 1;
        }
        let months = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 1;
        for length in months {
            if days < length {
                break;
            }
            days -= length;
            month += 1;
        }
        (year, month, days + 1)
    }

    proptest! {
        #[test]
        fn any_date_from_1970_to_9999_is_the_counted_one(secs in 0..=MAX_SECS) {
            prop_assert_eq!(civil_from_days(secs / 86_400), civil_by_counting(secs / 86_400));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_request_line_is_byte_for_byte_what_tracing_subscriber_writes(
            request_id in "[!-~]{1,64}",
            client_id in proptest::option::of(any::<String>()),
            strings in proptest::collection::vec(any::<String>(), 4),
            code in prop_oneof![Just("invalid_client"), Just("invalid_request"), Just("rate_limited")],
            refused in any::<bool>(),
            latency_us in any::<u64>(),
        ) {
            let outcome = if refused {
                TokenOutcome::Refused { code, reason: &strings[0] }
            } else {
                TokenOutcome::Issued { scope: &strings[0], aud: &strings[1], kid: &strings[2], jti: &strings[3] }
            };
            let line = TokenRequestLine { request_id: &request_id, client_id: client_id.as_deref(), outcome, latency_us };
            for json in [false, true] {
                let expected = through_init(format_of(json), LevelFilter::INFO, || log_with_tracing(&line));
                prop_assert_eq!(masked(formatted(&line, json), json), masked(expected, json));
            }
        }
    }
}
