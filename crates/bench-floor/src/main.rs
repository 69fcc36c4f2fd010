//! `hyper-floor LISTEN UPSTREAM`: a reverse proxy that does nothing but
//! proxy, on the same stack as the gateway (hyper's auto HTTP/1 + h2c
//! server, hyper-util's pooled client, a current-thread tokio runtime,
//! mimalloc). `scripts/bench` runs it beside the gateway as the floor of
//! what a hyper proxy costs on the machine: no routing, no header hygiene,
//! no session work, no log. It is not part of the product.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: hyper-floor LISTEN_ADDR UPSTREAM_ADDR (e.g. 127.0.0.1:8080 127.0.0.1:9000)"
        );
        std::process::exit(2);
    };
    let (listen, upstream): (SocketAddr, SocketAddr) = match (listen.parse(), upstream.parse()) {
        (Ok(l), Ok(u)) => (l, u),
        _ => {
            eprintln!("hyper-floor: both arguments must be IP:PORT socket addresses");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(serve(listen, upstream)) {
        eprintln!("hyper-floor: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector);
    let origin = format!("http://{upstream}");
    eprintln!("hyper-floor: listening on {listen}, proxying to {origin}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let origin = origin.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let client = client.clone();
            let origin = origin.clone();
            Box::pin(async move { Ok::<_, Infallible>(forward(&client, &origin, req).await) })
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    origin: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{origin}{path}").parse::<Uri>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    *req.uri_mut() = uri;
    match client.request(req).await {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = code;
    resp
}
