//! `NoteLogger`: records at or above the level become notes on the current span (a tomograph
//! span, or an entered bridged `tracing` span), ERROR marks the span as failed, and the
//! wrapped logger still sees every record. One logger per process: every test here shares
//! it (WARN, the default level) and tells its records apart by span.
#![allow(clippy::unwrap_used)]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use log::{LevelFilter, Log, Metadata, Record};
use tomograph::{Span, TagValue, TraceId};
use tomograph_tracing::{NoteLogger, TomographLayer};
use tracing_subscriber::layer::SubscriberExt;

/// The application's own logger: keeps every record it is given.
#[derive(Default)]
struct Printed(Mutex<Vec<String>>);

impl Log for Printed {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

fn printed() -> &'static Printed {
    static PRINTED: OnceLock<Printed> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let printed = PRINTED.get_or_init(Printed::default);
    INSTALLED.get_or_init(|| {
        log::set_max_level(LevelFilter::Trace);
        let logger = NoteLogger::new(printed);
        assert_eq!(logger.notes_level(), LevelFilter::Warn);
        logger.install().unwrap();
        tomograph::testing::memory_tracer();
    });
    printed
}

fn was_printed(message: &str) -> bool {
    printed().0.lock().unwrap().iter().any(|m| m == message)
}

fn spans_of(trace: TraceId, count: usize) -> Vec<Span> {
    let memory = tomograph::testing::memory_tracer();
    let spans = tomograph::testing::wait_for_trace(&memory, trace, count, Duration::from_secs(10));
    assert_eq!(spans.len(), count);
    spans
}

fn notes(span: &Span) -> Vec<String> {
    span.annotations()
        .iter()
        .map(|n| n.value.to_string())
        .collect()
}

#[test]
fn records_at_or_above_the_level_become_notes_on_the_current_span() {
    printed();
    let span = tomograph::span("job").root().start();
    let trace = span.token().unwrap().trace_id();
    log::info!("info: printed, not noted");
    log::warn!("warn: noted");
    log::error!(target: "db", "error: noted, marks the span");
    drop(span);
    let spans = spans_of(trace, 1);
    let target = module_path!();
    assert_eq!(
        notes(&spans[0]),
        [
            format!("WARN {target}: warn: noted"),
            "ERROR db: error: noted, marks the span".to_owned(),
            "error".to_owned(),
        ]
    );
    assert_eq!(
        spans[0].tag_value("error"),
        Some(&TagValue::from("error: noted, marks the span"))
    );
    for message in [
        "info: printed, not noted",
        "warn: noted",
        "error: noted, marks the span",
    ] {
        assert!(was_printed(message), "{message}");
    }
}

#[test]
fn inside_an_entered_bridged_span_records_go_to_it() {
    printed();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(TomographLayer::new()),
        || {
            let root = tomograph::span("root").root().start();
            let trace = root.token().unwrap().trace_id();
            tracing::info_span!("bridged").in_scope(|| {
                log::warn!("on the bridged span");
                let _native = tomograph::span("native").start();
                log::warn!("on the native span");
            });
            drop(root);
            let spans = spans_of(trace, 3);
            let find = |name: &str| spans.iter().find(|s| s.name() == name).unwrap();
            let target = module_path!();
            assert_eq!(
                notes(find("bridged")),
                [format!("WARN {target}: on the bridged span")]
            );
            assert_eq!(
                notes(find("native")),
                [format!("WARN {target}: on the native span")]
            );
            assert!(notes(find("root")).is_empty());
        },
    );
}

#[test]
fn outside_a_sampled_span_nothing_is_noted_and_everything_is_printed() {
    printed();
    log::error!("no span: printed only");
    let unsampled =
        tomograph::TraceToken::new(TraceId::random(false), tomograph::SpanId::random(), false);
    let span = tomograph::span("unsampled").child_of(unsampled).start();
    log::error!("unsampled: printed only");
    drop(span);
    assert!(was_printed("no span: printed only"));
    assert!(was_printed("unsampled: printed only"));
    tomograph::flush(Duration::from_secs(5)).unwrap();
    let memory = tomograph::testing::memory_tracer();
    assert!(
        memory
            .spans()
            .iter()
            .all(|s| s.trace_id() != unsampled.trace_id())
    );
}
