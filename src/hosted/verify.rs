//! Forward-auth decisions (`{auth_prefix}/verify[/*]`, README "Forward-auth") for
//! nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`.
//!
//! Only peers in `[forward_auth] trusted_callers` may ask. The `mode` fixes
//! where the original request is read from, and only there. The original URI
//! goes through the same canonicalization and route rules as proxied traffic.
//! A 200 names every identity header (empty when the claim is absent) so the
//! ingress overwrites all of them; nginx mode answers only 200, 401 or 403.

use http::header::{HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::answer::{self, append_cookies};
use crate::config::ForwardAuthMode;
use crate::decide::{AccessLog, Facts, Mode, Reject, Verdict};
use crate::http_util::{Body, respond};
use crate::proxy::ClientInfo;
use crate::state::{AppState, Generation};

/// The original request as the ingress describes it.
struct Original {
    method: Method,
    /// The ingress named the method (else GET is assumed, which is only
    /// good enough where the route does not limit methods).
    method_given: bool,
    path: String,
    query: Option<String>,
    host: Option<String>,
}

pub async fn handle<'g>(
    state: &AppState,
    generation: &'g Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    log: &mut AccessLog<'g>,
) -> Response<Body> {
    let cfg = &generation.config;
    let mode = cfg.forward_auth.mode;
    let original = read_original(mode, &req, &cfg.server.auth_prefix);
    let method = original.as_ref().map_or(Method::GET, |o| o.method.clone());
    let outcome = decide(state, generation, &req, info, original, log).await;
    match outcome {
        Ok(None) => allow(generation, None, Vec::new()),
        Ok(Some(v)) => {
            log.verdict(&v);
            let identity = v
                .identity
                .as_ref()
                .map(|i| (i.claims.as_ref(), i.tenant.as_deref()));
            allow(generation, identity, v.cookies)
        }
        Err(r) => {
            log.reject(&r);
            answer::reject(
                r,
                &answer::Ctx {
                    mode: Mode::ForwardAuth(mode),
                    method: &method,
                    headers: req.headers(),
                    generation,
                    here: "/",
                },
            )
        }
    }
}

/// The decision on the original request; `Ok(None)`: a hosted endpoint,
/// always reachable (login must work).
async fn decide<'g>(
    state: &AppState,
    generation: &'g Generation,
    req: &Request<Incoming>,
    info: &ClientInfo,
    original: Option<Original>,
    log: &mut AccessLog<'g>,
) -> Result<Option<Verdict<'g>>, Reject> {
    let cfg = &generation.config;
    if !crate::proxy::in_nets(&cfg.forward_auth.trusted_callers, info.peer.ip()) {
        return Err(Reject::Forbidden {
            reason: "verify caller not trusted",
            cookies: Vec::new(),
        });
    }
    let original = original.ok_or(Reject::BadRequest(
        "verify: missing or malformed original URI",
    ))?;
    // A path override (`X-Original-URL`, `X-Rewrite-URL`, any spelling)
    // reaches the app with the original request, where IIS-style rewriting
    // serves the path it names instead of the one judged here; the proxy
    // path removes it, forward-auth can only refuse.
    // ingress-nginx writes `X-Original-URL: $scheme://$http_host$request_uri`
    // itself: accepted when it names exactly the path judged.
    let names_original = |v: &HeaderValue| {
        cfg.forward_auth.mode == ForwardAuthMode::Nginx
            && v.to_str()
                .ok()
                .and_then(|s| s.parse::<http::Uri>().ok())
                .filter(|u| u.scheme().is_some())
                .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
                .is_some_and(|p| {
                    req.headers()
                        .get("x-original-uri")
                        .is_some_and(|o| o.as_bytes() == p.as_bytes())
                })
    };
    if req.headers().iter().any(|(k, v)| {
        crate::inbound::classify(k.as_str(), &generation.identity)
            == Some(crate::inbound::Special::PathOverride)
            && !(k == "x-original-url" && names_original(v))
    }) {
        return Err(Reject::BadRequest("path override header"));
    }
    // The ingress replaces the gateway's identity headers on the way to the
    // app in their own spelling only; `X_Auth_User_Id` would reach an app
    // that folds `_` into `-` (CGI, PHP, WSGI, Rack) as the user id. No one
    // but a forger sends the gateway's own names in another spelling.
    if req.headers().keys().any(|k| {
        k.as_str().contains('_') && {
            let n = crate::identity::normalize_name(k.as_str());
            generation
                .identity
                .all_names()
                .iter()
                .any(|own| own.as_str() == n)
        }
    }) {
        return Err(Reject::BadRequest("identity header in another spelling"));
    }
    let mut facts = Facts::new(
        Mode::ForwardAuth(cfg.forward_auth.mode),
        &original.method,
        &original.path,
        original.query.as_deref(),
        original.host.clone(),
        req.headers(),
    )?;
    facts.client_ip = Some(info.client_ip);
    log.path = facts.canon.match_path().to_owned();
    // `;parameters` on the prefix (`/_auth;x/admin`) are dropped for
    // matching, but an ingress routes that spelling to the app, not to us:
    // judge it by the route rules instead of waving it through.
    let prefix = cfg.server.auth_prefix.as_str();
    let prefix_segments = prefix.split('/').filter(|s| !s.is_empty()).count();
    let prefix_spelled_plainly = facts
        .canon
        .segments()
        .iter()
        .take(prefix_segments)
        .all(|s| s.params.is_empty());
    // Only the gateway's own endpoints are waved through: another path
    // under the prefix may be one the ingress sends to the app, so the
    // route rules judge it.
    let endpoint = crate::hosted::is_hosted_path(facts.canon.match_path(), prefix)
        && facts
            .canon
            .match_path()
            .get(prefix.trim_end_matches('/').len()..)
            .is_some_and(crate::hosted::is_endpoint);
    if endpoint && prefix_spelled_plainly {
        // An encoded slash (`/_auth%2Fadmin`) is no hosted endpoint: the
        // ingress or the app may well route that spelling to the app.
        if facts.canon.has_encoded_slash() {
            return Err(Reject::BadRequest("encoded slash"));
        }
        log.reason = "hosted endpoint";
        log.decision = crate::decide::Decision::Allowed;
        return Ok(None);
    }
    // Without the original method a POST would be judged as GET: refused
    // where the route's rules depend on the method.
    if !original.method_given
        && crate::decide::route(generation, &facts)
            .is_ok_and(|t| t.route().is_some_and(|r| r.methods().is_some()))
    {
        return Err(Reject::BadRequest(
            "no original method, and the route limits methods",
        ));
    }
    let verdict = crate::decide::decide(state, generation, &facts).await;
    if let Ok(t) = crate::decide::route(generation, &facts) {
        log.route = t.name();
    }
    verdict.map(Some)
}

fn read_original(mode: ForwardAuthMode, req: &Request<Incoming>, prefix: &str) -> Option<Original> {
    let h = req.headers();
    for name in [
        "x-original-uri",
        "x-original-method",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-forwarded-host",
    ] {
        if h.get_all(name).iter().count() > 1 {
            return None;
        }
    }
    let get = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (method, uri) = match mode {
        ForwardAuthMode::Nginx => (
            get("x-original-method").map(str::to_owned),
            get("x-original-uri")?.to_string(),
        ),
        ForwardAuthMode::Traefik => (
            get("x-forwarded-method").map(str::to_owned),
            get("x-forwarded-uri")?.to_string(),
        ),
        ForwardAuthMode::Envoy => {
            // The raw path after `{prefix}/verify`, taken from the request
            // target itself (not from the canonical form of the whole path).
            let raw = req.uri().path();
            let after = raw.strip_prefix(prefix)?.strip_prefix("/verify")?;
            // Envoy appends the original path (always starting with `/`)
            // to the configured prefix: `/_auth/verify/` is the root.
            if !after.starts_with('/') {
                return None;
            }
            let mut u = after.to_string();
            if let Some(q) = req.uri().query() {
                u.push('?');
                u.push_str(q);
            }
            (Some(req.method().as_str().to_string()), u)
        }
    };
    let method_given = method.is_some();
    let method = Method::from_bytes(method.as_deref().unwrap_or("GET").as_bytes()).ok()?;
    if !uri.starts_with('/') {
        return None;
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (uri, None),
    };
    if path.contains('#') || path.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    // The same host grammar as the proxy path: `admin.test:x` is refused,
    // not judged as a host no route names.
    let host = match mode {
        ForwardAuthMode::Traefik => match get("x-forwarded-host") {
            Some(h) => Some(crate::host::parse(h).ok()?.normalized()),
            None => None,
        },
        // Only the request's own host (`Host`, or HTTP/2's `:authority`,
        // checked as on the proxy path): nothing in the documented ingress
        // setup overwrites `X-Original-Host`, so under nginx `auth_request`
        // (which passes client headers to the subrequest) it would be the
        // client's word, letting it pick a laxer host route (the mode fixes
        // where the original request is read from).
        ForwardAuthMode::Nginx | ForwardAuthMode::Envoy => {
            crate::decide::request_host(req.version(), req.uri(), req.headers()).ok()?
        }
    };
    Some(Original {
        method,
        method_given,
        path,
        query,
        host,
    })
}

/// 200 with every identity header name (empty when absent) and refreshed cookies.
fn allow(
    generation: &Generation,
    identity: Option<(&crate::claims::Claims, Option<&str>)>,
    cookies: Vec<HeaderValue>,
) -> Response<Body> {
    let mut resp = respond(StatusCode::OK, "text/plain", "");
    let mut values = HeaderMap::new();
    if let Some((claims, tenant)) = identity {
        for (h, v) in generation.identity.values(claims, tenant) {
            values.insert(h, v);
        }
    }
    for name in generation.identity.all_names() {
        let v = values
            .get(name)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        resp.headers_mut().insert(name.clone(), v);
    }
    append_cookies(&mut resp, &cookies);
    resp
}
