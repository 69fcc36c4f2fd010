//! The static files of the emulator's Descope Flows, where `<descope-wc>`
//! looks for them when `base-url` is the emulator:
//! `GET /pages/{projectId}/v2-beta/{file}` (sdk-mixins
//! `staticResourcesMixin`).
//!
//! - `config.json`: `componentsVersion` (the `@descope/web-components-ui`
//!   version the component loads: the one installed in `--web-components`,
//!   else [`DEFAULT_COMPONENTS_VERSION`]), the flows [`FLOW_IDS`] at version
//!   1, and telemetry off.
//! - `theme.json`: generated from the UI package's default light and dark
//!   themes with every public URL (fonts, placeholder images) removed, so
//!   rendering a flow loads nothing from the internet
//!   (`tests/e2e/flow-theme.mjs` regenerates and checks it).
//! - `{screen}.html`: the screens of [`crate::state::FlowScreen`], made of
//!   web-components-ui elements; a button's `id` is the `interactionId` of
//!   the `flow/next` it triggers, named fields are its `input`.
//!
//! Everything here is public, like Descope's static host: `Access-Control-
//! Allow-Origin: *`, no credentials.

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::http::{Req, Resp, error};
use crate::options::DEFAULT_COMPONENTS_VERSION;
use crate::shared::Shared;
use crate::state::FlowScreen;

/// The flow ids the emulator runs: sign-in only (users must exist), and
/// sign-up-or-in (an unknown email becomes a user).
pub(crate) const FLOW_IDS: [&str; 2] = ["sign-in", "sign-up-or-in"];

/// The generated theme (see the module docs).
const THEME: &str = include_str!("../assets/flow/theme.json");

impl FlowScreen {
    /// The screen id (its file is `{id}.html`).
    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::OtpCode => "otp-code",
            Self::LinkSent => "magic-link-sent",
        }
    }

    /// The step name the component logs.
    pub(crate) fn step_name(self) -> &'static str {
        match self {
            Self::Welcome => "Welcome",
            Self::OtpCode => "Enter one-time code",
            Self::LinkSent => "Magic link sent",
        }
    }

    fn html(self) -> &'static str {
        match self {
            Self::Welcome => include_str!("../assets/flow/welcome.html"),
            Self::OtpCode => include_str!("../assets/flow/otp-code.html"),
            Self::LinkSent => include_str!("../assets/flow/magic-link-sent.html"),
        }
    }

    fn by_file(file: &str) -> Option<Self> {
        [Self::Welcome, Self::OtpCode, Self::LinkSent]
            .into_iter()
            .find(|s| file.strip_suffix(".html") == Some(s.id()))
    }
}

/// The `componentsVersion` the flows ask for.
pub(crate) fn components_version(shared: &Shared) -> String {
    shared
        .web_components
        .as_ref()
        .and_then(|w| w.version("@descope/web-components-ui"))
        .unwrap_or(DEFAULT_COMPONENTS_VERSION)
        .to_owned()
}

fn file(content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

/// `GET /pages/{projectId}/v2-beta/{file}`; `rest` is the part after `/pages/`.
pub(crate) fn serve(shared: &Shared, req: &Req, rest: &str) -> Resp {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "E011404",
            "Not found",
            "No such flow file in this emulator",
        )
    };
    if req.method != Method::GET && req.method != Method::HEAD {
        return not_found();
    }
    let Some((pid, file_name)) = rest.split_once("/v2-beta/") else {
        return not_found();
    };
    if pid != shared.project_id {
        return not_found();
    }
    match file_name {
        "config.json" => {
            let flows: serde_json::Map<String, serde_json::Value> = FLOW_IDS
                .iter()
                .map(|id| ((*id).to_owned(), json!({ "version": 1 })))
                .collect();
            let config = json!({
                "componentsVersion": components_version(shared),
                "flows": flows,
                "telemetry": { "enabled": false },
            });
            file("application/json", config.to_string())
        }
        "theme.json" => file("application/json", THEME),
        other => match FlowScreen::by_file(other) {
            Some(screen) => file("text/html; charset=utf-8", screen.html()),
            None => not_found(),
        },
    }
}
