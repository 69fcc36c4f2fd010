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
    thread_local! {
        static BUF: std::cell::RefCell<(Vec<u8>, Clock)> =
            const { std::cell::RefCell::new((Vec::new(), Clock::new())) };
    }
    BUF.with(|cell| {
        let (buf, clock) = &mut *cell.borrow_mut();
        buf.clear();
        access_json(line, std::time::SystemTime::now(), clock, buf);
        write_line(buf);
    });
}

/// The date and time to the second, formatted once per second.
struct Clock {
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS`
    text: [u8; 19],
}

impl Clock {
    const fn new() -> Self {
        Self {
            second: u64::MAX,
            text: [0; 19],
        }
    }
}

/// Appends `n` in decimal, at least `width` digits (zero-padded).
fn push_decimal(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width.max(1) {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[at..]);
}

/// One access line as JSON, the same shape as the `tracing` JSON events
/// (`timestamp`, `level`, `message`, `target`, then the fields), ending in
/// a newline. Keys are constants; string values are copied as they are
/// when they need no escaping (the common case) and escaped by serde_json
/// otherwise.
fn access_json(
    line: &AccessLine<'_>,
    now: std::time::SystemTime,
    clock: &mut Clock,
    buf: &mut Vec<u8>,
) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if since.as_secs() != clock.second {
        clock.second = since.as_secs();
        let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs());
        let text = humantime::format_rfc3339_seconds(whole).to_string();
        if let Some(t) = text.as_bytes().get(..19) {
            clock.text.copy_from_slice(t);
        }
    }
    buf.extend_from_slice(b"{\"timestamp\":\"");
    buf.extend_from_slice(&clock.text);
    buf.push(b'.');
    push_decimal(buf, u64::from(since.subsec_micros()), 6);
    buf.push(b'Z');
    buf.extend_from_slice(
        b"\",\"level\":\"INFO\",\"message\":\"request\",\"target\":\"portcullis::access\"",
    );
    let field = |buf: &mut Vec<u8>, key: &str, value: &str| {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":");
        json_str(buf, value);
    };
    field(buf, "request_id", line.request_id);
    buf.extend_from_slice(b",\"client\":\"");
    buf.extend_from_slice(crate::http_util::ip_value(line.client).as_bytes());
    buf.push(b'"');
    field(buf, "method", line.method);
    field(buf, "path", line.path);
    field(buf, "route", line.route);
    field(buf, "decision", line.decision);
    field(buf, "reason", line.reason);
    field(buf, "user", line.user);
    buf.extend_from_slice(b",\"status\":");
    push_decimal(buf, u64::from(line.status), 1);
    buf.extend_from_slice(b",\"upstream_status\":");
    push_decimal(buf, u64::from(line.upstream_status), 1);
    // Milliseconds to the microsecond: `0.954`, not `0.9536370000000001`.
    buf.extend_from_slice(b",\"latency_ms\":");
    if line.latency_ms.is_finite() && line.latency_ms >= 0.0 {
        let micros = (line.latency_ms * 1000.0).round() as u64;
        push_decimal(buf, micros / 1000, 1);
        buf.push(b'.');
        push_decimal(buf, micros % 1000, 3);
    } else {
        buf.extend_from_slice(b"null");
    }
    buf.extend_from_slice(b"}\n");
}

/// A JSON string: copied when nothing in it needs escaping, else escaped by
/// serde_json.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else if serde_json::to_writer(&mut *buf, s).is_err() {
        buf.extend_from_slice(b"\"\"");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, user: &'a str) -> AccessLine<'a> {
        AccessLine {
            request_id: "0123abcd",
            client: "2001:db8::1".parse().unwrap(),
            method: "GET",
            path,
            route: "app",
            decision: "allowed",
            reason: "",
            user,
            status: 200,
            upstream_status: 204,
            latency_ms: 1.25,
        }
    }

    fn render(
        l: &AccessLine<'_>,
        now: std::time::SystemTime,
        clock: &mut Clock,
    ) -> serde_json::Value {
        let mut buf = Vec::new();
        access_json(l, now, clock, &mut buf);
        assert_eq!(buf.last(), Some(&b'\n'), "one line");
        assert_eq!(
            buf.iter().filter(|b| **b == b'\n').count(),
            1,
            "exactly one line"
        );
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn access_lines_are_json_with_every_field_and_hostile_values_escaped() {
        let mut clock = Clock::new();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_700_000_123_456);
        let hostile = "/a\"b\\c\n\u{1}é\u{7f}";
        let v = render(&line(hostile, "U\"1\r\n{\"x\":1}"), now, &mut clock);
        assert_eq!(v["timestamp"], "2025-12-02T18:26:40.123456Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["target"], "portcullis::access");
        assert_eq!(v["request_id"], "0123abcd");
        assert_eq!(v["client"], "2001:db8::1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], hostile);
        assert_eq!(v["route"], "app");
        assert_eq!(v["decision"], "allowed");
        assert_eq!(v["reason"], "");
        assert_eq!(v["user"], "U\"1\r\n{\"x\":1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream_status"], 204);
        assert_eq!(v["latency_ms"], 1.25);
        // The cached second moves on with the clock.
        let later = now + std::time::Duration::from_secs(61);
        let v = render(&line("/", "-"), later, &mut clock);
        assert_eq!(v["timestamp"], "2025-12-02T18:27:41.123456Z");
    }

    #[test]
    fn access_line_numbers_and_client_are_printed_exactly() {
        let mut clock = Clock::new();
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_700_000);
        let text = |l: &AccessLine<'_>, now, clock: &mut Clock| {
            let mut buf = Vec::new();
            access_json(l, now, clock, &mut buf);
            String::from_utf8(buf).expect("UTF-8")
        };
        let mut l = line("/", "-");
        for (micros, latency, want_time, want_latency) in [
            (0, 0.0, ".000000Z", "\"latency_ms\":0.000}"),
            (
                42,
                0.953_637_000_000_000_1,
                ".000042Z",
                "\"latency_ms\":0.954}",
            ),
            (
                999_999,
                12_345.678_9,
                ".999999Z",
                "\"latency_ms\":12345.679}",
            ),
            (500_000, 2.5, ".500000Z", "\"latency_ms\":2.500}"),
            (7, f64::NAN, ".000007Z", "\"latency_ms\":null}"),
        ] {
            l.latency_ms = latency;
            let t = text(
                &l,
                start + std::time::Duration::from_micros(micros),
                &mut clock,
            );
            assert!(t.contains(want_time), "{t}");
            assert!(t.trim_end().ends_with(want_latency), "{t}");
            let v: serde_json::Value = serde_json::from_str(&t).expect("valid JSON");
            assert_eq!(v["status"], 200);
            assert_eq!(v["upstream_status"], 204);
        }
        l.latency_ms = 1.0;
        for (status, upstream) in [(0u16, 0u16), (9, 10), (100, 599), (u16::MAX, 1)] {
            l.status = status;
            l.upstream_status = upstream;
            let v: serde_json::Value =
                serde_json::from_str(&text(&l, start, &mut clock)).expect("valid JSON");
            assert_eq!(v["status"], status);
            assert_eq!(v["upstream_status"], upstream);
        }
        // The per-thread address text follows the address.
        for ip in [
            "2001:db8::1",
            "192.0.2.7",
            "192.0.2.7",
            "::1",
            "2001:db8::1",
        ] {
            l.client = ip.parse().expect("an address");
            let v: serde_json::Value =
                serde_json::from_str(&text(&l, start, &mut clock)).expect("valid JSON");
            assert_eq!(v["client"], ip);
        }
    }
}
