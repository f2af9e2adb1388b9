//! The `tracing` → tomograph bridge: a [`Layer`] that records every `tracing` span it sees as
//! a tomograph span, and makes it tomograph's current context while it is entered.

use tomograph::{DetachedSpan, Endpoint, SpanBuilder, TraceToken};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::fields::{KindFinder, NoteText, SpanFields, names_kind};

/// A [`tracing_subscriber::Layer`] that turns `tracing` spans into tomograph spans.
///
/// - **Parents.** A span created inside a tomograph context (a [`tomograph::span`] guard, a
///   traced future, an HTTP request of tomograph's tower layer, an entered bridged span) is
///   its child, on whatever thread the task runs; a span given an explicit parent
///   (`parent: &span`) is the child of that span's nearest bridged ancestor; `parent: None`
///   starts a new trace.
/// - **Current context.** While a bridged span is entered (`span.enter()`, `in_scope`, each
///   poll of an `#[instrument]`ed future) it is tomograph's current context on that thread:
///   [`tomograph::get_trace_info`], [`tomograph::span`], `#[traced]`, the SQL adapters and
///   `add_trace_info_header` all use it as parent. (It is `tracing`'s span: tomograph's own
///   [`annotate`](tomograph::annotate) and [`tag`](tomograph::tag) do not reach it — record
///   fields and events on it instead, or open a tomograph span.)
/// - **Fields.** Each field of the span, and each later `record`, becomes a tag of the same
///   type (integer, float, bool, text; `Debug` text for the rest). `otel.name` renames the
///   span, `otel.kind` / `span.kind` (`server`, `client`, `producer`, `consumer`) sets its
///   kind, `error` (or `otel.status_code = "ERROR"`) marks it as failed.
/// - **Events** become notes on their span (`LEVEL message key=value …`, at the event's
///   time); an ERROR event also marks the span as failed (`error` tag). An event inside a
///   tomograph span of its own (no bridged span in between) goes to that span.
/// - **Filtering** is the subscriber's: what a level filter, an `EnvFilter` or a per-layer
///   filter (`layer.with_filter(..)`) disables is never seen here. A span whose trace is not
///   sampled records nothing and keeps no state.
///
/// The span's state lives in its extensions, so a span entered on one thread and closed on
/// another (a future moving between worker threads) is reported once, when it closes.
/// `follows_from` relations are not recorded (Zipkin spans have one parent and no links).
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let memory = tomograph::testing::memory_tracer();
/// let subscriber = tracing_subscriber::registry().with(tomograph_tracing::TomographLayer::new());
/// tracing::subscriber::with_default(subscriber, || {
///     let request = tomograph::span("request").root().start();
///     tracing::info_span!("load user", user.id = 7).in_scope(|| {
///         tracing::warn!(cache = "miss", "slow path");
///         let _query = tomograph::span("SELECT").start(); // child of "load user"
///     });
///     let trace = request.token().unwrap().trace_id();
///     drop(request);
///     let spans = tomograph::testing::wait_for_trace(&memory, trace, 3, std::time::Duration::from_secs(5));
///     let load = spans.iter().find(|s| s.name() == "load user").unwrap();
///     let select = spans.iter().find(|s| s.name() == "SELECT").unwrap();
///     assert_eq!(select.parent_id(), Some(load.id()));
///     assert_eq!(load.tag_value("user.id"), Some(&tomograph::TagValue::I64(7)));
///     assert_eq!(&*load.annotations()[0].value, "WARN slow path cache=\"miss\"");
/// });
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct TomographLayer {
    _private: (),
}

impl TomographLayer {
    /// The layer; add it to a subscriber built on `tracing_subscriber`'s
    /// [`Registry`](tracing_subscriber::Registry).
    pub fn new() -> Self {
        Self::default()
    }
}

/// A bridged span's state, in its extensions. Dropped (which reports the span) when the
/// registry clears the span's data at close.
struct Bridged {
    span: DetachedSpan,
    token: TraceToken,
}

fn tracing_on() -> bool {
    tomograph::tracer().is_some_and(|t| t.is_enabled())
}

/// The token of `span` or of its nearest bridged ancestor (spans this layer's filter
/// disabled, or that keep no state, are skipped), and its local endpoint when it is not the
/// tracer's own (a child inherits it).
fn bridged_parent<S>(span: &SpanRef<'_, S>) -> Option<(TraceToken, Option<Endpoint>)>
where
    S: for<'a> LookupSpan<'a>,
{
    span.scope().find_map(|s| {
        let extensions = s.extensions();
        let b = extensions.get::<Bridged>()?;
        let endpoint = b
            .span
            .span()
            .map(|s| s.local_endpoint())
            .filter(|e| tomograph::tracer().is_none_or(|t| t.local_endpoint() != *e));
        Some((b.token, endpoint.cloned()))
    })
}

/// A builder continuing a bridged parent.
fn child_of(
    builder: SpanBuilder,
    (token, endpoint): (TraceToken, Option<Endpoint>),
) -> SpanBuilder {
    let builder = builder.child_of(token);
    match endpoint {
        Some(e) => builder.endpoint(e),
        None => builder,
    }
}

/// Runs `f` on the nearest bridged span of `span`'s scope, if `accept` takes its token.
fn with_bridged<S>(
    span: &SpanRef<'_, S>,
    accept: impl Fn(TraceToken) -> bool,
    f: impl FnOnce(&mut DetachedSpan),
) -> bool
where
    S: for<'a> LookupSpan<'a>,
{
    for s in span.scope() {
        let mut extensions = s.extensions_mut();
        if let Some(b) = extensions.get_mut::<Bridged>() {
            if !accept(b.token) {
                return false;
            }
            f(&mut b.span);
            return true;
        }
    }
    false
}

impl<S> Layer<S> for TomographLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !tracing_on() {
            return;
        }
        let meta = attrs.metadata();
        let mut builder = tomograph::span(meta.name());
        if attrs.is_root() {
            builder = builder.root();
        } else if let Some(parent) = attrs.parent() {
            // An explicit parent: its nearest bridged ancestor, else the current context.
            if let Some(parent) = ctx.span(parent).as_ref().and_then(bridged_parent) {
                builder = child_of(builder, parent);
            }
        } else {
            match tomograph::get_trace_info() {
                // The trace is not recorded: children see the same unsampled context
                // whether or not this span is bridged, so it needs no state at all.
                Some(current) if !current.sampled() => return,
                // The innermost context here: a tomograph span, or the link an entered
                // bridged span left on the stack.
                Some(_) => {}
                None => {
                    if let Some(parent) = ctx.lookup_current().as_ref().and_then(bridged_parent) {
                        builder = child_of(builder, parent);
                    }
                }
            }
        }
        if names_kind(meta.fields()) {
            let mut kind = KindFinder::default();
            attrs.record(&mut kind);
            if let Some(kind) = kind.0 {
                builder = builder.kind(kind);
            }
        }
        let mut span = builder.start_detached();
        let Some(token) = span.token() else {
            return;
        };
        if span.is_recording() {
            attrs.record(&mut SpanFields(&mut span));
        }
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(Bridged { span, token });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(id) else { return };
        let mut extensions = s.extensions_mut();
        if let Some(b) = extensions.get_mut::<Bridged>()
            && b.span.is_recording()
        {
            values.record(&mut SpanFields(&mut b.span));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !tracing_on() || event.is_root() {
            return;
        }
        let meta = event.metadata();
        let error = *meta.level() == Level::ERROR;
        let note = || {
            let mut text = NoteText::new();
            event.record(&mut text);
            text.finish(meta.level(), meta.target())
        };
        let record = |span: &mut DetachedSpan| {
            if span.is_recording() {
                let (text, message) = note();
                span.annotate(text);
                if error {
                    span.record_error(message);
                }
            }
        };
        if let Some(parent) = event.parent() {
            if let Some(s) = ctx.span(parent) {
                with_bridged(&s, |_| true, record);
            }
            return;
        }
        // Contextual: the innermost context here. Nothing is done outside a sampled trace.
        let Some(current) = tomograph::get_trace_info().filter(|t| t.sampled()) else {
            return;
        };
        if let Some(s) = ctx.lookup_current()
            && with_bridged(&s, |token| token == current, record)
        {
            return;
        }
        // A tomograph span of its own is innermost.
        let (text, message) = note();
        tomograph::annotate(text);
        if error {
            tomograph::record_error(message);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id)
            && let Some(b) = s.extensions().get::<Bridged>()
        {
            b.span.enter_context();
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id)
            && let Some(b) = s.extensions().get::<Bridged>()
        {
            b.span.exit_context();
        }
    }
}

/// Runs `f` on the current span when it is a bridged one whose token is `current`: for the
/// `log` bridge, whose records land on tomograph's current context, which inside an entered
/// bridged span is that span. Returns false when the current context is not a bridged span
/// (or the subscriber is not built on a `tracing_subscriber::Registry`).
pub(crate) fn with_current_bridged(
    current: TraceToken,
    f: &mut dyn FnMut(&mut DetachedSpan),
) -> bool {
    tracing::dispatcher::get_default(|dispatch| {
        let Some(id) = dispatch.current_span().id().cloned() else {
            return false;
        };
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return false;
        };
        let Some(span) = registry.span(&id) else {
            return false;
        };
        with_bridged(&span, |token| token == current, &mut *f)
    })
}
