//! Differential path test: for a large generated set of hostile paths, the
//! gateway's route decision against how each modelled upstream framework
//! would route the bytes it receives — the forwarded bytes behind the proxy,
//! the raw bytes behind forward-auth. A disagreement that widens access (the
//! app serves a resource whose rule is stricter than the one the gateway
//! applied) is a bypass; there must be none.
//!
//! The models are deliberately lenient readings of each stack (the ways
//! they have been known to read paths), not their safest settings:
//!
//! | model    | decodes            | `;params`              | dot segments | letter case |
//! |----------|--------------------|------------------------|--------------|-------------|
//! | Tomcat   | once, after split  | stripped (raw)         | resolved     | exact       |
//! | Spring   | once, first        | stripped after decode  | resolved     | exact       |
//! | Express  | no (matches raw)   | part of the name       | not resolved | ignored     |
//! | Werkzeug | once (`%2F` → `/`) | part of the name       | not resolved | exact       |
//! | Go mux   | per segment        | part of the name       | resolved     | exact       |
//! | IIS/ASP  | once, `\` → `/`    | part of the name       | resolved     | ignored     |
//!
//! IIS also drops trailing dots and spaces, reads `name:stream:$TYPE` as
//! `name`, and resolves 8.3 short names (`ADMINI~1`) to the long name.

use http::Method;
use portcullis::app::Generation;
use portcullis::config::{Config, LoadOptions};
use portcullis::decide::{Facts, Mode, Target, route};
use portcullis::policy::Access;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://gw.test"
[descope]
project_id = "P2testproject0000000000000000"
base_url = "http://127.0.0.1:1"
[upstreams.default]
url = "http://127.0.0.1:1"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/administrator/**"
roles = ["admin"]
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/**"
access = "authenticated"
"#;

/// How strict a path's rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Public,
    Authenticated,
    Admin,
}

/// The level the gateway's own routes give a path as the app sees it,
/// compared the way the app compares (`ci`: without letter case).
fn app_level(segments: &[String], ci: bool) -> Level {
    let eq = |a: &str, b: &str| {
        if ci {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match segments.first().map(String::as_str) {
        Some(s) if eq(s, "admin") || eq(s, "administrator") => Level::Admin,
        Some(s) if eq(s, "public") => Level::Public,
        _ => Level::Authenticated,
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn resolve(segs: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in segs {
        match s.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(s),
        }
    }
    out
}

fn split(p: &str) -> impl Iterator<Item = String> + '_ {
    p.split('/').map(str::to_owned)
}

/// Each model: the path segments its router matches on, and whether it
/// ignores letter case. `None`: the stack refuses the path.
fn models(raw_path: &str) -> Vec<(&'static str, Option<Vec<String>>, bool)> {
    let tomcat = {
        let segs = raw_path
            .split('/')
            .map(|s| decode(s.split(';').next().unwrap_or("")));
        Some(resolve(segs))
    };
    let spring = {
        let decoded = decode(raw_path);
        let segs = decoded
            .split('/')
            .map(|s| s.split(';').next().unwrap_or("").to_owned());
        Some(resolve(segs.collect::<Vec<_>>()))
    };
    // Express matches the raw (still encoded) path, without resolving.
    let express = Some(split(raw_path).filter(|s| !s.is_empty()).collect());
    // Werkzeug gets PATH_INFO decoded by the server, `%2F` included.
    let werkzeug = Some(split(&decode(raw_path)).filter(|s| !s.is_empty()).collect());
    let go = Some(resolve(raw_path.split('/').map(decode)));
    let iis = {
        let decoded = decode(raw_path).replace('\\', "/");
        let segs = decoded.split('/').map(|s| {
            let s = s.split(":$").next().unwrap_or(s);
            let s = s.split("::").next().unwrap_or(s);
            let s = s.trim_end_matches(['.', ' ']);
            // An 8.3 short name (`STEM~N[.EXT]`, stem of one to six
            // characters) names the first long name it abbreviates.
            let lower = s.to_ascii_lowercase();
            let (base, ext) = match lower.rsplit_once('.') {
                Some((b, e)) if b.contains('~') => (b.to_owned(), Some(e.len())),
                _ => (lower.clone(), None),
            };
            match base.rsplit_once('~') {
                Some((stem, n))
                    if (1..=6).contains(&stem.len())
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && ext.is_none_or(|e| (1..=3).contains(&e)) =>
                {
                    ["administrator", "admin", "public"]
                        .iter()
                        .find(|long| long.starts_with(stem))
                        .map_or_else(|| s.to_owned(), |l| (*l).to_owned())
                }
                _ => s.to_owned(),
            }
        });
        Some(resolve(segs.collect::<Vec<_>>()))
    };
    vec![
        ("tomcat", tomcat, false),
        ("spring", spring, false),
        ("express", express, true),
        ("werkzeug", werkzeug, false),
        ("go", go, false),
        ("iis", iis, true),
    ]
}

/// The gateway's decision: `None` when refused (400/403/405), else the
/// level of the rule it applied and the path it forwards.
fn gateway(generation: &Generation, raw: &str, forward_auth: bool) -> Option<(Level, String)> {
    let mode = if forward_auth {
        Mode::ForwardAuth(portcullis::config::ForwardAuthMode::Traefik)
    } else {
        Mode::Proxy
    };
    let headers = http::HeaderMap::new();
    let facts = Facts::new(
        mode,
        &Method::GET,
        raw,
        None,
        Some("gw.test".into()),
        &headers,
    )
    .ok()?;
    let target = route(generation, &facts).ok()?;
    let level = match target {
        Target::Route(route, _) => match (route.access, route.has_rules()) {
            (Access::Public, _) => Level::Public,
            (Access::Deny, _) => return None,
            (_, true) => Level::Admin,
            (_, false) => Level::Authenticated,
        },
        Target::DefaultAuthenticated => Level::Authenticated,
    };
    let fwd = if forward_auth {
        raw.to_owned()
    } else {
        facts.canon.to_forward()
    };
    Some((level, fwd))
}

/// A deterministic generator of hostile paths from interesting tokens.
fn hostile_paths(n: usize) -> Vec<String> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    const HEADS: &[&str] = &[
        "admin",
        "ADMIN",
        "Admin",
        "%61dmin",
        "%41DMIN",
        "adm%69n",
        "admin;x",
        "admin%3bx",
        "admin.",
        "admin%2e",
        "admin%20",
        "admin::$DATA",
        "admin:$i30:$INDEX_ALLOCATION",
        "ADMINI~1",
        "admini~1",
        "administrator",
        "public",
        "PUBLIC",
        "Public",
        "publi%63",
        "other",
        "x",
        "",
    ];
    const TOKENS: &[&str] = &[
        "/",
        "/",
        "/",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        ";",
        ";x=1",
        "..;",
        ".;",
        "a",
        "A",
        "%41",
        "%3b",
        "%3B",
        "%20",
        "%25",
        "~1",
        ":$DATA",
        "::",
        "admin",
        "ADMIN",
        "public",
        "PUBLIC",
        "%61dmin",
        "x",
        "%00",
        "%C0%AE",
        "é",
        "%c3%a9",
        "%EF%BC%8F",
        "?",
    ];
    let mut rng = StdRng::seed_from_u64(0xd1ff);
    (0..n)
        .map(|_| {
            let mut p = String::from("/");
            let lead = rng.random_range(0..4);
            for _ in 0..lead {
                p.push_str(TOKENS[rng.random_range(0..TOKENS.len())]);
            }
            p.push_str(HEADS[rng.random_range(0..HEADS.len())]);
            for _ in 0..rng.random_range(0..8) {
                p.push_str(TOKENS[rng.random_range(0..TOKENS.len())]);
            }
            p
        })
        .filter(|p| !p.contains('?'))
        .collect()
}

#[test]
fn no_modelled_upstream_serves_a_stricter_route_than_the_gateway_judged() {
    let config = Config::from_toml(
        CONFIG,
        std::path::Path::new("."),
        &std::collections::HashMap::<String, String>::new(),
        LoadOptions::default(),
    )
    .expect("valid config");
    let generation = Generation::new(config, None).expect("generation builds");
    let paths = hostile_paths(60_000);
    let mut widened = Vec::new();
    let mut judged = [0usize; 2];
    for (mode, forward_auth) in [("proxy", false), ("forward-auth", true)] {
        for raw in &paths {
            let Some((level, bytes)) = gateway(&generation, raw, forward_auth) else {
                continue;
            };
            judged[usize::from(forward_auth)] += 1;
            for (name, routed, ci) in models(&bytes) {
                let Some(segs) = routed else { continue };
                let app = app_level(&segs, ci);
                if app > level {
                    widened.push(format!(
                        "{mode}: {raw:?} judged {level:?}, {name} routes {bytes:?} as {segs:?} ({app:?})"
                    ));
                }
            }
        }
    }
    // The generator must exercise both outcomes, or the test proves nothing.
    assert!(
        judged.iter().all(|n| *n > 1_500),
        "too few paths were accepted: {judged:?}"
    );
    assert!(
        widened.is_empty(),
        "{} disagreements widen access, e.g.:\n{}",
        widened.len(),
        widened[..widened.len().min(30)].join("\n")
    );
}

#[test]
fn the_models_see_the_known_bypasses() {
    // Without the gateway's rules each known trick does reach `/admin` in
    // at least one model: the models are not blind to what the test hunts.
    let tricks = [
        ("/admin/../public/x", "express"),
        ("/ADMIN/x", "express"),
        ("/ADMIN/x", "iis"),
        ("/admin%3bx/y", "spring"),
        ("/admin:$i30:$INDEX_ALLOCATION/x", "iis"),
        ("/ADMINI~1/x", "iis"),
        ("/admin./x", "iis"),
    ];
    for (raw, model) in tricks {
        let (_, routed, ci) = models(raw)
            .into_iter()
            .find(|(n, _, _)| *n == model)
            .expect("model exists");
        assert_eq!(
            app_level(&routed.expect("routed"), ci),
            Level::Admin,
            "{model} should route {raw} to admin"
        );
    }
}
