//! The bounded log buffer of `warrant serve`.
//!
//! Written straight to stderr, each request line cost a `write(2)` on the
//! worker thread that served the request (~10 % of the server's CPU at
//! HS256). Through [`LogSink::buffered`], a worker thread appends the
//! formatted line to a shared buffer (a lock and a copy, no system call),
//! and a background thread writes the buffer out in large writes, at the
//! latest [`FLUSH_DELAY`] after a line arrives or as soon as [`FLUSH_AT`]
//! bytes are waiting.
//!
//! A full buffer ([`CAPACITY`]) makes the next line wait for the writer
//! thread rather than drop it: these lines are the audit trail of issuance
//! (no row per token is stored), so none is lost silently, and memory stays
//! bounded. Waiting only happens when stderr takes lines slower than the
//! server makes them, where the unbuffered writer blocked on every line
//! anyway. How many lines waited is logged when the server stops.

use std::io::{self, Write as _};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use super::LogGuard;

/// The longest a line waits in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// Bytes waiting that make the writer thread write at once.
pub const FLUSH_AT: usize = 64 * 1024;
/// Bytes waiting above which a new line waits for the writer thread.
pub const CAPACITY: usize = 1024 * 1024;

/// The `MakeWriter` of the log layer: stderr, directly or through the
/// shared buffer.
#[derive(Clone)]
pub struct LogSink {
    buffer: Option<Arc<Shared>>,
}

impl LogSink {
    /// Every line straight to stderr.
    pub fn stderr() -> Self {
        Self { buffer: None }
    }

    /// Lines buffered and written by a background thread to what `out`
    /// returns (stderr for the server; something else in tests). If the
    /// thread cannot start, lines go straight to stderr.
    pub fn buffered<W, F>(out: F) -> (Self, LogGuard)
    where
        W: io::Write,
        F: FnOnce() -> W + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: Vec::new(),
                running: true,
                closing: false,
                waiting: 0,
                stalls: 0,
            }),
            lines: Condvar::new(),
            space: Condvar::new(),
        });
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("warrant-log".into())
            .spawn(move || writer.write_out(&mut out()));
        match spawned {
            Ok(thread) => (
                Self {
                    buffer: Some(Arc::clone(&shared)),
                },
                LogGuard {
                    writer: Some(WriterThread { shared, thread }),
                },
            ),
            Err(_) => (Self::stderr(), LogGuard::default()),
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self.buffer.as_deref())
    }
}

/// Receives one formatted event (the log layer writes each event with a
/// single `write_all`).
pub struct SinkWriter<'a>(Option<&'a Shared>);

impl io::Write for SinkWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.write_all(line)?;
        Ok(line.len())
    }

    fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        match self.0 {
            Some(shared) => {
                shared.push(line);
                Ok(())
            }
            None => io::stderr().write_all(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Shared {
    state: Mutex<State>,
    /// The writer thread waits here for lines, or for the end.
    lines: Condvar,
    /// Lines wait here while the buffer is full.
    space: Condvar,
}

struct State {
    buffer: Vec<u8>,
    /// The writer thread is running and takes lines from `buffer`; once it
    /// has stopped, lines go straight to stderr.
    running: bool,
    /// The guard was dropped: write out what is left and stop.
    closing: bool,
    /// Lines waiting in `space` right now.
    waiting: usize,
    /// Lines that had to wait for a full buffer, in all.
    stalls: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut state = self.lock();
        if state.running && state.buffer.len() >= CAPACITY {
            state.stalls += 1;
            state.waiting += 1;
            state = self
                .space
                .wait_while(state, |s| s.running && s.buffer.len() >= CAPACITY)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        if !state.running {
            // Holding the lock keeps these lines in order, too.
            drop(io::stderr().write_all(line));
            return;
        }
        let before = state.buffer.len();
        state.buffer.extend_from_slice(line);
        // Wake the writer thread for the first line of a batch (it then
        // waits FLUSH_DELAY for more) and when FLUSH_AT is reached; other
        // lines cost no system call.
        let wake = before == 0 || (before < FLUSH_AT && state.buffer.len() >= FLUSH_AT);
        drop(state);
        if wake {
            self.lines.notify_one();
        }
    }

    /// The writer thread: takes the whole buffer at a time and writes it
    /// with one `write_all`, outside the lock.
    fn write_out(&self, out: &mut impl io::Write) {
        let mut batch = Vec::new();
        let mut state = self.lock();
        loop {
            state = self
                .lines
                .wait_while(state, |s| s.buffer.is_empty() && !s.closing)
                .unwrap_or_else(PoisonError::into_inner);
            if state.buffer.is_empty() {
                // Closing, and everything is written.
                state.running = false;
                drop(state);
                self.space.notify_all();
                drop(out.flush());
                return;
            }
            if !state.closing && state.buffer.len() < FLUSH_AT {
                state = self
                    .lines
                    .wait_timeout_while(state, FLUSH_DELAY, |s| {
                        !s.closing && s.buffer.len() < FLUSH_AT
                    })
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut state.buffer, &mut batch);
            let waiting = state.waiting > 0;
            drop(state);
            if waiting {
                self.space.notify_all();
            }
            // A failed write (stderr closed) loses these lines, as it did
            // unbuffered; there is nowhere else to report it.
            drop(out.write_all(&batch));
            batch.clear();
            if batch.capacity() > 2 * CAPACITY {
                batch.shrink_to(CAPACITY);
            }
            state = self.lock();
        }
    }
}

/// The background thread of a buffered sink, owned by the [`LogGuard`].
pub(super) struct WriterThread {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

impl WriterThread {
    /// Writes out what is buffered and stops the thread; returns how many
    /// lines had to wait for a full buffer.
    pub(super) fn close(self) -> u64 {
        let Self { shared, thread } = self;
        shared.lock().closing = true;
        shared.lines.notify_one();
        let finished = thread.join().is_ok();
        let mut state = shared.lock();
        if !finished {
            // The thread died: never leave lines waiting for it.
            state.running = false;
            drop(io::stderr().write_all(&std::mem::take(&mut state.buffer)));
            shared.space.notify_all();
        }
        state.stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A writer that appends to a shared vector and counts its writes.
    #[derive(Clone, Default)]
    struct Collect {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
        /// Each write first waits for this lock: a stuck stderr.
        gate: Arc<Mutex<()>>,
    }

    impl io::Write for Collect {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            drop(self.gate.lock().unwrap());
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(i: usize) -> String {
        format!("line {i:06} {}\n", "x".repeat(200))
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let out = Collect::default();
        let (sink, guard) = LogSink::buffered({
            let out = out.clone();
            move || out
        });
        let lines = 20_000;
        std::thread::scope(|scope| {
            for t in 0..2 {
                let sink = &sink;
                scope.spawn(move || {
                    for i in (t..lines).step_by(2) {
                        sink.make_writer().write_all(line(i).as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let written = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), lines);
        let mut seen: Vec<&str> = written.lines().collect();
        // Whole lines, each thread's in its order.
        for t in 0..2 {
            let mine: Vec<&str> = seen
                .iter()
                .copied()
                .filter(|l| l[5..11].parse::<usize>().unwrap() % 2 == t)
                .collect();
            let expected: Vec<String> = (t..lines).step_by(2).map(line).collect();
            let expected: Vec<&str> = expected.iter().map(|l| l.trim_end()).collect();
            assert_eq!(mine, expected);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), lines);
        // Batched: far fewer writes than lines.
        assert!(out.writes.load(Ordering::Relaxed) < lines / 10);
    }

    #[test]
    fn a_line_is_written_within_the_flush_delay_without_more_lines() {
        let out = Collect::default();
        let (sink, _guard) = LogSink::buffered({
            let out = out.clone();
            move || out
        });
        sink.make_writer().write_all(b"one\n").unwrap();
        let started = std::time::Instant::now();
        while out.bytes.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.bytes.lock().unwrap().as_slice(), b"one\n");
    }

    #[test]
    fn a_stuck_output_makes_lines_wait_with_bounded_memory_and_none_lost() {
        // The output blocks while the test holds `gate`.
        let gate = Arc::new(Mutex::new(()));
        let out = Collect {
            gate: Arc::clone(&gate),
            ..Collect::default()
        };
        let (sink, mut guard) = LogSink::buffered({
            let out = out.clone();
            move || out
        });
        let shared = Arc::clone(sink.buffer.as_ref().unwrap());
        let stuck = gate.lock().unwrap();
        // More than twice the capacity: one buffer taken by the blocked
        // writer thread, one full buffer, and lines waiting.
        let lines = 3 * CAPACITY / line(0).len();
        let producer = std::thread::spawn(move || {
            for i in 0..lines {
                sink.make_writer().write_all(line(i).as_bytes()).unwrap();
            }
        });
        let started = std::time::Instant::now();
        while shared.lock().waiting == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        let buffered = shared.lock().buffer.len();
        assert!(buffered < CAPACITY + line(0).len(), "{buffered}");
        drop(stuck);
        producer.join().unwrap();
        assert!(guard.close() > 0);
        let written = out.bytes.lock().unwrap();
        assert_eq!(
            written.len(),
            (0..lines).map(|i| line(i).len()).sum::<usize>()
        );
        // After the guard, lines go straight to the (real) stderr.
        assert!(!shared.lock().running);
    }
}
