//! The `log` → tomograph bridge: a logger that wraps the application's own and adds records
//! at or above a level as notes on the current span.

use log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

use crate::layer::with_current_bridged;

/// A [`log::Log`] around the application's logger (which keeps printing everything it printed
/// before) that also adds each record at or above a level — WARN unless
/// [`level`](NoteLogger::level) says otherwise — as a note on the current span:
/// `LEVEL target: message`, at the record's time. An ERROR record also marks the span as
/// failed (`error` tag).
///
/// The current span is tomograph's: a [`tomograph::span`] guard, a traced future, or an
/// entered `tracing` span bridged by [`TomographLayer`](crate::TomographLayer). Outside a
/// sampled span nothing is done; below the level a record costs one comparison more than the
/// wrapped logger.
///
/// ```
/// use log::LevelFilter;
/// let memory = tomograph::testing::memory_tracer();
/// // env_logger keeps printing (here: ERROR only); WARN and above become notes.
/// tomograph_tracing::NoteLogger::new(env_logger::Builder::new().build())
///     .level(LevelFilter::Warn)
///     .install()
///     .unwrap();
/// let trace = {
///     let span = tomograph::span("job").root().start();
///     log::info!("not a note");
///     log::warn!("disk almost full");
///     span.token().unwrap().trace_id()
/// };
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 1, std::time::Duration::from_secs(5));
/// let notes: Vec<_> = spans[0].annotations().iter().map(|n| n.value.to_string()).collect();
/// assert_eq!(notes, [format!("WARN {}: disk almost full", module_path!())]);
/// ```
#[derive(Debug)]
pub struct NoteLogger<L> {
    inner: L,
    level: LevelFilter,
}

impl<L: Log> NoteLogger<L> {
    /// Wraps `inner`; records at WARN and above become notes.
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            level: LevelFilter::Warn,
        }
    }

    /// Records at `level` and above become notes (`LevelFilter::Off`: none).
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.level = level;
        self
    }

    /// The level from which records become notes.
    pub fn notes_level(&self) -> LevelFilter {
        self.level
    }

    /// Installs this logger as the process's (`log::set_boxed_logger`) and raises
    /// `log::max_level()` to the notes' level if it is lower, so the records to note reach it.
    /// Set the wrapped logger's own maximum (`log::set_max_level`) before, if it needs one.
    pub fn install(self) -> Result<(), SetLoggerError>
    where
        L: Send + Sync + 'static,
    {
        let level = self.level;
        log::set_boxed_logger(Box::new(self))?;
        if log::max_level() < level {
            log::set_max_level(level);
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn note(&self, record: &Record<'_>) {
        let Some(current) = tomograph::get_trace_info().filter(|t| t.sampled()) else {
            return;
        };
        let text = format!("{} {}: {}", record.level(), record.target(), record.args());
        let error = (record.level() == Level::Error).then(|| record.args().to_string());
        let mut pending = Some((text, error));
        let noted = with_current_bridged(current, &mut |span| {
            if let Some((text, error)) = pending.take() {
                span.annotate(text);
                if let Some(message) = error {
                    span.record_error(message);
                }
            }
        });
        if !noted && let Some((text, error)) = pending {
            tomograph::annotate(text);
            if let Some(message) = error {
                tomograph::record_error(message);
            }
        }
    }
}

impl<L: Log> Log for NoteLogger<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level || self.inner.enabled(metadata)
    }

    #[inline]
    fn log(&self, record: &Record<'_>) {
        if record.level() <= self.level {
            self.note(record);
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}
