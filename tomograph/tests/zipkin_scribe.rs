//! The Scribe transport against a small Scribe server written here with the `thrift` crate:
//! real thrift RPC (`scribe.Log`, framed TBinaryProtocol) over loopback TCP.
#![cfg(feature = "zipkin")]

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use thrift::transport::{TFramedReadTransport, TFramedWriteTransport};
use tomograph::backend::zipkin::thrift::{TagEncoding, encode_span};
use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
use tomograph::{Endpoint, Kind, Reporter, ReporterOptions, Span, SpanId, Timestamp, TraceId};

/// What the server received: (category, message) per LogEntry, and the number of calls.
#[derive(Default)]
struct Received {
    entries: Mutex<Vec<(String, String)>>,
    calls: AtomicUsize,
}

/// A Scribe server answering TRY_LATER to the first `try_later` calls, OK afterwards.
fn scribe_server(listener: TcpListener, try_later: usize) -> Arc<Received> {
    let received = Arc::new(Received::default());
    let shared = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(stream, &shared, try_later);
            });
        }
    });
    received
}

fn serve_connection(
    stream: TcpStream,
    received: &Received,
    try_later: usize,
) -> thrift::Result<()> {
    let mut input = TBinaryInputProtocol::new(TFramedReadTransport::new(stream.try_clone()?), true);
    let mut output = TBinaryOutputProtocol::new(TFramedWriteTransport::new(stream), true);
    loop {
        let call = input.read_message_begin()?;
        assert_eq!(call.name, "Log");
        assert_eq!(call.message_type, TMessageType::Call);
        let mut entries = Vec::new();
        input.read_struct_begin()?;
        loop {
            let field = input.read_field_begin()?;
            if field.field_type == TType::Stop {
                break;
            }
            if field.id == Some(1) && field.field_type == TType::List {
                let list = input.read_list_begin()?;
                for _ in 0..list.size {
                    entries.push(read_log_entry(&mut input)?);
                }
                input.read_list_end()?;
            } else {
                input.skip(field.field_type)?;
            }
            input.read_field_end()?;
        }
        input.read_struct_end()?;
        input.read_message_end()?;

        let n = received.calls.fetch_add(1, Ordering::SeqCst);
        let code = if n < try_later {
            1 // TRY_LATER
        } else {
            received.entries.lock().expect("lock").extend(entries);
            0 // OK
        };
        output.write_message_begin(&TMessageIdentifier::new(
            "Log",
            TMessageType::Reply,
            call.sequence_number,
        ))?;
        output.write_struct_begin(&TStructIdentifier::new("Log_result"))?;
        output.write_field_begin(&TFieldIdentifier::new("success", TType::I32, 0))?;
        output.write_i32(code)?;
        output.write_field_end()?;
        output.write_field_stop()?;
        output.write_struct_end()?;
        output.write_message_end()?;
        output.flush()?;
    }
}

fn read_log_entry(input: &mut dyn TInputProtocol) -> thrift::Result<(String, String)> {
    let (mut category, mut message) = (String::new(), String::new());
    input.read_struct_begin()?;
    loop {
        let field = input.read_field_begin()?;
        match (field.field_type, field.id) {
            (TType::Stop, _) => break,
            (TType::String, Some(1)) => category = input.read_string()?,
            (TType::String, Some(2)) => message = input.read_string()?,
            (other, _) => input.skip(other)?,
        }
        input.read_field_end()?;
    }
    input.read_struct_end()?;
    Ok((category, message))
}

/// Trace id, id and name of a thrift `Span` struct, read with the thrift crate.
fn decode_span_ids(bytes: &[u8]) -> (u64, u64, String, Option<u64>) {
    let mut input = TBinaryInputProtocol::new(bytes, true);
    let (mut low, mut id, mut name, mut high) = (0u64, 0u64, String::new(), None);
    input.read_struct_begin().expect("struct");
    loop {
        let field = input.read_field_begin().expect("field");
        match (field.field_type, field.id) {
            (TType::Stop, _) => break,
            (TType::I64, Some(1)) => low = input.read_i64().expect("trace_id") as u64,
            (TType::String, Some(3)) => name = input.read_string().expect("name"),
            (TType::I64, Some(4)) => id = input.read_i64().expect("id") as u64,
            (TType::I64, Some(12)) => high = Some(input.read_i64().expect("high") as u64),
            (other, _) => input.skip(other).expect("skip"),
        }
        input.read_field_end().expect("field end");
    }
    (low, id, name, high)
}

fn spans(n: u64) -> Vec<Span> {
    let t0 = Timestamp::now();
    let trace = TraceId::random(true);
    (1..=n)
        .map(|i| {
            Span::new(
                trace,
                SpanId::from_u64(i).expect("non-zero"),
                format!("scribe span {i} ✓"),
                Endpoint::new("scribe-test"),
                t0,
            )
            .with_kind(Kind::Client)
            .with_remote_endpoint(
                Endpoint::new("db")
                    .with_ip("127.0.0.1".parse().expect("ip"))
                    .with_port(5432),
            )
            .with_tag("i", i as i64)
            .with_end(t0 + Duration::from_micros(i * 10))
        })
        .collect()
}

fn backend(addr: &str) -> ZipkinBackend {
    ZipkinBackend::builder()
        .encoding(Encoding::Scribe)
        .scribe_addr(addr)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("backend")
}

fn fast_retries() -> ReporterOptions {
    ReporterOptions::default()
        .batch_size(10)
        .max_retries(1000)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

fn assert_entries_are(received: &Received, sent: &[Span]) {
    let entries = received.entries.lock().expect("lock").clone();
    assert_eq!(entries.len(), sent.len());
    let mut by_id = std::collections::BTreeMap::new();
    for (category, message) in &entries {
        assert_eq!(category, "zipkin");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(message)
            .expect("standard base64");
        let (low, id, name, high) = decode_span_ids(&bytes);
        by_id.insert(id, (low, name, high, bytes));
    }
    for span in sent {
        let (low, name, high, bytes) = by_id
            .get(&span.id().get())
            .expect("every span arrived once");
        assert_eq!(*low, span.trace_id().low());
        assert_eq!(*high, Some(span.trace_id().high()));
        assert_eq!(name, span.name());
        let mut expected = Vec::new();
        encode_span(span, TagEncoding::Strings, &mut expected);
        assert_eq!(bytes, &expected, "the message is the span's thrift bytes");
    }
}

#[test]
fn spans_arrive_as_base64_thrift_log_entries() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let received = scribe_server(listener, 0);
    let sent = spans(25);
    let reporter =
        Reporter::start(vec![Box::new(backend(&addr))], fast_retries()).expect("reporter");
    for span in &sent {
        reporter.report(span.clone());
    }
    reporter.flush(Duration::from_secs(10)).expect("delivered");
    assert_entries_are(&received, &sent);
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 25);
    assert_eq!(stats.backends[0].errors, 0);
    // Batches of 10: three Log calls, over one connection.
    assert_eq!(received.calls.load(Ordering::SeqCst), 3);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn try_later_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let received = scribe_server(listener, 2);
    let sent = spans(5);
    let reporter =
        Reporter::start(vec![Box::new(backend(&addr))], fast_retries()).expect("reporter");
    for span in &sent {
        reporter.report(span.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while reporter.stats().backends[0].sent < 5 && Instant::now() < deadline {
        let _ = reporter.flush(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 5, "{stats:?}");
    assert_eq!(
        stats.backends[0].errors, 2,
        "two TRY_LATER answers: {stats:?}"
    );
    assert_eq!(stats.backends[0].failed, 0, "{stats:?}");
    assert_entries_are(&received, &sent);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn scribe_down_then_up() {
    // Reserve a port, free it: nothing listens there until the server starts.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sent = spans(7);
    let reporter =
        Reporter::start(vec![Box::new(backend(&addr))], fast_retries()).expect("reporter");
    for span in &sent {
        reporter.report(span.clone());
    }
    assert!(
        reporter.flush(Duration::from_secs(2)).is_err(),
        "nothing listens yet"
    );
    assert_eq!(reporter.stats().backends[0].sent, 0);
    let received = scribe_server(TcpListener::bind(&addr).expect("rebind"), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reporter.stats().backends[0].sent < 7 && Instant::now() < deadline {
        let _ = reporter.flush(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 7, "{stats:?}");
    assert!(stats.backends[0].errors >= 1, "{stats:?}");
    assert_entries_are(&received, &sent);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}
