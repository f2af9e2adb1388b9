//! The statsd backend: exact names and values in Etsy's statsd (`peers/statsd-peer serve`,
//! needs `TOMOGRAPH_TEST_STATSD_ADDR` and `TOMOGRAPH_TEST_STATSD_ADMIN`), datagram packing
//! seen on a plain UDP socket, and silence when nobody listens.
#![cfg(feature = "statsd")]

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;
use tomograph::backend::statsd::StatsdBackend;
use tomograph::{
    Endpoint, Kind, Note, Reporter, ReporterOptions, Span, SpanId, Timestamp, TraceId,
};
use tomograph_test_support::statsd::query;

fn id(n: u64) -> SpanId {
    SpanId::from_u64(n).expect("non-zero")
}

/// The seed's client/server trace (two spans, two notes each), plus two SQL statements and a
/// span whose name is full of characters statsd must never see.
fn known_trace(tag: &str) -> Vec<Span> {
    let t0 = Timestamp::from_unix_micros(1_700_000_000_000_000);
    let trace = TraceId::random(false);
    let client =
        Endpoint::new(format!("test client {tag}")).with_ip("10.0.0.1".parse().expect("ip"));
    let server = Endpoint::new(format!("test server {tag}"))
        .with_ip("10.0.0.2".parse().expect("ip"))
        .with_port(80);
    let sql = |n: u64, start_us: u64, us: u64, text: &str| {
        Span::new(
            trace,
            id(10 + n),
            "SELECT",
            server.clone(),
            t0 + Duration::from_micros(start_us),
        )
        .with_parent(id(2))
        .with_kind(Kind::Client)
        .with_remote_endpoint(Endpoint::new("postgresql"))
        .with_end(t0 + Duration::from_micros(start_us + us))
        .with_tag("db.system.name", "postgresql")
        .with_tag("db.operation.name", "SELECT")
        .with_tag("sql.query", text.to_owned())
    };
    vec![
        Span::new(trace, id(1), "client request", client.clone(), t0)
            .with_kind(Kind::Client)
            .with_end(t0 + Duration::from_millis(5)),
        Span::new(
            trace,
            id(2),
            "server response",
            server.clone(),
            t0 + Duration::from_millis(1),
        )
        .with_parent(id(1))
        .with_kind(Kind::Server)
        .with_end(t0 + Duration::from_millis(4)),
        sql(1, 1500, 250, "SELECT name FROM users WHERE id = 1"),
        sql(
            2,
            2000,
            500,
            "select * from users where note = 'a:b|c@d e\nf'",
        ),
        Span::new(
            trace,
            id(3),
            "weird:name|with@stuff\nand spaces",
            client,
            t0,
        )
        .with_annotation(Note::new(t0 + Duration::from_micros(100), "cache: miss|x"))
        .with_end(t0 + Duration::from_millis(2)),
    ]
}

#[test]
fn exact_names_and_values_in_etsy_statsd() {
    let (Some(addr), Some(admin)) = (
        tomograph::testing::require_env("TOMOGRAPH_TEST_STATSD_ADDR"),
        tomograph::testing::require_env("TOMOGRAPH_TEST_STATSD_ADMIN"),
    ) else {
        return;
    };
    let tag = format!("{:08x}", fastrand::u32(..));
    let backend = StatsdBackend::builder(addr)
        .prefix("tomograph-test")
        .build()
        .expect("statsd");
    let reporter =
        Reporter::start(vec![Box::new(backend)], ReporterOptions::default()).expect("reporter");
    for span in known_trace(&tag) {
        reporter.report(span);
    }
    reporter.flush(Duration::from_secs(10)).expect("flushed");
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");

    let client = format!("tomograph-test.test-client-{tag}-10-0-0-1-0");
    let server = format!("tomograph-test.test-server-{tag}-10-0-0-2-80");
    let mut want_counters: BTreeMap<String, u64> = BTreeMap::new();
    for base in [
        format!("{client}.client-request"),
        format!("{server}.server-response"),
        format!("{client}.weird_name_with_stuff-and-spaces"),
    ] {
        want_counters.insert(format!("{base}.start"), 1);
        want_counters.insert(format!("{base}.stop"), 1);
    }
    want_counters.insert(format!("{server}.SELECT.start"), 2);
    want_counters.insert(format!("{server}.SELECT.stop"), 2);
    want_counters.insert(
        format!("{client}.weird_name_with_stuff-and-spaces.cache_-miss_x"),
        1,
    );
    let mut want_timers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    want_timers.insert(format!("{client}.client-request"), vec![5.0]);
    want_timers.insert(format!("{server}.server-response"), vec![3.0]);
    want_timers.insert(format!("{server}.SELECT"), vec![0.25, 0.5]);
    want_timers.insert(
        format!("{client}.weird_name_with_stuff-and-spaces"),
        vec![2.0],
    );

    // UDP: give statsd a moment to read what was sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (counters, timers) = loop {
        let counters = query("counters", &admin);
        let timers = query("timers", &admin);
        let have = want_counters
            .iter()
            .all(|(k, v)| counters.get(k).and_then(Value::as_u64) == Some(*v));
        if have || Instant::now() > deadline {
            break (counters, timers);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mine = |k: &&String| k.contains(&tag);
    let got_counters: BTreeMap<String, u64> = counters
        .iter()
        .filter(|(k, _)| mine(k))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .collect();
    assert_eq!(got_counters, want_counters);
    let got_timers: BTreeMap<String, Vec<f64>> = timers
        .iter()
        .filter(|(k, _)| mine(k))
        .map(|(k, v)| {
            let mut values: Vec<f64> = v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            values.sort_by(f64::total_cmp);
            (k.clone(), values)
        })
        .collect();
    assert_eq!(got_timers, want_timers);
    assert_eq!(
        counters
            .get("statsd.bad_lines_seen")
            .and_then(Value::as_u64),
        Some(0)
    );
    for key in counters
        .keys()
        .chain(timers.keys())
        .filter(|k| k.contains(&tag))
    {
        assert!(
            !key.contains("users") && !key.contains("FROM"),
            "SQL text in {key}"
        );
    }
}

#[test]
fn lines_are_packed_into_datagrams_of_bounded_size() {
    let listener = UdpSocket::bind("127.0.0.1:0").expect("udp");
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut backend = StatsdBackend::builder(addr)
        .max_packet_size(200)
        .build()
        .expect("statsd");
    let spans = known_trace("pack");
    let expected: Vec<String> = spans.iter().flat_map(|s| backend.lines(s)).collect();
    tomograph::Backend::send(&mut backend, &spans).expect("never fails");

    let mut received = Vec::new();
    let mut datagrams = 0;
    let mut buf = [0u8; 2048];
    while received.len() < expected.len() {
        let n = listener.recv(&mut buf).expect("a datagram within 5 s");
        assert!(n <= 200, "datagram of {n} bytes");
        datagrams += 1;
        let text = std::str::from_utf8(&buf[..n]).expect("ASCII");
        // cadence ends every line with a newline, the last one included.
        received.extend(
            text.split('\n')
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    assert_eq!(received, expected);
    assert!(
        datagrams < expected.len(),
        "{datagrams} datagrams for {} lines: not batched",
        expected.len()
    );
}

#[test]
fn no_listener_no_error() {
    // Bind then drop: nothing listens on this port any more.
    let port = UdpSocket::bind("127.0.0.1:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    let backend = StatsdBackend::builder(format!("127.0.0.1:{port}"))
        .build()
        .expect("statsd");
    let reporter = Reporter::start(
        vec![Box::new(backend)],
        ReporterOptions::default().batch_size(8),
    )
    .expect("reporter");
    let spans = known_trace("down");
    for _ in 0..50 {
        for span in &spans {
            reporter.report(span.clone());
        }
    }
    reporter
        .flush(Duration::from_secs(10))
        .expect("flush succeeds with statsd down");
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 50 * spans.len() as u64, "{stats:?}");
    assert_eq!(
        stats.backends[0].failed + stats.backends[0].errors,
        0,
        "{stats:?}"
    );
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn from_env_reads_every_variable() {
    let env = |k: &str| match k {
        "TOMOGRAPH_STATSD_ADDR" => Some("127.0.0.1:18125".to_owned()),
        "TOMOGRAPH_STATSD_PREFIX" => Some("a b.c".to_owned()),
        "TOMOGRAPH_STATSD_PACKET_SIZE" => Some("1432".to_owned()),
        _ => None,
    };
    let backend = StatsdBackend::from_lookup(&env).expect("valid");
    assert_eq!(backend.target().to_string(), "127.0.0.1:18125");
    assert_eq!(backend.prefix(), "a-b.c");
    let bad = |k: &str| (k == "TOMOGRAPH_STATSD_PACKET_SIZE").then(|| "big".to_owned());
    let err = StatsdBackend::from_lookup(&bad).expect_err("invalid");
    assert!(
        err.to_string().contains("TOMOGRAPH_STATSD_PACKET_SIZE"),
        "{err}"
    );
    let bad = |k: &str| (k == "TOMOGRAPH_STATSD_ADDR").then(|| "no port here".to_owned());
    let err = StatsdBackend::from_lookup(&bad).expect_err("invalid");
    assert!(err.to_string().contains("TOMOGRAPH_STATSD_ADDR"), "{err}");
}
