//! Logging: `tracing` with `RUST_LOG`-style filtering (default `info`), JSON
//! lines when stderr is not a terminal (containers) or when
//! `PORTCULLIS_LOG_FORMAT=json`, human format on a TTY.
//!
//! Every line (the access log included) is written off the request path:
//! request threads hand finished lines to a bounded queue
//! (`tracing-appender`'s non-blocking writer, [`QUEUE_LINES`] lines) and one
//! writer thread writes them to stderr through a 64 KiB buffer, flushed
//! whenever the queue is empty, so a burst costs one `write(2)` per batch
//! instead of one per line. When stderr cannot keep up (a stalled pipe, a
//! slow disk), new lines are dropped and counted
//! (`portcullis_log_lines_dropped_total`) instead of stalling traffic. The
//! [`LogGuard`] returned by [`init`] flushes what is queued when dropped,
//! at the end of `main`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Most lines waiting for the writer thread (≈ 5 MB of access lines);
/// beyond it lines are dropped and counted.
pub const QUEUE_LINES: usize = 16_384;

/// The buffer between the writer thread and stderr.
const WRITE_BUFFER: usize = 64 * 1024;

static WRITER: OnceLock<NonBlocking> = OnceLock::new();
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped so far because the log sink could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}

/// Flushes the queued log lines when dropped (keep it alive in `main`).
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<WorkerGuard>);

impl LogGuard {
    /// A guard that owns no writer (logging was set up elsewhere).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // WorkerGuard's own Drop flushes; this only makes the order explicit.
        drop(self.0.take());
    }
}

/// Set by [`init`] when logs are JSON lines: the access log then writes its
/// line directly (same shape as the `tracing` JSON events), which measured
/// ~18% more proxy throughput than going through the generic JSON visitor.
static JSON: AtomicBool = AtomicBool::new(false);

/// One access-log line (DESIGN §8): never tokens, cookies, query strings or
/// claims beyond the user id.
#[derive(serde::Serialize)]
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
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        #[serde(serialize_with = "display")]
        timestamp: humantime::Rfc3339Timestamp,
        level: &'static str,
        message: &'static str,
        target: &'static str,
        #[serde(flatten)]
        line: &'a AccessLine<'a>,
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
            line,
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
    thread_local! {
        static LOCAL: std::cell::RefCell<Option<NonBlocking>> = const { std::cell::RefCell::new(None) };
    }
    let Some(shared) = WRITER.get() else {
        let _ = std::io::stderr().lock().write_all(line);
        return;
    };
    LOCAL.with(|w| {
        let mut w = w.borrow_mut();
        // NonBlocking::write hands over the whole line (or drops and counts it).
        let _ = w.get_or_insert_with(|| shared.clone()).write_all(line);
    });
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Installs the global subscriber writing through the non-blocking writer.
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let tty = std::io::stderr().is_terminal();
    let json = match std::env::var("PORTCULLIS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !tty,
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("portcullis-log")
        .finish(std::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            std::io::stderr(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    let _ = WRITER.set(writer.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(tty)
        .with_writer(writer);
    JSON.store(json, Ordering::Relaxed);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    LogGuard(Some(guard))
}
