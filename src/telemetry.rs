//! Logging: `tracing` with `RUST_LOG`-style filtering (default `info`), JSON
//! lines when stderr is not a terminal (containers) or when
//! `PORTCULLIS_LOG_FORMAT=json`, human format on a TTY.
//!
//! Every line (the access log included) is written off the request path:
//! request threads append finished lines to one shared, bounded buffer
//! ([`QUEUE_BYTES`]) under a short uncontended lock — no allocation, no
//! channel, no wake-up per line — and one writer thread swaps the buffer out
//! every [`FLUSH_EVERY`] (sooner when it fills past a high-water mark) and
//! writes it to stderr in one `write(2)`. When stderr cannot keep up (a
//! stalled pipe, a slow disk), new lines are dropped and counted
//! (`portcullis_log_lines_dropped_total`) instead of stalling traffic. The
//! [`LogGuard`] returned by [`init`] flushes what is buffered when dropped,
//! at the end of `main`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Most bytes waiting for the writer thread (about 16,000 access lines);
/// beyond it lines are dropped and counted. The writer holds at most as
/// much again while it writes.
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// How often the writer thread writes what has accumulated.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// The writer is woken early when this much is waiting.
const HIGH_WATER: usize = 256 * 1024;

struct Sink {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    closed: AtomicBool,
    dropped: AtomicU64,
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

impl Sink {
    /// Appends one whole line, or drops and counts it when the buffer is full.
    fn push(&self, line: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        if buf.len() + line.len() > QUEUE_BYTES {
            drop(buf);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = buf.len();
        buf.extend_from_slice(line);
        let crossed = before < HIGH_WATER && buf.len() >= HIGH_WATER;
        drop(buf);
        if crossed {
            self.wake.notify_one();
        }
    }

    /// The writer thread: swap the buffer out, write it, until closed and empty.
    fn run(&self, out: &mut dyn Write) {
        let mut spare: Vec<u8> = Vec::with_capacity(HIGH_WATER);
        loop {
            {
                let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
                if buf.is_empty() && !self.closed.load(Ordering::Acquire) {
                    buf = self
                        .wake
                        .wait_timeout(buf, FLUSH_EVERY)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if buf.is_empty() && self.closed.load(Ordering::Acquire) {
                    return;
                }
                std::mem::swap(&mut *buf, &mut spare);
            }
            if !spare.is_empty() {
                let _ = out.write_all(&spare);
                let _ = out.flush();
                spare.clear();
                // Do not keep a burst's memory for ever.
                if spare.capacity() > QUEUE_BYTES / 4 {
                    spare = Vec::with_capacity(HIGH_WATER);
                }
            }
        }
    }
}

/// Lines dropped so far because the log sink could not keep up.
pub fn dropped_lines() -> u64 {
    SINK.get().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// Flushes the buffered log lines when dropped (keep it alive in `main`).
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<std::thread::JoinHandle<()>>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let (Some(sink), Some(writer)) = (SINK.get(), self.0.take()) {
            sink.closed.store(true, Ordering::Release);
            sink.wake.notify_one();
            let _ = writer.join();
        }
    }
}

/// The `tracing` side of the sink: each formatted event arrives in one
/// `write_all` and is appended whole.
#[derive(Clone, Copy)]
struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SinkWriter {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Set by [`init`] when logs are JSON lines: the access log then writes its
/// line directly (same shape as the `tracing` JSON events), which measured
/// ~18% more proxy throughput than going through the generic JSON visitor.
static JSON: AtomicBool = AtomicBool::new(false);

/// One access-log line: never tokens, cookies, query strings or
/// claims beyond the user id.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub client: std::net::IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub decision: &'a str,
    pub reason: &'a str,
    pub user: &'a str,
    pub status: u16,
    pub upstream_status: u16,
    pub latency_ms: f64,
}

/// Writes the access line when `portcullis::access` is enabled at `info`.
pub fn access(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: "portcullis::access", tracing::Level::INFO) {
        return;
    }
    if !JSON.load(Ordering::Relaxed) {
        tracing::info!(
            target: "portcullis::access",
            request_id = line.request_id,
            client = %line.client,
            method = line.method,
            path = line.path,
            route = line.route,
            decision = line.decision,
            reason = line.reason,
            user = line.user,
            status = line.status,
            upstream_status = line.upstream_status,
            latency_ms = line.latency_ms,
            "request"
        );
        return;
    }
    /// The same shape as the `tracing` JSON events, in one flat struct
    /// (serde's `flatten` goes through a generic map serializer).
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        #[serde(serialize_with = "display")]
        timestamp: humantime::Rfc3339Timestamp,
        level: &'static str,
        message: &'static str,
        target: &'static str,
        request_id: &'a str,
        client: std::net::IpAddr,
        method: &'a str,
        path: &'a str,
        route: &'a str,
        decision: &'a str,
        reason: &'a str,
        user: &'a str,
        status: u16,
        upstream_status: u16,
        latency_ms: f64,
    }
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        let env = Envelope {
            timestamp: humantime::format_rfc3339_micros(std::time::SystemTime::now()),
            level: "INFO",
            message: "request",
            target: "portcullis::access",
            request_id: line.request_id,
            client: line.client,
            method: line.method,
            path: line.path,
            route: line.route,
            decision: line.decision,
            reason: line.reason,
            user: line.user,
            status: line.status,
            upstream_status: line.upstream_status,
            latency_ms: line.latency_ms,
        };
        if serde_json::to_writer(&mut *buf, &env).is_ok() {
            buf.push(b'\n');
            write_line(&buf);
        }
    });
}

/// Hands one finished line to the writer thread (stderr directly when
/// [`init`] did not run, as in tests).
fn write_line(line: &[u8]) {
    match SINK.get() {
        Some(sink) => sink.push(line),
        None => {
            let _ = std::io::stderr().lock().write_all(line);
        }
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Installs the global subscriber writing through the batching writer.
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let tty = std::io::stderr().is_terminal();
    let json = match std::env::var("PORTCULLIS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !tty,
    };
    let sink = Arc::new(Sink {
        buf: Mutex::new(Vec::with_capacity(HIGH_WATER)),
        wake: Condvar::new(),
        closed: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    let writer = {
        let sink = Arc::clone(&sink);
        std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || sink.run(&mut std::io::stderr()))
            .ok()
    };
    if writer.is_some() {
        let _ = SINK.set(sink);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(tty)
        .with_writer(SinkWriter);
    JSON.store(json, Ordering::Relaxed);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    LogGuard(writer)
}
