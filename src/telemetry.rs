//! Logging: `tracing` with `RUST_LOG`-style filtering (default `info`), JSON
//! lines when stderr is not a terminal (containers) or when
//! `PORTCULLIS_LOG_FORMAT=json`, human format on a TTY.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

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
            let _ = std::io::stderr().lock().write_all(&buf);
        }
    });
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("PORTCULLIS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    JSON.store(json, Ordering::Relaxed);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
