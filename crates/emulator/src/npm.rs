//! The npm libraries of Descope's web component, served CDN-style from a
//! local `node_modules` folder (`--web-components DIR`):
//! `GET /npm/{package}@{version}/{path}`, the URL shape `<descope-wc>`
//! builds from `base-cdn-url` (sdk-mixins `injectNpmLibMixin`).
//!
//! Only the two packages the component needs are served
//! (`@descope/web-component`, `@descope/web-components-ui`), only at the
//! version installed in DIR, and only regular files inside the package's
//! own folder: no `..`, no dot-files, no percent-encoding, no backslashes,
//! and a symlink that leads out of the package is refused after
//! canonicalisation. The packages are not part of this repository; the
//! tests install them from npm.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::http::{Req, Resp, error};

/// The packages served, in the order `WebComponents::load` reads them.
pub(crate) const PACKAGES: [&str; 2] = ["@descope/web-component", "@descope/web-components-ui"];

/// Why a `--web-components` folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebComponentsError {
    #[error(
        "--web-components {dir}: {package} is not installed there ({reason}); DIR must be a \
         node_modules folder holding @descope/web-component and @descope/web-components-ui \
         (npm install @descope/web-component @descope/web-components-ui)"
    )]
    Missing {
        dir: PathBuf,
        package: &'static str,
        reason: String,
    },
}

/// One installed package.
#[derive(Debug, Clone)]
struct Package {
    name: &'static str,
    version: String,
    /// Canonical path of the package folder.
    root: PathBuf,
}

/// The packages found in a `node_modules` folder.
#[derive(Debug, Clone)]
pub struct WebComponents {
    packages: Vec<Package>,
}

impl WebComponents {
    /// Reads `{dir}/{package}/package.json` of both packages.
    pub fn load(dir: &Path) -> Result<Self, WebComponentsError> {
        let mut packages = Vec::new();
        for name in PACKAGES {
            let missing = |reason: String| WebComponentsError::Missing {
                dir: dir.to_path_buf(),
                package: name,
                reason,
            };
            let root = dir
                .join(name)
                .canonicalize()
                .map_err(|e| missing(e.to_string()))?;
            let manifest = std::fs::read(root.join("package.json"))
                .map_err(|e| missing(format!("package.json: {e}")))?;
            let manifest: serde_json::Value = serde_json::from_slice(&manifest)
                .map_err(|e| missing(format!("package.json: {e}")))?;
            let version = manifest
                .get("version")
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty() && !v.contains('/'))
                .ok_or_else(|| missing("package.json has no version".to_owned()))?
                .to_owned();
            packages.push(Package {
                name,
                version,
                root,
            });
        }
        Ok(Self { packages })
    }

    /// The installed version of a served package.
    pub fn version(&self, package: &str) -> Option<&str> {
        self.packages
            .iter()
            .find(|p| p.name == package)
            .map(|p| p.version.as_str())
    }

    /// The file `path` (e.g. `dist/index.js`) of an installed package, when
    /// the emulator would serve it.
    pub fn file(&self, package: &str, path: &str) -> Option<PathBuf> {
        let version = self.version(package)?;
        self.resolve(&format!("{package}@{version}/{path}"))
    }

    /// The file a request path (`{package}@{version}/{path}`, after `/npm/`)
    /// names, or `None` when it is not one this folder serves.
    fn resolve(&self, rest: &str) -> Option<PathBuf> {
        // `@descope/web-component` is a prefix of `@descope/web-components-ui`:
        // the name must end at the `@` of the version.
        let (package, tail) = self.packages.iter().find_map(|p| {
            rest.strip_prefix(p.name)
                .and_then(|t| t.strip_prefix('@'))
                .map(|tail| (p, tail))
        })?;
        let (version, file) = tail.split_once('/')?;
        if version != package.version {
            return None;
        }
        let mut path = package.root.clone();
        for segment in file.split('/') {
            let plain = !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '@'));
            if !plain {
                return None;
            }
            path.push(segment);
        }
        // A symlink must not lead out of the package.
        let real = path.canonicalize().ok()?;
        (real.starts_with(&package.root) && real.is_file()).then_some(real)
    }
}

/// The content type of a served file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET|HEAD /npm/{package}@{version}/{path}`.
pub(crate) fn serve(web_components: Option<&WebComponents>, req: &Req, rest: &str) -> Resp {
    let not_here = || {
        error(
            StatusCode::NOT_FOUND,
            "E011404",
            "Not found",
            "The emulator serves @descope/web-component and @descope/web-components-ui, at \
             their installed versions, when started with --web-components",
        )
    };
    if req.method != Method::GET && req.method != Method::HEAD {
        return not_here();
    }
    let Some(path) = web_components.and_then(|w| w.resolve(rest)) else {
        return not_here();
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return not_here();
    };
    let body = if req.method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(bytes)
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    // Versioned URLs never change, like a CDN's.
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    resp
}
