//! Tail sampling end to end: 10 000 HTTP requests to an axum service behind the tower layer,
//! each a trace (server span, an INSERT and a SELECT on SQLite through tomograph-rusqlite, a
//! render step), at a head rate of 1 %, with tail sampling on. One request in a hundred fails
//! in its INSERT (a unique-key violation), one in a hundred is slow. Every failing and every
//! slow trace must reach the Zipkin-compatible collector whole, with its parents; of the rest,
//! about 1 %.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::Value;
use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::http::TraceLayer;
use tomograph::sample::TailSampling;
use tomograph::testing::require_env;
use tomograph::{Config, FutureExt, ReporterOptions};
use tomograph_rusqlite::TracedConnection;
use tomograph_test_support::collector;

const REQUESTS: u32 = 10_000;
const SERVICE: &str = "tail-sampling-e2e";
/// Spans slower than this keep their trace; the slow requests sleep longer.
const SLOW: Duration = Duration::from_millis(250);
const CONCURRENCY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fate {
    Fails,
    Slow,
    Ordinary,
}

fn fate(n: u32) -> Fate {
    match n % 100 {
        0 => Fate::Fails,
        50 => Fate::Slow,
        _ => Fate::Ordinary,
    }
}

type Db = Arc<Mutex<TracedConnection>>;

async fn item(State(db): State<Db>, Path(n): Path<u32>) -> String {
    let trace = tomograph::get_trace_info().unwrap().trace_id();
    {
        let db = db.lock().unwrap_or_else(|e| e.into_inner());
        // Row 0 exists: a failing request inserts it again.
        let id = if fate(n) == Fate::Fails { 0 } else { n };
        let inserted = db.execute("INSERT INTO tg_tail_items (id) VALUES (?1)", [id]);
        assert_eq!(inserted.is_err(), fate(n) == Fate::Fails, "{inserted:?}");
        let _: i64 = db
            .query_row("SELECT count(*) FROM tg_tail_items", [], |row| row.get(0))
            .unwrap();
    }
    async {
        if fate(n) == Fate::Slow {
            tokio::time::sleep(SLOW + Duration::from_millis(50)).await;
        }
    }
    .traced_with(tomograph::span("render"))
    .await;
    trace.to_string()
}

#[test]
fn failing_and_slow_traces_reach_zipkin_whole_and_about_one_percent_of_the_rest() {
    let Some(zipkin) = require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let backend = ZipkinBackend::builder()
        .url(zipkin.clone())
        .build()
        .unwrap();
    tomograph::init(
        Config::builder()
            .service_name(SERVICE)
            .sample_rate(0.01)
            .tail_sampling(TailSampling::default().slow(SLOW))
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(50)))
            .backend(backend)
            .build(),
    )
    .unwrap();
    let db = TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build()).unwrap();
    db.execute_batch("CREATE TABLE tg_tail_items (id INTEGER PRIMARY KEY); INSERT INTO tg_tail_items VALUES (0);")
        .unwrap();
    let db: Db = Arc::new(Mutex::new(db));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let traces = rt.block_on(async {
        let app = Router::new()
            .route("/items/{n}", get(item))
            .layer(TraceLayer::new().service_name(SERVICE))
            .with_state(db);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let http = reqwest::Client::new();
        let next = Arc::new(AtomicU32::new(0));
        let clients: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (http, next) = (http.clone(), next.clone());
                tokio::spawn(async move {
                    let mut traces = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= REQUESTS {
                            return traces;
                        }
                        let response = http
                            .get(format!("http://{addr}/items/{n}"))
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success());
                        traces.push((response.text().await.unwrap(), fate(n)));
                    }
                })
            })
            .collect();
        let mut traces: HashMap<String, Fate> = HashMap::new();
        for client in clients {
            traces.extend(client.await.unwrap());
        }
        server.abort();
        traces
    });
    tomograph::flush(Duration::from_secs(30)).unwrap();
    collector::assert_no_rejections(&zipkin);
    let spans = collector::get_json(&format!("{zipkin}/_spans"));
    assert_eq!(traces.len(), REQUESTS as usize, "one trace per request");
    let mut received: HashMap<&str, Vec<&Value>> = HashMap::new();
    for span in spans.as_array().unwrap() {
        if span["localEndpoint"]["serviceName"] == SERVICE {
            received
                .entry(span["traceId"].as_str().unwrap())
                .or_default()
                .push(span);
        }
    }

    let mut kept_ordinary = 0usize;
    for (trace, fate) in &traces {
        let Some(spans) = received.get(trace.as_str()) else {
            assert_eq!(
                *fate,
                Fate::Ordinary,
                "a {fate:?} trace is missing: {trace}"
            );
            continue;
        };
        if *fate == Fate::Ordinary {
            kept_ordinary += 1;
        }
        // Whole: the server span, its two statements and the render step, each child's parent
        // present.
        assert_eq!(spans.len(), 4, "{fate:?} trace {trace}: {spans:#?}");
        let ids: HashSet<&str> = spans.iter().map(|s| s["id"].as_str().unwrap()).collect();
        let roots: Vec<&&Value> = spans
            .iter()
            .filter(|s| s.get("parentId").is_none())
            .collect();
        assert_eq!(roots.len(), 1, "{spans:#?}");
        assert_eq!(roots[0]["kind"], "SERVER");
        for span in spans.iter().filter(|s| s.get("parentId").is_some()) {
            assert_eq!(span["parentId"], roots[0]["id"], "{span}");
            assert!(ids.contains(span["parentId"].as_str().unwrap()));
        }
        let named = |name: &str| {
            spans
                .iter()
                .find(|s| s["name"].as_str().unwrap().eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
        };
        assert_eq!(
            named("INSERT tg_tail_items")["remoteEndpoint"]["serviceName"],
            "sqlite"
        );
        named("SELECT tg_tail_items");
        match fate {
            Fate::Fails => {
                let error = named("INSERT tg_tail_items")["tags"]["error"]
                    .as_str()
                    .unwrap();
                assert!(error.contains("UNIQUE"), "{error}");
            }
            Fate::Slow => {
                let micros = named("render")["duration"].as_u64().unwrap();
                assert!(micros >= SLOW.as_micros() as u64, "{micros}");
            }
            Fate::Ordinary => {}
        }
    }
    // 9 800 ordinary traces at 1 %: 98 expected, σ ≈ 10. A wide bound (a request made slow
    // by a loaded machine is kept too, rightly).
    assert!(
        (49..=250).contains(&kept_ordinary),
        "{kept_ordinary} ordinary traces kept"
    );

    let stats = tomograph::stats();
    let sampling = &stats.sampling;
    println!("{kept_ordinary} ordinary traces kept; {sampling:?}");
    let kept_traces = received.len() as u64;
    assert_eq!(
        sampling.kept(),
        kept_traces,
        "every trace is counted once: {sampling:?}"
    );
    assert_eq!(sampling.dropped, u64::from(REQUESTS) - kept_traces);
    assert_eq!(sampling.dropped_spans, 4 * sampling.dropped);
    assert!(
        sampling.kept_error >= 1 && sampling.kept_slow >= 1,
        "{sampling:?}"
    );
    assert_eq!(sampling.decided_early, 0, "no cap reached: {sampling:?}");
    assert_eq!((sampling.held_spans, sampling.held_traces), (0, 0));
    let zipkin_stats = &stats.backends[0];
    assert_eq!(zipkin_stats.sent, 4 * kept_traces);
    assert_eq!(
        stats.accepted,
        sampling.dropped_spans + zipkin_stats.sent,
        "{stats:?}"
    );
}
