//! Prometheus metrics: every name is defined here, once (see docs/metrics in README).
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
/// Session refresh attempts by result (ok, revoked, unavailable, rate_limited, shared).
pub const REFRESHES: &str = "portcullis_refresh_total";
/// JWKS fetches by result (ok, error).
pub const JWKS_FETCHES: &str = "portcullis_jwks_fetches_total";
/// Config reloads by result (ok, error).
pub const RELOADS: &str = "portcullis_config_reloads_total";

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub in_flight: IntGauge,
    pub upstream_errors: IntCounterVec,
    pub upstream_retries: IntCounter,
    pub refreshes: IntCounterVec,
    pub jwks_fetches: IntCounterVec,
    pub reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
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
            "Requests retried on a fresh connection after a stale keep-alive connection.",
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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(refreshes.clone()),
            Box::new(jwks_fetches.clone()),
            Box::new(reloads.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            request_seconds,
            in_flight,
            upstream_errors,
            upstream_retries,
            refreshes,
            jwks_fetches,
            reloads,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
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
