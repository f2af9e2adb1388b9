//! The console backend prints each trace as a tree once its local root finishes.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tomograph::{
    Backend, ConsoleBackend, Endpoint, Kind, Span, SpanId, Timestamp, TraceId, TraceToken,
};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_micros(1_700_000_000_000_000 + ms * 1000)
}

#[test]
fn prints_the_tree_when_the_root_arrives_and_leftovers_on_flush() {
    let out = Shared::default();
    let mut console = ConsoleBackend::to_writer(out.clone());
    let trace = TraceId::from_u64(0x5eed).unwrap();
    let id = |n| SpanId::from_u64(n).unwrap();
    let root = Span::new(trace, id(1), "GET /images", Endpoint::new("api"), at(0))
        .with_kind(Kind::Server)
        .with_end(at(10));
    let sql = Span::new(trace, id(2), "SELECT", Endpoint::new("api"), at(2))
        .with_parent(id(1))
        .with_kind(Kind::Client)
        .with_remote_endpoint(Endpoint::new("postgresql"))
        .with_tag("sql.query", "SELECT * FROM images")
        // The OpenTelemetry copy of the same text is not printed twice.
        .with_tag("db.query.text", "SELECT * FROM images")
        .with_end(at(5));
    let render = Span::new(trace, id(3), "render", Endpoint::new("api"), at(6))
        .with_parent(id(1))
        .with_end(at(9));
    console.send(&[sql.clone(), render.clone()]).unwrap();
    assert_eq!(out.text(), "", "held until the root finishes");
    console.send(std::slice::from_ref(&root)).unwrap();
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "trace 0000000000005eed · api · 3 span(s) · 10.000 ms"
    );
    assert_eq!(lines[1], "└─ GET /images  10.000 ms  [api] server");
    assert_eq!(
        lines[2],
        "   ├─ SELECT  3.000 ms  [api → postgresql] client  sql.query=\"SELECT * FROM images\""
    );
    assert_eq!(lines[3], "   └─ render  3.000 ms  [api]");

    // A span whose parent is in another process is a local root.
    let remote_parent = TraceToken::new(TraceId::from_u64(0x77).unwrap(), id(9), true);
    let _ = remote_parent;
    let orphan = Span::new(
        TraceId::from_u64(0x78).unwrap(),
        id(4),
        "orphan child",
        Endpoint::new("api"),
        at(0),
    )
    .with_parent(id(99))
    .with_end(at(1));
    console.send(&[orphan]).unwrap();
    assert!(!out.text().contains("orphan child"));
    console.flush().unwrap();
    assert!(
        out.text().contains("└─ orphan child  1.000 ms"),
        "flush printed what was held:\n{}",
        out.text()
    );
}

#[test]
fn renders_live_spans_through_a_reporter() {
    let out = Shared::default();
    let reporter = tomograph::Reporter::start(
        vec![Box::new(ConsoleBackend::to_writer(out.clone()))],
        tomograph::ReporterOptions::default(),
    )
    .unwrap();
    let trace = TraceId::from_u64(0xabc).unwrap();
    let root = Span::new(
        trace,
        SpanId::from_u64(1).unwrap(),
        "root",
        Endpoint::new("svc"),
        at(0),
    )
    .with_end(at(1));
    reporter.report(root);
    reporter.flush(Duration::from_secs(5)).unwrap();
    assert!(
        out.text()
            .starts_with("trace 0000000000000abc · svc · 1 span(s)")
    );
    reporter.shutdown(Duration::from_secs(5)).unwrap();
}
