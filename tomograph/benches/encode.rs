//! Zipkin encoding and delivery.
//!
//! - `encode/json_v2`, `encode/thrift_v1`: spans/s encoded per core (a batch of 512 typical
//!   server spans: 4 tags, an annotation, a remote endpoint).
//! - `end_to_end/json_v2_loopback`: spans/s through a `Reporter` and the Zipkin backend to a
//!   loopback HTTP collector (a minimal Rust server in this file answering 202).
//! - `report/*`: the hot path, `Reporter::report`, with the collector up, down, or hanging.
//! - Before criterion runs: peak memory while producing 1 M spans with the collector down.
//!
//! `cargo bench -p tomograph --bench encode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tomograph::backend::zipkin::thrift::TagEncoding;
use tomograph::backend::zipkin::{ZipkinBackend, json, thrift};
use tomograph::{
    Endpoint, Kind, MemoryBackend, Note, Reporter, ReporterOptions, Span, SpanId, Timestamp,
    TraceId,
};

fn typical_span() -> Span {
    let t0 = Timestamp::now();
    Span::new(
        TraceId::random(false),
        SpanId::random(),
        "GET /users/{id}",
        Endpoint::new("web")
            .with_ip("10.0.0.1".parse().expect("ip"))
            .with_port(8080),
        t0,
    )
    .with_parent(SpanId::random())
    .with_kind(Kind::Server)
    .with_remote_endpoint(Endpoint::new("browser").with_ip("10.0.0.9".parse().expect("ip")))
    .with_annotation(Note::new(t0 + Duration::from_micros(120), "auth checked"))
    .with_end(t0 + Duration::from_micros(870))
    .with_tag("http.method", "GET")
    .with_tag("http.route", "/users/{id}")
    .with_tag("http.status_code", 200)
    .with_tag("user.id", 42)
}

fn batch(n: usize) -> Vec<Span> {
    (0..n).map(|_| typical_span()).collect()
}

fn encode(c: &mut Criterion) {
    let spans = batch(512);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(spans.len() as u64));
    let mut out = Vec::new();
    group.bench_function("json_v2", |b| {
        b.iter(|| {
            out.clear();
            json::encode_spans(black_box(&spans), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("thrift_v1", |b| {
        b.iter(|| {
            out.clear();
            thrift::encode_spans(black_box(&spans), TagEncoding::Strings, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

/// A loopback collector that answers 202 to everything (or never answers, when `hang`).
fn loopback_collector(hang: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve(stream, hang);
            });
        }
    });
    port
}

fn serve(stream: TcpStream, hang: bool) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        if hang {
            std::thread::sleep(Duration::from_secs(3600));
        }
        writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
    }
}

fn zipkin_to(port: u16) -> ZipkinBackend {
    ZipkinBackend::builder()
        .url(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("backend")
}

fn end_to_end(c: &mut Criterion) {
    let port = loopback_collector(false);
    let reporter = Reporter::start(
        vec![Box::new(zipkin_to(port))],
        ReporterOptions::default().queue_capacity(65_536),
    )
    .expect("reporter");
    // 8 batches of 512: what the reporter holds for a backend while it is busy posting.
    let spans = batch(4_096);
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.sample_size(10);
    group.bench_function("json_v2_loopback", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for span in &spans {
                    reporter.report(span.clone());
                }
                reporter.flush(Duration::from_secs(30)).expect("delivered");
            }
            start.elapsed()
        })
    });
    group.finish();
    let stats = reporter.stats();
    assert_eq!(
        stats.dropped + stats.backends[0].dropped + stats.backends[0].failed,
        0,
        "{stats:?}"
    );
    let _ = reporter.shutdown(Duration::from_secs(5));
}

fn report(c: &mut Criterion) {
    let span = typical_span();
    let mut group = c.benchmark_group("report");
    let memory = Reporter::start(
        vec![Box::new(MemoryBackend::new())],
        ReporterOptions::default(),
    )
    .expect("reporter");
    let up = Reporter::start(
        vec![Box::new(zipkin_to(loopback_collector(false)))],
        ReporterOptions::default(),
    )
    .expect("reporter");
    let free = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = Reporter::start(vec![Box::new(zipkin_to(free))], ReporterOptions::default())
        .expect("reporter");
    let hanging = Reporter::start(
        vec![Box::new(zipkin_to(loopback_collector(true)))],
        ReporterOptions::default(),
    )
    .expect("reporter");
    for (name, reporter) in [
        ("memory_backend", &memory),
        ("collector_up", &up),
        ("collector_down", &down),
        ("collector_hanging", &hanging),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| reporter.report(black_box(span.clone())))
        });
    }
    group.finish();
    for r in [memory, up, down, hanging] {
        let _ = r.shutdown(Duration::from_millis(200));
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak memory while producing 1 M spans as fast as possible with the collector down.
fn memory_with_collector_down() {
    let Some(before) = peak_rss_kib() else { return };
    let free = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let reporter = Reporter::start(vec![Box::new(zipkin_to(free))], ReporterOptions::default())
        .expect("reporter");
    let span = typical_span();
    let start = Instant::now();
    for _ in 0..1_000_000 {
        reporter.report(span.clone());
    }
    let elapsed = start.elapsed();
    let after = peak_rss_kib().unwrap_or(before);
    let stats = reporter.stats();
    println!(
        "memory/collector_down: 1000000 spans in {elapsed:?}; peak RSS {before} KiB -> {after} KiB \
         (+{} KiB); accepted {}, dropped at queue {}, dropped by backend {}; size_of::<Span>() = {} B",
        after.saturating_sub(before),
        stats.accepted,
        stats.dropped,
        stats.backends[0].dropped,
        std::mem::size_of::<Span>()
    );
    let _ = reporter.shutdown(Duration::from_millis(100));
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = encode, end_to_end, report
}

/// CPU time this thread has used (user + system), from `/proc/thread-self/stat` (Linux;
/// clock ticks of 10 ms, so measure for seconds).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

type Encoder<'a> = dyn Fn(&mut Vec<u8>) + 'a;

/// Spans encoded per second of CPU time: the per-core rate, unaffected by other processes
/// sharing the machine (criterion's figures are per second of wall time).
fn encode_per_cpu_second() {
    let spans = batch(512);
    let mut out = Vec::new();
    let encoders: [(&str, &Encoder<'_>); 2] = [
        ("json_v2", &|out| json::encode_spans(&spans, out)),
        ("thrift_v1", &|out| {
            thrift::encode_spans(&spans, TagEncoding::Strings, out)
        }),
    ];
    for (name, encode) in encoders {
        let (Some(cpu0), wall0) = (thread_cpu_time(), Instant::now()) else {
            return;
        };
        let mut n = 0u64;
        while wall0.elapsed() < Duration::from_secs(4) {
            out.clear();
            encode(&mut out);
            black_box(out.len());
            n += spans.len() as u64;
        }
        let cpu = thread_cpu_time().unwrap_or(cpu0).saturating_sub(cpu0);
        let wall = wall0.elapsed();
        println!(
            "encode_cpu/{name}: {:.2} M spans per CPU-second ({:.2} M/s wall, {:.0}% of a core)",
            n as f64 / cpu.as_secs_f64().max(1e-9) / 1e6,
            n as f64 / wall.as_secs_f64() / 1e6,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
    }
}

fn main() {
    encode_per_cpu_second();
    memory_with_collector_down();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
