use http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    routes: Vec<RouteToml>,
    #[serde(default)]
    policy: PolicyToml,
}

fn compile_with(src: &str, ci: bool) -> Result<Policy, Vec<ConfigIssue>> {
    let doc: Doc = toml::from_str(src).expect("test TOML parses");
    let upstreams = vec!["default".to_owned(), "billing".to_owned()];
    Policy::compile(
        &doc.routes,
        &doc.policy,
        &CompileContext {
            case_insensitive_paths: ci,
            upstreams: &upstreams,
        },
    )
}

fn compile(src: &str) -> Policy {
    match compile_with(src, false) {
        Ok(p) => p,
        Err(issues) => panic!("config should compile: {}", render(&issues)),
    }
}

fn render(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn claims(v: Value) -> Claims {
    match v {
        Value::Object(m) => Claims::from_verified(m),
        _ => unreachable!("test input is an object"),
    }
}

fn path(p: &str) -> CanonicalPath {
    CanonicalPath::parse(p).expect("test path is valid")
}

/// The index of the route that `find` picks, and its captures.
fn pick(policy: &Policy, host: Option<&str>, p: &str) -> Option<(usize, Vec<(String, String)>)> {
    policy
        .find(host, &path(p))
        .map(|m| (m.route.index, m.captures))
}

// --- glob matching ---------------------------------------------------------

#[test]
fn glob_matching_table() {
    // (glob, path, matches)
    let cases: &[(&str, &str, bool)] = &[
        ("/", "/", true),
        ("/", "/a", false),
        ("/**", "/", true),
        ("/**", "/a/b/c", true),
        ("/healthz", "/healthz", true),
        ("/healthz", "/healthz/", true),
        ("/healthz", "/healthz/x", false),
        ("/healthz", "/healthzx", false),
        ("/healthz", "/HEALTHZ", false),
        ("/admin", "/admin;x", true),
        ("/admin", "/x/../admin", true),
        ("/admin/**", "/admin", true),
        ("/admin/**", "/admin/", true),
        ("/admin/**", "/admin/a/b", true),
        ("/admin/**", "/administrator", false),
        ("/admin/**", "/%61dmin/x", true),
        ("/admin/**", "/public/..;/admin/x", true),
        ("/a/*", "/a/b", true),
        ("/a/*", "/a", false),
        ("/a/*", "/a/b/c", false),
        ("/a/*/c", "/a/b/c", true),
        ("/a/*/c", "/a/c", false),
        ("/a/**/c", "/a/c", true),
        ("/a/**/c", "/a/b/c", true),
        ("/a/**/c", "/a/b/x/c", true),
        ("/a/**/c", "/a/b/x/c/d", false),
        ("/a/**/c/**", "/a/x/c/y/z", true),
        ("/**/edit", "/docs/1/edit", true),
        ("/**/edit", "/edit", true),
        ("/**/edit", "/docs/1/editor", false),
        ("/**/b/**/d", "/a/b/c/b/x/d", true),
        ("/**/b/**/d", "/a/b/c/x/e", false),
        ("/t/{tenant}/**", "/t/T1", true),
        ("/t/{tenant}/**", "/t", false),
        ("/t/{tenant}/**", "/t/T1/x/y", true),
        ("/files/**", "/files/a%2Fb", true),
    ];
    for (glob, p, want) in cases {
        let policy = compile(&format!("[[routes]]\npath = {glob:?}\n"));
        assert_eq!(pick(&policy, None, p).is_some(), *want, "{glob} vs {p}");
    }
}

#[test]
fn captures_are_returned() {
    let policy = compile(
        r#"
        [[routes]]
        path = "/t/{tenant}/p/{project}/**"
        [[routes]]
        path_regex = "/r/(?P<org>[a-z]+)/.*"
        [[routes]]
        path = "/u/{user}"
        "#,
    );
    let caps = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pick(&policy, None, "/t/T1/p/P9/x"),
        Some((0, caps(&[("tenant", "T1"), ("project", "P9")])))
    );
    assert_eq!(
        pick(&policy, None, "/r/acme/x/y"),
        Some((1, caps(&[("org", "acme")])))
    );
    assert_eq!(pick(&policy, None, "/r/ACME/x"), None);
    assert_eq!(
        pick(&policy, None, "/u/alice"),
        Some((2, caps(&[("user", "alice")])))
    );
    assert_eq!(pick(&policy, None, "/u/alice/x"), None);
    // A capture is decoded text, one segment.
    assert_eq!(
        pick(&policy, None, "/u/al%20ice"),
        Some((2, caps(&[("user", "al ice")])))
    );
}

#[test]
fn regex_is_anchored_and_matches_canonical_path() {
    let policy = compile(
        r#"
        [[routes]]
        path_regex = "/api/v[0-9]+/users"
        access = "deny"
        [[routes]]
        path = "/**"
        "#,
    );
    let cases: &[(&str, usize)] = &[
        ("/api/v1/users", 0),
        ("/api/v12/users/", 0),
        ("/api/v1/./users", 0),
        ("/api/v1/users;x", 0),
        ("/api/v1/users/x", 1),
        ("/x/api/v1/users", 1),
        ("/api/vX/users", 1),
    ];
    for (p, want) in cases {
        assert_eq!(pick(&policy, None, p).map(|m| m.0), Some(*want), "{p}");
    }
}

#[test]
fn case_insensitive_paths() {
    let src = r#"
        [[routes]]
        path = "/Admin/**"
        roles = ["admin"]
        [[routes]]
        path_regex = "/secret/[a-z]+"
        access = "deny"
        [[routes]]
        path = "/t/{tenant}"
        [[routes]]
        path = "/**"
        access = "public"
    "#;
    let policy = match compile_with(src, true) {
        Ok(p) => p,
        Err(e) => panic!("{}", render(&e)),
    };
    let cases: &[(&str, usize)] = &[
        ("/admin", 0),
        ("/ADMIN/x", 0),
        ("/aDmIn;x/y", 0),
        ("/adm%C4%B1n", 0),  // dotless ı: IIS ordinal-ignore-case sees ADMIN
        ("/%E2%84%AAey", 3), // Kelvin sign: not admin
        ("/SECRET/ABC", 1),
        ("/ſecret/abc", 1), // long s upper-cases to S
        ("/other", 3),
    ];
    for (p, want) in cases {
        assert_eq!(pick(&policy, None, p).map(|m| m.0), Some(*want), "{p}");
    }
    // Captures keep the request's spelling (tenant ids are case-sensitive).
    assert_eq!(
        pick(&policy, None, "/T/AbC").map(|m| m.1),
        Some(vec![("tenant".to_owned(), "AbC".to_owned())])
    );
    // Without the option, case matters.
    let strict = compile(src);
    assert_eq!(pick(&strict, None, "/ADMIN/x").map(|m| m.0), Some(3));
    assert_eq!(pick(&strict, None, "/Admin/x").map(|m| m.0), Some(0));
}

#[test]
fn host_matching() {
    let policy = compile(
        r#"
        [[routes]]
        path = "/**"
        host = "admin.example.com"
        roles = ["admin"]
        [[routes]]
        path = "/**"
        host = "*.example.com"
        any_roles = ["member"]
        [[routes]]
        path = "/**"
        "#,
    );
    let cases: &[(Option<&str>, usize)] = &[
        (Some("admin.example.com"), 0),
        (Some("ADMIN.Example.COM"), 0),
        (Some("admin.example.com:8443"), 0),
        (Some("admin.example.com."), 0),
        (Some("x.example.com"), 1),
        (Some("a.b.example.com"), 1),
        (Some("example.com"), 2),
        (Some("evil-example.com"), 2),
        (Some("example.com.evil.org"), 2),
        (Some(".example.com"), 2),
        (Some("[::1]:8080"), 2),
        (None, 2),
    ];
    for (host, want) in cases {
        assert_eq!(
            pick(&policy, *host, "/x").map(|m| m.0),
            Some(*want),
            "{host:?}"
        );
    }
    let v6 = compile("[[routes]]\npath = \"/**\"\nhost = \"[::1]\"\n");
    for host in ["[::1]", "[::1]:8080", "::1"] {
        assert!(pick(&v6, Some(host), "/").is_some(), "{host}");
    }
    assert!(pick(&v6, Some("[::2]"), "/").is_none());
}

#[test]
fn strip_follows_route_case_rule() {
    let src =
        "[[routes]]\npath = \"/api/**\"\nstrip_prefix = \"/api\"\n[[routes]]\npath = \"/**\"\n";
    let ci = compile_with(src, true).unwrap_or_else(|e| panic!("{}", render(&e)));
    let strip = |p: &Policy, raw: &str| {
        let m = p.find(None, &path(raw)).expect("matches");
        m.route.strip(&path(raw)).map(|s| s.to_forward())
    };
    assert_eq!(strip(&ci, "/API/x;p"), Some("/x;p".to_owned()));
    assert_eq!(strip(&ci, "/api"), Some("/".to_owned()));
    assert_eq!(strip(&ci, "/other"), None);
    let cs = compile(src);
    assert_eq!(strip(&cs, "/api/x/"), Some("/x/".to_owned()));
    assert!(cs.routes()[1].is_catch_all() && !cs.routes()[0].is_catch_all());
}

#[test]
fn first_match_wins_and_methods_never_fall_through() {
    let policy = compile(
        r#"
        [[routes]]
        path = "/healthz"
        access = "public"
        [[routes]]
        path = "/admin/**"
        methods = ["GET", "POST"]
        roles = ["admin"]
        [[routes]]
        path = "/admin/public"
        access = "public"
        [[routes]]
        path = "/**"
        "#,
    );
    assert_eq!(pick(&policy, None, "/healthz").map(|m| m.0), Some(0));
    assert_eq!(pick(&policy, None, "/admin/public").map(|m| m.0), Some(1));
    let admin = &policy.routes()[1];
    let cases: &[(Method, bool)] = &[
        (Method::GET, true),
        (Method::HEAD, true),
        (Method::POST, true),
        (Method::PUT, false),
        (Method::DELETE, false),
        (Method::OPTIONS, false),
        (Method::from_bytes(b"PROPFIND").expect("valid token"), false),
    ];
    for (m, want) in cases {
        assert_eq!(admin.allows_method(m), *want, "{m}");
    }
    // No `methods`: everything.
    assert!(
        policy.routes()[3].allows_method(&Method::from_bytes(b"PROPFIND").expect("valid token"))
    );
    // HEAD alone does not allow GET.
    let head_only = compile("[[routes]]\npath = \"/x\"\nmethods = [\"HEAD\"]\n");
    assert!(!head_only.routes()[0].allows_method(&Method::GET));
    assert!(head_only.routes()[0].allows_method(&Method::HEAD));
    assert_eq!(admin.methods(), Some(&[Method::GET, Method::POST][..]));
    // An extension method is allowed when written as one.
    let dav = compile("[[routes]]\npath = \"/dav/**\"\nmethods = [\"GET\", \"EXT:PROPFIND\"]\n");
    let propfind = Method::from_bytes(b"PROPFIND").expect("valid token");
    assert!(dav.routes()[0].allows_method(&propfind));
    assert!(!dav.routes()[0].allows_method(&Method::PUT));
}

#[test]
fn unmatched_request_and_default_policy() {
    let policy = compile("[[routes]]\npath = \"/a\"\n");
    assert!(pick(&policy, None, "/b").is_none());
    assert_eq!(policy.default_policy(), DefaultPolicy::Deny);
    let policy = compile("[policy]\ndefault = \"authenticated\"\n");
    assert_eq!(policy.default_policy(), DefaultPolicy::Authenticated);
}

#[test]
fn route_fields_compile() {
    let policy = compile(
        r#"
        [[routes]]
        name = "api"
        path = "/api/**"
        unauthenticated = "401"
        allow_preflight = true
        upstream = "billing"
        strip_prefix = "/api"
        allow_encoded_slash = true
        [[routes]]
        path = "/**"
        access = "optional"
        unauthenticated = "redirect"
        "#,
    );
    let api = &policy.routes()[0];
    assert_eq!(api.name, "api");
    assert_eq!(api.access, Access::Authenticated);
    assert_eq!(api.unauthenticated, Unauthenticated::Status401);
    assert!(api.allow_preflight && api.allow_encoded_slash);
    assert_eq!(api.upstream, "billing");
    assert_eq!(api.strip_prefix.as_deref(), Some("/api"));
    assert!(!api.has_rules());
    let all = &policy.routes()[1];
    assert_eq!(all.name, "/**");
    assert_eq!(all.access, Access::Optional);
    assert_eq!(all.unauthenticated, Unauthenticated::Redirect);
    assert_eq!(all.upstream, DEFAULT_UPSTREAM);
    assert!(!all.allow_preflight && !all.allow_encoded_slash && all.strip_prefix.is_none());
}

// --- authorization -----------------------------------------------------------

/// Authorizes `claims` on the first route of `route_toml` for request path `p`.
fn authorize(
    route_toml: &str,
    p: &str,
    headers: &[(&str, &str)],
    c: Value,
) -> Result<Grant, Denial> {
    let policy = compile(&format!("[[routes]]\n{route_toml}\n"));
    let m = policy
        .find(None, &path(p))
        .expect("route matches the test path");
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    m.route.authorize(&claims(c), &m.captures, &h)
}

#[test]
fn rules_allow_and_deny() {
    struct Case {
        route: &'static str,
        path: &'static str,
        headers: &'static [(&'static str, &'static str)],
        claims: Value,
        want: Result<Option<&'static str>, &'static str>,
    }
    let ok = Ok(None);
    let c = |route, claims, want| Case {
        route,
        path: "/x",
        headers: &[],
        claims,
        want,
    };
    let cases = vec![
        // no rules: any verified user
        c("path = \"/x\"", json!({}), ok),
        // roles: all
        c(
            "path = \"/x\"\nroles = [\"a\", \"b\"]",
            json!({"roles": ["b", "a", "c"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nroles = [\"a\", \"b\"]",
            json!({"roles": ["a"]}),
            Err("missing role"),
        ),
        c(
            "path = \"/x\"\nroles = [\"a\"]",
            json!({}),
            Err("missing role"),
        ),
        c(
            "path = \"/x\"\nroles = [\"a\"]",
            json!({"roles": "a"}),
            Err("missing role"),
        ),
        c(
            "path = \"/x\"\nroles = [\"admin\"]",
            json!({"roles": ["administrator"]}),
            Err("missing role"),
        ),
        // roles never come from a tenant
        c(
            "path = \"/x\"\nroles = [\"a\"]",
            json!({"tenants": {"T": {"roles": ["a"]}}}),
            Err("missing role"),
        ),
        // any_roles
        c(
            "path = \"/x\"\nany_roles = [\"a\", \"b\"]",
            json!({"roles": ["b"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nany_roles = [\"a\", \"b\"]",
            json!({"roles": ["c"]}),
            Err("missing any of roles"),
        ),
        c(
            "path = \"/x\"\nany_roles = [\"a\"]",
            json!({"roles": []}),
            Err("missing any of roles"),
        ),
        // permissions / any_permissions
        c(
            "path = \"/x\"\npermissions = [\"r\", \"w\"]",
            json!({"permissions": ["r", "w"]}),
            ok,
        ),
        c(
            "path = \"/x\"\npermissions = [\"r\", \"w\"]",
            json!({"permissions": ["r"]}),
            Err("missing permission"),
        ),
        c(
            "path = \"/x\"\nany_permissions = [\"r\", \"w\"]",
            json!({"permissions": ["w"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nany_permissions = [\"r\"]",
            json!({"permissions": "r"}),
            Err("missing any of permissions"),
        ),
        // roles and permissions together: both must hold
        c(
            "path = \"/x\"\nroles = [\"a\"]\npermissions = [\"p\"]",
            json!({"roles": ["a"]}),
            Err("missing permission"),
        ),
        // tenant: literal id
        c(
            "path = \"/x\"\ntenant = \"T1\"",
            json!({"tenants": {"T1": {}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"",
            json!({"tenants": {"T2": {}}}),
            Err("not a member of the tenant"),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"",
            json!({"dct": "T1"}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"",
            json!({"tenants": ["T1"]}),
            Err("not a member of the tenant"),
        ),
        // tenant: dct
        c(
            "path = \"/x\"\ntenant = \"dct\"",
            json!({"dct": "T1", "tenants": {"T1": {}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"dct\"",
            json!({"tenants": {"T1": {}}}),
            Err("no tenant in request"),
        ),
        c(
            "path = \"/x\"\ntenant = \"dct\"",
            json!({"dct": 5}),
            Err("no tenant in request"),
        ),
        // tenant roles / permissions
        c(
            "path = \"/x\"\ntenant = \"T1\"\ntenant_roles = [\"owner\"]",
            json!({"tenants": {"T1": {"roles": ["owner", "member"]}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\ntenant_roles = [\"owner\"]",
            json!({"tenants": {"T1": {"roles": ["member"]}, "T2": {"roles": ["owner"]}}}),
            Err("missing tenant role"),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\ntenant_roles = [\"owner\"]",
            json!({"roles": ["owner"], "tenants": {"T1": {}}}),
            Err("missing tenant role"),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\nany_tenant_roles = [\"owner\", \"member\"]",
            json!({"tenants": {"T1": {"roles": ["member"]}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\nany_tenant_roles = [\"owner\", \"member\"]",
            json!({"tenants": {"T1": {"roles": ["guest"]}}}),
            Err("missing any of tenant roles"),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\ntenant_permissions = [\"p\", \"q\"]",
            json!({"tenants": {"T1": {"permissions": ["p", "q"]}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\ntenant_permissions = [\"p\", \"q\"]",
            json!({"tenants": {"T1": {"permissions": ["p"]}}}),
            Err("missing tenant permission"),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\nany_tenant_permissions = [\"p\", \"q\"]",
            json!({"tenants": {"T1": {"permissions": ["q"]}}}),
            Ok(Some("T1")),
        ),
        c(
            "path = \"/x\"\ntenant = \"T1\"\nany_tenant_permissions = [\"p\"]",
            json!({"tenants": {"T1": {"permissions": "p"}}}),
            Err("missing any of tenant permissions"),
        ),
        // claims: scalars
        c(
            "path = \"/x\"\nclaims = { email_verified = true }",
            json!({"email_verified": true}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { email_verified = true }",
            json!({"email_verified": false}),
            Err("claim mismatch: email_verified"),
        ),
        c(
            "path = \"/x\"\nclaims = { email_verified = true }",
            json!({"email_verified": "true"}),
            Err("claim mismatch: email_verified"),
        ),
        c(
            "path = \"/x\"\nclaims = { email_verified = true }",
            json!({}),
            Err("claim mismatch: email_verified"),
        ),
        c(
            "path = \"/x\"\nclaims = { level = 3 }",
            json!({"level": 3}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { level = 3 }",
            json!({"level": "3"}),
            Err("claim mismatch: level"),
        ),
        c(
            "path = \"/x\"\nclaims = { level = 3 }",
            json!({"level": 3.5}),
            Err("claim mismatch: level"),
        ),
        c(
            "path = \"/x\"\nclaims = { score = 0.5 }",
            json!({"score": 0.5}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { dept = \"eng\" }",
            json!({"dept": "eng"}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { dept = \"eng\" }",
            json!({"dept": "engineering"}),
            Err("claim mismatch: dept"),
        ),
        c(
            "path = \"/x\"\nclaims = { dept = \"eng\" }",
            json!({"dept": ["eng"]}),
            Err("claim mismatch: dept"),
        ),
        // claims: lists
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": "ops"}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": ["hr", "ops"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": "hr"}),
            Err("claim mismatch: dept"),
        ),
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": []}),
            Err("claim mismatch: dept"),
        ),
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": null}),
            Err("claim mismatch: dept"),
        ),
        c(
            "path = \"/x\"\nclaims = { dept = [\"eng\", \"ops\"] }",
            json!({"dept": "engops"}),
            Err("claim mismatch: dept"),
        ),
        c(
            "path = \"/x\"\nclaims = { a = true, b = \"x\" }",
            json!({"a": true}),
            Err("claim mismatch: b"),
        ),
        // require_mfa
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({"amr": ["pwd", "totp"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({"amr": ["mfa"]}),
            ok,
        ),
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({"amr": ["pwd"]}),
            Err("multi-factor authentication required"),
        ),
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({"amr": ["pwd", "pwd"]}),
            Err("multi-factor authentication required"),
        ),
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({"amr": "mfa"}),
            Err("multi-factor authentication required"),
        ),
        c(
            "path = \"/x\"\nrequire_mfa = true",
            json!({}),
            Err("multi-factor authentication required"),
        ),
        c("path = \"/x\"\nrequire_mfa = false", json!({}), ok),
    ];
    let mut cases = cases;
    // tenant from a path capture
    let cap = "path = \"/t/{tenant}/**\"\ntenant = \"{tenant}\"\nany_tenant_roles = [\"member\"]";
    cases.push(Case {
        route: cap,
        path: "/t/T1/x",
        headers: &[],
        claims: json!({"tenants": {"T1": {"roles": ["member"]}}}),
        want: Ok(Some("T1")),
    });
    cases.push(Case {
        route: cap,
        path: "/t/T2/x",
        headers: &[],
        claims: json!({"tenants": {"T1": {"roles": ["member"]}}}),
        want: Err("not a member of the tenant"),
    });
    // tenant from a header
    let hdr = "path = \"/x\"\ntenant = \"header:X-Tenant-Id\"";
    for (headers, want) in [
        (&[("x-tenant-id", "T1")][..], Ok(Some("T1"))),
        (
            &[("X-Tenant-Id", "T2")][..],
            Err("not a member of the tenant"),
        ),
        (&[][..], Err("no tenant in request")),
        (&[("x-tenant-id", "")][..], Err("no tenant in request")),
        (
            &[("x-tenant-id", "T1"), ("x-tenant-id", "T1")][..],
            Err("no tenant in request"),
        ),
    ] {
        cases.push(Case {
            route: hdr,
            path: "/x",
            headers,
            claims: json!({"tenants": {"T1": {}}}),
            want,
        });
    }
    for case in cases {
        let got = authorize(case.route, case.path, case.headers, case.claims.clone());
        let want = case
            .want
            .map(|t| Grant {
                tenant: t.map(str::to_owned),
            })
            .map_err(|r| Denial {
                reason: r.to_owned(),
            });
        assert_eq!(
            got, want,
            "route {:?} claims {} headers {:?}",
            case.route, case.claims, case.headers
        );
    }
}

/// descope-api.md §8 truth tables, expressed as route rules.
#[test]
fn sdk_truth_tables() {
    let tenant_role = "path = \"/x\"\ntenant = \"t1\"\ntenant_roles = [\"r\"]";
    let member = "path = \"/x\"\ntenant = \"t1\"";
    let cases: &[(&str, Value, bool, &str)] = &[
        // (route, claims, allowed, case)
        (
            member,
            json!({"tenants": {"t1": {}}}),
            true,
            "tenant present, inner {}: member",
        ),
        (
            tenant_role,
            json!({"tenants": {"t1": {}}}),
            false,
            "tenant present, inner {}: granted []",
        ),
        (
            member,
            json!({"tenants": {"t2": {}}}),
            false,
            "tenant not in tenants",
        ),
        (
            member,
            json!({"dct": "t1"}),
            true,
            "dct == tenant: member (go)",
        ),
        (
            tenant_role,
            json!({"dct": "t1", "roles": ["r"]}),
            false,
            "dct only: no tenant roles (stricter than go)",
        ),
        (
            tenant_role,
            json!({"tenants": {"t1": {"roles": "r"}}}),
            false,
            "string instead of list: ignored",
        ),
        (
            tenant_role,
            json!({"tenants": {"t1": {"roles": "rr"}}}),
            false,
            "no substring match (py quirk)",
        ),
        (
            tenant_role,
            json!({"tenants": {"t1": {"roles": ["r"]}}}),
            true,
            "granted",
        ),
        (
            "path = \"/x\"\nroles = [\"Perm 1\"]",
            json!({"roles": "Perm 1, Perm 2"}),
            false,
            "py substring quirk refused",
        ),
        (
            "path = \"/x\"\nroles = [\"a\"]",
            json!({"roles": [1, "a"]}),
            true,
            "only string elements kept",
        ),
        (
            "path = \"/x\"\nroles = [\"a\", \"b\"]",
            json!({"roles": ["a", 7]}),
            false,
            "non-strings are not roles",
        ),
        (
            "path = \"/x\"\npermissions = [\"p\"]",
            json!({"tenants": {"t1": {"permissions": ["p"]}}}),
            false,
            "top-level only",
        ),
    ];
    for (route, c, allowed, what) in cases {
        let got = authorize(route, "/x", &[], c.clone());
        assert_eq!(got.is_ok(), *allowed, "{what}: {got:?}");
    }
}

#[test]
fn non_ascii_tenant_literal() {
    let got = authorize(
        "path = \"/x\"\ntenant = \"ééééé\"",
        "/x",
        &[],
        json!({"tenants": {"ééééé": {}}}),
    );
    assert_eq!(
        got,
        Ok(Grant {
            tenant: Some("ééééé".to_owned())
        })
    );
}

#[test]
fn denial_reasons_never_carry_claim_values() {
    let got = authorize(
        "path = \"/x\"\nclaims = { dept = \"secret-dept\" }",
        "/x",
        &[],
        json!({"dept": "leak-me"}),
    );
    let reason = got.expect_err("denied").reason;
    assert!(
        !reason.contains("leak-me") && !reason.contains("secret-dept"),
        "{reason}"
    );
}

// --- config errors -------------------------------------------------------------

#[test]
fn config_errors_name_key_and_fix() {
    // (routes TOML, expected key, substring of the problem, substring of the fix)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "[[routes]]\naccess = \"public\"",
            "routes[0].path",
            "needs a path",
            "path_regex",
        ),
        (
            "[[routes]]\npath = \"/a\"\npath_regex = \"/a\"",
            "routes[0].path_regex",
            "both",
            "exactly one",
        ),
        (
            "[[routes]]\npath = \"a/b\"",
            "routes[0].path",
            "start with '/'",
            "\"/a/b\"",
        ),
        (
            "[[routes]]\npath = \"/a/../b\"",
            "routes[0].path",
            "dot segment",
            "resolved",
        ),
        (
            "[[routes]]\npath = \"/a//b\"",
            "routes[0].path",
            "empty segment",
            "extra '/'",
        ),
        (
            "[[routes]]\npath = \"/a/\"",
            "routes[0].path",
            "trailing '/'",
            "\"/a\"",
        ),
        (
            "[[routes]]\npath = \"/a;x\"",
            "routes[0].path",
            "';'",
            "remove",
        ),
        (
            "[[routes]]\npath = \"/foo*\"",
            "routes[0].path",
            "mixes",
            "path_regex",
        ),
        (
            "[[routes]]\npath = \"/a/***\"",
            "routes[0].path",
            "mixes",
            "whole segments",
        ),
        (
            "[[routes]]\npath = \"/a%20b\"",
            "routes[0].path",
            "decoded",
            "decoded characters",
        ),
        (
            "[[routes]]\npath = \"/admin.\"",
            "routes[0].path",
            "never match",
            "trailing dots",
        ),
        (
            "[[routes]]\npath = \"/{1x}\"",
            "routes[0].path",
            "not a valid name",
            "{tenant}",
        ),
        (
            "[[routes]]\npath = \"/{a}/{a}\"",
            "routes[0].path",
            "twice",
            "own name",
        ),
        (
            "[[routes]]\npath = \"/**/{a}\"",
            "routes[0].path",
            "ambiguous",
            "before any '**'",
        ),
        (
            "[[routes]]\npath_regex = \"/a(\"",
            "routes[0].path_regex",
            "not a valid regular expression",
            "syntax",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"get\"]",
            "routes[0].methods",
            "case-sensitive",
            "\"GET\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"GE T\"]",
            "routes[0].methods",
            "not an HTTP method",
            "GET",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"GTE\"]",
            "routes[0].methods",
            "not a standard HTTP method",
            "\"EXT:PROPFIND\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"PROPFIND\"]",
            "routes[0].methods",
            "not a standard HTTP method",
            "GET, HEAD, POST",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"EXT:GET\"]",
            "routes[0].methods",
            "standard method, not an extension",
            "\"GET\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"EXT:\"]",
            "routes[0].methods",
            "not an HTTP method token after EXT:",
            "\"EXT:NAME\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = [\"EXT:PROP FIND\"]",
            "routes[0].methods",
            "not an HTTP method token after EXT:",
            "\"EXT:NAME\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nmethods = []",
            "routes[0].methods",
            "allows nothing",
            "remove the key",
        ),
        (
            "[[routes]]\npath = \"/a\"\nhost = \"a.com:80\"",
            "routes[0].host",
            "without the port",
            "':port'",
        ),
        (
            "[[routes]]\npath = \"/a\"\nhost = \"a.*.com\"",
            "routes[0].host",
            "not a host name",
            "*.example.com",
        ),
        (
            "[[routes]]\npath = \"/a\"\nhost = \"[zz]\"",
            "routes[0].host",
            "not a host name",
            "*.example.com",
        ),
        (
            "[[routes]]\npath = \"/a\"\nhost = \"*\"",
            "routes[0].host",
            "not a host name",
            "first label",
        ),
        (
            "[[routes]]\npath = \"/a\"\naccess = \"private\"",
            "routes[0].access",
            "unknown access",
            "\"authenticated\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nunauthenticated = \"403\"",
            "routes[0].unauthenticated",
            "unknown",
            "\"401\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\nany_roles = []",
            "routes[0].any_roles",
            "empty list",
            "never be satisfied",
        ),
        (
            "[[routes]]\npath = \"/a\"\nroles = []",
            "routes[0].roles",
            "empty list",
            "requires nothing",
        ),
        (
            "[[routes]]\npath = \"/a\"\nroles = [\" admin\"]",
            "routes[0].roles",
            "whitespace",
            "exactly",
        ),
        (
            "[[routes]]\npath = \"/a\"\naccess = \"public\"\nroles = [\"admin\"]",
            "routes[0].access",
            "never checks",
            "access = \"authenticated\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\naccess = \"optional\"\nrequire_mfa = true",
            "routes[0].access",
            "require_mfa",
            "remove the rules",
        ),
        (
            "[[routes]]\npath = \"/a\"\naccess = \"deny\"\nclaims = { a = 1 }",
            "routes[0].access",
            "claims",
            "authenticated",
        ),
        (
            "[[routes]]\npath = \"/a\"\ntenant_roles = [\"owner\"]",
            "routes[0].tenant_roles",
            "without `tenant`",
            "header:",
        ),
        (
            "[[routes]]\npath = \"/a\"\nany_tenant_permissions = [\"p\"]",
            "routes[0].any_tenant_permissions",
            "without",
            "dct",
        ),
        (
            "[[routes]]\npath = \"/t/{tenant}\"\ntenant = \"{team}\"",
            "routes[0].tenant",
            "captures {tenant}",
            "{team}",
        ),
        (
            "[[routes]]\npath = \"/t/*\"\ntenant = \"{team}\"",
            "routes[0].tenant",
            "captures nothing",
            "/t/{team}/**",
        ),
        (
            "[[routes]]\npath = \"/a\"\ntenant = \"Header:X-T\"",
            "routes[0].tenant",
            "lower case",
            "\"header:X-T\"",
        ),
        (
            "[[routes]]\npath = \"/a\"\ntenant = \"header:\"",
            "routes[0].tenant",
            "header name",
            "X-Tenant-Id",
        ),
        (
            "[[routes]]\npath = \"/a\"\ntenant = \"{team\"",
            "routes[0].tenant",
            "neither",
            "dct",
        ),
        (
            "[[routes]]\npath = \"/a\"\ntenant = \"\"",
            "routes[0].tenant",
            "neither",
            "tenant id",
        ),
        (
            "[[routes]]\npath = \"/a\"\nclaims = { a = [] }",
            "routes[0].claims.a",
            "never match",
            "accepted values",
        ),
        (
            "[[routes]]\npath = \"/a\"\nclaims = { a = { b = 1 } }",
            "routes[0].claims.a",
            "must be a string",
            "scalar",
        ),
        (
            "[[routes]]\npath = \"/a\"\nclaims = { a = [[1]] }",
            "routes[0].claims.a",
            "must be a string",
            "list of scalars",
        ),
        (
            "[[routes]]\npath = \"/a\"\nclaims = { a = nan }",
            "routes[0].claims.a",
            "finite",
            "scalar",
        ),
        (
            "[[routes]]\npath = \"/a\"\nclaims = {}",
            "routes[0].claims",
            "empty claims",
            "remove the key",
        ),
        (
            "[[routes]]\npath = \"/a\"\nupstream = \"payments\"",
            "routes[0].upstream",
            "default, billing",
            "default, billing",
        ),
        (
            "[[routes]]\npath = \"/a/**\"\nstrip_prefix = \"/b\"",
            "routes[0].strip_prefix",
            "does not always start",
            "leading literal",
        ),
        (
            "[[routes]]\npath = \"/a/**\"\nstrip_prefix = \"/a/\"",
            "routes[0].strip_prefix",
            "not a canonical",
            "\"/api\"",
        ),
        (
            "[[routes]]\npath = \"/a/**\"\nstrip_prefix = \"/\"",
            "routes[0].strip_prefix",
            "not a canonical",
            "\"/api\"",
        ),
        (
            "[[routes]]\npath = \"/**\"\nstrip_prefix = \"/a\"",
            "routes[0].strip_prefix",
            "does not always",
            "leading",
        ),
        (
            "[[routes]]\npath = \"/a\"\nname = \"\"",
            "routes[0].name",
            "empty",
            "short label",
        ),
        (
            "[policy]\ndefault = \"allow\"",
            "policy.default",
            "unknown default",
            "\"authenticated\"",
        ),
        (
            "[[routes]]\npath = \"/ok\"\n[[routes]]\npath = \"/a\"\nroles = []",
            "routes[1].roles",
            "empty",
            "remove",
        ),
    ];
    for (src, key, problem, fix) in cases {
        let issues = match compile_with(src, false) {
            Ok(_) => panic!("should fail: {src}"),
            Err(issues) => issues,
        };
        let hit = issues.iter().find(|i| i.key == *key);
        let Some(issue) = hit else {
            panic!("{src}: no issue keyed {key}, got:\n{}", render(&issues))
        };
        assert!(
            issue.problem.contains(problem),
            "{src}: problem {:?} lacks {problem:?}",
            issue.problem
        );
        assert!(
            issue.fix.contains(fix),
            "{src}: fix {:?} lacks {fix:?}",
            issue.fix
        );
        assert!(
            issue.value.is_some() || *problem == "needs a path",
            "{src}: issue names no value"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let issues = match compile_with(
        r#"
        [[routes]]
        path = "/a/"
        access = "nope"
        [[routes]]
        path = "/b"
        upstream = "x"
        any_roles = []
        "#,
        false,
    ) {
        Ok(_) => panic!("should fail"),
        Err(i) => i,
    };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "routes[0].path",
            "routes[0].access",
            "routes[1].any_roles",
            "routes[1].upstream"
        ]
    );
    // The rendered form carries key, value, problem and fix.
    assert!(
        issues[3]
            .to_string()
            .starts_with("routes[1].upstream = \"x\": unknown upstream"),
        "{}",
        issues[3]
    );
}

#[test]
fn unknown_route_keys_are_refused() {
    let err = toml::from_str::<Doc>("[[routes]]\npath = \"/a\"\nrequried_roles = [\"admin\"]\n");
    assert!(err.is_err());
    let err = toml::from_str::<Doc>("[policy]\ndefualt = \"deny\"\n");
    assert!(err.is_err());
}

#[test]
fn upstream_may_be_implicit_without_upstreams() {
    let doc: Doc = toml::from_str("[[routes]]\npath = \"/a\"\n").expect("parses");
    let ctx = CompileContext {
        case_insensitive_paths: false,
        upstreams: &[],
    };
    assert!(Policy::compile(&doc.routes, &doc.policy, &ctx).is_ok());
    let doc: Doc = toml::from_str("[[routes]]\npath = \"/a\"\nupstream = \"x\"\n").expect("parses");
    assert!(Policy::compile(&doc.routes, &doc.policy, &ctx).is_err());
}

// --- lints and describe ----------------------------------------------------------

fn lint_keys(src: &str) -> Vec<String> {
    compile(src).lints().into_iter().map(|i| i.key).collect()
}

#[test]
fn lints_table() {
    let cases: &[(&str, &[&str])] = &[
        // shadowed: a broader glob first
        (
            "[[routes]]\npath = \"/**\"\n[[routes]]\npath = \"/admin\"",
            &["routes[1].path"],
        ),
        (
            "[[routes]]\npath = \"/admin/**\"\n[[routes]]\npath = \"/admin/x/*\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        (
            "[[routes]]\npath = \"/a/*\"\n[[routes]]\npath = \"/a/{id}\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        (
            "[[routes]]\npath = \"/a/**\"\n[[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        (
            "[[routes]]\npath = \"/**/edit\"\n[[routes]]\npath = \"/d/*/edit\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        (
            "[[routes]]\npath = \"/**\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        // not shadowed: the narrower one first, or disjoint
        (
            "[[routes]]\npath = \"/admin\"\n[[routes]]\npath = \"/**\"",
            &[],
        ),
        (
            "[[routes]]\npath = \"/a/*\"\n[[routes]]\npath = \"/a/**\"\n[[routes]]\npath = \"/**\"",
            &[],
        ),
        (
            "[[routes]]\npath = \"/a/x\"\n[[routes]]\npath = \"/a/*\"\n[[routes]]\npath = \"/**\"",
            &[],
        ),
        // hosts: a host-limited route does not shadow an any-host one
        (
            "[[routes]]\npath = \"/**\"\nhost = \"a.com\"\n[[routes]]\npath = \"/**\"",
            &[],
        ),
        (
            "[[routes]]\npath = \"/**\"\nhost = \"*.a.com\"\n[[routes]]\npath = \"/x\"\nhost = \"b.a.com\"\n[[routes]]\npath = \"/**\"",
            &["routes[1].path"],
        ),
        // regex routes are never claimed to shadow
        (
            "[[routes]]\npath_regex = \".*\"\n[[routes]]\npath = \"/**\"",
            &[],
        ),
        // no catch-all
        ("[[routes]]\npath = \"/a\"", &["routes"]),
        ("[[routes]]\npath = \"/**\"\nhost = \"a.com\"", &["routes"]),
        // public catch-all
        (
            "[[routes]]\npath = \"/**\"\naccess = \"public\"",
            &["routes[0].access"],
        ),
        // duplicate names
        (
            "[[routes]]\nname = \"x\"\npath = \"/a\"\n[[routes]]\nname = \"x\"\npath = \"/**\"",
            &["routes[1].name"],
        ),
    ];
    for (src, want) in cases {
        assert_eq!(lint_keys(src), *want, "{src}");
    }
    let lint = &compile("[[routes]]\npath = \"/**\"\n[[routes]]\npath = \"/admin\"").lints()[0];
    assert!(
        lint.problem.contains("routes[0]") && lint.fix.contains("move it above routes[0]"),
        "{lint}"
    );
}

#[test]
fn describe_shows_expansions() {
    let text = compile(
        r#"
        [[routes]]
        name = "health"
        path = "/healthz"
        access = "public"
        [[routes]]
        path = "/t/{tenant}/**"
        tenant = "{tenant}"
        any_tenant_roles = ["member", "owner"]
        methods = ["GET"]
        [[routes]]
        path = "/a/*/b/**/c"
        [[routes]]
        path_regex = "/r/(?P<org>[a-z]+)"
        upstream = "billing"
        unauthenticated = "401"
        allow_preflight = true
        [[routes]]
        path = "/"
        [[routes]]
        path = "/**"
        claims = { email_verified = true, dept = ["eng", "ops"] }
        require_mfa = true
        "#,
    )
    .describe();
    for want in [
        "default policy: deny",
        "[0] health",
        "exactly `/healthz` (also with a trailing `/`)",
        "public (no session check)",
        "`/t/<tenant>` and everything below; captures tenant",
        "member of the tenant from path capture {tenant}; any tenant role of [member, owner]",
        "GET, HEAD (as GET) (others: 405)",
        "`/a/<any>/b/<any depth>/c`",
        "paths matching ^(?:/r/(?P<org>[a-z]+))$; captures org",
        "unauthenticated=401, allow_preflight",
        "upstream   billing",
        "only `/`",
        "every path",
        "claim email_verified = true",
        "claim dept one of [\"eng\", \"ops\"]",
        "multi-factor login",
    ] {
        assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
    }
}

// --- matcher properties ----------------------------------------------------------

/// Reference glob matcher: plain recursion, obviously correct, exponential.
fn naive_match(pat: &[matcher::Seg], segs: &[&str]) -> bool {
    use matcher::Seg;
    match (pat.first(), segs.first()) {
        (None, None) => true,
        (Some(Seg::AnyDepth), _) => {
            naive_match(&pat[1..], segs) || (!segs.is_empty() && naive_match(pat, &segs[1..]))
        }
        (Some(Seg::One | Seg::Capture(_)), Some(_)) => naive_match(&pat[1..], &segs[1..]),
        (Some(Seg::Literal(l)), Some(s)) => l == s && naive_match(&pat[1..], &segs[1..]),
        _ => false,
    }
}

fn random_glob(rng: &mut rand::rngs::StdRng, captures: bool) -> Vec<matcher::Seg> {
    use matcher::Seg;
    use rand::Rng;
    let len = rng.random_range(0..6);
    let mut seen_star = false;
    (0..len)
        .map(|i| match rng.random_range(0..6) {
            0 | 1 => {
                seen_star = true;
                Seg::AnyDepth
            }
            2 => Seg::One,
            3 if captures && !seen_star => Seg::Capture(format!("c{i}")),
            _ => Seg::Literal(["a", "b"][rng.random_range(0..2)].to_owned()),
        })
        .collect()
}

fn random_path(rng: &mut rand::rngs::StdRng) -> Vec<&'static str> {
    use rand::Rng;
    let len = rng.random_range(0..7);
    (0..len)
        .map(|_| ["a", "b", "c"][rng.random_range(0..3)])
        .collect()
}

#[test]
fn glob_matcher_agrees_with_reference() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for _ in 0..20_000 {
        let pat = random_glob(&mut rng, true);
        let segs = random_path(&mut rng);
        let path = format!("/{}", segs.join("/"));
        let m = matcher::PathMatcher::Glob(pat.clone());
        let mut caps = Vec::new();
        let got = m.matches(&path, false, &mut caps);
        assert_eq!(got, naive_match(&pat, &segs), "{pat:?} vs {path}");
        if got {
            // Captures sit before any `**`, so their positions are fixed.
            let want: Vec<(String, String)> = pat
                .iter()
                .zip(&segs)
                .filter_map(|(p, s)| match p {
                    matcher::Seg::Capture(n) => Some((n.clone(), (*s).to_owned())),
                    _ => None,
                })
                .collect();
            assert_eq!(caps, want, "{pat:?} vs {path}");
        }
    }
}

#[test]
fn shadow_analysis_is_sound() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut claimed = 0;
    for _ in 0..3_000 {
        let a = random_glob(&mut rng, false);
        let b = random_glob(&mut rng, false);
        if !matcher::glob_covers(&a, &b) {
            continue;
        }
        claimed += 1;
        for _ in 0..200 {
            let segs = random_path(&mut rng);
            if naive_match(&b, &segs) {
                assert!(
                    naive_match(&a, &segs),
                    "{a:?} claimed to cover {b:?}, but not /{}",
                    segs.join("/")
                );
            }
        }
    }
    assert!(
        claimed > 100,
        "the generator should produce covering pairs ({claimed})"
    );
}

#[test]
fn hostile_paths_stay_fast() {
    // Many `**` against a long path must not blow up (backtracking is bounded).
    let policy = compile("[[routes]]\npath = \"/**/a/**/a/**/a/**/a/**/b\"\n");
    let long = format!("/{}", vec!["a"; 4000].join("/"));
    assert!(pick(&policy, None, &long).is_none());
}
