//! The test collector's HTTP API (`peers/`, started by `scripts/test`): stored traces
//! (`/api/v2/trace/{id}`), what it rejected (`/_errors`), switches (`PUT`). Plain HTTP/1.0
//! over a socket: no client library to pull into every crate's tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::{Config, ReporterOptions};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `method` to `url` (`http://host:port/path`) and returns the status and the body.
///
/// # Panics
/// When the collector cannot be reached or its answer is not HTTP.
pub fn request(method: &str, url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).expect("collector reachable");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response from {url}: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status from {url}: {head:?}"));
    (status, body.to_owned())
}

/// `GET url`: the status and the body as JSON (`Null` when it is not JSON).
pub fn try_get_json(url: &str) -> (u16, Value) {
    let (status, body) = request("GET", url);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `GET url`, which must answer 200 with JSON.
///
/// # Panics
/// On another status, or a body that is not JSON.
pub fn get_json(url: &str) -> Value {
    let (status, body) = request("GET", url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// `PUT url` (the collector's switches), which must succeed.
pub fn put(url: &str) {
    let (status, body) = request("PUT", url);
    assert!((200..300).contains(&status), "PUT {url}: {status} {body}");
}

/// The spans the collector stores for `trace` (JSON v2), as `GET {base}/api/v2/trace/{trace}`.
pub fn trace(base: &str, trace: impl std::fmt::Display) -> Value {
    get_json(&format!(
        "{}/api/v2/trace/{trace}",
        base.trim_end_matches('/')
    ))
}

/// The collector rejected nothing (`/_errors` is empty).
pub fn assert_no_rejections(base: &str) {
    let errors = get_json(&format!("{}/_errors", base.trim_end_matches('/')));
    assert_eq!(
        errors,
        Value::Array(Vec::new()),
        "the collector rejected something"
    );
}

/// Installs the process's tracer for a test that reads its spans back from the collector at
/// `url`: service `service`, one Zipkin backend (JSON v2), batches sent every 10 ms.
///
/// # Panics
/// When `url` is not a collector URL, or a tracer is installed already (each test file is a
/// process of its own: one such test per file).
pub fn install_zipkin_tracer(url: &str, service: &'static str) {
    let zipkin = ZipkinBackend::builder()
        .url(url)
        .build()
        .unwrap_or_else(|e| panic!("{url} is not a collector URL: {e}"));
    let config = Config::builder()
        .service_name(service)
        .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(10)))
        .backend(zipkin)
        .build();
    if let Err(e) = tomograph::init(config) {
        panic!("the test's tracer could not be installed: {e}");
    }
}
