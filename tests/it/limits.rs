//! Limits are by size, not hidden counts: many small headers either way are
//! fine under the size limit; a client's broken body framing is the
//! client's 400, not the upstream's 502; CONNECT is refused, not forwarded.

use crate::support::*;

const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

#[tokio::test]
async fn an_upstream_answer_with_many_small_headers_passes() {
    for count in [101usize, 150, 500, 1000, 2000] {
        let up = RawUpstream::spawn(move |mut c| async move {
            while let Some(_req) = c.next_head().await {
                let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
                for i in 0..count {
                    head.push_str(&format!("X-H-{i}: v{i}\r\n"));
                }
                head.push_str("\r\nok");
                c.write(head.as_bytes()).await;
            }
        })
        .await;
        let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_max_headers(10_000)
            .build()
            .unwrap();
        let r = client.get(gw.url("/many")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{count} response headers");
        let h = r.headers();
        assert_eq!(h["x-h-0"], "v0");
        assert_eq!(
            h[format!("x-h-{}", count - 1).as_str()],
            format!("v{}", count - 1)
        );
        assert_eq!(
            h.keys().filter(|k| k.as_str().starts_with("x-h-")).count(),
            count
        );
        assert_eq!(r.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn an_upstream_answer_over_the_size_limit_is_a_clean_502() {
    let up = RawUpstream::spawn(|mut c| async move {
        while let Some(_req) = c.next_head().await {
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
            // 40 headers of 2 KiB: few lines, far more than 64 KiB.
            for i in 0..40 {
                head.push_str(&format!("X-Big-{i}: {}\r\n", "b".repeat(2048)));
            }
            head.push_str("\r\nok");
            c.write(head.as_bytes()).await;
        }
    })
    .await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let r = gw.get("/huge").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(!r.text().await.unwrap().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_request_with_many_small_headers_under_the_size_limit_passes() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    for count in [101usize, 200, 500, 1000, 1500] {
        let mut extra = String::new();
        for i in 0..count {
            extra.push_str(&format!("X-R-{i}: {i}\r\n"));
        }
        assert!(extra.len() < 32 * 1024);
        let (status, text) = gw.raw(&raw_get("/many", &extra)).await;
        assert_eq!(status, 200, "{count} request headers: {text}");
        let seen = gw.upstream.last().headers;
        assert_eq!(
            seen.keys()
                .filter(|k| k.as_str().starts_with("x-r-"))
                .count(),
            count
        );
    }
    // HTTP/2 too.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    for count in [101usize, 500, 1500] {
        let mut req = h2.get(gw.url("/many-h2"));
        for i in 0..count {
            req = req.header(format!("x-r-{i}"), i.to_string());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200, "{count} headers over HTTP/2");
    }
    // Over the size, HTTP/2 is refused too.
    let mut req = h2.get(gw.url("/too-many-h2"));
    for i in 0..4000 {
        req = req.header(format!("x-many-{i}"), i.to_string());
    }
    let refused = match req.send().await {
        Ok(r) => r.status() == 431,
        Err(_) => true,
    };
    assert!(refused, "4000 headers over HTTP/2 were accepted");
}

#[tokio::test]
async fn request_headers_over_max_header_bytes_are_431() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    // Few large headers and many small ones, both over 32 KiB.
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let mut many = String::new();
    for i in 0..4000 {
        many.push_str(&format!("X-Many-{i}: {i}\r\n"));
    }
    assert!(many.len() > 32 * 1024);
    for extra in [big, many] {
        let (status, _) = gw.raw(&raw_get("/big", &extra)).await;
        assert_eq!(status, 431);
    }
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn a_client_body_framing_error_is_400_not_502() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    let bodies = [
        ("bad size", "zz\r\nhello\r\n0\r\n\r\n"),
        (
            "size overflow",
            "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        ("negative size", "-5\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after data", "5\r\nhelloXX0\r\n\r\n"),
        ("data longer than size", "2\r\nhello\r\n0\r\n\r\n"),
        ("junk after size", "5 junk junk\r\nhello\r\n0\r\n\r\n"),
    ];
    for (name, body) in bodies {
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let (status, text) = gw.raw(&req).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(!text.contains("bad_gateway"), "{name}: {text}");
    }
    // The gateway keeps serving.
    assert_eq!(gw.get("/ok").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_chunked_body_over_max_body_bytes_is_413() {
    let gw = TestGateway::spawn_editing(PUBLIC_ALL, |toml| {
        toml.replace("[admin]", "max_body_bytes = 1024\n[admin]")
    })
    .await;
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (status, text) = gw.raw(&req).await;
    assert_eq!(status, 413, "{text}");
}

#[tokio::test]
async fn connect_is_refused_with_405_and_never_forwarded() {
    for routes in [PUBLIC_ALL, "[[routes]]\npath = \"/**\"\n", ""] {
        let gw = TestGateway::spawn(routes).await;
        for req in [
            "CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n",
            "CONNECT gw.test:80 HTTP/1.1\r\nHost: gw.test:80\r\n\r\n",
            "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        ] {
            let (status, text) = gw.raw(req).await;
            assert_eq!(status, 405, "{req:?} under {routes:?}: {text}");
            assert!(
                text.to_ascii_lowercase().contains("connection: close"),
                "{text}"
            );
        }
        // An origin-form CONNECT is not even HTTP: refused, never forwarded.
        let (status, _) = gw.raw("CONNECT /x HTTP/1.1\r\nHost: gw.test\r\n\r\n").await;
        assert!(status == 400 || status == 405, "{status}");
        assert_eq!(gw.upstream.count(), 0, "under {routes:?}");
    }
}

#[tokio::test]
async fn a_body_read_for_method_overrides_is_bounded_in_time() {
    // On a route with `methods`, a form body is read whole before anything
    // goes upstream; a client trickling it gets 408 after the upstream's
    // response_header_timeout (2 s in tests) instead of holding the request.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/forms/**\"\naccess = \"public\"\nmethods = [\"GET\", \"POST\"]\n",
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.handle.addr)
        .await
        .unwrap();
    s.write_all(
        b"POST /forms/x HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=1&b=",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body trickles");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(gw.upstream.count(), 0);
}
