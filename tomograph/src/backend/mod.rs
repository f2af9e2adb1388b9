//! Backends: where finished spans go. Several may run at once; each receives every span.
//!
//! - [`LogBackend`]: one line per span through the `log` crate, like the original.
//! - [`ConsoleBackend`]: a readable tree of each finished trace, for the quickstart and for
//!   debugging.
//! - [`MemoryBackend`]: keeps spans in memory, to test your own instrumentation.
//! - `zipkin` (feature `zipkin`): JSON v2 or thrift v1 over HTTP, or Scribe.
//! - `statsd` (feature `statsd`): a timer per span and a counter per note.

use crate::env::EnvLookup;
use crate::error::{BackendError, ConfigError};
use crate::model::Span;

mod console;
mod log;
mod memory;
#[cfg(feature = "statsd")]
pub(crate) mod metrics;
#[cfg(feature = "statsd")]
pub mod statsd;
#[cfg(feature = "zipkin")]
pub mod zipkin;

pub use self::console::ConsoleBackend;
pub use self::log::LogBackend;
pub use self::memory::MemoryBackend;

/// A destination for finished spans. Implement it to send spans anywhere; the reporter calls
/// it from a thread of its own, so blocking I/O is fine.
///
/// A backend that panics loses the batch it panicked on, counted as
/// [`failed`](crate::BackendStats::failed) with the panic's message as the error `flush`
/// returns; its thread carries on with the next batch (a panic in `flush` fails that flush).
///
/// ```
/// use tomograph::{Backend, BackendError, Span};
/// #[derive(Debug, Default)]
/// struct CountingBackend { seen: usize }
/// impl Backend for CountingBackend {
///     fn name(&self) -> &str { "counting" }
///     fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
///         self.seen += spans.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Backend: Send + std::fmt::Debug + 'static {
    /// A short name for statistics and logs (`zipkin`, `statsd`, …).
    fn name(&self) -> &str;

    /// Delivers one batch. A [retryable](BackendError::retryable) error makes the reporter try
    /// the same batch again later; a [permanent](BackendError::permanent) one counts the batch
    /// as rejected.
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError>;

    /// Delivers one batch and says what became of each part of it, for backends that can
    /// deliver part of a batch (the Zipkin backend splits a batch its collector refuses). The
    /// default calls [`send`](Backend::send): all delivered, or all covered by its error.
    fn deliver(&mut self, spans: &[Span]) -> Delivery {
        Delivery::from_result(spans.len(), self.send(spans))
    }

    /// Pushes out anything the backend buffers itself. Called by flush and shutdown.
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// What became of a batch handed to [`Backend::deliver`].
///
/// The spans counted in [`delivered`](Delivery::delivered) and
/// [`rejected`](Delivery::rejected) are the first ones of the batch, in order; the rest, if
/// any, are covered by [`error`](Delivery::error): retried later when it is retryable,
/// counted as rejected when it is permanent, counted as delivered when there is no error.
///
/// ```
/// use tomograph::{BackendError, Delivery};
/// let mut d = Delivery::delivered(3);
/// d.reject("collector answered 400: duplicate annotation", 1);
/// d.error = Some(BackendError::retryable(std::io::Error::other("connection reset")));
/// assert_eq!(d.resolved(), 4); // the batch's first four spans; the rest is retried
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Delivery {
    /// Spans the peer accepted.
    pub delivered: usize,
    /// Spans the peer refused for good, by reason (the peer's own words).
    pub rejected: Vec<(String, usize)>,
    /// Why the rest of the batch was not delivered.
    pub error: Option<BackendError>,
}

impl Delivery {
    /// `n` spans delivered.
    pub fn delivered(n: usize) -> Self {
        Self {
            delivered: n,
            ..Self::default()
        }
    }

    /// The whole batch of `len` spans delivered, or covered by the error.
    pub fn from_result(len: usize, result: Result<(), BackendError>) -> Self {
        match result {
            Ok(()) => Self::delivered(len),
            Err(e) => Self {
                error: Some(e),
                ..Self::default()
            },
        }
    }

    /// Counts `spans` more refused for `reason` (merged with an earlier identical reason).
    pub fn reject(&mut self, reason: impl Into<String>, spans: usize) {
        let reason = reason.into();
        match self.rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += spans,
            None => self.rejected.push((reason, spans)),
        }
    }

    /// Spans delivered or rejected: the first ones of the batch.
    pub fn resolved(&self) -> usize {
        self.delivered + self.rejected.iter().map(|(_, n)| n).sum::<usize>()
    }
}

/// A backend `TOMOGRAPH_BACKENDS` can name: its name and how the environment builds it.
struct BuiltIn {
    name: &'static str,
    from_env: fn(EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError>,
}

/// The built-in backends, in the order the documentation lists them.
const BUILT_IN: [BuiltIn; 4] = [
    BuiltIn {
        name: "zipkin",
        from_env: zipkin_from_env,
    },
    BuiltIn {
        name: "statsd",
        from_env: statsd_from_env,
    },
    BuiltIn {
        name: "log",
        from_env: |_| Ok(Box::new(LogBackend::new())),
    },
    BuiltIn {
        name: "console",
        from_env: |_| Ok(Box::new(ConsoleBackend::stdout())),
    },
];

/// The backend names `TOMOGRAPH_BACKENDS` accepts.
pub const BACKEND_NAMES: [&str; BUILT_IN.len()] = {
    let mut names = [""; BUILT_IN.len()];
    let mut i = 0;
    while i < BUILT_IN.len() {
        names[i] = BUILT_IN[i].name;
        i += 1;
    }
    names
};

/// The built-in backend `name` (lower case), configured by the variables `env` reads.
pub(crate) fn from_env(name: &str, env: EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError> {
    match BUILT_IN.iter().find(|b| b.name == name) {
        Some(b) => (b.from_env)(env),
        None => Err(ConfigError::UnknownBackend {
            name: name.to_owned(),
            variable: crate::env::BACKENDS,
            valid: BACKEND_NAMES.join(", "),
        }),
    }
}

#[cfg(feature = "zipkin")]
fn zipkin_from_env(env: EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError> {
    Ok(Box::new(zipkin::ZipkinBackend::from_lookup(env)?))
}

#[cfg(not(feature = "zipkin"))]
fn zipkin_from_env(_: EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError> {
    Err(ConfigError::BackendNotCompiled {
        name: "zipkin".into(),
        feature: "zipkin",
    })
}

#[cfg(feature = "statsd")]
fn statsd_from_env(env: EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError> {
    Ok(Box::new(statsd::StatsdBackend::from_lookup(env)?))
}

#[cfg(not(feature = "statsd"))]
fn statsd_from_env(_: EnvLookup<'_>) -> Result<Box<dyn Backend>, ConfigError> {
    Err(ConfigError::BackendNotCompiled {
        name: "statsd".into(),
        feature: "statsd",
    })
}
