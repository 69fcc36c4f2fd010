use super::*;

/// `Some((match_path, to_forward))` for an accepted path, `None` for a refusal.
type Want = Option<(&'static str, &'static str)>;

const CASES: &[(&str, Want)] = &[
    // --- plain paths, slashes
    ("/", Some(("/", "/"))),
    ("/a/b", Some(("/a/b", "/a/b"))),
    ("/a/b/", Some(("/a/b", "/a/b/"))),
    ("//a//b//", Some(("/a/b", "/a/b/"))),
    ("///", Some(("/", "/"))),
    ("/A/B", Some(("/A/B", "/A/B"))),
    ("/.well-known/x", Some(("/.well-known/x", "/.well-known/x"))),
    ("/a/.hidden", Some(("/a/.hidden", "/a/.hidden"))),
    ("/~user/x.html", Some(("/~user/x.html", "/~user/x.html"))),
    (
        "/a:b@c!$&'()*+,=",
        Some(("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=")),
    ),
    // --- dot segments, raw and encoded
    ("/a/./b", Some(("/a/b", "/a/b"))),
    ("/a/../b", Some(("/b", "/b"))),
    ("/a/b/..", Some(("/a", "/a/"))),
    ("/a/b/.", Some(("/a/b", "/a/b/"))),
    ("/a/%2e%2e/b", Some(("/b", "/b"))),
    ("/a/%2E%2E/b", Some(("/b", "/b"))),
    ("/a/.%2e/b", Some(("/b", "/b"))),
    ("/a/%2E/b", Some(("/a/b", "/a/b"))),
    ("/admin/../public", Some(("/public", "/public"))),
    ("/..", None),
    ("/a/../..", None),
    ("/%2e%2e/etc/passwd", None),
    ("/a/%2e%2e/%2e%2e/b", None),
    // --- ;parameters (Tomcat style)
    ("/admin;x", Some(("/admin", "/admin;x"))),
    (
        "/admin;jsessionid=1/x",
        Some(("/admin/x", "/admin;jsessionid=1/x")),
    ),
    ("/a/..;jsessionid=x/admin", Some(("/admin", "/admin"))),
    ("/public/..;/admin", Some(("/admin", "/admin"))),
    ("/a/.;x/b", Some(("/a/b", "/a/b"))),
    ("/;x/admin", Some(("/admin", "/admin"))),
    // an encoded ';' has no reading every upstream shares (Spring decodes,
    // then drops `;b` as a parameter; Tomcat keeps it in the name)
    ("/a%3Bb", None),
    ("/admin%3bx/y", None),
    ("/admin%3B/y", None),
    ("/a;b;c/d", Some(("/a/d", "/a;b;c/d"))),
    ("/a;b\\c", None),
    ("/a;%5C", None),
    ("/a;%2541", None),
    ("/a;%zz", None),
    ("/a;x%00", None),
    ("/a;x%20y", None),
    ("/a;x.", None),
    ("/a;x%2e", None),
    ("/a.aspx;x::$DATA", None),
    (
        "/a;jsessionid=ABC.node1",
        Some(("/a", "/a;jsessionid=ABC.node1")),
    ),
    // --- encoded slashes (accepted here, recorded)
    ("/a%2Fb", Some(("/a/b", "/a%2Fb"))),
    ("/a%2fb/c", Some(("/a/b/c", "/a%2Fb/c"))),
    ("/a%2F..%2Fb", None),
    ("/a%2F.%2Fb", None),
    ("/a%2F%2Fb", None),
    ("/a%2F", None),
    // --- double encoding
    ("/a%2541", None),
    ("/%252e%252e/admin", None),
    ("/a%25%34%31", None),
    ("/a%25zz", Some(("/a%zz", "/a%25zz"))),
    ("/100%25", Some(("/100%", "/100%25"))),
    // --- backslashes
    ("/a\\b", None),
    ("/a%5Cb", None),
    ("/a%5cb", None),
    ("/..%5C..%5Cwindows", None),
    // --- control bytes, raw and encoded
    ("/a%00b", None),
    ("/a\0b", None),
    ("/a%0Ab", None),
    ("/a%0d%0aSet-Cookie:x", None),
    ("/a\tb", None),
    ("/a%7F", None),
    ("/a%C2%85", None),
    // --- malformed escapes (IIS %u included)
    ("/a%zz", None),
    ("/a%4", None),
    ("/a%", None),
    ("/%u002e%u002e/admin", None),
    ("/a%u2215b", None),
    // --- mixed-case hex
    ("/%61dmin", Some(("/admin", "/admin"))),
    ("/%41dmin", Some(("/Admin", "/Admin"))),
    ("/a%4ab%4Ac", Some(("/aJbJc", "/aJbJc"))),
    // --- UTF-8: valid, overlong, truncated, stray bytes
    ("/caf%C3%A9", Some(("/café", "/caf%C3%A9"))),
    ("/caf%c3%a9", Some(("/café", "/caf%C3%A9"))),
    ("/café", Some(("/café", "/caf%C3%A9"))),
    ("/a%C0%AE%C0%AE/b", None),
    ("/a%C0%AFb", None),
    ("/a%E0%80%AE", None),
    ("/a%FF", None),
    ("/a%E2%82", None),
    ("/a%ED%A0%80", None),
    // --- Unicode look-alikes of separators and dots
    ("/a%EF%BC%8Fb", None),
    ("/a%EF%BC%BCb", None),
    ("/%EF%BC%8E%EF%BC%8E/admin", None),
    ("/a%E2%88%95b", None),
    // --- trailing dots and whitespace (Windows/IIS strip them)
    ("/admin.", None),
    ("/admin%2E", None),
    ("/admin%2e/x", None),
    ("/a/...", None),
    ("/admin%20", None),
    ("/%20admin", None),
    ("/admin%2e%20", None),
    ("/admin%C2%A0", None),
    ("/a%20b", Some(("/a b", "/a%20b"))),
    ("/a.b", Some(("/a.b", "/a.b"))),
    // --- NTFS alternate data streams
    ("/file.aspx::$DATA", None),
    ("/file.aspx%3A%3A$DATA", None),
    ("/admin:$i30:$INDEX_ALLOCATION/x", None),
    ("/admin%3A$i30%3A$INDEX_ALLOCATION/x", None),
    ("/admin:$I30:$index_allocation", None),
    ("/a:stream:$DATA", None),
    ("/a;x:$DATA", None),
    ("/admin::/x", None),
    ("/admin:/x", None),
    ("/admin%3A%3A", None),
    ("/urn:x:y", Some(("/urn:x:y", "/urn:x:y"))),
    (
        "/v1/books/1:publish",
        Some(("/v1/books/1:publish", "/v1/books/1:publish")),
    ),
    // --- Windows 8.3 short names
    ("/ADMINI~1/x", None),
    ("/admini~1/x", None),
    ("/ADMINI~1.ASP", None),
    ("/AD3F~12/x", None),
    ("/A~1", None),
    ("/x/WEB~1.CON", None),
    ("/%41DMINI~1/x", None),
    ("/ADMINI%7E1/x", None),
    ("/~user/x", Some(("/~user/x", "/~user/x"))),
    ("/a~b", Some(("/a~b", "/a~b"))),
    ("/toolongname~1", Some(("/toolongname~1", "/toolongname~1"))),
    ("/v~1.2.3", Some(("/v~1.2.3", "/v~1.2.3"))),
    // --- characters that must be re-encoded on the way out
    ("/a+b", Some(("/a+b", "/a+b"))),
    ("/a%2Bb", Some(("/a+b", "/a+b"))),
    ("/a%3Fb%23c", Some(("/a?b#c", "/a%3Fb%23c"))),
    ("/%7Euser", Some(("/~user", "/~user"))),
    ("/a%22%3C%3E", Some(("/a\"<>", "/a%22%3C%3E"))),
    ("/a%7Bb%7D", Some(("/a{b}", "/a%7Bb%7D"))),
    ("/a%2Cb", Some(("/a,b", "/a,b"))),
    // --- not a path
    ("", None),
    ("a/b", None),
    ("*", None),
    ("http://x/a", None),
];

#[test]
fn canonicalization_table() {
    assert!(CASES.len() >= 40);
    let mut failures = Vec::new();
    for (raw, want) in CASES {
        let got = CanonicalPath::parse(raw);
        let ok = match (&got, want) {
            (Ok(p), Some((m, f))) => p.match_path() == *m && p.to_forward() == *f,
            (Err(_), None) => true,
            _ => false,
        };
        if !ok {
            let got = got.map(|p| (p.match_path().to_owned(), p.to_forward()));
            failures.push(format!("{raw:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn forwarded_path_is_a_fixed_point() {
    // Whatever we forward must canonicalize to the same decision again, so a
    // second gateway (or a second decode upstream) agrees with the first.
    for (raw, want) in CASES {
        if want.is_none() {
            continue;
        }
        let p = CanonicalPath::parse(raw).expect("accepted in the table");
        let again = CanonicalPath::parse(&p.to_forward()).expect("forwarded path is canonical");
        assert_eq!(again.match_path(), p.match_path(), "{raw}");
        assert_eq!(again.to_forward(), p.to_forward(), "{raw}");
    }
}

#[test]
fn flags() {
    let cases: &[(&str, bool, bool)] = &[
        // raw, trailing slash, encoded slash
        ("/", true, false),
        ("/a", false, false),
        ("/a/", true, false),
        ("/a/b/..", true, false),
        ("/a/b/../c", false, false),
        ("/a%2Fb", false, true),
        ("/a%2fb/", true, true),
        ("/a;p=%2F", false, true),
        ("/a;b", false, false),
    ];
    for (raw, trailing, slash) in cases {
        let p = CanonicalPath::parse(raw).expect("valid");
        assert_eq!(p.has_trailing_slash(), *trailing, "{raw} trailing");
        assert_eq!(p.has_encoded_slash(), *slash, "{raw} encoded slash");
    }
}

#[test]
fn resolution_is_recorded() {
    // Forward-auth refuses paths whose structure canonicalization changed.
    let resolved = [
        "/admin/../public/x",
        "/admin/%2e%2e/public/x",
        "/admin/.%2e/public",
        "/admin/%2E%2E/public",
        "/admin/..;/public",
        "/admin;x/../public",
        "/x/../..",
        "//admin",
        "/a//b",
        "/a/./b",
        "/a/%2e/b",
        "/a/.;x/b",
        "/;x/admin",
        "/a/;x",
        "/a/;x/",
        "/a/b/.",
        "/a/b/..",
        "/a//",
    ];
    for raw in resolved {
        // Refused outright is fine too.
        if let Ok(p) = CanonicalPath::parse(raw) {
            assert!(p.was_resolved(), "{raw} should count as resolved");
        }
    }
    let verbatim = [
        "/",
        "/a",
        "/a/",
        "/a/b",
        "/a;x/b",
        "/a/b;x",
        "/.well-known/x",
        "/a.b/c",
    ];
    for raw in verbatim {
        let p = CanonicalPath::parse(raw).expect("valid");
        assert!(!p.was_resolved(), "{raw} is not resolved");
        assert_eq!(p.unresolved_head(), None, "{raw}");
    }
}

#[test]
fn the_head_before_the_first_resolution_is_kept() {
    for (raw, head, resolved) in [
        ("/_auth/verify/../../admin", "/_auth/verify", "/admin"),
        ("/_auth/verify/%2e%2e/me", "/_auth/verify", "/_auth/me"),
        ("/_auth/./me", "/_auth", "/_auth/me"),
        ("/x/../_auth/me", "/x", "/_auth/me"),
        ("//_auth/me", "/", "/_auth/me"),
        ("/a;p/b/../c/./d", "/a/b", "/a/c/d"),
    ] {
        let p = CanonicalPath::parse(raw).expect("valid");
        assert_eq!(p.unresolved_head(), Some(head), "{raw}");
        assert_eq!(p.match_path(), resolved, "{raw}");
    }
}

#[test]
fn segments_keep_params_raw() {
    let p = CanonicalPath::parse("/a%20b;x=%41/c").expect("valid");
    assert_eq!(
        p.segments(),
        &[
            Segment {
                decoded: "a b".into(),
                params: ";x=%41".into()
            },
            Segment {
                decoded: "c".into(),
                params: String::new()
            }
        ]
    );
}

#[test]
fn strip_prefix_at_segment_boundary() {
    let cases: &[(&str, &str, Want)] = &[
        // path, prefix, Some((match_path, to_forward)) after stripping
        ("/api/x", "/api", Some(("/x", "/x"))),
        ("/api/x/", "/api", Some(("/x", "/x/"))),
        ("/api", "/api", Some(("/", "/"))),
        ("/api/", "/api", Some(("/", "/"))),
        ("/apix", "/api", None),
        ("/ap", "/api", None),
        ("/x/api", "/api", None),
        ("/api/v1/users;p", "/api/v1", Some(("/users", "/users;p"))),
        ("/api;jsessionid=1/x", "/api", Some(("/x", "/x"))),
        ("/API/x", "/api", None),
        ("/a%2Fb/c", "/a", None),
        ("/a%2Fb/c", "/a%2Fb", None),
        ("/x", "/", Some(("/x", "/x"))),
        ("/x", "api", None),
    ];
    for (path, prefix, want) in cases {
        let p = CanonicalPath::parse(path).expect("valid");
        let got = p
            .strip_prefix(prefix)
            .map(|s| (s.match_path().to_owned(), s.to_forward()));
        let want = want.map(|(m, f)| (m.to_owned(), f.to_owned()));
        assert_eq!(got, want, "{path} minus {prefix}");
    }
    let p = CanonicalPath::parse("/API/x").expect("valid");
    assert_eq!(
        p.strip_prefix_with("/api", true).map(|s| s.to_forward()),
        Some("/x".to_owned())
    );
}

#[test]
fn case_folding_meets_ascii() {
    let cases: &[(&str, &str)] = &[
        ("admin", "admin"),
        ("ADMIN", "admin"),
        ("ſecret", "secret"),
        ("admın", "admin"),
        ("\u{212A}ey", "key"),
        ("Café", "café"),
    ];
    for (input, want) in cases {
        assert_eq!(fold_case(input), *want, "{input}");
    }
}

/// A tiny deterministic generator of hostile paths from interesting tokens.
fn hostile_paths(n: usize) -> Vec<String> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    const TOKENS: &[&str] = &[
        "/",
        "/",
        "/",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%25",
        "%5c",
        "\\",
        ";",
        ";x=1",
        "a",
        "A",
        "%41",
        "%61",
        " ",
        "%20",
        "%00",
        "%09",
        "%C0%AE",
        "%c3%a9",
        "é",
        "~",
        "%3B",
        "%3b",
        "%",
        "4",
        "1",
        "f",
        "x.",
        "%3F",
        "?",
        "#",
        "%23",
        "admin",
        "..;",
        ".;",
        "%2e%2e",
        "%u002e",
        "+",
        "%2B",
        ":",
        "@",
        "%EF%BC%8F",
        "%C2%A0",
        "%7F",
        "*",
        "{",
        "%7B",
    ];
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(1..12);
            let mut p = String::from("/");
            for _ in 0..len {
                p.push_str(TOKENS[rng.random_range(0..TOKENS.len())]);
            }
            p
        })
        .collect()
}

/// Lenient single percent-decode, as most servers do it (bad escapes kept).
fn lenient_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// RFC 3986 `remove_dot_segments` over already split segments.
fn resolve(segs: Vec<String>) -> Vec<String> {
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

#[test]
fn upstreams_agree_with_the_decision() {
    let mut accepted = 0;
    for raw in hostile_paths(30_000) {
        let Ok(p) = CanonicalPath::parse(&raw) else {
            continue;
        };
        accepted += 1;
        let m = p.match_path();
        let fwd = p.to_forward();
        // The match path is canonical.
        assert!(m.starts_with('/'), "{raw}");
        if m != "/" {
            for seg in m[1..].split('/') {
                assert!(!seg.is_empty() && seg != "." && seg != "..", "{raw} -> {m}");
            }
        }
        assert!(
            !m.contains('\\') && !m.chars().any(char::is_control),
            "{raw} -> {m:?}"
        );
        // The forwarded path is a fixed point of canonicalization.
        let again = CanonicalPath::parse(&fwd).unwrap_or_else(|e| panic!("{raw} -> {fwd}: {e}"));
        assert_eq!(again.match_path(), m, "{raw} -> {fwd}");
        assert_eq!(again.to_forward(), fwd, "{raw}");
        // The forwarded path is plain ASCII without '?', '#', spaces or controls.
        assert!(
            fwd.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'\\'),
            "{fwd:?}"
        );
        if p.has_encoded_slash() {
            continue;
        }
        // Tomcat model: drop ;params per raw segment, decode once, resolve dots.
        let tomcat: Vec<String> = fwd
            .split('/')
            .map(|s| lenient_decode(s.split(';').next().unwrap_or("")))
            .collect();
        assert_eq!(
            format!("/{}", resolve(tomcat).join("/")),
            m,
            "tomcat: {raw} -> {fwd}"
        );
        // Decode-first model (Node, PHP): decode once, then split; a ;param
        // is part of the name there, but nothing else differs.
        let once = lenient_decode(&fwd);
        let node = resolve(once.split('/').map(str::to_owned).collect());
        let want: Vec<String> = p
            .segments()
            .iter()
            .map(|s| format!("{}{}", s.decoded, lenient_decode(&s.params)))
            .collect();
        assert_eq!(node, want, "decode-first: {raw} -> {fwd}");
        // Double-decoding model (IIS): a second decode changes nothing.
        assert_eq!(lenient_decode(&once), once, "double decode: {raw} -> {fwd}");
    }
    assert!(
        accepted > 1_000,
        "the generator should produce valid paths too ({accepted})"
    );
}
