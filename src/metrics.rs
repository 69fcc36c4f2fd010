//! Prometheus metrics: every name is defined here, once; `docs/metrics.md`
//! lists them (a test compares that list with what is registered here).
//!
//! One [`Metrics`] per gateway instance with its own registry, so tests that
//! run several gateways in one process see only their own counts.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Requests by route name, decision and status class.
pub const REQUESTS: &str = "portcullis_requests_total";
/// Request latency in seconds, by route name.
pub const REQUEST_SECONDS: &str = "portcullis_request_duration_seconds";
/// Requests currently being handled.
pub const IN_FLIGHT: &str = "portcullis_in_flight_requests";
/// Upstream failures by kind (connect, timeout, reset).
pub const UPSTREAM_ERRORS: &str = "portcullis_upstream_errors_total";
/// Requests sent a second time, on a fresh connection, after the upstream
/// closed the kept-alive one they were sent on.
pub const UPSTREAM_RETRIES: &str = "portcullis_upstream_retries_total";
pub const LOG_LINES_DROPPED: &str = "portcullis_log_lines_dropped_total";
/// Session refresh attempts by result (ok, revoked, unavailable, rate_limited, shared).
pub const REFRESHES: &str = "portcullis_refresh_total";
/// JWKS fetches by result (ok, error).
pub const JWKS_FETCHES: &str = "portcullis_jwks_fetches_total";
/// Config reloads by result (ok, error).
pub const RELOADS: &str = "portcullis_config_reloads_total";
/// 1 while the shared store (`[store]`) answers, 0 while replicas fall back to local state.
pub const STORE_UP: &str = "portcullis_store_up";
/// Shared-store calls that failed or timed out, by operation.
pub const STORE_ERRORS: &str = "portcullis_store_errors_total";

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub in_flight: IntGauge,
    pub upstream_errors: IntCounterVec,
    pub upstream_retries: IntCounter,
    /// Mirrors [`crate::telemetry::dropped_lines`] at every scrape.
    log_lines_dropped: IntCounter,
    pub refreshes: IntCounterVec,
    pub jwks_fetches: IntCounterVec,
    pub reloads: IntCounterVec,
    pub store_up: IntGauge,
    pub store_errors: IntCounterVec,
    /// What was registered: `(name, help, labels)`, for the docs check.
    registered: Vec<(String, String, Vec<String>)>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // Every metric is registered by the loop below (and so listed here).
        let mut registered = Vec::new();
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS, "Requests by route, decision and status class."),
            &["route", "decision", "status"],
        )
        .expect("static metric definition is valid");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(REQUEST_SECONDS, "Request latency in seconds.").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("static metric definition is valid");
        let in_flight = IntGauge::new(IN_FLIGHT, "Requests in flight.")
            .expect("static metric definition is valid");
        let upstream_errors = IntCounterVec::new(
            Opts::new(UPSTREAM_ERRORS, "Upstream errors by kind."),
            &["kind"],
        )
        .expect("static metric definition is valid");
        let upstream_retries = IntCounter::new(
            UPSTREAM_RETRIES,
            "Requests sent again on a fresh connection: after a stale keep-alive connection, or one that closed before the request was written.",
        )
        .expect("static metric definition is valid");
        let log_lines_dropped = IntCounter::new(
            LOG_LINES_DROPPED,
            "Log lines (access log included) dropped because the log sink could not keep up.",
        )
        .expect("static metric definition is valid");
        let refreshes = IntCounterVec::new(
            Opts::new(REFRESHES, "Session refreshes by result."),
            &["result"],
        )
        .expect("static metric definition is valid");
        let jwks_fetches = IntCounterVec::new(
            Opts::new(JWKS_FETCHES, "JWKS fetches by result."),
            &["result"],
        )
        .expect("static metric definition is valid");
        let reloads = IntCounterVec::new(
            Opts::new(RELOADS, "Configuration reloads by result."),
            &["result"],
        )
        .expect("static metric definition is valid");
        let store_up = IntGauge::new(
            STORE_UP,
            "1 while the shared store answers, 0 while down (local state only).",
        )
        .expect("static metric definition is valid");
        let store_errors = IntCounterVec::new(
            Opts::new(STORE_ERRORS, "Shared-store calls that failed or timed out."),
            &["op"],
        )
        .expect("static metric definition is valid");
        // The documented label values exist from the start at 0, so every
        // family is exported before its first event (an alert on
        // `rate(...{result="error"})` has a series to read, a scrape of a
        // fresh gateway lists every metric).
        for (vec, values) in [
            (&upstream_errors, &["connect", "timeout", "reset"][..]),
            (
                &refreshes,
                &["ok", "revoked", "unavailable", "rate_limited", "shared"][..],
            ),
            (&jwks_fetches, &["ok", "error"][..]),
            (&reloads, &["ok", "error"][..]),
            (
                &store_errors,
                &["ping", "revoked", "revoke", "rate", "lease", "result"][..],
            ),
        ] {
            for v in values {
                let _ = vec.with_label_values(&[v]);
            }
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(log_lines_dropped.clone()),
            Box::new(refreshes.clone()),
            Box::new(jwks_fetches.clone()),
            Box::new(reloads.clone()),
            Box::new(store_up.clone()),
            Box::new(store_errors.clone()),
        ] {
            for d in c.desc() {
                registered.push((d.fq_name.clone(), d.help.clone(), d.variable_labels.clone()));
            }
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            request_seconds,
            in_flight,
            upstream_errors,
            upstream_retries,
            log_lines_dropped,
            refreshes,
            jwks_fetches,
            reloads,
            store_up,
            store_errors,
            registered,
        }
    }

    /// Every registered metric as `(name, help, labels)`.
    pub fn registered(&self) -> &[(String, String, Vec<String>)] {
        &self.registered
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let dropped = crate::telemetry::dropped_lines();
        let seen = self.log_lines_dropped.get();
        if dropped > seen {
            self.log_lines_dropped.inc_by(dropped - seen);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("prometheus text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/metrics.md` lists exactly the registered metrics, each with its
    /// labels (`| `name` | type | labels | … |` rows).
    #[test]
    fn docs_list_every_metric_with_its_labels() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
            .expect("docs/metrics.md exists");
        let mut documented: Vec<(String, Vec<String>)> = doc
            .lines()
            .filter(|l| l.starts_with("| `portcullis_"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells[1].trim_matches('`').to_owned();
                let mut labels: Vec<String> = cells[3]
                    .split(',')
                    .map(|x| x.trim().trim_matches('`').to_owned())
                    .filter(|x| !x.is_empty() && x != "—")
                    .collect();
                labels.sort();
                (name, labels)
            })
            .collect();
        documented.sort();
        let mut actual: Vec<(String, Vec<String>)> = Metrics::new()
            .registered()
            .iter()
            .map(|(n, _, l)| {
                let mut l = l.clone();
                l.sort();
                (n.clone(), l)
            })
            .collect();
        actual.sort();
        assert_eq!(
            documented, actual,
            "docs/metrics.md must list every metric of src/metrics.rs with its labels"
        );
        // Every name is defined once, as a constant here.
        let src = include_str!("metrics.rs");
        for (name, _) in &actual {
            assert_eq!(src.matches(&format!("\"{name}\"")).count(), 1, "{name}");
        }
    }
}
