//! The human side of the policy: the `check-config` route table (with each
//! glob's expansion in words) and the lints (shadowed routes, catch-alls).

use std::fmt::Write as _;

use crate::issue::ConfigIssue;

use super::matcher::{PathMatcher, Seg, glob_covers};
use super::rules::{ClaimRule, Rules, TenantSource};
use super::{Access, DefaultPolicy, Policy, Route, Unauthenticated};

pub(super) fn lints(policy: &Policy) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let routes = &policy.routes;
    for (j, later) in routes.iter().enumerate() {
        let PathMatcher::Glob(b) = &later.matcher else {
            continue;
        };
        let shadow = routes[..j].iter().find(|earlier| {
            let host_ok = match (&earlier.host, &later.host) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a.covers(b),
            };
            host_ok && matches!(&earlier.matcher, PathMatcher::Glob(a) if glob_covers(a, b))
        });
        if let Some(earlier) = shadow {
            out.push(
                ConfigIssue::new(
                    format!("routes[{j}].path"),
                    format!(
                        "this route never matches: routes[{}] ({:?}) comes first and matches every path (and host) it can",
                        earlier.index, earlier.pattern
                    ),
                    format!("move it above routes[{}], or narrow routes[{}]", earlier.index, earlier.index),
                )
                .with_value(format!("{:?}", later.pattern)),
            );
        }
    }
    match routes.iter().find(|r| r.is_catch_all()) {
        None => {
            let what = match policy.default {
                DefaultPolicy::Deny => "deny: 403",
                DefaultPolicy::Authenticated => "authenticated: any valid session, no rules",
            };
            out.push(ConfigIssue::new(
                "routes",
                format!("no catch-all route: requests matching no route fall to [policy] default ({what})"),
                "add a last route with path = \"/**\" to state what unlisted paths get",
            ));
        }
        Some(r) if r.access == Access::Public => out.push(
            ConfigIssue::new(
                format!("routes[{}].access", r.index),
                "a public catch-all: every path not listed above it is served without a session",
                "use access = \"authenticated\" (or \"optional\"), unless the app does its own authorization",
            )
            .with_value("\"public\""),
        ),
        Some(_) => {}
    }
    for (j, r) in routes.iter().enumerate() {
        // Names that default to the pattern are covered by the shadowing lint.
        if r.name == r.pattern {
            continue;
        }
        if let Some(first) = routes[..j].iter().find(|e| e.name == r.name) {
            out.push(
                ConfigIssue::new(
                    format!("routes[{j}].name"),
                    format!(
                        "same name as routes[{}]: their logs and metrics mix",
                        first.index
                    ),
                    "give each route its own name",
                )
                .with_value(format!("{:?}", r.name)),
            );
        }
    }
    out
}

/// `/t/{tenant}/**` → "`/t/<tenant>` and everything below; captures tenant".
pub(super) fn expansion(route: &Route) -> String {
    let mut s = match &route.matcher {
        PathMatcher::Regex { .. } => format!("paths matching ^(?:{})$", route.pattern),
        PathMatcher::Glob(segs) => glob_words(segs),
    };
    let captures: Vec<String> = match &route.matcher {
        PathMatcher::Glob(segs) => segs
            .iter()
            .filter_map(|x| match x {
                Seg::Capture(n) => Some(n.clone()),
                Seg::Literal(_) | Seg::One | Seg::AnyDepth => None,
            })
            .collect(),
        PathMatcher::Regex { re, .. } => re.capture_names().flatten().map(str::to_owned).collect(),
    };
    if !captures.is_empty() {
        let _ = write!(s, "; captures {}", captures.join(", "));
    }
    if route.case_insensitive {
        s.push_str("; any letter case");
    }
    s
}

fn glob_words(segs: &[Seg]) -> String {
    let render = |segs: &[Seg]| -> String {
        let parts: Vec<String> = segs
            .iter()
            .map(|x| match x {
                Seg::Literal(l) => l.clone(),
                Seg::One => "<any>".to_owned(),
                Seg::Capture(n) => format!("<{n}>"),
                Seg::AnyDepth => "<any depth>".to_owned(),
            })
            .collect();
        format!("/{}", parts.join("/"))
    };
    match segs {
        [] => "only `/`".to_owned(),
        [Seg::AnyDepth] => "every path".to_owned(),
        [rest @ .., Seg::AnyDepth] => {
            let mut s = format!("`{}` and everything below", render(rest));
            if rest.contains(&Seg::AnyDepth) {
                s.push_str(" (<any depth> = zero or more segments)");
            }
            s
        }
        _ if segs.contains(&Seg::AnyDepth) => {
            format!(
                "`{}` (<any depth> = zero or more segments; also with a trailing `/`)",
                render(segs)
            )
        }
        _ => format!("exactly `{}` (also with a trailing `/`)", render(segs)),
    }
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

pub(super) fn rules_summary(r: &Rules) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut add = |label: &str, names: &[String]| {
        if !names.is_empty() {
            parts.push(format!("{label} [{}]", list(names)));
        }
    };
    add("all roles", &r.roles);
    add("any role of", &r.any_roles);
    add("all permissions", &r.permissions);
    add("any permission of", &r.any_permissions);
    if let Some(t) = &r.tenant {
        let src = match t {
            TenantSource::Capture(n) => format!("path capture {{{n}}}"),
            TenantSource::Header(h) => format!("header {h}"),
            TenantSource::CurrentTenant => "the token's dct".to_owned(),
            TenantSource::Literal(id) => format!("tenant {id}"),
        };
        parts.push(format!("member of the tenant from {src}"));
    }
    let mut add = |label: &str, names: &[String]| {
        if !names.is_empty() {
            parts.push(format!("{label} [{}]", list(names)));
        }
    };
    add("all tenant roles", &r.tenant_roles);
    add("any tenant role of", &r.any_tenant_roles);
    add("all tenant permissions", &r.tenant_permissions);
    add("any tenant permission of", &r.any_tenant_permissions);
    for (name, rule) in &r.claims {
        parts.push(match rule {
            ClaimRule::Equals(v) => format!("claim {name} = {}", v.render()),
            ClaimRule::OneOf(vs) => {
                format!(
                    "claim {name} one of [{}]",
                    vs.iter().map(|v| v.render()).collect::<Vec<_>>().join(", ")
                )
            }
        });
    }
    if r.require_mfa {
        parts.push("multi-factor login".to_owned());
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

pub(super) fn describe(policy: &Policy) -> String {
    let mut out = String::new();
    let default = match policy.default {
        DefaultPolicy::Deny => "deny (a request matching no route gets 403)",
        DefaultPolicy::Authenticated => {
            "authenticated (a request matching no route needs any valid session)"
        }
    };
    let _ = writeln!(out, "default policy: {default}");
    let case = if policy.case_insensitive {
        "case-insensitive (server.case_insensitive_paths = true): /ADMIN/x is judged as /admin/x"
    } else {
        "exact; a path whose letter case selects another route than its lower-cased form \
         (/ADMIN/x when /admin/** is a route) is refused with 400, so no case variant escapes \
         its route on a case-insensitive app (set server.case_insensitive_paths = true for \
         IIS-style upstreams)"
    };
    let _ = writeln!(out, "letter case: {case}");
    let _ = writeln!(out, "routes: {}", policy.routes.len());
    for r in &policy.routes {
        let _ = writeln!(out);
        let _ = writeln!(out, "[{}] {}", r.index, r.name);
        let kind = if r.is_regex { "path_regex" } else { "path" };
        let _ = writeln!(out, "    {kind:<10} {}", r.pattern);
        let _ = writeln!(out, "    {:<10} {}", "matches", expansion(r));
        let _ = writeln!(
            out,
            "    {:<10} {}",
            "host",
            r.host_text.as_deref().unwrap_or("any")
        );
        let methods = match &r.methods {
            None => "any".to_owned(),
            Some(m) => {
                let mut names: Vec<&str> = m.iter().map(http::Method::as_str).collect();
                if names.contains(&"GET") && !names.contains(&"HEAD") {
                    names.push("HEAD (as GET)");
                }
                format!("{} (others: 405)", names.join(", "))
            }
        };
        let _ = writeln!(out, "    {:<10} {methods}", "methods");
        let access = match r.access {
            Access::Public => "public (no session check)",
            Access::Optional => "optional (identity forwarded when signed in)",
            Access::Authenticated => "authenticated",
            Access::Deny => "deny (403)",
        };
        let _ = writeln!(out, "    {:<10} {access}", "access");
        let _ = writeln!(out, "    {:<10} {}", "rules", rules_summary(&r.rules));
        let _ = writeln!(out, "    {:<10} {}", "upstream", r.upstream);
        let mut flags: Vec<String> = Vec::new();
        match r.unauthenticated {
            Unauthenticated::Auto => {}
            Unauthenticated::Redirect => flags.push("unauthenticated=redirect".into()),
            Unauthenticated::Status401 => flags.push("unauthenticated=401".into()),
        }
        if r.allow_preflight {
            flags.push("allow_preflight".into());
        }
        if let Some(p) = &r.strip_prefix {
            flags.push(format!("strip_prefix={p}"));
        }
        if r.allow_encoded_slash {
            flags.push("allow_encoded_slash".into());
        }
        let flags = if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(", ")
        };
        let _ = writeln!(out, "    {:<10} {flags}", "flags");
    }
    out
}
