//! `TomographLayer`: parents both ways, fields as tags, events as notes, filters, unsampled
//! traces, and spans that move between threads. Spans go to the in-memory backend (the
//! Zipkin collector sees the same spans in `zipkin.rs`); each test uses a trace of its own
//! and a `tracing` subscriber scoped to its thread.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tomograph::{Kind, Span, SpanId, TagValue, TraceId, TraceToken};
use tomograph_tracing::TomographLayer;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

fn bridged() -> impl tracing::Subscriber + Send + Sync {
    Registry::default().with(TomographLayer::new())
}

/// Exactly `count` spans of `trace`, oldest first (waits for them, then for stragglers).
fn spans_of(trace: TraceId, count: usize) -> Vec<Span> {
    let memory = tomograph::testing::memory_tracer();
    let spans = tomograph::testing::wait_for_trace(&memory, trace, count, Duration::from_secs(10));
    assert_eq!(
        spans.len(),
        count,
        "{:#?}",
        spans.iter().map(Span::name).collect::<Vec<_>>()
    );
    spans
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(Span::name).collect()
}

fn notes(span: &Span) -> Vec<String> {
    span.annotations()
        .iter()
        .map(|n| n.value.to_string())
        .collect()
}

/// A root span; returns its trace.
fn in_root(name: &'static str, f: impl FnOnce()) -> TraceId {
    tomograph::testing::memory_tracer();
    let root = tomograph::span(name).root().start();
    let trace = root.token().unwrap().trace_id();
    f();
    trace
}

#[tomograph::traced]
fn native_traced_fn() -> Option<TraceToken> {
    tomograph::get_trace_info()
}

#[test]
fn tracing_spans_nest_under_tomograph_spans_and_tomograph_spans_under_them() {
    tracing::subscriber::with_default(bridged(), || {
        let mut seen = None;
        let mut header = None;
        let trace = in_root("root", || {
            tracing::info_span!("bridged").in_scope(|| {
                seen = tomograph::get_trace_info();
                let mut headers = http::HeaderMap::new();
                tomograph::http::add_trace_info_header(&mut headers);
                header = headers
                    .get("x-b3-spanid")
                    .map(|v| v.to_str().unwrap().to_owned());
                let _native = tomograph::span("native").start();
                let traced = native_traced_fn();
                assert_ne!(traced, seen, "#[traced] opened a span of its own");
                tracing::info_span!("bridged inside native").in_scope(|| {});
            });
        });
        let spans = spans_of(trace, 5);
        let root = named(&spans, "root");
        let bridged = named(&spans, "bridged");
        let native = named(&spans, "native");
        let traced = named(&spans, "native_traced_fn");
        let inner = named(&spans, "bridged inside native");
        assert_eq!(bridged.parent_id(), Some(root.id()));
        assert_eq!(native.parent_id(), Some(bridged.id()));
        assert_eq!(traced.parent_id(), Some(native.id()));
        assert_eq!(inner.parent_id(), Some(native.id()));
        assert_eq!(seen.map(|t| t.span_id()), Some(bridged.id()));
        assert_eq!(header, Some(bridged.id().to_string()));
        assert!(!bridged.has_remote_parent());
        assert_eq!(bridged.local_endpoint().service_name(), "tomograph-test");
    });
}

#[test]
fn the_context_is_restored_when_a_bridged_span_exits() {
    tracing::subscriber::with_default(bridged(), || {
        let depth = tomograph::stack_depth();
        let trace = in_root("root", || {
            let before = tomograph::get_trace_info();
            let span = tracing::info_span!("entered twice");
            {
                let _a = span.enter();
                let _b = span.enter();
                assert_ne!(tomograph::get_trace_info(), before);
            }
            assert_eq!(tomograph::get_trace_info(), before);
            // Exited while a tomograph span opened inside it is still open: that span keeps
            // its place, the bridged span's context goes.
            let entered = span.enter();
            let native = tomograph::span("outlives the enter").start();
            drop(entered);
            assert_eq!(tomograph::get_trace_info(), native.token());
            drop(native);
            assert_eq!(tomograph::get_trace_info(), before);
        });
        assert_eq!(tomograph::stack_depth(), depth);
        let spans = spans_of(trace, 3);
        let bridged = named(&spans, "entered twice");
        assert_eq!(
            named(&spans, "outlives the enter").parent_id(),
            Some(bridged.id())
        );
    });
}

#[test]
fn explicit_parents_and_roots() {
    tracing::subscriber::with_default(bridged(), || {
        let mut other_trace = None;
        let trace = in_root("root", || {
            let a = tracing::info_span!("a");
            let unrelated = tomograph::span("unrelated").root().start();
            // Created while another trace is current: its explicit parent wins.
            let b = tracing::info_span!(parent: &a, "b");
            let orphan = tracing::info_span!(parent: None, "new trace");
            other_trace = orphan.in_scope(tomograph::get_trace_info);
            drop(orphan);
            drop(unrelated);
            drop(b);
            drop(a);
        });
        let spans = spans_of(trace, 3);
        assert_eq!(
            named(&spans, "b").parent_id(),
            Some(named(&spans, "a").id())
        );
        let other = other_trace.unwrap();
        assert_ne!(other.trace_id(), trace);
        let orphan = spans_of(other.trace_id(), 1);
        assert_eq!(orphan[0].parent_id(), None);
    });
}

#[test]
fn a_bridged_span_outside_any_tomograph_span_is_a_root_and_its_children_follow() {
    tracing::subscriber::with_default(bridged(), || {
        tomograph::testing::memory_tracer();
        let outer = tracing::info_span!("tracing root");
        let token = outer.in_scope(|| {
            let _native = tomograph::span("native child").start();
            tracing::info_span!("tracing child").in_scope(tomograph::get_trace_info)
        });
        drop(outer);
        let spans = spans_of(token.unwrap().trace_id(), 3);
        let root = named(&spans, "tracing root");
        assert_eq!(root.parent_id(), None);
        let native = named(&spans, "native child");
        assert_eq!(native.parent_id(), Some(root.id()));
        assert_eq!(
            named(&spans, "tracing child").parent_id(),
            Some(native.id())
        );
    });
}

#[derive(Debug)]
struct Point {
    #[allow(dead_code)] // only printed
    x: i32,
}

#[test]
fn fields_become_typed_tags_and_conventional_fields_shape_the_span() {
    tracing::subscriber::with_default(bridged(), || {
        let trace = in_root("root", || {
            let span = tracing::info_span!(
                "fields",
                int = -3i64,
                unsigned = 7u64,
                float = 1.5,
                flag = true,
                text = "hello",
                point = ?Point { x: 1 },
                shown = %"displayed",
                later = tracing::field::Empty,
            );
            span.record("later", 42);
            span.record("text", "changed");
            drop(span);
            drop(tracing::info_span!(
                "renamed",
                otel.name = "GET /users/{id}",
                otel.kind = "server"
            ));
            drop(tracing::info_span!("client", span.kind = "CLIENT"));
            drop(tracing::info_span!("failed", error = "connection refused"));
            drop(tracing::info_span!("status", otel.status_code = "ERROR"));
        });
        let spans = spans_of(trace, 6);
        let fields = named(&spans, "fields");
        assert_eq!(fields.tag_value("int"), Some(&TagValue::I64(-3)));
        assert_eq!(fields.tag_value("unsigned"), Some(&TagValue::I64(7)));
        assert_eq!(fields.tag_value("float"), Some(&TagValue::F64(1.5)));
        assert_eq!(fields.tag_value("flag"), Some(&TagValue::Bool(true)));
        assert_eq!(fields.tag_value("text"), Some(&TagValue::from("changed")));
        assert_eq!(
            fields.tag_value("point"),
            Some(&TagValue::from("Point { x: 1 }"))
        );
        assert_eq!(
            fields.tag_value("shown"),
            Some(&TagValue::from("displayed"))
        );
        assert_eq!(fields.tag_value("later"), Some(&TagValue::I64(42)));
        assert!(!fields.is_error());
        let renamed = named(&spans, "GET /users/{id}");
        assert_eq!(renamed.kind(), Some(Kind::Server));
        assert!(
            renamed.tag_value("otel.name").is_none() && renamed.tag_value("otel.kind").is_none()
        );
        assert_eq!(named(&spans, "client").kind(), Some(Kind::Client));
        let failed = named(&spans, "failed");
        assert_eq!(
            failed.tag_value("error"),
            Some(&TagValue::from("connection refused"))
        );
        assert!(named(&spans, "status").is_error());
    });
}

#[test]
fn events_become_notes_and_error_events_mark_their_span() {
    tracing::subscriber::with_default(bridged(), || {
        let trace = in_root("root", || {
            let span = tracing::info_span!("with events");
            span.in_scope(|| {
                tracing::info!(rows = 3, table = "users", "loaded");
                tracing::warn!(target: "db", retries = 2u64);
            });
            tracing::error!(parent: &span, "gave up");
            let _native = tomograph::span("native inside").start();
            // Contextual, with a tomograph span of its own current: goes to that span.
            tracing::info!("on the native span");
        });
        let spans = spans_of(trace, 3);
        let span = named(&spans, "with events");
        assert_eq!(
            notes(span),
            [
                "INFO loaded rows=3 table=\"users\"",
                "WARN db retries=2",
                "ERROR gave up",
                "error",
            ]
        );
        assert_eq!(span.tag_value("error"), Some(&TagValue::from("gave up")));
        let times: Vec<_> = span.annotations().iter().map(|n| n.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|t| *t >= span.start() && *t <= span.end()));
        assert_eq!(
            notes(named(&spans, "native inside")),
            ["INFO on the native span"]
        );
        assert!(notes(named(&spans, "root")).is_empty());
    });
}

#[test]
fn a_span_entered_on_one_thread_is_closed_on_another() {
    let dispatch = tracing::Dispatch::new(bridged());
    tracing::dispatcher::with_default(&dispatch, || {
        let trace = in_root("root", || {
            let span = tracing::info_span!("moves");
            span.in_scope(|| tracing::info!("here"));
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let token = span.in_scope(|| {
                        tracing::info!("there");
                        let _child = tomograph::span("child there").start();
                        tomograph::get_trace_info()
                    });
                    assert!(token.is_some());
                    drop(span);
                    assert_eq!(tomograph::stack_depth(), 0);
                })
            })
            .join()
            .unwrap();
        });
        let spans = spans_of(trace, 3);
        let moved = named(&spans, "moves");
        assert_eq!(notes(moved), ["INFO here", "INFO there"]);
        assert_eq!(named(&spans, "child there").parent_id(), Some(moved.id()));
    });
}

#[test]
fn a_per_layer_filter_decides_what_is_bridged() {
    let subscriber = Registry::default().with(TomographLayer::new().with_filter(LevelFilter::INFO));
    tracing::subscriber::with_default(subscriber, || {
        let trace = in_root("root", || {
            tracing::info_span!("info").in_scope(|| {
                tracing::debug_span!("debug").in_scope(|| {
                    tracing::debug!("not noted");
                    tracing::info!("noted on info");
                    let _native = tomograph::span("native").start();
                    tracing::trace_span!(parent: None, "trace level root").in_scope(|| {});
                });
            });
        });
        let spans = spans_of(trace, 3);
        assert_eq!(names(&spans), ["native", "info", "root"]);
        let info = named(&spans, "info");
        assert_eq!(named(&spans, "native").parent_id(), Some(info.id()));
        assert_eq!(notes(info), ["INFO noted on info"]);
    });
}

#[test]
fn an_env_filter_decides_what_is_bridged() {
    let subscriber = Registry::default()
        .with(EnvFilter::new("info,noisy=off,layer=debug"))
        .with(TomographLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        let trace = in_root("root", || {
            tracing::info_span!(target: "noisy", "filtered out").in_scope(|| {
                tracing::error!(target: "noisy", "not noted");
                tracing::debug_span!("debug, enabled for this crate").in_scope(|| {
                    tracing::trace!("below the filter");
                });
                tracing::debug_span!(target: "elsewhere", "debug elsewhere").in_scope(|| {});
            });
        });
        let spans = spans_of(trace, 2);
        let debug = named(&spans, "debug, enabled for this crate");
        assert_eq!(debug.parent_id(), Some(named(&spans, "root").id()));
        assert!(notes(debug).is_empty());
        assert!(spans.iter().all(|s| !s.is_error()));
    });
}

#[test]
fn unsampled_traces_record_nothing_and_keep_the_decision() {
    tracing::subscriber::with_default(bridged(), || {
        tomograph::testing::memory_tracer();
        let unsampled = TraceToken::new(TraceId::random(false), SpanId::random(), false);
        let parent = tomograph::span("unsampled").child_of(unsampled).start();
        let (inside, native) = tracing::info_span!("bridged", field = 1).in_scope(|| {
            tracing::error!("not noted");
            let native = tomograph::span("native").start();
            (tomograph::get_trace_info(), native.token())
        });
        let explicit = tracing::info_span!(parent: None, "explicit root");
        let inside = inside.unwrap();
        assert_eq!(inside.trace_id(), unsampled.trace_id());
        assert!(!inside.sampled() && !native.unwrap().sampled());
        assert!(tomograph::get_trace_info().is_some_and(|t| !t.sampled()));
        drop(explicit);
        drop(parent);
        tomograph::flush(Duration::from_secs(5)).unwrap();
        let memory = tomograph::testing::memory_tracer();
        assert!(
            memory
                .spans()
                .iter()
                .all(|s| s.trace_id() != unsampled.trace_id())
        );
    });
}

#[test]
fn levels_are_the_subscribers_and_the_bridge_adds_none() {
    // A global level filter: events and spans below it never reach the layer.
    let subscriber = Registry::default()
        .with(LevelFilter::from_level(Level::WARN))
        .with(TomographLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        let trace = in_root("root", || {
            tracing::info_span!("info span").in_scope(|| tracing::warn!("noted on root"));
            tracing::warn_span!("warn span").in_scope(|| tracing::info!("dropped"));
        });
        let spans = spans_of(trace, 2);
        assert_eq!(notes(named(&spans, "root")), ["WARN noted on root"]);
        assert!(notes(named(&spans, "warn span")).is_empty());
    });
}

#[test]
fn bridged_spans_and_their_children_keep_the_parents_service() {
    tracing::subscriber::with_default(bridged(), || {
        tomograph::testing::memory_tracer();
        let root = tomograph::span("root").root().service("billing").start();
        let trace = root.token().unwrap().trace_id();
        let bridged = tracing::info_span!("bridged");
        bridged.in_scope(|| {
            let _native = tomograph::span("native").start();
        });
        let unrelated = tomograph::span("unrelated").root().start();
        drop(tracing::info_span!(parent: &bridged, "explicit"));
        drop(unrelated);
        drop(bridged);
        drop(root);
        let spans = spans_of(trace, 4);
        for span in &spans {
            assert_eq!(
                span.local_endpoint().service_name(),
                "billing",
                "{}",
                span.name()
            );
        }
    });
}
