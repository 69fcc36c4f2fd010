//! Request routing: which module serves a path. Nothing else lives here, and
//! no other module depends on this one (the server calls [`dispatch`]).

use http::{Method, StatusCode};

use crate::http::{Req, Resp, error, not_found};
use crate::shared::Shared;
use crate::{access_keys, auth, control, cors, flow, flow_pages, mgmt, npm, pages, session};

/// Routes one request; answers CORS preflights and adds the CORS headers of
/// a loopback page's origin (`cors.rs`).
pub(crate) fn dispatch(shared: &Shared, req: &Req) -> Resp {
    if let Some(resp) = cors::preflight(req) {
        return resp;
    }
    let mut resp = route(shared, req);
    cors::decorate(req, &mut resp);
    resp
}

fn route(shared: &Shared, req: &Req) -> Resp {
    let path = req.path.as_str();
    if let Some(rest) = path.strip_prefix("/emulator/") {
        return control::handle(shared, req, rest);
    }
    if let Some(pid) = path.strip_prefix("/v2/keys/") {
        return session::keys(shared, req, pid, true);
    }
    if let Some(pid) = path.strip_prefix("/v1/keys/") {
        return session::keys(shared, req, pid, false);
    }
    if path.starts_with("/v1/mgmt/") || path.starts_with("/v2/mgmt/") {
        return mgmt::handle(shared, req);
    }
    if let Some(rest) = path.strip_prefix("/pages/") {
        return flow_pages::serve(shared, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/npm/") {
        return npm::serve(shared.web_components.as_ref(), req, rest);
    }
    if path.starts_with("/v1/flow/") {
        if let Some(resp) = check_project(shared, req) {
            return resp;
        }
        return match (&req.method, path) {
            (&Method::POST, "/v1/flow/start") => flow::handle(shared, req, false),
            (&Method::POST, "/v1/flow/next") => flow::handle(shared, req, true),
            _ => not_found(),
        };
    }
    if path.starts_with("/v1/auth/") {
        if let Some(resp) = check_project(shared, req) {
            return resp;
        }
        return match (&req.method, path) {
            (&Method::POST, "/v1/auth/refresh") => session::refresh(shared, req, false),
            (&Method::POST, "/v1/auth/try-refresh") => session::refresh(shared, req, true),
            (&Method::POST, "/v1/auth/logout") => session::logout(shared, req, false),
            (&Method::POST, "/v1/auth/logoutall") => session::logout(shared, req, true),
            (&Method::GET, "/v1/auth/me") => session::me(shared, req),
            (&Method::POST, "/v1/auth/me/tenants") => session::me_tenants(shared, req),
            (&Method::GET, "/v1/auth/me/history") => session::me_history(shared, req),
            (&Method::POST, "/v1/auth/tenant/select") => session::select_tenant(shared, req),
            (&Method::POST, "/v1/auth/validate") => session::validate(shared, req),
            (&Method::POST, "/v1/auth/accesskey/exchange") => access_keys::exchange(shared, req),
            _ => auth::handle(shared, req).unwrap_or_else(not_found),
        };
    }
    pages::handle(shared, req).unwrap_or_else(not_found)
}

/// `401` when the Authorization header names another project.
fn check_project(shared: &Shared, req: &Req) -> Option<Resp> {
    let parts = req.bearer_parts();
    let pid = parts.first()?;
    (pid != &shared.project_id).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "E011003",
            "Unauthorized",
            "The project id in the Authorization header does not match",
        )
    })
}
