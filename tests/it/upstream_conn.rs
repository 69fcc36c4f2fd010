//! The upstream leg's connections: what may share a pooled keep-alive
//! connection, and what happens when the upstream closes one.
//!
//! - A request body never precedes another request on the same upstream
//!   connection: an upstream that ignores a body would read it as the next
//!   request, forged identity headers included.
//! - A stale kept-alive connection (the upstream closes it as the next
//!   request arrives) costs an idempotent, body-less request one retry on a
//!   fresh connection, never a 502; anything else is never replayed.
//! - A HEAD answered with a body does not poison the next request.

use std::time::Duration;

use crate::support::*;

const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

/// What a smuggled body carries: a whole second request, with identity.
const FORGED: &str =
    "GET /forged HTTP/1.1\r\nHost: gw.test\r\nX-Auth-User-Id: admin\r\nX-Auth-Roles: admin\r\n\r\n";

/// An upstream that never reads a body, keeps connections alive, honours
/// `Connection: close`, and answers each head with its request line.
async fn body_ignoring_upstream() -> RawUpstream {
    RawUpstream::spawn(|mut c| async move {
        while let Some(req) = c.next_head().await {
            let line = format!("{} {}", req.method, req.target);
            let close = req
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if req.method == "HEAD" {
                c.write(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", line.len()).as_bytes(),
                )
                .await;
            } else {
                c.write(&ok_response(&line)).await;
            }
            if close {
                // Lingering close: stop parsing, let the peer read the
                // answer, discard whatever else it sent.
                use tokio::io::AsyncReadExt;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut c.stream).await;
                let mut sink = [0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), c.stream.read(&mut sink)).await
                {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
        }
    })
    .await
}

fn forged_seen(up: &RawUpstream) -> Vec<RawRequest> {
    up.requests()
        .into_iter()
        .filter(|r| r.target.contains("/forged") || r.head.contains("X-Auth-User-Id"))
        .collect()
}

#[tokio::test]
async fn a_body_the_upstream_ignores_is_never_read_as_another_request() {
    let up = body_ignoring_upstream().await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let methods = [
        "GET", "HEAD", "OPTIONS", "DELETE", "TRACE", "POST", "PUT", "PATCH", "PROPFIND", "LOCK",
    ];
    for method in methods {
        for chunked in [false, true] {
            let target = format!("/smuggle-{}-{}", method.to_ascii_lowercase(), chunked);
            let body = if chunked {
                reqwest::Body::wrap_stream(futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(FORGED.as_bytes()))
                }))
            } else {
                reqwest::Body::from(FORGED)
            };
            let r = gw
                .client
                .request(method.parse().unwrap(), gw.url(&target))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{method} chunked={chunked}");
            if method != "HEAD" {
                assert_eq!(r.text().await.unwrap(), format!("{method} {target}"));
            }
            // The next request on the gateway's pool would pick up whatever
            // the upstream had left to say on the connection the body rode.
            let r = gw.get("/next").send().await.unwrap();
            assert_eq!(
                r.text().await.unwrap(),
                "GET /next",
                "{method} chunked={chunked}: desync"
            );
            let forged = forged_seen(&up);
            assert!(
                forged.is_empty(),
                "{method} chunked={chunked}: the upstream read a forged request: {forged:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_stdlib_http_server_never_reads_a_forged_request_from_a_body() {
    // Python's http.server with HTTP/1.1 keep-alive and a handler that does
    // not read bodies: the unread body is the next request it parses.
    let Some(app) = App::spawn(Framework::HttpServer).await else {
        return;
    };
    let gw = TestGateway::spawn_for_url(&app.url(), PUBLIC_ALL).await;
    for method in ["GET", "OPTIONS", "DELETE", "POST", "PUT", "PATCH"] {
        let r = gw
            .client
            .request(method.parse().unwrap(), gw.url("/nobody/x"))
            .body(FORGED.replace("/forged", "/admin/forged"))
            .send()
            .await
            .unwrap();
        let first = app_echo(r).await;
        assert_eq!(first["route"], "nobody", "{method}: {first}");
        let next = app_echo(gw.get("/public/next").send().await.unwrap()).await;
        assert_eq!(
            next["path"], "/public/next",
            "{method}: the answer to a forged request reached the next client: {next}"
        );
        assert!(next["headers"].get("X-Auth-User-Id").is_none(), "{next}");
    }
    // Nor did the app act on one, whatever happened to its answer.
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let log = c
        .get(format!("{}/__log", app.url()))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let forged: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/admin/forged")
        .collect();
    assert!(forged.is_empty(), "the app ran forged requests: {forged:?}");
}

/// An upstream that answers the first request on each connection with
/// keep-alive, then closes the connection the moment the next request's
/// bytes arrive, without answering: Node's keepAliveTimeout, gunicorn and
/// Python servers closing an idle connection at the wrong instant. With
/// `reset`, the bytes stay unread, so the close is a TCP reset.
async fn stale_upstream(reset: bool) -> RawUpstream {
    RawUpstream::spawn(move |mut c| async move {
        let Some(first) = c.next_head().await else {
            return;
        };
        c.skip_body(&first).await;
        c.write(&ok_response(&format!("{} {}", first.method, first.target)))
            .await;
        if reset {
            c.peek_head().await;
        } else {
            c.next_head().await;
        }
    })
    .await
}

async fn metric(gw: &TestGateway, name: &str) -> u64 {
    let text = gw
        .client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn idempotent_requests_survive_a_stale_keep_alive_connection() {
    for reset in [false, true] {
        let up = stale_upstream(reset).await;
        let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
        let methods = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];
        let mut failures = Vec::new();
        for i in 0..60 {
            let method = methods[i % methods.len()];
            let target = format!("/idem-{i}");
            let r = gw
                .client
                .request(method.parse().unwrap(), gw.url(&target))
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                failures.push((method, r.status().as_u16()));
                continue;
            }
            if method != "HEAD" {
                assert_eq!(r.text().await.unwrap(), format!("{method} {target}"));
            }
        }
        assert!(failures.is_empty(), "reset={reset}: users saw {failures:?}");
        // The race really happened: requests arrived on reused connections
        // and were dropped there.
        let stale = up.requests().iter().filter(|r| r.nth == 2).count();
        assert!(
            stale >= 10,
            "reset={reset}: only {stale} stale connections hit"
        );
        assert_eq!(
            metric(&gw, "portcullis_upstream_retries_total").await,
            stale as u64,
            "reset={reset}"
        );
        // Each stale request was sent once more, on a fresh connection.
        for r in up.requests().iter().filter(|r| r.nth == 2) {
            let copies = up
                .requests()
                .iter()
                .filter(|o| o.target == r.target)
                .count();
            assert_eq!(copies, 2, "{} was sent {copies} times", r.target);
        }
    }
}

#[tokio::test]
async fn a_request_that_is_not_replayable_is_sent_once_and_gets_502() {
    let up = stale_upstream(false).await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let cases: &[(&str, Option<&str>)] = &[
        ("POST", Some("order=1")),
        ("POST", None),
        ("PATCH", Some("x")),
        ("PUT", Some("replace")),
        ("DELETE", Some("why")),
        ("OPTIONS", Some("q")),
        ("GET", Some("a body")),
    ];
    let mut reused = 0;
    for (i, (method, body)) in cases.iter().enumerate() {
        // A first request leaves a kept-alive connection in the pool...
        let warm = gw.get(&format!("/warm-{i}")).send().await.unwrap();
        assert_eq!(warm.status(), 200);
        warm.text().await.unwrap();
        // ...which the upstream closes as this one arrives.
        let target = format!("/once-{i}");
        let mut req = gw.client.request(method.parse().unwrap(), gw.url(&target));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let seen: Vec<_> = up
            .requests()
            .into_iter()
            .filter(|r| r.target == target)
            .collect();
        assert_eq!(
            seen.len(),
            1,
            "{method} {body:?} was sent {} times",
            seen.len()
        );
        if seen[0].nth == 2 {
            reused += 1;
            assert_eq!(r.status(), 502, "{method} {body:?}");
        }
    }
    assert!(
        reused * 2 >= cases.len(),
        "only {reused} requests met a stale connection"
    );
    assert_eq!(metric(&gw, "portcullis_upstream_retries_total").await, 0);
}

#[tokio::test]
async fn a_head_answered_with_a_body_does_not_poison_the_next_request() {
    // A hand-written server that sends the GET body for HEAD too. The body
    // goes out when the next request arrives, the worst moment: on a reused
    // connection it would be read as that request's answer.
    for chunked in [false, true] {
        let up = RawUpstream::spawn(move |mut c| async move {
            while let Some(req) = c.next_head().await {
                if req.method != "HEAD" {
                    c.write(&ok_response(&format!("{} {}", req.method, req.target)))
                        .await;
                    continue;
                }
                let poison =
                    "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poisoned: 1\r\n\r\npoisoned";
                if chunked {
                    c.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                } else {
                    c.write(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                            poison.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                }
                c.wait_for_bytes().await;
                if chunked {
                    c.write(format!("{:x}\r\n{poison}\r\n0\r\n\r\n", poison.len()).as_bytes())
                        .await;
                } else {
                    c.write(poison.as_bytes()).await;
                }
            }
        })
        .await;
        let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
        for i in 0..5 {
            let r = gw
                .client
                .head(gw.url(&format!("/h-{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                gw.get(&format!("/after-{i}")).send(),
            )
            .await
            .expect("the next request is answered")
            .unwrap();
            assert!(r.headers().get("x-poisoned").is_none(), "chunked={chunked}");
            assert_eq!(r.status(), 200, "chunked={chunked}");
            assert_eq!(r.text().await.unwrap(), format!("GET /after-{i}"));
        }
        // No request ever followed a HEAD on its connection.
        let log = up.requests();
        for h in log.iter().filter(|r| r.method == "HEAD") {
            assert!(
                !log.iter().any(|r| r.conn == h.conn && r.nth > h.nth),
                "chunked={chunked}: a request followed a HEAD on connection {}",
                h.conn
            );
        }
    }
}

#[tokio::test]
async fn an_answer_framed_by_chunks_is_not_sent_on_with_its_content_length() {
    // Both framings in one answer (RFC 9112 §6.3: chunked wins): the body is
    // read by its chunks, so a Content-Length passed on beside it would frame
    // the client's answer wrongly (cut short, or a connection left waiting).
    let up = RawUpstream::spawn(|mut c| async move {
        while c.next_head().await.is_some() {
            c.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
                  b\r\nhello world\r\n0\r\n\r\n",
            )
            .await;
        }
    })
    .await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        let r = gw.get("/both").send().await.unwrap();
        let cl = r.headers().get("content-length").cloned();
        (r.status(), cl, r.text().await)
    })
    .await
    .expect("answered");
    assert_eq!(r.0, 200);
    assert!(
        r.1.as_ref().is_none_or(|v| v == "11"),
        "content-length {:?}",
        r.1
    );
    assert_eq!(r.2.expect("whole body"), "hello world");
}

/// An upstream that keeps one connection alive for everything, answering
/// by path: every framing an answer can have, with and without a body.
async fn framing_upstream() -> RawUpstream {
    RawUpstream::spawn(|mut c| async move {
        while let Some(req) = c.next_head().await {
            c.skip_body(&req).await;
            let answer = match req.target.as_str() {
                "/no-content" => "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
                "/not-modified" => "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_owned(),
                "/zero" => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
                "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    .to_owned(),
                "/trailers" => {
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
                     5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"
                        .to_owned()
                }
                other => String::from_utf8(ok_response(other)).unwrap(),
            };
            c.write(answer.as_bytes()).await;
        }
    })
    .await
}

#[tokio::test]
async fn answers_of_every_framing_keep_their_upstream_connection() {
    let up = framing_upstream().await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let expect = [
        ("/no-content", 204, ""),
        ("/not-modified", 304, ""),
        ("/zero", 200, ""),
        ("/chunked", 200, "hello world"),
        ("/trailers", 200, "hello"),
        ("/sized", 200, "/sized"),
    ];
    for _ in 0..2 {
        for (path, status, body) in expect {
            let r = gw.client.get(gw.url(path)).send().await.unwrap();
            assert_eq!(r.status(), status, "{path}");
            assert_eq!(r.text().await.unwrap(), body, "{path}");
        }
    }
    assert_eq!(
        up.connections(),
        1,
        "sequential answers, bodies or none, share one upstream connection: {:?}",
        up.requests()
            .iter()
            .map(|r| (r.conn, r.target.clone()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_answer_left_unread_is_never_read_as_the_next_answer() {
    // `/big` announces a megabyte and sends 64 KiB of it; the rest never
    // comes while the connection stays open.
    let up = RawUpstream::spawn(|mut c| async move {
        while let Some(req) = c.next_head().await {
            if req.target == "/big" {
                c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    .await;
                c.write(&vec![b'x'; 64 * 1024]).await;
                // Hold the connection (and the missing bytes) until the
                // gateway gives up on it.
                c.wait_for_bytes().await;
                let mut rest = [0u8; 1024];
                while matches!(
                    tokio::io::AsyncReadExt::read(&mut c.stream, &mut rest).await,
                    Ok(n) if n > 0
                ) {}
                return;
            }
            c.write(&ok_response(&req.target)).await;
        }
    })
    .await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let big = gw.client.get(gw.url("/big")).send().await.unwrap();
    assert_eq!(big.status(), 200);
    drop(big);
    for i in 0..3 {
        let path = format!("/small-{i}");
        let r = gw.client.get(gw.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), path);
    }
    let small_conns: Vec<usize> = up
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/small"))
        .map(|r| r.conn)
        .collect();
    assert!(
        small_conns.iter().all(|&c| c != 1),
        "no request followed the unfinished answer on its connection: {small_conns:?}"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used() {
    // The upstream answers one request per connection with keep-alive; it
    // closes the connection when the test says so (the connection is idle
    // in the gateway's pool by then) and reports that it has.
    let close = std::sync::Arc::new(tokio::sync::Notify::new());
    let closed = std::sync::Arc::new(tokio::sync::Notify::new());
    let (close_rx, closed_tx) = (close.clone(), closed.clone());
    let up = RawUpstream::spawn(move |mut c| {
        let (close_rx, closed_tx) = (close_rx.clone(), closed_tx.clone());
        async move {
            if let Some(req) = c.next_head().await {
                c.skip_body(&req).await;
                c.write(&ok_response(&req.target)).await;
            }
            close_rx.notified().await;
            drop(c);
            closed_tx.notify_one();
        }
    })
    .await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    for i in 0..3 {
        let r = gw
            .client
            .get(gw.url(&format!("/get-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
        close.notify_one();
        closed.notified().await;
        // A POST is never replayed: sent on the closed connection, it
        // would be a 502. The pool notices the close first.
        let r = gw
            .client
            .post(gw.url(&format!("/post-{i}")))
            .body("data")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "round {i}");
        assert_eq!(r.text().await.unwrap(), format!("/post-{i}"));
        close.notify_one();
        closed.notified().await;
    }
    assert_eq!(up.connections(), 6);
}

/// An app that answers `201` as soon as it has a request's head, then
/// (after `pause`, not reading meanwhile) reads the upload and reports how
/// many bytes were announced and how many arrived.
async fn early_answering_upstream(
    pause: Duration,
) -> (
    RawUpstream,
    tokio::sync::mpsc::UnboundedReceiver<(usize, usize)>,
) {
    let (got_tx, got_rx) = tokio::sync::mpsc::unbounded_channel();
    let up = RawUpstream::spawn(move |mut c| {
        let got_tx = got_tx.clone();
        async move {
            let Some(req) = c.next_head().await else {
                return;
            };
            c.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .await;
            tokio::time::sleep(pause).await;
            let n = c.skip_body(&req).await;
            let _ = got_tx.send((req.content_length(), n));
        }
    })
    .await;
    (up, got_rx)
}

#[tokio::test]
async fn a_body_keeps_flowing_to_an_app_that_answered_early() {
    // A server that keeps reading a `Connection: close` request after
    // answering it gets the whole upload.
    let (up, mut got_rx) = early_answering_upstream(Duration::ZERO).await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    for size in [1usize, 64 * 1024, 4 * 1024 * 1024] {
        let r = gw
            .client
            .post(gw.url("/upload"))
            .body(vec![b'u'; size])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let (announced, arrived) = got_rx.recv().await.unwrap();
        assert_eq!(
            (announced, arrived),
            (size, size),
            "the whole body reached the app"
        );
    }
}

#[tokio::test]
async fn a_bodiless_status_that_announces_a_body_does_not_poison_the_next_answer() {
    // A broken server answers 204 and 304 with a body anyway, and sends
    // that body late: after the next request has arrived. Shaped like a
    // whole answer, it would be read as the next user's answer.
    let up = RawUpstream::spawn(|mut c| async move {
        while let Some(req) = c.next_head().await {
            let forged = String::from_utf8(ok_response("forged")).unwrap();
            let head = match req.target.as_str() {
                "/no-content" => format!(
                    "HTTP/1.1 204 No Content\r\nContent-Length: {}\r\n\r\n",
                    forged.len()
                ),
                "/not-modified" => {
                    "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
                }
                other => {
                    c.write(&ok_response(other)).await;
                    continue;
                }
            };
            c.write(head.as_bytes()).await;
            c.wait_for_bytes().await;
            c.write(forged.as_bytes()).await;
        }
    })
    .await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    for first in ["/no-content", "/not-modified"] {
        let r = gw.client.get(gw.url(first)).send().await.unwrap();
        assert!(r.status() == 204 || r.status() == 304, "{first}");
        r.bytes().await.unwrap();
        for i in 0..2 {
            let path = format!("/after-{i}");
            let r = gw.client.get(gw.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), path, "after {first}");
        }
    }
}

#[tokio::test]
async fn a_connection_left_running_for_an_upload_is_closed_when_it_stalls() {
    // The app answers early, then stops reading the upload and never
    // closes. The gateway's connection, left to finish the upload on its
    // own, would wait for ever; it is closed once nothing moved for the
    // upstream's timeouts (1 s here). The app resumes reading after 3 s and
    // reports how much of the upload it got before the close.
    let (up, mut got_rx) = early_answering_upstream(Duration::from_secs(3)).await;
    let gw = TestGateway::spawn_for_url(
        "http://127.0.0.1:9",
        &format!(
            "[upstreams.slow]\nurl = \"{}\"\nbody_idle_timeout = \"1s\"\n\
             response_header_timeout = \"1s\"\n\
             [[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"slow\"\n",
            up.url()
        ),
    )
    .await;
    let size = 64 * 1024 * 1024;
    let r = gw
        .client
        .post(gw.url("/upload"))
        .body(vec![b'u'; size])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (announced, arrived) = tokio::time::timeout(Duration::from_secs(30), got_rx.recv())
        .await
        .expect("the app reported")
        .unwrap();
    assert_eq!(announced, size);
    assert!(
        arrived < size,
        "the stalled connection was closed, not held: {arrived} of {size} bytes"
    );
}

#[tokio::test]
async fn a_slow_client_reading_the_answer_to_an_upload_gets_all_of_it() {
    // A POST's connection runs on its own; a client that reads its answer
    // slowly leaves that connection quiet for longer than the upstream's
    // timeouts (1 s here). That is the client's pace, not a stalled app:
    // the answer arrives whole. 64 MiB is more than the sockets can hold,
    // so the gateway really stops reading the upstream meanwhile.
    const SIZE: usize = 64 * 1024 * 1024;
    let up = RawUpstream::spawn(|mut c| async move {
        let Some(req) = c.next_head().await else {
            return;
        };
        c.skip_body(&req).await;
        c.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes())
            .await;
        c.write(&vec![b'a'; SIZE]).await;
    })
    .await;
    let gw = TestGateway::spawn_for_url(
        "http://127.0.0.1:9",
        &format!(
            "[upstreams.slow]\nurl = \"{}\"\nbody_idle_timeout = \"1s\"\n\
             response_header_timeout = \"1s\"\n\
             [[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"slow\"\n",
            up.url()
        ),
    )
    .await;
    let mut r = gw
        .client
        .post(gw.url("/download"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = r.chunk().await.unwrap().map_or(0, |c| c.len());
    // The client's pace: nothing read for 3 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Some(c) = r.chunk().await.expect("the answer is not cut off") {
        got += c.len();
    }
    assert_eq!(got, SIZE);
}
