//! Request routing: which module serves a path. Nothing else lives here, and
//! no other module depends on this one (the server calls [`dispatch`]).

use http::{Method, StatusCode};

use crate::http::{Req, Resp, error, not_found};
use crate::shared::Shared;
use crate::{access_keys, auth, control, mgmt, pages, session};

/// Routes one request.
pub(crate) fn dispatch(shared: &Shared, req: &Req) -> Resp {
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
