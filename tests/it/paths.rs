//! Canonical paths end to end: for each raw request target, the status and
//! exactly what the upstream receives. `/admin/**` is protected; nothing that
//! means `/admin` to any upstream stack may arrive there unauthenticated.

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/files/**"
access = "public"
allow_encoded_slash = true
[[routes]]
path = "/**"
access = "public"
"#;

/// (raw target, expected status, expected upstream target when forwarded)
const CASES: &[(&str, u16, Option<&str>)] = &[
    ("/a/b", 200, Some("/a/b")),
    ("/a/./b", 200, Some("/a/b")),
    ("/a/../b", 200, Some("/b")),
    ("/a/%2e%2e/b", 200, Some("/b")),
    ("/a/%2E%2E/admin", 401, None),
    ("/admin", 401, None),
    ("/admin/", 401, None),
    ("/admin/x/y", 401, None),
    ("//admin", 401, None),
    ("/public/../admin", 401, None),
    // Tomcat reads `/admin;x=1` as `/admin`, Node/Python/Go as another
    // name: a path whose route depends on the reading is refused.
    ("/admin;x=1", 400, None),
    ("/admin;/", 400, None),
    ("/a/..;/admin", 401, None),
    ("/a/.%2e/admin", 401, None),
    ("/admin/%2e", 401, None),
    ("/admin/./", 401, None),
    ("/admin?x=1", 401, None),
    ("http://gw.test/admin", 401, None),
    ("/..;/admin", 400, None),
    ("/..", 400, None),
    ("/a/b/../../..", 400, None),
    ("/admin%2fsecret", 400, None),
    ("/admin%2Fsecret", 400, None),
    ("/a/%2e%2e%2fadmin", 400, None),
    ("/a%5cb", 400, None),
    ("/a%5Cadmin", 400, None),
    ("/a%252e", 400, None),
    ("/a%252F", 400, None),
    ("/a%00b", 400, None),
    ("/a%0d%0ab", 400, None),
    ("/a%09", 400, None),
    ("/admin.", 400, None),
    ("/admin%2e", 400, None),
    ("/admin%20", 400, None),
    ("/%20admin", 400, None),
    ("/a%zz", 400, None),
    ("/a%4", 400, None),
    ("/%u002e%u002e/admin", 400, None),
    ("/a/%c0%ae%c0%ae/admin", 400, None),
    ("/a/%ff", 400, None),
    ("*", 400, None),
    ("/files/a%2Fb", 200, Some("/files/a%2Fb")),
    ("/files/a%2fb/c", 200, Some("/files/a%2Fb/c")),
    ("/caf%c3%a9", 200, Some("/caf%C3%A9")),
    ("/a%41", 200, Some("/aA")),
    ("/a/b/", 200, Some("/a/b/")),
    ("/a;jsessionid=1/b", 200, Some("/a;jsessionid=1/b")),
    ("/a//b", 200, Some("/a/b")),
    // An encoded ';' (Spring would serve `/admin`) and letter-case variants
    // of a protected path (Express, ASP.NET, IIS would serve `/admin`).
    ("/admin%3bx", 400, None),
    ("/admin%3Bx/y", 400, None),
    ("/a?x=../admin&y=%2F", 200, Some("/a?x=../admin&y=%2F")),
    ("/ADMIN", 400, None),
    ("/Admin/x", 400, None),
    ("/%41dmin/x", 400, None),
    ("/Other/x", 200, Some("/Other/x")),
    ("/a%20b", 200, Some("/a%20b")),
];

#[tokio::test]
async fn forty_plus_spellings_decide_and_forward_on_one_canonical_path() {
    assert!(CASES.len() >= 40);
    let gw = TestGateway::spawn(ROUTES).await;
    let mut failures = Vec::new();
    for (target, status, forwarded) in CASES {
        let before = gw.upstream.count();
        let (got, text) = gw.raw(&raw_get(target, "")).await;
        let after = gw.upstream.count();
        if got != *status {
            failures.push(format!(
                "{target}: status {got}, want {status}\n{}",
                text.lines().next().unwrap_or("")
            ));
            continue;
        }
        match forwarded {
            Some(want) => {
                let seen = gw.upstream.last().target;
                if after != before + 1 || seen != *want {
                    failures.push(format!("{target}: upstream saw {seen:?}, want {want:?}"));
                }
            }
            None => {
                if after != before {
                    failures.push(format!(
                        "{target}: reached the upstream as {:?}",
                        gw.upstream.last().target
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn an_authorized_request_is_forwarded_on_the_canonical_path() {
    let gw = TestGateway::spawn(ROUTES).await;
    let token = gw.session("U-admin", serde_json::json!({"roles": ["admin"]}));
    let (status, _) = gw
        .raw(&raw_get(
            "/x/../admin/./a;v=1//b?q=%2e%2e",
            &format!("Authorization: Bearer {token}\r\n"),
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(gw.upstream.last().target, "/admin/a;v=1/b?q=%2e%2e");
}
