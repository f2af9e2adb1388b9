//! `#[traced]`: every shape of function it promises to handle, and what it records.
#![cfg(feature = "macros")]
#![allow(clippy::unwrap_used)]

use std::fmt::Display;
use std::time::Duration;

use tomograph::testing::{memory_tracer, wait_for_trace};
use tomograph::{FutureExt, Span, TagValue, traced};

/// Runs `f` under a new root span and returns the trace's spans once `count` arrived.
fn in_root(count: usize, f: impl FnOnce()) -> Vec<Span> {
    let memory = memory_tracer();
    let trace = {
        let root = tomograph::span("test root").root().start();
        let trace = root.token().unwrap().trace_id();
        f();
        trace
    };
    let spans = wait_for_trace(&memory, trace, count, Duration::from_secs(10));
    assert_eq!(spans.len(), count, "{spans:#?}");
    spans
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

fn error_of(span: &Span) -> Option<String> {
    span.tag_value("error").map(TagValue::to_string)
}

// ---- sync free functions ------------------------------------------------------------------

/// The seed's decorator form.
#[traced("My Server", "myfunc")]
fn myfunc(yadda: u32) -> u32 {
    inner_default(yadda) + 1
}

#[traced]
fn inner_default(x: u32) -> u32 {
    if x > 100 {
        return 0; // early return still closes the span
    }
    x * 2
}

#[test]
fn seed_form_names_service_and_span_and_nests() {
    let spans = in_root(3, || assert_eq!(myfunc(5), 11));
    let root = named(&spans, "test root");
    let outer = named(&spans, "myfunc");
    let inner = named(&spans, "inner_default");
    assert_eq!(outer.parent_id(), Some(root.id()));
    assert_eq!(inner.parent_id(), Some(outer.id()));
    assert_eq!(outer.local_endpoint().service_name(), "My Server");
    // Without a service the span belongs to its parent's.
    assert_eq!(inner.local_endpoint().service_name(), "My Server");
    assert_eq!(tomograph::stack_depth(), 0);
}

#[test]
fn default_service_is_the_tracers_at_the_root() {
    let memory = memory_tracer();
    let before = tomograph::stack_depth();
    assert_eq!(inner_default(200), 0);
    assert_eq!(tomograph::stack_depth(), before);
    tomograph::flush(Duration::from_secs(5)).unwrap();
    let span = memory
        .wait_for(Duration::from_secs(5), |s| {
            s.iter()
                .any(|s| s.name() == "inner_default" && s.parent_id().is_none())
        })
        .into_iter()
        .find(|s| s.name() == "inner_default" && s.parent_id().is_none())
        .expect("a root span for the call made outside any trace");
    assert_eq!(span.local_endpoint().service_name(), "tomograph-test");
}

// ---- Result -----------------------------------------------------------------------------

#[derive(Debug)]
struct DebugOnly {
    #[allow(dead_code)]
    code: u8,
}

#[traced(name = "parse")]
fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n)
}

#[traced]
fn debug_only(fail: bool) -> Result<(), DebugOnly> {
    if fail {
        Err(DebugOnly { code: 7 })
    } else {
        Ok(())
    }
}

#[traced]
fn io_result(fail: bool) -> std::io::Result<impl Display> {
    if fail {
        return Err(std::io::Error::other("disk full"));
    }
    Ok("fine")
}

#[traced]
fn generic_result<E: std::fmt::Debug>(e: E) -> Result<(), E> {
    Err(e)
}

#[test]
fn result_errors_are_recorded() {
    let spans = in_root(7, || {
        assert!(parse("12").is_ok());
        assert!(parse("x").is_err());
        assert!(debug_only(true).is_err());
        assert!(io_result(true).is_err());
        assert_eq!(io_result(false).unwrap().to_string(), "fine");
        assert!(generic_result(()).is_err());
    });
    let parses: Vec<_> = spans.iter().filter(|s| s.name() == "parse").collect();
    assert_eq!(parses.len(), 2);
    assert_eq!(error_of(parses[0]), None);
    assert_eq!(
        error_of(parses[1]).as_deref(),
        Some("invalid digit found in string")
    );
    assert!(parses[1].notes().any(|(_, n)| n == "error"));
    assert_eq!(
        error_of(named(&spans, "debug_only")).as_deref(),
        Some("DebugOnly { code: 7 }")
    );
    let io: Vec<_> = spans.iter().filter(|s| s.name() == "io_result").collect();
    assert_eq!(error_of(io[0]).as_deref(), Some("disk full"));
    assert_eq!(error_of(io[1]), None);
    assert_eq!(
        error_of(named(&spans, "generic_result")).as_deref(),
        Some("()")
    );
}

// ---- panics -------------------------------------------------------------------------------

#[traced]
fn explodes(depth: u32) -> u32 {
    if depth == 0 {
        panic!("boom");
    }
    explodes(depth - 1)
}

#[test]
fn spans_close_on_panic() {
    let spans = in_root(4, || {
        let before = tomograph::stack_depth();
        let result = std::panic::catch_unwind(|| explodes(2));
        assert!(result.is_err());
        assert_eq!(tomograph::stack_depth(), before, "no span left open");
    });
    let calls: Vec<_> = spans.iter().filter(|s| s.name() == "explodes").collect();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|s| s.tag_value("error").map(ToString::to_string).as_deref() == Some("panicked")),
        "every call the panic unwound through is marked as an error"
    );
}

// ---- methods, generics, impl Trait --------------------------------------------------------

#[derive(Default)]
struct Store {
    items: Vec<String>,
}

trait Named {
    fn name(&self) -> String;
}

impl Named for Store {
    #[traced]
    fn name(&self) -> String {
        "store".to_owned()
    }
}

impl Store {
    #[traced]
    fn new_store() -> Self {
        Self::default()
    }

    #[traced]
    fn add(&mut self, item: impl Into<String>) -> &mut Self {
        self.items.push(item.into());
        self
    }

    #[traced]
    fn first(&self) -> Result<&str, String> {
        self.items
            .first()
            .map(String::as_str)
            .ok_or_else(|| "empty".to_owned())
    }

    #[traced]
    fn into_items(self) -> impl Iterator<Item = String> {
        self.items.into_iter()
    }

    #[traced]
    async fn fetch(&self, key: impl AsRef<str>) -> Option<usize> {
        tokio::task::yield_now().await;
        self.items.iter().position(|i| i == key.as_ref())
    }
}

#[traced]
fn longest<'a, T>(items: &'a [T]) -> Option<&'a T>
where
    T: Ord,
{
    items.iter().max()
}

#[traced]
fn count_displays<const N: usize>(items: [impl Display; N]) -> usize {
    items.iter().map(|i| i.to_string().len()).sum()
}

#[test]
fn methods_generics_and_impl_trait() {
    let spans = in_root(9, || {
        let mut store = Store::new_store();
        store.add("a").add(String::from("bb"));
        assert_eq!(store.first(), Ok("a"));
        assert_eq!(store.name(), "store");
        assert_eq!(longest(&[3, 9, 2]), Some(&9));
        assert_eq!(count_displays([10, 200]), 5);
        assert_eq!(store.into_items().collect::<Vec<_>>(), ["a", "bb"]);
    });
    for name in [
        "new_store",
        "add",
        "first",
        "name",
        "longest",
        "count_displays",
        "into_items",
    ] {
        assert!(spans.iter().any(|s| s.name() == name), "{name}");
    }
}

// ---- signature, docs and attributes kept --------------------------------------------------

/// Documented.
#[traced]
#[must_use]
#[inline]
fn kept(x: u8) -> u8 {
    x
}

// Removed by its cfg after #[traced] ran: the attribute must have been passed on.
#[traced]
#[cfg(any())]
fn never_compiled() {
    compile_error!("the #[cfg] attribute was lost");
}

#[test]
fn signature_is_unchanged() {
    let f: fn(u8) -> u8 = kept;
    let _ = in_root(2, || assert_eq!(f(3), 3));
}

// ---- async --------------------------------------------------------------------------------

#[traced("async service", "load")]
async fn load(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total += step(i).await;
    }
    total
}

#[traced]
async fn step(i: u64) -> u64 {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    i
}

#[traced]
async fn may_fail(fail: bool) -> Result<u8, String> {
    tokio::task::yield_now().await;
    if fail {
        return Err("nope".to_owned());
    }
    let n: u8 = "4"
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(n)
}

#[traced]
async fn returns_impl() -> impl Display {
    tokio::task::yield_now().await;
    42
}

#[traced(service = "generic service")]
async fn generic_async<T: Display + Send>(t: T, fail: bool) -> Result<impl Display, String> {
    tokio::task::yield_now().await;
    if fail {
        Err(format!("refused {t}"))?;
    }
    Ok(format!("<{t}>"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn async_spans_follow_the_task_across_awaits_and_threads() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let memory = memory_tracer();
    let rt = runtime();
    // Many concurrent tasks, each its own trace: none may see another's spans.
    let traces: Vec<_> = rt.block_on(async {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                tokio::spawn(assert_send(
                    async {
                        let trace = tomograph::get_trace_info().unwrap().trace_id();
                        assert_eq!(load(3).await, 3);
                        assert_eq!(returns_impl().await.to_string(), "42");
                        trace
                    }
                    .traced_with(tomograph::span("task root").root()),
                ))
            })
            .collect();
        let mut traces = Vec::new();
        for t in tasks {
            traces.push(t.await.unwrap());
        }
        traces
    });
    for trace in traces {
        let spans = wait_for_trace(&memory, trace, 6, Duration::from_secs(10));
        assert_eq!(spans.len(), 6, "{spans:#?}");
        let root = named(&spans, "task root");
        let load = named(&spans, "load");
        assert_eq!(load.parent_id(), Some(root.id()));
        assert_eq!(load.local_endpoint().service_name(), "async service");
        let steps: Vec<_> = spans.iter().filter(|s| s.name() == "step").collect();
        assert_eq!(steps.len(), 3);
        for step in steps {
            assert_eq!(step.parent_id(), Some(load.id()));
            assert_eq!(step.local_endpoint().service_name(), "async service");
        }
        assert_eq!(named(&spans, "returns_impl").parent_id(), Some(root.id()));
    }
}

#[test]
fn async_errors_and_methods() {
    let memory = memory_tracer();
    let rt = runtime();
    let trace = rt.block_on(
        async {
            let trace = tomograph::get_trace_info().unwrap().trace_id();
            assert_eq!(may_fail(false).await, Ok(4));
            assert!(may_fail(true).await.is_err());
            let store = Store {
                items: vec!["x".into(), "y".into()],
            };
            assert_eq!(store.fetch("y").await, Some(1));
            assert_eq!(generic_async(5, false).await.unwrap().to_string(), "<5>");
            assert!(generic_async("x", true).await.is_err());
            trace
        }
        .traced_with(tomograph::span("async root").root()),
    );
    let spans = wait_for_trace(&memory, trace, 6, Duration::from_secs(10));
    let generic: Vec<_> = spans
        .iter()
        .filter(|s| s.name() == "generic_async")
        .collect();
    assert_eq!(generic.len(), 2);
    assert_eq!(
        generic[0].local_endpoint().service_name(),
        "generic service"
    );
    assert_eq!(error_of(generic[0]), None);
    assert_eq!(error_of(generic[1]).as_deref(), Some("refused x"));
    let fails: Vec<_> = spans.iter().filter(|s| s.name() == "may_fail").collect();
    assert_eq!(fails.len(), 2);
    assert_eq!(error_of(fails[0]), None);
    assert_eq!(error_of(fails[1]).as_deref(), Some("nope"));
    let root = named(&spans, "async root");
    assert_eq!(named(&spans, "fetch").parent_id(), Some(root.id()));
}

#[test]
fn dropped_async_call_closes_its_span() {
    let memory = memory_tracer();
    let rt = runtime();
    let trace = rt.block_on(
        async {
            let trace = tomograph::get_trace_info().unwrap().trace_id();
            // `load(1000)` sleeps 1000 times; cancel it after the first step.
            let cancelled = tokio::time::timeout(Duration::from_millis(1), load(1000)).await;
            assert!(cancelled.is_err());
            trace
        }
        .traced_with(tomograph::span("cancel root").root()),
    );
    let spans = wait_for_trace(&memory, trace, 3, Duration::from_secs(10));
    let load = named(&spans, "load");
    let step = named(&spans, "step");
    assert_eq!(step.parent_id(), Some(load.id()));
}
