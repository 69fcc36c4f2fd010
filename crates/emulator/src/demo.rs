//! The demo upstream of `portcullis dev`: a page that shows the headers it
//! received, so a person can see exactly what the gateway forwards.

use std::net::SocketAddr;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::http::{Resp, escape as escape_html, html};

/// Serves the demo app on `listener` until the process ends.
pub async fn serve(listener: TcpListener, auth_prefix: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let prefix = auth_prefix.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let prefix = prefix.clone();
                async move { Ok::<_, std::convert::Infallible>(page(&req, &prefix)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds the demo app; returns its address.
pub async fn spawn(addr: SocketAddr, auth_prefix: String) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    tokio::spawn(serve(l, auth_prefix));
    Ok(a)
}

fn page(req: &Request<Incoming>, prefix: &str) -> Resp {
    let mut rows = String::new();
    let mut names: Vec<&str> = req.headers().keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    names.dedup();
    for n in names {
        for v in req.headers().get_all(n) {
            let highlight =
                n.starts_with("x-auth-") || n.starts_with("remote-") || n == "x-forwarded-user";
            rows.push_str(&format!(
                "<tr{}><th>{}</th><td>{}</td></tr>",
                if highlight { " class=\"id\"" } else { "" },
                escape_html(n),
                escape_html(&String::from_utf8_lossy(v.as_bytes()))
            ));
        }
    }
    let user = req
        .headers()
        .get("x-auth-user-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo app</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#1f2933}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e7eb;font-size:.9rem;word-break:break-all}}\
         tr.id{{background:#e3f8ff}}code{{background:#f5f7fa;padding:.1rem .3rem}}</style></head><body>\
         <h1>Demo app</h1><p>This app knows nothing about login. It received <code>{method} {path}</code>{who}.</p>\
         <p><a href=\"/\">Home</a> · <a href=\"/admin\">Admin only</a> · <a href=\"/t/T-acme/\">Tenant Acme</a> · <a href=\"/public\">Public</a> · \
         <a href=\"{prefix}/me\">My claims</a> · <a href=\"{prefix}/logout\">Sign out</a></p>\
         <h2>Request headers</h2><table>{rows}</table></body></html>",
        method = escape_html(req.method().as_str()),
        path = escape_html(req.uri().path_and_query().map_or("/", |p| p.as_str())),
        who = if user.is_empty() {
            String::from(" anonymously")
        } else {
            format!(" for user <code>{}</code>", escape_html(user))
        },
        prefix = escape_html(prefix),
    );
    html(StatusCode::OK, body)
}
