//! Forward-auth decisions (`{auth_prefix}/verify[/*]`, DESIGN §5.1) for
//! nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`.
//!
//! Only peers in `[forward_auth] trusted_callers` may ask. The `mode` fixes
//! where the original request is read from, and only there. The original URI
//! goes through the same canonicalization and route rules as proxied traffic.
//! A 200 names every identity header (empty when the claim is absent) so the
//! ingress overwrites all of them; nginx mode answers only 200, 401 or 403.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::{AppState, Generation};
use crate::canon::CanonicalPath;
use crate::config::ForwardAuthMode;
use crate::http_util::{Body, json_error, respond};
use crate::pipeline::{
    AccessLog, Decision, Matched, Target, append_cookies, match_route, resolve_session,
};
use crate::policy::Access;
use crate::proxy::ClientInfo;

/// The original request as the ingress describes it.
struct Original {
    method: Method,
    path: String,
    query: Option<String>,
    host: Option<String>,
}

pub async fn handle(
    state: &AppState,
    generation: &Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    log: &mut AccessLog,
) -> Response<Body> {
    let cfg = &generation.config;
    let mode = cfg.forward_auth.mode;
    let nginx = mode == ForwardAuthMode::Nginx;
    if !cfg
        .forward_auth
        .trusted_callers
        .iter()
        .any(|n| n.contains(&info.peer.ip()))
    {
        log.decision = Decision::Forbidden;
        log.reason = "verify caller not trusted";
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This caller may not ask for decisions.",
        );
    }
    let original = match read_original(mode, &req, &cfg.server.auth_prefix) {
        Some(o) => o,
        None => {
            log.decision = Decision::Invalid;
            log.reason = "verify: missing or malformed original URI";
            return bad_request(nginx);
        }
    };
    let Ok(canon) = CanonicalPath::parse(&original.path) else {
        log.decision = Decision::Invalid;
        log.reason = "verify: bad original path";
        return bad_request(nginx);
    };
    // The ingress hands the app the original bytes, not our canonical form:
    // a path canonicalization would restructure (dot or empty segments) is
    // never judged on a cleaned-up copy of itself.
    if canon.was_resolved() {
        log.decision = Decision::Invalid;
        log.reason = "verify: original path has dot or empty segments";
        return bad_request(nginx);
    }
    if crate::canon::encodes_unreserved(&original.path) {
        log.decision = Decision::Invalid;
        log.reason = "verify: original path encodes letters, digits or -._~";
        return bad_request(nginx);
    }
    log.path = canon.match_path().to_string();
    // The hosted endpoints themselves are always reachable (login must work).
    let prefix = cfg.server.auth_prefix.as_str();
    let mp = canon.match_path();
    // `;parameters` on the prefix (`/_auth;x/admin`) are dropped for
    // matching, but an ingress routes that spelling to the app, not to us:
    // judge it by the route rules instead of waving it through.
    let prefix_segments = prefix.split('/').filter(|s| !s.is_empty()).count();
    let prefix_spelled_plainly = canon
        .segments()
        .iter()
        .take(prefix_segments)
        .all(|s| s.params.is_empty());
    if crate::pipeline::is_hosted_path(mp, prefix) && prefix_spelled_plainly {
        // An encoded slash (`/_auth%2Fadmin`) is no hosted endpoint: the
        // ingress or the app may well route that spelling to the app.
        if canon.has_encoded_slash() {
            log.decision = Decision::Invalid;
            log.reason = "encoded slash";
            return bad_request(nginx);
        }
        log.decision = Decision::Allowed;
        log.reason = "hosted endpoint";
        return allow(generation, None, Vec::new());
    }
    let host = original.host.as_deref();
    let preflight = original.method == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let target = match match_route(generation, host, &canon, &original.method, preflight) {
        Matched::BadPath => {
            log.decision = Decision::Invalid;
            log.reason = "encoded slash";
            return bad_request(nginx);
        }
        Matched::AmbiguousCase => {
            log.decision = Decision::Invalid;
            log.reason = "letter case selects another route";
            return bad_request(nginx);
        }
        Matched::Deny(r) => {
            log.decision = Decision::Forbidden;
            log.reason = r;
            return forbidden();
        }
        Matched::MethodNotAllowed => {
            log.decision = Decision::Forbidden;
            log.reason = "method not allowed";
            return if nginx {
                forbidden()
            } else {
                json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "This method is not allowed here.",
                )
            };
        }
        Matched::Target(t) => t,
    };
    log.route = target.name().to_string();
    // The ingress forwards the client's method-override headers to the app
    // as they are: judge them as the proxy path does.
    if let Target::Route(r, _) = &target
        && !crate::method_override::head_allowed(r, req.headers(), original.query.as_deref())
    {
        log.decision = Decision::Forbidden;
        log.reason = "method override not allowed";
        return if nginx {
            forbidden()
        } else {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            )
        };
    }
    let (access, preflight_ok) = target.access();

    if access == Access::Public || (preflight_ok && preflight) {
        log.decision = Decision::Allowed;
        log.reason = "public";
        return allow(generation, None, Vec::new());
    }
    let session = resolve_session(state, generation, req.headers()).await;
    let Some(claims) = session.claims.clone() else {
        if access == Access::Optional && session.unavailable.is_none() {
            log.decision = Decision::Allowed;
            log.reason = "optional; anonymous";
            return allow(generation, None, session.set_cookies);
        }
        if let Some(retry) = session.unavailable {
            log.decision = Decision::Unavailable;
            log.reason = "descope unavailable";
            if access == Access::Optional {
                return allow(generation, None, Vec::new());
            }
            if !nginx {
                return crate::pipeline::unavailable(&original.method, req.headers(), retry);
            }
        }
        log.decision = Decision::Unauthenticated;
        log.reason = session.reason;
        let browser = crate::http_util::is_browser_navigation(&original.method, req.headers());
        let mut resp = if mode == ForwardAuthMode::Traefik && browser {
            let mut return_to = canon.to_forward();
            if let Some(q) = &original.query {
                return_to.push('?');
                return_to.push_str(q);
            }
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &return_to)
                .finish();
            let location = format!(
                "{}{}/login?{q}",
                cfg.server.public_origin, cfg.server.auth_prefix
            );
            let mut r = respond(StatusCode::FOUND, "text/plain", "");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        } else {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A valid session is required.",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        };
        append_cookies(&mut resp, &session.set_cookies);
        return resp;
    };
    log.user = claims.subject().map(str::to_string);
    let tenant = match target.authorize(&claims, req.headers()) {
        Ok(tenant) => tenant,
        Err(_) => {
            log.decision = Decision::Forbidden;
            log.reason = "rules denied";
            let mut r = forbidden();
            append_cookies(&mut r, &session.set_cookies);
            return r;
        }
    };
    log.decision = Decision::Allowed;
    log.reason = "authorized";
    allow(
        generation,
        Some((&claims, tenant.as_deref())),
        session.set_cookies,
    )
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
            get("x-original-method").unwrap_or("GET").to_string(),
            get("x-original-uri")?.to_string(),
        ),
        ForwardAuthMode::Traefik => (
            get("x-forwarded-method").unwrap_or("GET").to_string(),
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
            (req.method().as_str().to_string(), u)
        }
    };
    let method = Method::from_bytes(method.as_bytes()).ok()?;
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
    let host = match mode {
        ForwardAuthMode::Traefik => get("x-forwarded-host"),
        // Only the request's own Host: nothing in the documented ingress
        // setup overwrites `X-Original-Host`, so under nginx `auth_request`
        // (which passes client headers to the subrequest) it would be the
        // client's word, letting it pick a laxer host route (the mode fixes
        // where the original request is read from).
        ForwardAuthMode::Nginx | ForwardAuthMode::Envoy => get("host"),
    };
    // The same host grammar as the proxy path: `admin.test:x` is refused,
    // not judged as a host no route names.
    let host = match host {
        Some(h) => Some(crate::host::parse(h).ok()?.normalized()),
        None => None,
    };
    Some(Original {
        method,
        path,
        query,
        host,
    })
}

fn bad_request(nginx: bool) -> Response<Body> {
    if nginx {
        // nginx's auth_request only understands 2xx, 401 and 403.
        forbidden()
    } else {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The original request URI is missing or malformed.",
        )
    }
}

fn forbidden() -> Response<Body> {
    json_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "You are not allowed to access this resource.",
    )
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
