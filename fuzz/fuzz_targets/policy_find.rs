//! `Policy::find` + `Route::authorize` on arbitrary canonical paths, hosts,
//! claims and headers, against a fixed route table compiled once (both
//! case-sensitive and case-insensitive). Never panics; a match's captures
//! are consistent with the path.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use portcullis::canon::CanonicalPath;
use portcullis::claims::Claims;
use portcullis::policy::{CompileContext, Policy, PolicyToml, RouteToml};
use serde_json::{Map, Value, json};

const ROUTES: &str = r#"
[[routes]]
path = "/healthz"
access = "public"

[[routes]]
host = "*.admin.example.com"
path = "/**"
roles = ["admin"]
require_mfa = true

[[routes]]
path = "/admin/**"
methods = ["GET", "POST"]
roles = ["admin"]
any_permissions = ["admin:read", "admin:write"]

[[routes]]
path = "/t/{tenant}/**"
tenant = "{tenant}"
any_tenant_roles = ["member", "owner"]

[[routes]]
path = "/h/*/x/{id}"
tenant = "header:X-Tenant-Id"
tenant_permissions = ["read"]

[[routes]]
path = "/dct/**"
tenant = "dct"
tenant_roles = ["owner"]

[[routes]]
path = "/lit/**"
tenant = "T-literal"
any_tenant_permissions = ["p1", "p2"]

[[routes]]
path_regex = "/re/(?P<year>[0-9]{4})/[^/]+"
claims = { plan = ["pro", "team"], verified = true, level = 3 }

[[routes]]
path = "/api/**"
upstream = "billing"
strip_prefix = "/api"
allow_encoded_slash = true
permissions = ["api"]
unauthenticated = "401"

[[routes]]
host = "exact.example.com"
path = "/{a}/{b}"
access = "optional"

[[routes]]
path = "/deny/**"
access = "deny"

[[routes]]
path = "/**"
"#;

#[derive(serde::Deserialize)]
struct Doc {
    routes: Vec<RouteToml>,
}

fn policies() -> &'static [Policy; 2] {
    static P: OnceLock<[Policy; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let doc: Doc = toml::from_str(ROUTES).expect("fixed routes parse");
        let upstreams = vec!["default".to_owned(), "billing".to_owned()];
        let compile = |ci| {
            let p = Policy::compile(
                &doc.routes,
                &PolicyToml::default(),
                &CompileContext {
                    case_insensitive_paths: ci,
                    upstreams: &upstreams,
                },
            )
            .unwrap_or_else(|e| panic!("fixed routes compile: {e:?}"));
            let _ = p.lints();
            let _ = p.describe();
            p
        };
        [compile(false), compile(true)]
    })
}

#[derive(Debug, Arbitrary)]
struct Tenant {
    id: String,
    roles: Vec<String>,
    permissions: Vec<String>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    path: String,
    host: Option<String>,
    method: u8,
    roles: Vec<String>,
    permissions: Vec<String>,
    tenants: Vec<Tenant>,
    dct: Option<String>,
    amr: Vec<String>,
    scalars: Vec<(String, String)>,
    /// Raw JSON whose object members override the claims above.
    raw_claims: Option<String>,
    tenant_header: Option<Vec<u8>>,
    extra_header: Option<(String, Vec<u8>)>,
}

fn claims(input: &Input) -> Claims {
    let mut m = Map::new();
    m.insert("sub".into(), json!("U1"));
    m.insert("roles".into(), json!(input.roles));
    m.insert("permissions".into(), json!(input.permissions));
    let tenants: Map<String, Value> = input
        .tenants
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                json!({"roles": t.roles, "permissions": t.permissions}),
            )
        })
        .collect();
    m.insert("tenants".into(), Value::Object(tenants));
    if let Some(d) = &input.dct {
        m.insert("dct".into(), json!(d));
    }
    m.insert("amr".into(), json!(input.amr));
    for (k, v) in &input.scalars {
        let v = match v.as_str() {
            "true" => json!(true),
            "false" => json!(false),
            s => s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n)),
        };
        m.insert(k.clone(), v);
    }
    if let Some(Ok(Value::Object(raw))) = input.raw_claims.as_deref().map(serde_json::from_str) {
        m.extend(raw);
    }
    Claims::from_verified(m)
}

fn headers(input: &Input) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(v) = input
        .tenant_header
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        h.append("x-tenant-id", v);
    }
    if let Some((n, v)) = &input.extra_header {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            h.append(n, v);
        }
    }
    h
}

const METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
];

fuzz_target!(|input: Input| {
    let Ok(path) = CanonicalPath::parse(&input.path) else {
        return;
    };
    let claims = claims(&input);
    let headers = headers(&input);
    let method = &METHODS[usize::from(input.method) % METHODS.len()];
    for policy in policies() {
        let Some(m) = policy.find(input.host.as_deref(), &path) else {
            continue;
        };
        for (name, value) in &m.captures {
            assert!(!name.is_empty(), "empty capture name");
            if !policy.case_insensitive() {
                assert!(
                    path.match_path().contains(value.as_str()),
                    "capture {value:?} is not in {:?}",
                    path.match_path()
                );
            }
        }
        let _ = m.route.allows_method(method);
        let _ = m.route.methods();
        if let Some(stripped) = m.route.strip(&path) {
            let f = stripped.to_forward();
            assert!(f.starts_with('/'), "stripped {f:?}");
        }
        let _ = m.route.authorize(&claims, &m.captures, &headers);
    }
});
