//! The application's side of the Zipkin transports: what `report()` — the hand-over of a
//! finished span — costs while the backend delivers over HTTP or over RabbitMQ (numbers in
//! BENCHMARKS.md, "Zipkin over RabbitMQ vs HTTP").
//!
//! `cargo bench -p tomograph --features rabbitmq --bench transport` (`TOMOGRAPH_BENCH_PAIRS`
//! pairs, default 40) with
//! `TOMOGRAPH_TEST_RABBITMQ_URL` set (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`); without
//! it only the discard arm runs against HTTP.
//!
//! Each arm is a reporter with the default options and one backend: Zipkin JSON v2 over HTTP
//! to a local sink that answers 202 (an axum server on its own thread, so that a collector's
//! pace is not what is measured; the baseline), Zipkin JSON v2 over RabbitMQ with publisher
//! confirms (to a queue that keeps its last 1 000 messages), and a discarding backend (the
//! floor). A batch is 16 384 spans built before the clock starts; the clock runs while they are
//! reported, then the batch is flushed (delivered and confirmed) with the clock stopped, so the
//! backend works on the other core while the application reports, as in a service. Batches run
//! in ABBA order against a fresh baseline batch, with an A/A control on the same schedule
//! (`tomograph_test_support::bench::added_costs`, as the peer benches), so the ratios hold on a loaded
//! machine.

use std::net::TcpListener;
use std::time::{Duration, Instant};

mod support;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use support::typical_span;
use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::testing::DiscardBackend;
use tomograph::{Backend, Reporter, ReporterOptions, Span, SpanId, TraceId};
use tomograph_test_support::bench::{Batch, added_costs, bench_pairs};

const BATCH: u32 = 16_384;
const QUEUE: &str = "tomograph-bench-transport";

/// Traces of 100 spans, `n` spans in all.
fn spans(n: u64) -> Vec<Span> {
    let mut out = Vec::with_capacity(n as usize);
    let mut trace = TraceId::random(false);
    let mut root = SpanId::random();
    for i in 0..n {
        if i % 100 == 0 {
            trace = TraceId::random(false);
            root = SpanId::random();
        }
        out.push(typical_span(
            "transport-bench",
            trace,
            (i % 100 != 0).then_some(root),
        ));
    }
    out
}

/// Reports one batch; only the `report()` calls are timed, the flush is not.
fn report_batch(reporter: &Reporter) -> Duration {
    let batch = spans(u64::from(BATCH));
    let started = Instant::now();
    for span in batch {
        reporter.report(span);
    }
    let reported = started.elapsed();
    if let Err(e) = reporter.flush(Duration::from_secs(120)) {
        panic!("the bench's spans were not delivered: {e}");
    }
    reported
}

/// A local Zipkin HTTP endpoint that reads each body and answers 202: the transport's own
/// cost, not a collector's.
fn http_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
    listener.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}", listener.local_addr().expect("sink address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sink runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = axum::Router::new().route(
                "/api/v2/spans",
                axum::routing::post(|_body: axum::body::Bytes| async {
                    axum::http::StatusCode::ACCEPTED
                }),
            );
            axum::serve(listener, app).await.expect("sink");
        });
    });
    url
}

/// Declares the bench's queue keeping only its last 1 000 messages (the broker confirms and
/// drops the oldest), so that a long run does not fill the broker; deleted at the end.
fn with_broker_queue(url: &str, delete: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let connection = Connection::connect_with_runtime(
            url,
            ConnectionProperties::default(),
            async_rs::Runtime::tokio_current(),
        )
        .await
        .expect("the bench connects to the broker");
        let channel = connection.create_channel().await.expect("channel");
        if delete {
            let _ = channel
                .queue_delete(QUEUE.into(), QueueDeleteOptions::default())
                .await;
        } else {
            let mut arguments = FieldTable::default();
            arguments.insert("x-max-length".into(), AMQPValue::LongInt(1_000));
            channel
                .queue_declare(
                    QUEUE.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    arguments,
                )
                .await
                .expect("declare the bench queue");
        }
        let _ = connection.close(200, "done".into()).await;
    });
}

fn reporter(backend: impl Backend + 'static) -> Reporter {
    Reporter::start(vec![Box::new(backend)], ReporterOptions::default()).expect("reporter")
}

fn main() {
    let pairs = bench_pairs(40);
    let broker = std::env::var("TOMOGRAPH_TEST_RABBITMQ_URL").ok();
    if broker.is_none() {
        eprintln!("transport bench: TOMOGRAPH_TEST_RABBITMQ_URL is not set; no RabbitMQ arm");
    }
    let sink = http_sink();
    let http = reporter(
        ZipkinBackend::builder()
            .url(&sink)
            .build()
            .expect("http backend"),
    );
    let rabbitmq = broker.as_deref().map(|url| {
        with_broker_queue(url, false);
        reporter(
            ZipkinBackend::builder()
                .url(url)
                .queue(QUEUE)
                .build()
                .expect("rabbitmq backend"),
        )
    });
    let discard = reporter(DiscardBackend::default());
    // Warm-up: connections open, allocator and queues touched.
    for r in std::iter::once(&http)
        .chain(rabbitmq.as_ref())
        .chain([&discard])
    {
        report_batch(r);
    }

    let mut arms: Vec<(&str, Batch<'_>)> = Vec::new();
    if let Some(r) = &rabbitmq {
        arms.push(("zipkin json v2 over rabbitmq", Box::new(|| report_batch(r))));
    }
    arms.push(("discard", Box::new(|| report_batch(&discard))));
    let report = added_costs(
        "report() per span while the backend delivers, vs zipkin json v2 over http",
        pairs,
        BATCH,
        Box::new(|| report_batch(&http)),
        arms,
    );
    report.print("zipkin json v2 over rabbitmq");

    let all = [
        ("http", Some(&http)),
        ("rabbitmq", rabbitmq.as_ref()),
        ("discard", Some(&discard)),
    ];
    for (name, reporter) in all {
        let Some(reporter) = reporter else { continue };
        let stats = reporter.stats();
        eprintln!(
            "transport bench: {name}: accepted {}, sent {}, lost {}",
            stats.accepted,
            stats.backends[0].sent,
            stats.backends[0].lost()
        );
        let _ = reporter.shutdown(Duration::from_secs(10));
    }
    if let Some(url) = &broker {
        with_broker_queue(url, true);
    }
}
