//! Server side: `start_http` (the seed's helper) and the tower layer, driven directly and
//! behind plain hyper on loopback with the reqwest client helper.
#![cfg(all(feature = "tower", feature = "reqwest"))]
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tomograph::http::client::RequestBuilderExt;
use tomograph::http::{TraceLayer, add_trace_info_header, start_http};
use tomograph::testing::{memory_tracer, wait_for_trace};
use tomograph::{FutureExt, Kind, SpanId, TraceId, TraceToken};
use tomograph_test_support::spans::tag_text as tag;
use tower::{Layer, ServiceExt, service_fn};

const WAIT: Duration = Duration::from_secs(10);

fn remote_parent() -> TraceToken {
    TraceToken::new(TraceId::random(false), SpanId::random(), true)
}

fn request_from(parent: &TraceToken, host: Option<&str>) -> Request<()> {
    let mut headers = HeaderMap::new();
    tomograph::propagation::inject(*parent, &mut headers);
    let mut builder = Request::get("/images/7?detail=1");
    if let Some(host) = host {
        builder = builder.header("host", host);
    }
    let mut request = builder.body(()).unwrap();
    request.headers_mut().extend(headers);
    request
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- start_http ---------------------------------------------------------------------------

#[test]
fn start_http_continues_the_callers_trace_with_any_host_form() {
    let memory = memory_tracer();
    for (host, ip, port) in [
        (Some("10.1.2.3:8080"), Some("10.1.2.3"), Some(8080)),
        (Some("10.1.2.3"), Some("10.1.2.3"), None),
        (Some("[2001:db8::7]:443"), Some("2001:db8::7"), Some(443)),
        (Some("[::1]"), Some("::1"), None),
        (Some("glance.example:9292"), None, Some(9292)),
        (Some("glance.example"), None, None),
        (Some("not a host:x"), None, None),
        (None, None, None),
    ] {
        let parent = remote_parent();
        let request = request_from(&parent, host);
        start_http("glance-registry", "http response", &request);
        let current = tomograph::get_trace_info().unwrap();
        assert_eq!(current.trace_id(), parent.trace_id());
        tomograph::stop("http response").unwrap();
        let spans = wait_for_trace(&memory, parent.trace_id(), 1, WAIT);
        let span = &spans[0];
        assert_eq!(span.parent_id(), Some(parent.span_id()), "{host:?}");
        assert_eq!(span.kind(), Some(Kind::Server));
        assert!(span.has_remote_parent());
        let endpoint = span.local_endpoint();
        assert_eq!(endpoint.service_name(), "glance-registry");
        assert_eq!(endpoint.ip(), ip.map(|ip| ip.parse().unwrap()), "{host:?}");
        assert_eq!(endpoint.port(), port, "{host:?}");
        assert_eq!(tag(span, "http.method").as_deref(), Some("GET"));
        assert_eq!(tag(span, "http.path").as_deref(), Some("/images/7"));
    }
}

#[test]
fn start_http_with_malformed_headers_starts_a_new_trace() {
    let memory = memory_tracer();
    let request = Request::post("/")
        .header("x-trace-info", "Y29zCnN5c3RlbQooUydpZCcKdFIu") // a pickle calling os.system
        .header("b3", "zzzz-1-1")
        .header("x-b3-traceid", "463ac35c9f6413ad")
        .header(
            "traceparent",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("host", "[::1")
        .body(())
        .unwrap();
    start_http("svc", "http response", &request);
    let token = tomograph::get_trace_info().unwrap();
    tomograph::stop("http response").unwrap();
    let spans = wait_for_trace(&memory, token.trace_id(), 1, WAIT);
    assert_eq!(spans[0].parent_id(), None);
    assert!(!spans[0].has_remote_parent());
}

#[test]
fn start_http_of_an_unsampled_request_is_stopped_by_name() {
    let memory = memory_tracer();
    for header in [("b3", "0"), ("x-b3-sampled", "0")] {
        let request = Request::get("/")
            .header(header.0, header.1)
            .body(())
            .unwrap();
        start_http("svc", "http response", &request);
        let token = tomograph::get_trace_info().unwrap();
        assert!(!token.sampled());
        let mut downstream = HeaderMap::new();
        add_trace_info_header(&mut downstream);
        assert_eq!(downstream["x-b3-sampled"], "0");
        assert_eq!(tomograph::stop("http response"), Ok(()));
        assert_eq!(tomograph::get_trace_info(), None);
        tomograph::flush(WAIT).unwrap();
        assert!(memory.trace(token.trace_id()).is_empty());
    }
}

#[test]
fn client_side_seed_helpers_inject_the_current_span() {
    let _ = memory_tracer();
    tomograph::start("client", "http request", "127.0.0.1", 0);
    let mut headers = HeaderMap::new();
    add_trace_info_header(&mut headers);
    let client = tomograph::get_trace_info().unwrap();
    tomograph::stop("http request").unwrap();
    for format in tomograph::propagation::Format::ALL {
        if format == tomograph::propagation::Format::B3Single {
            continue; // not injected by default
        }
        let parsed = tomograph::propagation::Propagation::only([format])
            .extract(&headers)
            .unwrap_or_else(|| panic!("{format} missing from {headers:?}"));
        assert_eq!(parsed.span_id(), Some(client.span_id()), "{format}");
        assert_eq!(parsed.trace_id(), Some(client.trace_id()), "{format}");
    }
}

// ---- the layer, driven directly -----------------------------------------------------------

type Body = Full<Bytes>;

fn ok(text: &'static str) -> Response<Body> {
    Response::new(Full::new(Bytes::from_static(text.as_bytes())))
}

#[test]
fn layer_makes_the_span_current_across_awaits_and_ends_it_with_the_body() {
    let memory = memory_tracer();
    let rt = rt();
    let parent = remote_parent();
    let service = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        {
            let _child = tomograph::span("load image").start();
            tokio::time::sleep(Duration::from_millis(2)).await;
            tomograph::annotate("loaded");
        }
        tokio::task::yield_now().await;
        tomograph::tag("image.id", 7);
        Ok::<_, Infallible>(ok("an image"))
    }));
    let response = rt
        .block_on(service.oneshot(request_from(&parent, None)))
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The handler is done but the body is not sent: the server span is still open.
    tomograph::flush(WAIT).unwrap();
    let before: Vec<_> = memory.trace(parent.trace_id());
    assert!(
        before.iter().all(|s| s.kind() != Some(Kind::Server)),
        "server span ended before its body: {before:#?}"
    );
    let body = rt.block_on(response.into_body().collect()).unwrap();
    assert_eq!(body.to_bytes(), "an image");
    let spans = wait_for_trace(&memory, parent.trace_id(), 2, WAIT);
    let server = spans
        .iter()
        .find(|s| s.kind() == Some(Kind::Server))
        .unwrap();
    let child = spans.iter().find(|s| s.name() == "load image").unwrap();
    assert_eq!(server.name(), "GET /images/7");
    assert_eq!(server.parent_id(), Some(parent.span_id()));
    assert_eq!(child.parent_id(), Some(server.id()));
    assert_eq!(tag(server, "http.status_code").as_deref(), Some("200"));
    assert_eq!(tag(server, "image.id").as_deref(), Some("7"));
    assert_eq!(tag(server, "error"), None);
    assert_eq!(server.local_endpoint().service_name(), "tomograph-test");
}

#[test]
fn layer_records_5xx_and_service_errors() {
    let memory = memory_tracer();
    let rt = rt();
    let parent = remote_parent();
    let failing = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        let mut response = ok("oops");
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok::<_, Infallible>(response)
    }));
    let response = rt
        .block_on(failing.oneshot(request_from(&parent, None)))
        .unwrap();
    drop(response);
    let spans = wait_for_trace(&memory, parent.trace_id(), 1, WAIT);
    assert_eq!(tag(&spans[0], "http.status_code").as_deref(), Some("503"));
    assert_eq!(tag(&spans[0], "error").as_deref(), Some("503"));

    let parent = remote_parent();
    let erroring = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        Err::<Response<Body>, _>("backend down".to_owned())
    }));
    let err = rt
        .block_on(erroring.oneshot(request_from(&parent, None)))
        .unwrap_err();
    assert_eq!(err, "backend down");
    let spans = wait_for_trace(&memory, parent.trace_id(), 1, WAIT);
    assert_eq!(tag(&spans[0], "error").as_deref(), Some("backend down"));
    assert_eq!(tag(&spans[0], "http.status_code"), None);
}

#[test]
fn dropping_the_request_future_ends_the_span() {
    let memory = memory_tracer();
    let rt = rt();
    let parent = remote_parent();
    let service = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        let _child = tomograph::span("waits forever").start();
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(ok(""))
    }));
    let request = request_from(&parent, None);
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(20), service.oneshot(request)).await
    });
    assert!(outcome.is_err(), "the handler never answers");
    let spans = wait_for_trace(&memory, parent.trace_id(), 2, WAIT);
    let server = spans
        .iter()
        .find(|s| s.kind() == Some(Kind::Server))
        .unwrap();
    let child = spans.iter().find(|s| s.name() == "waits forever").unwrap();
    assert_eq!(child.parent_id(), Some(server.id()));
    assert_eq!(tag(server, "http.status_code"), None);
}

#[test]
fn sampling_decisions_travel() {
    let memory = memory_tracer();
    let rt = rt();
    let service = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        let mut downstream = HeaderMap::new();
        add_trace_info_header(&mut downstream);
        let mut response = ok("");
        *response.headers_mut() = downstream;
        Ok::<_, Infallible>(response)
    }));

    // `b3: 0`: not recorded here, and "not sampled" goes downstream.
    let request = Request::get("/deny").header("b3", "0").body(()).unwrap();
    let response = rt.block_on(service.clone().oneshot(request)).unwrap();
    assert_eq!(response.headers()["x-b3-sampled"], "0");
    assert!(!response.headers().contains_key("x-trace-info"));
    let trace: TraceId = response.headers()["x-b3-traceid"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    drop(response);
    tomograph::flush(WAIT).unwrap();
    assert!(memory.trace(trace).is_empty());

    // An unsampled parent with ids: same.
    let parent = TraceToken::new(TraceId::random(true), SpanId::random(), false);
    let response = rt
        .block_on(service.clone().oneshot(request_from(&parent, None)))
        .unwrap();
    assert_eq!(response.headers()["x-b3-sampled"], "0");
    assert_eq!(
        response.headers()["x-b3-traceid"],
        parent.trace_id().to_string()
    );
    drop(response);

    // `X-B3-Flags: 1` alone: a new trace, recorded in debug mode, with no parent.
    let request = Request::get("/debug")
        .header("x-b3-flags", "1")
        .body(())
        .unwrap();
    let response = rt.block_on(service.clone().oneshot(request)).unwrap();
    assert_eq!(response.headers()["x-b3-flags"], "1");
    let trace: TraceId = response.headers()["x-b3-traceid"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    drop(response);
    let spans = wait_for_trace(&memory, trace, 1, WAIT);
    assert_eq!(spans[0].parent_id(), None);
    assert!(spans[0].debug());
}

#[test]
fn tracestate_is_passed_on_by_the_handlers_requests() {
    let _ = memory_tracer();
    let rt = rt();
    let service = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        tokio::task::yield_now().await;
        let mut downstream = HeaderMap::new();
        add_trace_info_header(&mut downstream);
        let server = tomograph::get_trace_info().unwrap();
        let mut response = ok("");
        *response.headers_mut() = downstream;
        response.headers_mut().insert(
            "x-server-span",
            server.span_id().to_string().parse().unwrap(),
        );
        Ok::<_, Infallible>(response)
    }));
    let request = Request::get("/")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        .body(())
        .unwrap();
    let response = rt.block_on(service.oneshot(request)).unwrap();
    let headers = response.headers();
    assert_eq!(
        headers["tracestate"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    let server_span = headers["x-server-span"].to_str().unwrap();
    assert_eq!(
        headers["traceparent"],
        format!("00-0af7651916cd43dd8448eb211c80319c-{server_span}-01")
    );
    // Outside the handler, nothing leaks.
    let mut elsewhere = HeaderMap::new();
    let _span = tomograph::span("unrelated").root().start();
    add_trace_info_header(&mut elsewhere);
    assert!(!elsewhere.contains_key("tracestate"));
}

#[test]
fn layer_options_name_and_service() {
    let memory = memory_tracer();
    let rt = rt();
    let env = |k: &str| (k == "TOMOGRAPH_HTTP_SERVICE_NAME").then(|| "glance-api".to_owned());
    let layer =
        TraceLayer::from_lookup(&env).name_with(|parts| format!("{} images", parts.method).into());
    let service = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(ok(""))
    }));
    let parent = remote_parent();
    let response = rt
        .block_on(service.oneshot(request_from(&parent, Some("[::1]:9292"))))
        .unwrap();
    drop(response);
    let spans = wait_for_trace(&memory, parent.trace_id(), 1, WAIT);
    assert_eq!(spans[0].name(), "GET images");
    let endpoint = spans[0].local_endpoint();
    assert_eq!(endpoint.service_name(), "glance-api");
    assert_eq!(endpoint.ip(), Some("::1".parse().unwrap()));
    assert_eq!(endpoint.port(), Some(9292));
}

// ---- plain hyper on loopback, reqwest client ----------------------------------------------

#[test]
fn plain_hyper_server_and_reqwest_client() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let memory = memory_tracer();
    let rt = rt();
    let trace = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceLayer::new().layer(service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                // The future's own span (a guard across `.await` would make it not `Send`).
                let body = async { req.into_body().collect().await.map(|b| b.to_bytes()) }
                    .traced("query")
                    .await;
                Ok::<_, hyper::Error>(Response::new(Full::new(body?)))
            },
        ));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        let client = reqwest::Client::new();
        let root = tomograph::span("client root").root().start();
        let trace = root.token().unwrap().trace_id();
        let response = client
            .post(format!("http://{addr}/echo"))
            .body("hello")
            .send_traced()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "hello");
        drop(root);
        trace
    });
    let spans = wait_for_trace(&memory, trace, 4, WAIT);
    let root = spans.iter().find(|s| s.name() == "client root").unwrap();
    let client = spans
        .iter()
        .find(|s| s.kind() == Some(Kind::Client))
        .unwrap();
    let server = spans
        .iter()
        .find(|s| s.kind() == Some(Kind::Server))
        .unwrap();
    let query = spans.iter().find(|s| s.name() == "query").unwrap();
    assert_eq!(client.parent_id(), Some(root.id()));
    assert_eq!(client.name(), "POST");
    assert_eq!(tag(client, "http.status_code").as_deref(), Some("200"));
    assert_eq!(
        client.remote_endpoint().and_then(|e| e.ip()),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(server.parent_id(), Some(client.id()));
    assert_eq!(server.name(), "POST /echo");
    assert_eq!(query.parent_id(), Some(server.id()));
}

#[test]
fn a_panicking_handler_marks_its_server_span_as_an_error() {
    let memory = memory_tracer();
    let parent = remote_parent();
    let service = TraceLayer::new().layer(service_fn(|_request: Request<()>| async {
        if std::hint::black_box(true) {
            panic!("handler bug");
        }
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let outcome = rt()
        .block_on(async move { tokio::spawn(service.oneshot(request_from(&parent, None))).await });
    assert!(outcome.unwrap_err().is_panic());
    let spans = wait_for_trace(&memory, parent.trace_id(), 1, WAIT);
    assert_eq!(spans[0].kind(), Some(Kind::Server));
    assert_eq!(tag(&spans[0], "error").as_deref(), Some("panicked"));
}
