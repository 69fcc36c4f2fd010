use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use portcullis::config::{Config, LoadOptions};

fn env() -> HashMap<String, String> {
    HashMap::from([
        (
            "DESCOPE_PROJECT_ID".to_string(),
            "P2abcdefghijklmnopqrstuvwxyz".to_string(),
        ),
        (
            "PORTCULLIS_SECRET".to_string(),
            "0123456789abcdef0123456789abcdef0123456789".to_string(),
        ),
    ])
}

fn load(toml: &str) -> Result<Config, String> {
    Config::from_toml(toml, Path::new("."), &env(), LoadOptions::default())
        .map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"
[descope]
project_id = "env:DESCOPE_PROJECT_ID"
[upstreams.default]
url = "http://127.0.0.1:3000"
[[routes]]
path = "/**"
"#;

#[test]
fn example_config_parses_with_every_key() {
    let text = std::fs::read_to_string("config/portcullis.example.toml").unwrap();
    let cfg = load(&text).unwrap();
    assert_eq!(cfg.server.auth_prefix, "/_auth");
    assert_eq!(
        cfg.descope().expect("descope mode").project_id,
        "P2abcdefghijklmnopqrstuvwxyz"
    );
    assert_eq!(
        cfg.descope().expect("descope mode").base_url.as_str(),
        "https://api.descope.com/"
    );
    assert!(cfg.session.secret.is_some());
    assert_eq!(cfg.upstreams.len(), 2);
    assert_eq!(cfg.policy.routes().len(), 5);
    assert_eq!(
        cfg.login.cdn_url.as_deref(),
        Some("https://cdn.jsdelivr.net")
    );
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(cfg.admin.listen.unwrap().to_string(), "127.0.0.1:9090");
    assert_eq!(
        cfg.descope()
            .expect("descope mode")
            .jwks_min_refetch
            .as_secs(),
        10
    );
    assert_eq!(cfg.session.refresh_reuse.as_secs(), 10);
    assert_eq!(cfg.session.cookies.session_name, "DS");
    assert!(cfg.session.accept_bearer);
    assert!(cfg.login.methods.is_empty());
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_line() {
    let err = load(&format!("{MINIMAL}requried_roles = [\"admin\"]\n")).unwrap_err();
    assert!(err.contains("requried_roles"), "{err}");
    assert!(err.contains("line"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn toml_type_errors_name_the_key_path_and_the_expected_form() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[server]\nidle_timeout = 60\n",
            &["server.idle_timeout = 60", "expected a string", "\"60s\""],
        ),
        (
            "[session]\naccept_bearer = \"yes\"\n",
            &["session.accept_bearer", "true or", "no quotes"],
        ),
        (
            "[server]\nmax_header_bytes = \"32k\"\n",
            &["server.max_header_bytes", "whole number"],
        ),
        (
            "[[routes]]\npath = \"/b\"\nmethods = \"GET\"\n",
            &[
                "routes[1].methods = \"GET\"",
                "list of quoted strings",
                "EXT:NAME",
            ],
        ),
        (
            "[upstreams.billing]\nurl = 5\n",
            &["upstreams.billing.url = 5", "quoted string"],
        ),
        (
            "[server]\nidle_timout = \"60s\"\n",
            &[
                "server.idle_timout",
                "unknown key",
                "did you mean `idle_timeout`?",
            ],
        ),
    ];
    for (extra, wanted) in cases {
        let err = load(&format!("{MINIMAL}{extra}")).unwrap_err();
        for w in *wanted {
            assert!(err.contains(w), "{extra:?}: {w:?} missing in {err}");
        }
        assert_eq!(err.lines().count(), 2, "one error line: {err}");
    }
}

#[test]
fn bad_values_name_key_value_and_fix() {
    let err =
        load(&MINIMAL.replace("[descope]", "[descope]\ntimeout = \"5 parsecs\"")).unwrap_err();
    assert!(err.contains("descope.timeout = \"5 parsecs\""), "{err}");
    assert!(err.contains("fix:"), "{err}");
    let err = load(&MINIMAL.replace("[descope]", "[server]\nlisten = \"nowhere\"\n[descope]"))
        .unwrap_err();
    assert!(err.contains("server.listen"), "{err}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = MINIMAL.replace(
        "[descope]",
        "[session]\nsame_site = \"sideways\"\n[forward_auth]\nmode = \"haproxy\"\n[descope]",
    );
    let err = load(&text).unwrap_err();
    assert!(
        err.contains("session.same_site") && err.contains("forward_auth.mode"),
        "{err}"
    );
}

#[test]
fn project_id_from_environment_and_required() {
    let no_pid = MINIMAL.replace("project_id = \"env:DESCOPE_PROJECT_ID\"\n", "");
    let cfg = load(&no_pid).unwrap();
    assert_eq!(
        cfg.descope().expect("descope mode").project_id,
        "P2abcdefghijklmnopqrstuvwxyz"
    );
    let err = Config::from_toml(
        &no_pid,
        Path::new("."),
        &HashMap::new(),
        LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("descope.project_id") && err.contains("not set"),
        "{err}"
    );
}

#[test]
fn a_config_without_any_identity_provider_is_refused() {
    // An empty [descope] table is filled from DESCOPE_PROJECT_ID; no table
    // at all (and no [oidc]) is an error naming both, env or not.
    let none = MINIMAL.replace("[descope]\nproject_id = \"env:DESCOPE_PROJECT_ID\"\n", "");
    assert!(!none.contains("[descope]"));
    let err = load(&none).unwrap_err();
    assert!(
        err.contains("neither [descope] nor [oidc]") && err.contains("add a [descope] table"),
        "{err}"
    );
    let empty_table = MINIMAL.replace("project_id = \"env:DESCOPE_PROJECT_ID\"\n", "");
    assert!(load(&empty_table).is_ok());
}

#[test]
fn regional_base_url_and_env_override() {
    let long = MINIMAL.replace("env:DESCOPE_PROJECT_ID", "Puse12aAc4T2V93bddihGEx2Ryhc8e5Z");
    assert_eq!(
        load(&long)
            .unwrap()
            .descope()
            .expect("descope mode")
            .base_url
            .as_str(),
        "https://api.use1.descope.com/"
    );
    let mut e = env();
    e.insert("DESCOPE_BASE_URI".into(), "http://127.0.0.1:4080".into());
    let cfg = Config::from_toml(MINIMAL, Path::new("."), &e, LoadOptions::default()).unwrap();
    assert_eq!(
        cfg.descope().expect("descope mode").base_url.as_str(),
        "http://127.0.0.1:4080/"
    );
}

#[test]
fn plain_http_to_descope_only_on_loopback() {
    let err = load(&MINIMAL.replace(
        "[descope]",
        "[descope]\nbase_url = \"http://descope.internal\"",
    ))
    .unwrap_err();
    assert!(
        err.contains("descope.base_url") && err.contains("loopback"),
        "{err}"
    );
    assert!(
        load(&MINIMAL.replace("[descope]", "[descope]\nbase_url = \"http://localhost:9\"")).is_ok()
    );
}

#[test]
fn the_full_management_key_is_refused() {
    let err =
        load(&MINIMAL.replace("[descope]", "[descope]\nmanagement_key = \"K123\"")).unwrap_err();
    assert!(err.contains("descope.management_key"), "{err}");
}

#[test]
fn secret_rules() {
    let with_login = format!("{MINIMAL}\n[login]\nmethods = [\"magiclink\"]\n");
    let err = load(&with_login).unwrap_err();
    assert!(err.contains("session.secret"), "{err}");
    let short = format!("{with_login}\n[session]\nsecret = \"env:SHORT\"\n");
    let mut e = env();
    e.insert("SHORT".into(), "too-short".into());
    let err = Config::from_toml(&short, Path::new("."), &e, LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 32"), "{err}");
    let literal =
        format!("{with_login}\n[session]\nsecret = \"0123456789abcdef0123456789abcdef-literal\"\n");
    let cfg = load(&literal).unwrap();
    assert!(
        cfg.lints.iter().any(|l| l.key == "session.secret"),
        "{:?}",
        cfg.lints
    );
    let dev = Config::from_toml(
        &with_login,
        Path::new("."),
        &env(),
        LoadOptions { dev: true },
    )
    .unwrap();
    assert!(dev.session.secret.is_some());
}

#[test]
fn cookie_prefix_and_secure_follow_public_url() {
    let https = load(&MINIMAL.replace(
        "[descope]",
        "[server]\npublic_url = \"https://app.example.com\"\n[descope]",
    ))
    .unwrap();
    assert!(https.session.cookies.secure && https.session.cookies.host_prefix);
    let http = load(&MINIMAL.replace(
        "[descope]",
        "[server]\npublic_url = \"http://app.example.com\"\n[descope]",
    ))
    .unwrap();
    assert!(!http.session.cookies.secure && !http.session.cookies.host_prefix);
    let domain = load(&MINIMAL.replace(
        "[descope]",
        "[server]\npublic_url = \"https://app.example.com\"\n[session]\ncookie_domain = \"example.com\"\n[descope]",
    ))
    .unwrap();
    assert!(!domain.session.cookies.host_prefix);
    assert!(
        domain
            .lints
            .iter()
            .any(|l| l.key == "session.cookie_domain")
    );
}

#[test]
fn redirect_origins_and_after_logout_are_validated() {
    let err = load(&format!(
        "{MINIMAL}\n[login]\nafter_logout = \"https://evil.example\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("login.after_logout"), "{err}");
    let err = load(&format!(
        "{MINIMAL}\n[login]\nafter_logout = \"//evil.example\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("login.after_logout"), "{err}");
    let ok = load(&format!(
        "{MINIMAL}\n[login]\nallowed_redirect_origins = [\"https://docs.example.com\"]\nafter_logout = \"https://docs.example.com/bye\"\n"
    ))
    .unwrap();
    assert_eq!(
        ok.login.allowed_redirect_origins,
        vec!["https://docs.example.com".to_string()]
    );
    let err = load(&format!(
        "{MINIMAL}\n[login]\nallowed_redirect_origins = [\"https://docs.example.com/path\"]\n"
    ))
    .unwrap_err();
    assert!(err.contains("allowed_redirect_origins[0]"), "{err}");
}

#[test]
fn upstreams_are_validated_and_a_missing_table_is_a_lint() {
    // None at all suits a forward-auth-only gateway: a lint, not an error.
    let cfg = load("[descope]\nproject_id = \"P1\"\n[[routes]]\npath = \"/**\"\n").unwrap();
    assert!(
        cfg.lints.iter().any(|l| l.key == "upstreams"),
        "{:?}",
        cfg.lints
    );
    // A route naming an upstream that does not exist is still an error.
    let err = load(
        "[descope]\nproject_id = \"P1\"\n[[routes]]\npath = \"/**\"\nupstream = \"billing\"\n",
    )
    .unwrap_err();
    assert!(err.contains("upstream"), "{err}");
    let err = load(&MINIMAL.replace("http://127.0.0.1:3000", "ftp://x")).unwrap_err();
    assert!(err.contains("upstreams.default.url"), "{err}");
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

#[test]
fn check_config_prints_route_table_and_exits_by_lints() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.toml");
    std::fs::write(
        &ok,
        MINIMAL.replace("env:DESCOPE_PROJECT_ID", "P2abc").replace(
            "[descope]",
            "[server]\npublic_url = \"https://a.example\"\n[descope]",
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&ok)
        .env_remove("DESCOPE_PROJECT_ID")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/**"), "{stdout}");
    // It says how letter case is judged.
    assert!(
        stdout.contains("letter case: exact; a path whose letter case selects another route")
            && stdout.contains("refused with 400"),
        "{stdout}"
    );

    let linted = dir.path().join("lint.toml");
    std::fs::write(
        &linted,
        format!("{}\n[login]\nmethods = [\"magiclink\"]\n[session]\nsecret = \"0123456789abcdef0123456789abcdef-literal\"\n", MINIMAL.replace("env:DESCOPE_PROJECT_ID", "P2abc")),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&linted)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("session.secret"));
    let out = Command::new(bin())
        .args(["check-config", "--strict", "-c"])
        .arg(&linted)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{MINIMAL}\nbogus = 1\n")).unwrap();
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn login_cdn_url_is_an_origin_over_https_or_loopback_http() {
    let with = |v: &str| load(&format!("{MINIMAL}[login]\ncdn_url = \"{v}\"\n"));
    assert_eq!(
        with("https://cdn.example.com")
            .unwrap()
            .login
            .cdn_url
            .as_deref(),
        Some("https://cdn.example.com")
    );
    assert_eq!(
        with("http://127.0.0.1:4080/")
            .unwrap()
            .login
            .cdn_url
            .as_deref(),
        Some("http://127.0.0.1:4080")
    );
    assert_eq!(load(MINIMAL).unwrap().login.cdn_url, None);
    for bad in [
        "https://cdn.example.com/npm/x",
        "http://cdn.example.com",
        "https://u:p@cdn.example.com",
        "cdn.example.com",
    ] {
        let err = with(bad).unwrap_err();
        assert!(err.contains("login.cdn_url"), "{bad}: {err}");
        assert!(err.contains("fix:"), "{bad}: {err}");
    }
}

#[test]
fn host_routes_in_nginx_forward_auth_are_linted() {
    let host_route =
        "[[routes]]\nhost = \"admin.example.com\"\npath = \"/**\"\nroles = [\"admin\"]\n";
    let lints = |mode: &str, routes: &str| {
        load(&format!(
            "[forward_auth]\nmode = \"{mode}\"\n{routes}{MINIMAL}"
        ))
        .unwrap()
        .lints
        .iter()
        .any(|l| l.key == "forward_auth.mode")
    };
    assert!(lints("nginx", host_route));
    assert!(!lints("nginx", ""));
    assert!(!lints("traefik", host_route));
}
