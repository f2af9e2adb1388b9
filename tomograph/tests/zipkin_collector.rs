//! The Zipkin backend against `peers/zipkin-collector`: every span shape over JSON v2 and
//! thrift v1 (plain and gzipped), checked against what the collector stored and against its
//! rejection list, and the thrift bytes checked field by field with `zipkin-decode --raw`.
//!
//! Needs `TOMOGRAPH_TEST_ZIPKIN_URL` (a running `zipkin-collector`); skipped otherwise.
#![cfg(feature = "zipkin")]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tomograph::backend::zipkin::thrift::{TagEncoding, encode_spans};
use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
use tomograph::{
    Endpoint, Kind, Note, Reporter, ReporterOptions, Span, SpanId, TagValue, Timestamp, TraceId,
};
use tomograph_test_support::collector::{assert_no_rejections, try_get_json};

fn collector() -> Option<String> {
    tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL")
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// The installed test peers (`peers/`, set up by `scripts/test`).
fn peers_dir() -> Option<PathBuf> {
    tomograph::testing::require_env("TOMOGRAPH_TEST_PEERS_DIR").map(PathBuf::from)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn id(n: u64) -> SpanId {
    SpanId::from_u64(n).expect("non-zero")
}

/// Every shape of span we send, each trace with a fresh random id.
fn shapes() -> Vec<Span> {
    let t0 = Timestamp::from_system_time(SystemTime::now()) - Duration::from_secs(1);
    let t0 = Timestamp::from_unix_micros(t0.unix_micros());
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let web = Endpoint::new("web")
        .with_ip(ip("192.168.1.10"))
        .with_port(8080);
    let trace = TraceId::random(false);
    let wide = TraceId::random(true);
    let other = TraceId::random(false);
    let (root, child, sql) = (
        id(fastrand::u64(1..)),
        id(fastrand::u64(1..)),
        id(fastrand::u64(1..)),
    );
    vec![
        // Root SERVER span, 64-bit trace, IPv4, a client address, typed tags, annotations.
        Span::new(trace, root, "GET /users", web.clone(), ms(0))
            .with_kind(Kind::Server)
            .with_remote_endpoint(
                Endpoint::new("browser")
                    .with_ip(ip("10.0.0.9"))
                    .with_port(50123),
            )
            .with_annotation(Note::new(ms(1), "auth checked"))
            .with_annotation(Note::new(ms(4), "rendered"))
            .with_end(ms(5))
            .with_tag("http.method", "GET")
            .with_tag("http.status_code", 200)
            .with_tag("ratio", 0.25)
            .with_tag("cached", true)
            .with_tag("negative", -42),
        // Child CLIENT span to an IPv6 server.
        Span::new(trace, child, "call users", web.clone(), ms(1))
            .with_parent(root)
            .with_kind(Kind::Client)
            .with_remote_endpoint(
                Endpoint::new("users")
                    .with_ip(ip("2001:db8::1"))
                    .with_port(443),
            )
            .with_end(ms(3)),
        // SQL span: CLIENT to the database, operation as name, the statement as a tag.
        Span::new(trace, sql, "SELECT", web.clone(), ms(2))
            .with_parent(child)
            .with_kind(Kind::Client)
            .with_remote_endpoint(
                Endpoint::new("postgresql")
                    .with_ip(ip("127.0.0.1"))
                    .with_port(5432),
            )
            .with_end(ms(2) + Duration::from_micros(250))
            .with_tag("sql.query", "SELECT * FROM users WHERE name = 'a:b|c@d'\n")
            .with_tag("db.system.name", "postgresql")
            .with_tag("server.port", 5432),
        // Error span.
        Span::new(
            trace,
            id(fastrand::u64(1..)),
            "charge card",
            web.clone(),
            ms(3),
        )
        .with_parent(root)
        .with_annotation(Note::new(ms(3) + Duration::from_micros(10), "error"))
        .with_end(ms(4))
        .with_tag("error", "card declined: \"insufficient funds\""),
        // Producer and consumer (messaging).
        Span::new(
            other,
            id(fastrand::u64(1..)),
            "publish order",
            web.clone(),
            ms(0),
        )
        .with_kind(Kind::Producer)
        .with_remote_endpoint(
            Endpoint::new("kafka")
                .with_ip(ip("10.1.1.1"))
                .with_port(9092),
        )
        .with_end(ms(1)),
        Span::new(
            other,
            id(fastrand::u64(1..)),
            "consume order",
            Endpoint::new("worker"),
            ms(2),
        )
        .with_kind(Kind::Consumer)
        .with_end(ms(3)),
        // Local span: no kind, no notes between, no tags, no address.
        Span::new(
            other,
            id(fastrand::u64(1..)),
            "compute",
            Endpoint::new("worker"),
            ms(3),
        )
        .with_end(ms(7)),
        // Zero-length span: duration 1 µs.
        Span::new(
            other,
            id(fastrand::u64(1..)),
            "instant",
            Endpoint::new("worker"),
            ms(8),
        ),
        // 128-bit trace, IPv6 local endpoint, debug, shared SERVER span.
        Span::new(
            wide,
            id(fastrand::u64(1..)),
            "shared handler",
            Endpoint::new("api").with_ip(ip("::1")).with_port(9000),
            ms(0),
        )
        .with_parent(id(fastrand::u64(1..)))
        .with_kind(Kind::Server)
        .with_debug(true)
        .with_shared(true)
        .with_end(ms(2)),
        // Unicode everywhere text goes; a tag set twice (the last value wins).
        Span::new(
            wide,
            id(fastrand::u64(1..)),
            "注文を処理 🧾",
            Endpoint::new("café"),
            ms(1),
        )
        .with_annotation(Note::new(ms(1) + Duration::from_micros(1), "étape 1 ✓"))
        .with_end(ms(2))
        .with_tag("note", "first")
        .with_tag("note", "naïve ☕ \u{1} ctl")
        .with_remote_endpoint(Endpoint::new("").with_ip(ip("10.9.9.9"))),
    ]
}

fn trace_ids(spans: &[Span]) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id()).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn endpoint_json(e: &Endpoint, local: bool) -> Value {
    let mut m = serde_json::Map::new();
    if local || !e.service_name().is_empty() {
        m.insert("serviceName".into(), e.service_name().into());
    }
    match e.ip() {
        Some(IpAddr::V4(v4)) => {
            m.insert("ipv4".into(), v4.to_string().into());
        }
        Some(IpAddr::V6(v6)) => {
            m.insert("ipv6".into(), v6.to_string().into());
        }
        None => {}
    }
    if let Some(port) = e.port() {
        m.insert("port".into(), port.into());
    }
    Value::Object(m)
}

fn tag_text(v: &TagValue) -> String {
    v.to_string()
}

fn last_tags(span: &Span) -> BTreeMap<String, String> {
    span.tags()
        .iter()
        .map(|t| (t.key.to_string(), tag_text(&t.value)))
        .collect()
}

fn micros(span: &Span) -> (u64, u64) {
    let ts = span.start().unix_micros();
    (ts, (span.end().unix_micros() - ts).max(1))
}

/// What Zipkin v2 should hold for `span`, written from the model (not from the encoder).
fn expected_v2(span: &Span) -> Value {
    let (ts, duration) = micros(span);
    let mut v = json!({
        "traceId": span.trace_id().to_string(),
        "id": span.id().to_string(),
        "name": span.name(),
        "timestamp": ts,
        "duration": duration,
        "localEndpoint": endpoint_json(span.local_endpoint(), true),
    });
    if let Some(p) = span.parent_id() {
        v["parentId"] = p.to_string().into();
    }
    if let Some(k) = span.kind() {
        v["kind"] = k.as_str().into();
    }
    if let Some(r) = span.remote_endpoint() {
        v["remoteEndpoint"] = endpoint_json(r, false);
    }
    if span.debug() {
        v["debug"] = true.into();
    }
    if span.shared() {
        v["shared"] = true.into();
    }
    if !span.annotations().is_empty() {
        v["annotations"] = span
            .annotations()
            .iter()
            .map(|n| json!({"timestamp": n.timestamp.unix_micros(), "value": &*n.value}))
            .collect();
    }
    let tags = last_tags(span);
    if !tags.is_empty() {
        v["tags"] = json!(tags);
    }
    v
}

/// What the collector holds for `span` sent as thrift v1: the v2 mapping, as read back by
/// py_zipkin's v1 decoder. v1 has no kind for messaging spans (py_zipkin reads only
/// `cs`/`sr`), so PRODUCER/CONSUMER come back as local spans with their `ms`/`mr` annotation
/// (and no remote endpoint for the consumer, which has none); a span with nothing else to
/// carry its endpoint has the empty `lc` tag Zipkin's own converter writes. py_zipkin's
/// conversion also drops the `debug` flag (it is on the wire: see the `--raw` tests).
fn expected_via_thrift(span: &Span) -> Value {
    let mut v = expected_v2(span);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("debug");
    }
    let (ts, _) = micros(span);
    match span.kind() {
        Some(Kind::Producer) | Some(Kind::Consumer) => {
            let obj = v.as_object_mut().expect("object");
            obj.remove("kind");
            let core = if span.kind() == Some(Kind::Producer) {
                "ms"
            } else {
                "mr"
            };
            let mut annotations = vec![json!({"timestamp": ts, "value": core})];
            if let Some(Value::Array(rest)) = obj.remove("annotations") {
                annotations.extend(rest);
            }
            obj.insert("annotations".into(), annotations.into());
        }
        _ => {}
    }
    if span.kind().is_none() && span.annotations().is_empty() && span.tags().is_empty() {
        v["tags"] = json!({"lc": ""});
    }
    v
}

/// Sends `spans` through a reporter into `backend` and waits for delivery.
fn deliver(backend: ZipkinBackend, spans: &[Span]) {
    let reporter = Reporter::start(
        vec![Box::new(backend)],
        ReporterOptions::default().batch_size(4),
    )
    .expect("reporter");
    for span in spans {
        reporter.report(span.clone());
    }
    reporter.flush(Duration::from_secs(20)).expect("delivered");
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, spans.len() as u64, "{stats:?}");
    assert_eq!(stats.backends[0].errors, 0, "{stats:?}");
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

fn sorted_by_id(mut spans: Vec<Value>) -> Vec<Value> {
    spans.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    spans
}

/// Checks the collector holds exactly `expected(span)` for every span of `spans`' traces.
fn assert_stored(base: &str, spans: &[Span], expected: fn(&Span) -> Value) {
    for trace in trace_ids(spans) {
        let (status, stored) = try_get_json(&format!("{base}/api/v2/trace/{trace}"));
        assert_eq!(status, 200, "trace {trace} not stored");
        let stored = sorted_by_id(stored.as_array().cloned().unwrap_or_default());
        let want = sorted_by_id(
            spans
                .iter()
                .filter(|s| s.trace_id() == trace)
                .map(expected)
                .collect(),
        );
        assert_eq!(stored.len(), want.len(), "trace {trace}: {stored:#?}");
        for (got, want) in stored.iter().zip(&want) {
            assert_eq!(got, want, "trace {trace}");
        }
    }
}

fn run(encoding: Encoding, gzip: bool, expected: fn(&Span) -> Value) {
    let Some(base) = collector() else { return };
    let spans = shapes();
    let backend = ZipkinBackend::builder()
        .url(&base)
        .encoding(encoding)
        .gzip(gzip)
        .build()
        .expect("backend");
    deliver(backend, &spans);
    assert_no_rejections(&base);
    assert_stored(&base, &spans, expected);
}

#[test]
fn json_v2_every_shape_is_accepted_and_stored_exactly() {
    run(Encoding::JsonV2, false, expected_v2);
}

#[test]
fn json_v2_gzipped() {
    run(Encoding::JsonV2, true, expected_v2);
}

#[test]
fn thrift_v1_every_shape_is_accepted_and_stored_exactly() {
    run(Encoding::ThriftV1, false, expected_via_thrift);
}

#[test]
fn thrift_v1_gzipped() {
    run(Encoding::ThriftV1, true, expected_via_thrift);
}

#[test]
fn full_url_and_trailing_slash_are_accepted() {
    let Some(base) = collector() else { return };
    let spans = vec![
        Span::new(
            TraceId::random(false),
            id(7),
            "slash",
            Endpoint::new("svc"),
            Timestamp::now(),
        )
        .with_end(Timestamp::now() + Duration::from_millis(1)),
    ];
    let backend = ZipkinBackend::builder()
        .url(format!("{base}/api/v2/spans"))
        .build()
        .expect("backend");
    deliver(backend, &spans);
    assert_stored(&base, &spans, expected_v2);
}

// ---- thrift bytes, field by field, through zipkin-decode --raw ----

fn raw_endpoint(e: &Endpoint, local: bool) -> Value {
    let mut m = serde_json::Map::new();
    let name = e.service_name();
    m.insert(
        "serviceName".into(),
        if local && name.is_empty() {
            "unknown_service"
        } else {
            name
        }
        .into(),
    );
    match e.ip() {
        Some(IpAddr::V4(v4)) => {
            m.insert("ipv4".into(), v4.to_string().into());
        }
        Some(IpAddr::V6(v6)) => {
            m.insert("ipv6".into(), v6.to_string().into());
        }
        None => {}
    }
    if let Some(port) = e.port() {
        m.insert("port".into(), port.into());
    }
    Value::Object(m)
}

/// Every wire field `span` must have in thrift v1 (as `zipkin-decode --raw` prints them).
fn expected_raw(span: &Span, typed: bool) -> Value {
    let (ts, duration) = micros(span);
    let local = raw_endpoint(span.local_endpoint(), true);
    let mut v = json!({
        "traceId": span.trace_id().to_string(),
        "id": span.id().to_string(),
        "name": span.name(),
    });
    if let Some(p) = span.parent_id() {
        v["parentId"] = p.to_string().into();
    }
    if !(span.shared() && span.kind() == Some(Kind::Server)) {
        v["timestamp"] = ts.into();
        v["duration"] = duration.into();
    }
    // thriftpy2 fills in the IDL's default (`optional bool debug = 0`) when it is absent.
    v["debug"] = span.debug().into();
    let (first, last, address) = match span.kind() {
        Some(Kind::Client) => (Some("cs"), Some("cr"), "sa"),
        Some(Kind::Server) => (Some("sr"), Some("ss"), "ca"),
        Some(Kind::Producer) => (Some("ms"), None, "ma"),
        Some(Kind::Consumer) => (Some("mr"), None, "ma"),
        None => (None, None, "sa"),
        Some(other) => panic!("a kind this test does not know: {other:?}"),
    };
    let mut annotations = Vec::new();
    if let Some(first) = first {
        annotations.push(json!({"timestamp": ts, "value": first, "endpoint": local}));
    }
    for n in span.annotations() {
        annotations.push(
            json!({"timestamp": n.timestamp.unix_micros(), "value": &*n.value, "endpoint": local}),
        );
    }
    if let Some(last) = last {
        annotations.push(json!({"timestamp": ts + duration, "value": last, "endpoint": local}));
    }
    let mut binary = Vec::new();
    let tags: Vec<_> = span.tags().iter().collect();
    for (i, t) in tags.iter().enumerate() {
        if tags[i + 1..].iter().any(|later| later.key == t.key) {
            continue;
        }
        let (kind, value) = match (&t.value, typed) {
            (TagValue::I64(n), true) => ("I64", json!(n)),
            (TagValue::F64(f), true) => ("DOUBLE", json!(f)),
            (TagValue::Bool(b), true) => ("BOOL", json!(b)),
            (other, _) => ("STRING", json!(tag_text(other))),
        };
        binary.push(json!({"key": &*t.key, "type": kind, "value": value, "endpoint": local}));
    }
    if annotations.is_empty() && binary.is_empty() {
        binary.push(json!({"key": "lc", "type": "STRING", "value": "", "endpoint": local}));
    }
    if let Some(r) = span.remote_endpoint() {
        binary.push(json!({"key": address, "type": "BOOL", "value": true, "endpoint": raw_endpoint(r, false)}));
    }
    v["annotations"] = annotations.into();
    v["binaryAnnotations"] = binary.into();
    v
}

fn zipkin_decode_raw(peers: &std::path::Path, bytes: &[u8]) -> Value {
    let mut child = Command::new(peers.join("zipkin-decode"))
        .arg("--raw")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zipkin-decode runs (peers/setup done?)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write to zipkin-decode");
    let out = child.wait_with_output().expect("zipkin-decode finishes");
    assert!(
        out.status.success(),
        "zipkin-decode refused our bytes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("zipkin-decode prints JSON")
}

fn check_raw(typed: bool) {
    let Some(peers) = peers_dir() else { return };
    let spans = shapes();
    let mut bytes = Vec::new();
    let encoding = if typed {
        TagEncoding::Typed
    } else {
        TagEncoding::Strings
    };
    encode_spans(&spans, encoding, &mut bytes);
    let decoded = zipkin_decode_raw(&peers, &bytes);
    let decoded = decoded.as_array().expect("a list");
    assert_eq!(decoded.len(), spans.len());
    for (got, span) in decoded.iter().zip(&spans) {
        assert_eq!(got, &expected_raw(span, typed), "span {:?}", span.name());
    }
}

#[test]
fn thrift_bytes_field_by_field_string_tags() {
    check_raw(false);
}

#[test]
fn thrift_bytes_field_by_field_typed_tags() {
    check_raw(true);
}
