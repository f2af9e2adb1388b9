//! Errors. Each fallible operation has its own small enum; none of them panics.

/// Why a span or trace id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// Ids are 16 (span, 64-bit trace) or 32 (128-bit trace) hex characters.
    #[error("an id is 16 or 32 hex characters, got {len}")]
    Length {
        /// The length received.
        len: usize,
    },
    /// A character was not a hex digit.
    #[error("an id must be hexadecimal")]
    NotHex,
    /// Zero is never a valid id.
    #[error("an id of all zeros is invalid")]
    Zero,
}

/// Why a trace token string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenParseError {
    /// The string was not `{trace}-{span}[-{1|0|d}]`.
    #[error("a trace token is `{{trace id}}-{{span id}}[-{{1|0|d}}]`, got {0:?}")]
    Format(String),
    /// One of the ids was bad.
    #[error("bad id in trace token: {0}")]
    Id(#[from] IdParseError),
}

/// Why [`crate::stop`] refused to stop a span. The span stack is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// No span is open on this thread (or in this task).
    #[error("stop({name:?}) with no span open")]
    NoSpanOpen {
        /// The name given to `stop`.
        name: String,
    },
    /// The current span has another name.
    #[error("stop({name:?}) but the current span is {current:?}")]
    NameMismatch {
        /// The name given to `stop`.
        name: String,
        /// The name of the span that is current.
        current: String,
    },
}

/// Why [`crate::init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A tracer was installed already; there is one per process.
    #[error("tomograph is already initialized")]
    AlreadyInitialized,
    /// The reporter thread could not start.
    #[error("could not start the reporter thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A backend name that is not known.
    #[error("unknown backend {name:?} in {variable}; valid backends are: {valid}")]
    UnknownBackend {
        /// The name given.
        name: String,
        /// Where it came from.
        variable: &'static str,
        /// The names that would have worked.
        valid: String,
    },
    /// A backend that exists but was not compiled in.
    #[error("backend {name:?} needs tomograph's `{feature}` feature")]
    BackendNotCompiled {
        /// The backend.
        name: String,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// A variable had a value that does not parse.
    #[error("{variable}={value:?}: {reason}")]
    InvalidValue {
        /// The variable (or builder option).
        variable: &'static str,
        /// The value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A backend could not be built.
    #[error("backend {name}: {source}")]
    Backend {
        /// The backend.
        name: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a backend failed to deliver a batch.
///
/// ```
/// use tomograph::BackendError;
/// let e = BackendError::retryable(std::io::Error::other("connection refused"));
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct BackendError {
    retryable: bool,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    /// A failure worth retrying (the peer is down, slow, or answered 5xx).
    pub fn retryable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            retryable: true,
            source: source.into(),
        }
    }

    /// A failure that retrying will not fix (the peer refused the data: 4xx).
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            retryable: false,
            source: source.into(),
        }
    }

    /// Whether the reporter should try this batch again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// What a caught panic says: its message when it has one (`panic!("…")` with or without
/// arguments), else `"no message"`. For the errors and logs that report a panic of user code
/// (a backend, an `on_error` hook) that tomograph caught.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}
