//! Helpers shared by the integration tests: one memory tracer per test binary, spans told
//! apart by trace id.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tomograph::sql::SqlTracerBuilder;
use tomograph::{MemoryBackend, Span, TraceId};

/// The test binary's memory backend (installs the tracer on first use).
pub fn memory() -> MemoryBackend {
    tomograph::testing::memory_tracer()
}

/// Runs `f` under a new root span `name`; returns the trace's id and `f`'s result.
pub fn in_trace<T>(name: &str, f: impl FnOnce() -> T) -> (TraceId, T) {
    memory();
    let root = tomograph::span(name.to_owned()).root().start();
    let trace = root.token().expect("tracing is on").trace_id();
    let out = f();
    drop(root);
    (trace, out)
}

/// The spans of `trace`, once at least `count` have arrived, oldest first.
pub fn spans(trace: TraceId, count: usize) -> Vec<Span> {
    let spans =
        tomograph::testing::wait_for_trace(&memory(), trace, count, Duration::from_secs(10));
    assert!(
        spans.len() >= count,
        "expected {count} spans, got {:?}",
        names(&spans)
    );
    spans
}

/// The spans' names, in order.
pub fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(Span::name).collect()
}

/// The value of tag `key` as text.
pub fn tag(span: &Span, key: &str) -> Option<String> {
    span.tag_value(key).map(ToString::to_string)
}

/// The first span called `name`.
pub fn find<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name} in {:?}", names(spans)))
}

/// Whether the span has a note `value`.
pub fn has_note(span: &Span, value: &str) -> bool {
    span.notes().any(|(_, v)| v == value)
}

/// A SQLite tracer builder whose `on_error` hook counts calls and remembers codes.
pub fn counting(builder: SqlTracerBuilder) -> (SqlTracerBuilder, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let builder = builder.on_error(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (builder, count)
}

/// The number in `counter`.
pub fn get(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// A fresh database file path in the system's temporary directory.
pub fn temp_db(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tomograph-rusqlite-{}-{name}-{}.db",
        std::process::id(),
        fastrand_suffix()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn fastrand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
