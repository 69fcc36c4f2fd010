//! The proxy path. `handle` owns the request id, metrics and the access log;
//! `handle_inner` reads top to bottom as the request's phases:
//!
//! ```text
//! facts (canonical path, Host) ─► hosted endpoint? ─► hosted::dispatch
//!                              └► decide::decide ─► Verdict ─► forward (strip, inject, stream)
//!                                               └► Reject  ─► answer::reject
//! ```
//!
//! Fail closed: every way out that is not a verdict is a reject, never a
//! forwarded request.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::answer::{self, append_cookies};
use crate::canon::CanonicalPath;
use crate::config::ForwardToken;
use crate::decide::{AccessLog, Facts, Mode, Reject, Target, Verdict};
use crate::http_util::Body;
use crate::policy::Route;
use crate::proxy::{ClientInfo, X_REQUEST_ID, set_forwarding_headers, strip_hop_by_hop};
use crate::state::{AppState, Generation};

pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response<Body> {
    let start = tokio::time::Instant::now();
    state.metrics.in_flight.inc();
    let generation = state.current();
    let info = ClientInfo::new(
        peer,
        tls,
        &generation.config.server.trusted_proxies,
        req.headers(),
    );
    // A trusted proxy's request id is kept (printable ASCII, at most 128
    // bytes); otherwise a new one. One header value, shared by the upstream
    // request and the answer.
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|_| info.trusted)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(crate::http_util::new_request_id);
    let method = req.method().clone();
    let mut log = AccessLog::default();
    let mut resp = handle_inner(&state, &generation, req, &info, &request_id, &mut log).await;
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id.clone());
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let m = &state.metrics;
    m.requests
        .with_label_values(&[log.route, log.decision.as_str(), class])
        .inc();
    m.request_seconds
        .with_label_values(&[log.route])
        .observe(elapsed.as_secs_f64());
    m.in_flight.dec();
    crate::telemetry::access(&crate::telemetry::AccessLine {
        // Printable ASCII by construction (see above).
        request_id: request_id.to_str().unwrap_or("-"),
        client: info.client_ip,
        method: method.as_str(),
        path: if log.path.is_empty() { "-" } else { &log.path },
        route: log.route,
        decision: log.decision.as_str(),
        reason: log.reason,
        user: log.user.as_deref().unwrap_or("-"),
        status,
        upstream_status: log.upstream_status.unwrap_or(0),
        latency_ms: elapsed.as_secs_f64() * 1000.0,
    });
    resp
}

async fn handle_inner<'g>(
    state: &AppState,
    generation: &'g Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    request_id: &HeaderValue,
    log: &mut AccessLog<'g>,
) -> Response<Body> {
    let cfg = &generation.config;
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let refuse = |r: Reject, mode: Mode, log: &mut AccessLog| {
        log.reject(&r);
        let mut resp = answer::reject(
            r,
            &answer::Ctx {
                mode,
                method: req.method(),
                headers: req.headers(),
                generation,
                here,
            },
        );
        answer::harden(&mut resp);
        resp
    };
    // hyper enforces the head size only roughly (by its read buffer), and
    // HTTP/2 by its own encoding: exact here, before anything is decided.
    if request_head_bytes(&req) > cfg.server.max_header_bytes {
        // Answered in the ingress's terms on `/verify` (nginx understands
        // only 2xx, 401 and 403); nothing is decided on this reading.
        let raw_verify = req
            .uri()
            .path()
            .strip_prefix(cfg.server.auth_prefix.as_str())
            .is_some_and(|r| r == "/verify" || r.starts_with("/verify/"));
        let mode = if raw_verify {
            Mode::ForwardAuth(cfg.forward_auth.mode)
        } else {
            Mode::Proxy
        };
        return refuse(Reject::HeadersTooLarge, mode, log);
    }
    // Not a forward proxy (see `proxy::connect_refused`).
    if req.method() == Method::CONNECT {
        log.reason = "CONNECT";
        return crate::proxy::connect_refused();
    }
    // 1. Facts: the canonical path (computed once) and the Host.
    let mut facts = match Facts::new(
        Mode::Proxy,
        req.method(),
        req.uri().path(),
        req.uri().query(),
        None,
        req.headers(),
    ) {
        Ok(f) => f,
        Err(r) => return refuse(r, Mode::Proxy, log),
    };
    facts.client_ip = Some(info.client_ip);
    log.path = facts.canon.match_path().to_owned();
    let prefix = cfg.server.auth_prefix.as_str();
    let hosted = crate::hosted::sub_path(&facts.canon, prefix);
    // Dot or empty segments on the way to (or out of) a hosted endpoint:
    // `/_auth/verify/../../admin` is `/admin` resolved, but Envoy's
    // `/verify/<original path>` (and any reader that does not resolve) sees
    // the verify endpoint. No hosted endpoint is reached by such a path.
    let raw_head = facts
        .canon
        .unresolved_head()
        .filter(|h| crate::hosted::is_hosted_path(h, prefix));
    // A `/verify` request is answered in its ingress's terms from the start.
    let verify_head = raw_head.is_some_and(|h| crate::hosted::is_verify(&h[prefix.len()..]));
    let mode = match &hosted {
        Ok(Some(sub)) if crate::hosted::is_verify(sub) => Mode::ForwardAuth(cfg.forward_auth.mode),
        _ if verify_head => Mode::ForwardAuth(cfg.forward_auth.mode),
        Ok(_) | Err(_) => Mode::Proxy,
    };
    if facts.canon.was_resolved() && (raw_head.is_some() || matches!(hosted, Ok(Some(_)))) {
        return refuse(
            Reject::BadRequest("dot or empty segments at a hosted endpoint"),
            mode,
            log,
        );
    }
    facts.host = match crate::decide::request_host(req.version(), req.uri(), req.headers()) {
        Ok(h) => h,
        Err(r) => return refuse(r, mode, log),
    };
    // 2. Hosted endpoints.
    match hosted {
        Err(r) => return refuse(r, mode, log),
        Ok(Some(sub)) => {
            drop(facts);
            log.decision = crate::decide::Decision::Hosted;
            log.route = "(hosted)";
            // Boxed: the hosted endpoints' futures are large and rare; the
            // proxy path's future stays small (it is moved per request).
            return Box::pin(crate::hosted::dispatch(
                state, generation, req, info, &sub, log,
            ))
            .await;
        }
        Ok(None) => {}
    }
    // 3. The decision.
    let verdict = match crate::decide::decide(state, generation, &facts).await {
        Ok(v) => v,
        Err(r) => {
            if let Reject::Unauthenticated { cookies, .. } = &r
                && let Some(mut icon) =
                    crate::favicon::for_signed_out(req.method(), facts.canon.match_path())
            {
                log.decision = crate::decide::Decision::Hosted;
                log.reason = "built-in favicon";
                append_cookies(&mut icon, cookies);
                return icon;
            }
            // The route that refused, for logs and metrics.
            if let Ok(t) = crate::decide::route(generation, &facts) {
                log.route = t.name();
            }
            return refuse(r, Mode::Proxy, log);
        }
    };
    log.verdict(&verdict);
    let path_and_query = forward_path(&verdict.target, &facts.canon, facts.query);
    drop(facts);
    // 4. Forward.
    let forwarding = Forwarding {
        state,
        generation,
        info,
        request_id,
        path_and_query: &path_and_query,
    };
    match forwarding.send(req, verdict, log).await {
        Ok(resp) => resp,
        Err(failed) => {
            let (r, parts) = *failed;
            log.reject(&r);
            let mut resp = answer::reject(
                r,
                &answer::Ctx {
                    mode: Mode::Proxy,
                    method: &parts.method,
                    headers: &parts.headers,
                    generation,
                    here: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                },
            );
            answer::harden(&mut resp);
            resp
        }
    }
}

/// The upstream path + query: the canonical path (minus `strip_prefix`),
/// re-encoded; the query byte for byte.
fn forward_path(target: &Target<'_>, canon: &CanonicalPath, query: Option<&str>) -> String {
    let stripped = target.route().and_then(|r| r.strip(canon));
    let mut p = stripped.as_ref().unwrap_or(canon).to_forward();
    if let Some(q) = query {
        p.push('?');
        p.push_str(q);
    }
    p
}

/// Removes the gateway's own cookies from `Cookie` (all `Cookie` headers,
/// merged into one). A single `Cookie` header without any of them is left
/// as it came.
pub fn strip_gateway_cookies(generation: &Generation, headers: &mut HeaderMap) {
    let cookies = &generation.config.session.cookies;
    let mut kept = String::new();
    let mut changed = false;
    let mut count = 0;
    for v in headers.get_all(header::COOKIE) {
        count += 1;
        let Ok(v) = v.to_str() else {
            changed = true;
            continue;
        };
        for pair in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            if cookies.is_gateway_cookie(name) {
                changed = true;
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
    }
    if count == 0 || (count == 1 && !changed) {
        return;
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept)
    {
        headers.insert(header::COOKIE, v);
    }
}

/// The upstream leg of one request: identity headers, forwarding headers,
/// the stream, and the upstream's failures as rejects.
struct Forwarding<'a> {
    state: &'a AppState,
    generation: &'a Generation,
    info: &'a ClientInfo,
    request_id: &'a HeaderValue,
    path_and_query: &'a str,
}

/// A reject from the upstream leg, with the request head it answers.
type LegError = Box<(Reject, http::request::Parts)>;

impl Forwarding<'_> {
    /// The headers the upstream gets: hop-by-hop and special headers
    /// removed, the verified identity injected, the gateway's cookies and a
    /// consumed credential dropped, forwarding headers set. Returns the
    /// upgrade the client asked for, if any.
    fn rewrite_headers(
        &self,
        req: &mut Request<Body>,
        verdict: &Verdict<'_>,
        upstream: &crate::proxy::Upstream,
    ) -> Option<HeaderValue> {
        let Self {
            state,
            generation,
            info,
            request_id,
            ..
        } = *self;
        let cfg = &generation.config;
        // The Host the decision was made on (validated by then).
        let host = req
            .headers()
            .get(header::HOST)
            .filter(|v| v.to_str().is_ok())
            .cloned()
            .or_else(|| {
                req.uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
        let headers = req.headers_mut();
        let upgrade = strip_hop_by_hop(headers);
        crate::inbound::scrub(headers, info.trusted, &generation.identity);
        let identity = verdict.identity.as_ref();
        generation.identity.inject(
            headers,
            identity.map(|i| (i.claims.as_ref(), i.tenant.as_deref())),
        );
        strip_gateway_cookies(generation, headers);
        // The consumed Authorization header (a session JWT or an access
        // key) never goes on, unless forwarding the session is asked for.
        // With `forward_token = "authorization"` the header is the
        // gateway's: a client's own never reaches the app (on a public
        // route, or anonymous, it would pass for a verified session).
        if matches!(cfg.identity.forward_token, ForwardToken::Authorization)
            || ((cfg.session.accept_bearer || cfg.session.accept_access_keys)
                && crate::decide::bearer_token(headers).is_some())
        {
            headers.remove(header::AUTHORIZATION);
        }
        if let (Some(_), Some(jwt)) = (identity, verdict.session_jwt.as_deref()) {
            match &cfg.identity.forward_token {
                ForwardToken::None => {}
                ForwardToken::Authorization => {
                    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {jwt}")) {
                        headers.insert(header::AUTHORIZATION, v);
                    }
                }
                ForwardToken::Header(h) => {
                    if let Ok(v) = HeaderValue::from_str(jwt) {
                        headers.insert(h.clone(), v);
                    }
                }
            }
        }
        if let (Some(a), Some(id)) = (&cfg.identity.assertion, identity)
            && let Some(jwt) = state.assertion.sign(
                &cfg.server.public_origin,
                upstream.cfg.url.as_str(),
                &id.claims,
                id.tenant.as_deref(),
                a.ttl,
            )
            && let Ok(v) = HeaderValue::from_str(&jwt)
        {
            headers.insert(a.header.clone(), v);
        }
        set_forwarding_headers(headers, info, host, request_id);
        upgrade
    }

    async fn send(
        &self,
        req: Request<Incoming>,
        verdict: Verdict<'_>,
        log: &mut AccessLog<'_>,
    ) -> Result<Response<Body>, LegError> {
        let Self {
            state,
            generation,
            path_and_query,
            ..
        } = *self;
        let cfg = &generation.config;
        let (parts, body) = req.into_parts();
        let fail = |r: Reject, parts: http::request::Parts| Err(Box::new((r, parts)));
        if let Some(limit) = cfg.server.max_body_bytes
            && content_length(&parts.headers).is_some_and(|len| len > limit)
        {
            return fail(Reject::PayloadTooLarge("body too large"), parts);
        }
        let mut req = Request::from_parts(parts, crate::http_util::incoming(body));
        let Some(upstream) = generation.upstreams.get(verdict.target.upstream()) else {
            let (parts, _) = req.into_parts();
            return fail(
                Reject::Upstream {
                    reason: "unknown upstream",
                    status: http::StatusCode::BAD_GATEWAY,
                    code: "bad_gateway",
                    message: "The upstream is not available.",
                    cookies: verdict.cookies,
                },
                parts,
            );
        };
        if let Some(route) = verdict.target.route()
            && let Some(kind) =
                crate::method_override::body_to_inspect(route, req.method(), req.headers())
        {
            // The body is read whole before anything goes upstream: bounded
            // in time as well as in size, or a client trickling it would
            // hold the request (and up to 1 MiB) for as long as it likes.
            let head = head_of(&req);
            let read = Box::pin(inspect_body(req, route, &kind));
            req = match tokio::time::timeout(upstream.cfg.response_header_timeout, read).await {
                Ok(Ok(r)) => r,
                Ok(Err(failed)) => {
                    let (r, parts) = *failed;
                    return fail(r, parts);
                }
                Err(_) => {
                    return fail(
                        Reject::Upstream {
                            reason: "client body timeout",
                            status: http::StatusCode::REQUEST_TIMEOUT,
                            code: "request_timeout",
                            message: "The request body took too long to arrive.",
                            cookies: verdict.cookies,
                        },
                        head,
                    );
                }
            };
        }
        let upgrade = self.rewrite_headers(&mut req, &verdict, upstream);
        // Kept to answer an upstream failure: a page for browsers, JSON else.
        let head = head_of(&req);
        match upstream
            .forward(
                req,
                path_and_query,
                upgrade,
                cfg.server.max_body_bytes,
                &state.metrics.upstream_retries,
            )
            .await
        {
            Ok(mut resp) => {
                log.upstream_status = Some(resp.status().as_u16());
                append_cookies(&mut resp, &verdict.cookies);
                Ok(resp)
            }
            Err(e) => {
                if e.is_client_fault() {
                    tracing::debug!(upstream = %upstream.cfg.name, error = %e, "client body refused");
                } else {
                    state
                        .metrics
                        .upstream_errors
                        .with_label_values(&[e.kind()])
                        .inc();
                    tracing::warn!(upstream = %upstream.cfg.name, error = %e, "upstream failed");
                }
                let (code, message) = e.public_text();
                let r = Reject::Upstream {
                    reason: e.kind(),
                    status: e.status(),
                    code,
                    message,
                    cookies: verdict.cookies,
                };
                Err(Box::new((r, head)))
            }
        }
    }
}

/// The method, URI and `Accept` of a request: what an answer to it needs.
fn head_of<B>(req: &Request<B>) -> http::request::Parts {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = req.method().clone();
    parts.uri = req.uri().clone();
    if let Some(accept) = req.headers().get(header::ACCEPT) {
        parts.headers.insert(header::ACCEPT, accept.clone());
    }
    parts
}

/// The request line and headers' size, as HTTP/1.1 would spell them.
fn request_head_bytes<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    req.method().as_str().len() + target + 12 + crate::proxy::header_bytes(req.headers())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a body that may carry a `_method` override (see
/// [`crate::method_override`]) and judges it; on success the request goes on
/// with the same bytes, buffered.
async fn inspect_body(
    req: Request<Body>,
    route: &Route,
    kind: &crate::method_override::BodyKind,
) -> Result<Request<Body>, LegError> {
    use crate::method_override::MAX_INSPECTED_BODY;
    let too_large = Reject::PayloadTooLarge("body too large to inspect for method overrides");
    let (parts, mut body) = req.into_parts();
    if content_length(&parts.headers).is_some_and(|n| n > MAX_INSPECTED_BODY as u64) {
        return Err(Box::new((too_large, parts)));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Box::new((
                Reject::BadRequest("request body unreadable"),
                parts,
            )));
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_INSPECTED_BODY {
                return Err(Box::new((too_large, parts)));
            }
            buf.extend_from_slice(&data);
        }
    }
    let bytes = buf.freeze();
    if !crate::method_override::body_allowed(route, kind, &bytes).await {
        return Err(Box::new((
            Reject::MethodNotAllowed(
                "method override not allowed",
                crate::decide::allow_header(route),
            ),
            parts,
        )));
    }
    Ok(Request::from_parts(parts, crate::http_util::full(bytes)))
}
