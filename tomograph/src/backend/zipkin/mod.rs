//! The Zipkin backend: finished spans to a Zipkin collector.
//!
//! Three transports over HTTP or TCP, chosen by [`Encoding`], and one over a broker, chosen
//! by the URL:
//!
//! - [`Encoding::JsonV2`] (the default): `POST {url}/api/v2/spans`, `application/json`
//!   ([`json`]);
//! - [`Encoding::ThriftV1`]: `POST {url}/api/v1/spans`, `application/x-thrift`, a
//!   TBinaryProtocol `list<Span>` ([`thrift`]);
//! - [`Encoding::Scribe`]: the original library's transport, a thrift `Log` call with one
//!   `LogEntry{category: "zipkin", message: base64(span)}` per span over a framed TCP
//!   connection, for sites that still run a Scribe collector;
//! - an `amqp://` URL (feature `rabbitmq`): each batch one persistent message — a JSON v2 or
//!   thrift v1 list of spans — to the RabbitMQ queue zipkin-server's collector reads, counted
//!   as delivered when the broker confirms it (`rabbitmq`).
//!
//! Each batch from the reporter is one request; the HTTP connection (or the Scribe
//! connection) is kept and reused. Bodies may be gzipped. The reporter calls the backend on a
//! thread of its own, so I/O here blocks that thread only, never the application; every
//! request is bounded by a timeout. A collector that is down, refuses connections, answers
//! 5xx/408/429 or hangs yields a retryable error (the reporter retries with capped
//! exponential backoff, then drops and counts); a 4xx answer means the data was refused and is
//! not retried.
//!
//! Only `http://` URLs are supported (no TLS is compiled in); put a local collector or a
//! proxy in front of an HTTPS one.
//!
//! # Environment
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_ZIPKIN_URL` | collector base URL (`/api/v2/spans` or `/api/v1/spans` is appended; a URL that already ends with it is taken as is), or `amqp://user:password@host:port/vhost` for RabbitMQ (feature `rabbitmq`; the vhost `/` is written `%2f`) | `http://127.0.0.1:9411` |
//! | `TOMOGRAPH_ZIPKIN_ENCODING` | `json` (v2), `thrift` (v1), over HTTP or RabbitMQ; `scribe` | `json` |
//! | `TOMOGRAPH_ZIPKIN_QUEUE` | RabbitMQ queue (declared durable) | `zipkin` |
//! | `TOMOGRAPH_ZIPKIN_MAX_MESSAGE_BYTES` | largest RabbitMQ message body; larger batches are split | `5000000` |
//! | `TOMOGRAPH_SCRIBE_ADDR` | Scribe collector `host:port` (encoding `scribe`) | `127.0.0.1:9410` |
//! | `TOMOGRAPH_ZIPKIN_GZIP` | `true` gzips HTTP bodies (`Content-Encoding: gzip`) | `false` |
//! | `TOMOGRAPH_ZIPKIN_TIMEOUT_MS` | longest one request (connect + send + answer; for RabbitMQ connect + publish + confirms) may take | `5000` |
//! | `TOMOGRAPH_ZIPKIN_TYPED_TAGS` | `true` sends thrift tags typed (I64/DOUBLE/BOOL) instead of as strings, see [`TagEncoding`] | `false` |
//!
//! ```
//! use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
//! use std::time::Duration;
//! let zipkin = ZipkinBackend::builder()
//!     .url("http://127.0.0.1:9411")
//!     .encoding(Encoding::ThriftV1)
//!     .gzip(true)
//!     .timeout(Duration::from_secs(2))
//!     .build()
//!     .unwrap();
//! assert_eq!(zipkin.destination(), "http://127.0.0.1:9411/api/v1/spans");
//! let config = tomograph::Config::builder().backend(zipkin).build();
//! assert_eq!(config.backend_names(), ["zipkin"]);
//! ```

mod http;
pub mod json;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
mod scribe;
pub mod thrift;

use std::str::FromStr;
use std::time::Duration;

use self::http::HttpPoster;
use self::scribe::ScribeClient;
pub use self::thrift::TagEncoding;
use crate::backend::{Backend, Delivery};
use crate::env::{self, EnvLookup};
use crate::error::{BackendError, ConfigError};
use crate::model::{Note, Span};

/// The default collector URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9411";
/// The default Scribe address.
pub const DEFAULT_SCRIBE_ADDR: &str = "127.0.0.1:9410";
/// The default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The RabbitMQ queue zipkin-server's collector reads by default.
pub const DEFAULT_QUEUE: &str = "zipkin";
/// The largest RabbitMQ message body by default (5 MB, as Brave's `RabbitMQSender`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 5_000_000;

/// How spans travel to the collector.
///
/// ```
/// use tomograph::backend::zipkin::Encoding;
/// assert_eq!("thrift".parse::<Encoding>().unwrap(), Encoding::ThriftV1);
/// assert_eq!(Encoding::default(), Encoding::JsonV2);
/// assert!("xml".parse::<Encoding>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Encoding {
    /// JSON v2 over HTTP (`/api/v2/spans`).
    #[default]
    JsonV2,
    /// Thrift v1 over HTTP (`/api/v1/spans`).
    ThriftV1,
    /// Thrift v1 spans, base64'd, through a Scribe collector.
    Scribe,
}

/// The value of `TOMOGRAPH_ZIPKIN_ENCODING` was not `json`, `thrift` or `scribe`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Zipkin encoding {0:?}; expected json, thrift or scribe")]
pub struct UnknownEncoding(String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    /// `json` (also `v2`, `json_v2`), `thrift` (also `v1`, `thrift_v1`), `scribe`; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" | "v2" | "json_v2" | "jsonv2" => Ok(Encoding::JsonV2),
            "thrift" | "v1" | "thrift_v1" | "thriftv1" => Ok(Encoding::ThriftV1),
            "scribe" => Ok(Encoding::Scribe),
            _ => Err(UnknownEncoding(s.to_owned())),
        }
    }
}

/// Why a batch did not reach the collector (the source of a [`BackendError`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZipkinError {
    #[error("collector answered {status}: {answer}")]
    Status { status: u16, answer: String },
    #[error("http: {0}")]
    Http(#[from] ureq::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("scribe: {0}")]
    Thrift(#[from] ::thrift::Error),
    #[error("scribe answered TRY_LATER")]
    TryLater,
    #[error("scribe answered unknown result code {0}")]
    ScribeResult(i32),
    #[error("scribe: not connected")]
    NotConnected,
}

/// A span's extent in Zipkin's terms: start and duration in µs, the duration at least 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extent {
    pub(crate) timestamp: u64,
    pub(crate) duration: u64,
}

impl Extent {
    pub(crate) fn of(span: &Span) -> Self {
        let timestamp = span.start().unix_micros();
        let duration = span.end().unix_micros().saturating_sub(timestamp).max(1);
        Self {
            timestamp,
            duration,
        }
    }

    pub(crate) fn end(self) -> u64 {
        self.timestamp.saturating_add(self.duration)
    }
}

/// Whether a span's `i`-th annotation repeats an earlier one (same microsecond, same value)
/// or one of `core` (v1 core annotations written beside them). Zipkin's model keeps a span's
/// annotations unique — its collector refuses a span that repeats one — so the encoders leave
/// repeats out. Quadratic in the number of annotations, which is small (a few per span).
pub(crate) fn repeated_note(notes: &[Note], i: usize, core: &[(u64, &str)]) -> bool {
    let micros = notes[i].timestamp.unix_micros();
    let value: &str = &notes[i].value;
    core.iter().any(|&(t, v)| t == micros && v == value)
        || notes[..i]
            .iter()
            .any(|m| m.timestamp.unix_micros() == micros && *m.value == *value)
}

/// A number in decimal, formatted on the stack (no allocation).
pub(crate) struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn u64(mut v: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    pub(crate) fn i64(v: i64) -> Self {
        let mut d = Self::u64(v.unsigned_abs());
        if v < 0 {
            // 20 digits hold u64::MAX; i64's magnitude has at most 19, leaving room for '-'.
            d.start -= 1;
            d.buf[d.start] = b'-';
        }
        d
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The body of one request or message: a Zipkin list of spans, JSON v2 or thrift v1. Scribe
/// is not one (it carries one base64'd span per entry), so no transport that sends lists can be
/// paired with it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ListEncoding {
    Json,
    Thrift(TagEncoding),
}

impl ListEncoding {
    /// The list encoding of `encoding`, if it has one.
    fn of(encoding: Encoding, tags: TagEncoding) -> Option<Self> {
        match encoding {
            Encoding::JsonV2 => Some(ListEncoding::Json),
            Encoding::ThriftV1 => Some(ListEncoding::Thrift(tags)),
            Encoding::Scribe => None,
        }
    }

    pub(crate) fn encode(self, spans: &[Span], out: &mut Vec<u8>) {
        match self {
            ListEncoding::Json => json::encode_spans(spans, out),
            ListEncoding::Thrift(tags) => thrift::encode_spans(spans, tags, out),
        }
    }

    #[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            ListEncoding::Json => "application/json",
            ListEncoding::Thrift(_) => "application/x-thrift",
        }
    }
}

/// Building a list span by span, for transports that split batches.
#[cfg(feature = "rabbitmq")]
impl ListEncoding {
    /// One span as it appears inside the list.
    pub(crate) fn encode_one(self, span: &Span, out: &mut Vec<u8>) {
        match self {
            ListEncoding::Json => json::encode_span(span, out),
            ListEncoding::Thrift(tags) => thrift::encode_span(span, tags, out),
        }
    }

    /// Bytes of an empty list (opening + closing).
    pub(crate) fn frame_len(self) -> usize {
        match self {
            ListEncoding::Json => 2,
            ListEncoding::Thrift(_) => 5,
        }
    }

    /// Bytes added between two spans.
    pub(crate) fn extra_per_span(self) -> usize {
        match self {
            ListEncoding::Json => 1,
            ListEncoding::Thrift(_) => 0,
        }
    }

    /// Bytes [`close`](Self::close) appends.
    pub(crate) fn close_len(self) -> usize {
        match self {
            ListEncoding::Json => 1,
            ListEncoding::Thrift(_) => 0,
        }
    }

    /// Starts a list (the thrift count is patched by `close`).
    pub(crate) fn open(self, out: &mut Vec<u8>) {
        match self {
            ListEncoding::Json => out.push(b'['),
            // TBinaryProtocol list header: element type STRUCT, i32 count.
            ListEncoding::Thrift(_) => out.extend_from_slice(&[0x0c, 0, 0, 0, 0]),
        }
    }

    pub(crate) fn separate(self, out: &mut Vec<u8>) {
        if let ListEncoding::Json = self {
            out.push(b',');
        }
    }

    /// Ends the list that `open` started at `start`, holding `count` spans.
    pub(crate) fn close(self, out: &mut Vec<u8>, start: usize, count: usize) {
        match self {
            ListEncoding::Json => out.push(b']'),
            ListEncoding::Thrift(_) => {
                let count = i32::try_from(count).unwrap_or(i32::MAX).to_be_bytes();
                out[start + 1..start + 5].copy_from_slice(&count);
            }
        }
    }
}

/// Where encoded batches go. Each variant carries what it sends, so an encoding its
/// transport cannot carry is not representable. A Kafka sender would be one more variant
/// taking list bodies, like `Rabbit` (see the `rabbitmq` module docs).
#[derive(Debug)]
enum Transport {
    Http(HttpPoster, ListEncoding),
    Scribe(Box<ScribeClient>, TagEncoding),
    #[cfg(feature = "rabbitmq")]
    Rabbit(Box<rabbitmq::RabbitPublisher>),
}

/// Sends spans to a Zipkin collector. Build one with [`ZipkinBackend::builder`] or from the
/// environment ([`ZipkinBackend::from_env`]); hand it to
/// [`ConfigBuilder::backend`](crate::ConfigBuilder::backend) or a [`Reporter`](crate::Reporter).
#[derive(Debug)]
pub struct ZipkinBackend {
    encoding: Encoding,
    transport: Transport,
    body: Vec<u8>,
}

impl ZipkinBackend {
    /// A builder with the defaults: JSON v2 to `http://127.0.0.1:9411`, no gzip, 5 s timeout.
    pub fn builder() -> ZipkinBuilder {
        ZipkinBuilder::default()
    }

    /// A backend configured by the `TOMOGRAPH_ZIPKIN_*` variables (see the module docs).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env::process)
    }

    /// Like [`from_env`](ZipkinBackend::from_env), reading variables through `env`.
    ///
    /// ```
    /// use tomograph::backend::zipkin::ZipkinBackend;
    /// let env = |k: &str| match k {
    ///     "TOMOGRAPH_ZIPKIN_ENCODING" => Some("scribe".to_owned()),
    ///     "TOMOGRAPH_SCRIBE_ADDR" => Some("zipkin.internal:9410".to_owned()),
    ///     _ => None,
    /// };
    /// let zipkin = ZipkinBackend::from_lookup(&env).unwrap();
    /// assert_eq!(zipkin.destination(), "zipkin.internal:9410");
    /// ```
    pub fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        ZipkinBuilder::from_lookup(env)?.build()
    }

    /// Where spans go: the HTTP endpoint, the Scribe address, or (RabbitMQ) the broker
    /// without its password and the queue, `amqp://user@host:port/vhost queue zipkin`.
    pub fn destination(&self) -> &str {
        match &self.transport {
            Transport::Http(http, _) => http.endpoint(),
            Transport::Scribe(scribe, _) => scribe.addr(),
            #[cfg(feature = "rabbitmq")]
            Transport::Rabbit(rabbit) => rabbit.destination(),
        }
    }

    /// The encoding in use.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
}

impl ZipkinBackend {
    /// Encodes and posts `spans` as one request.
    fn post(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        let Transport::Http(http, list) = &mut self.transport else {
            return Err(BackendError::permanent(ZipkinError::NotConnected));
        };
        self.body.clear();
        list.encode(spans, &mut self.body);
        let result = http.post(&self.body);
        // A huge batch should not pin its memory forever.
        if self.body.capacity() > 4 << 20 {
            self.body = Vec::new();
        }
        result
    }

    /// Posts `spans`; when the collector refuses the request as malformed or too large
    /// (400, 413), splits it in halves and posts each, down to single spans, so that one bad
    /// span costs only itself. Spans are resolved in order: when a retryable error stops the
    /// work, `out` covers a prefix of `spans`.
    fn bisect(&mut self, spans: &[Span], out: &mut Delivery) -> Result<(), BackendError> {
        match self.post(spans) {
            Ok(()) => {
                out.delivered += spans.len();
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                if spans.len() > 1 && splittable(&e) {
                    let (left, right) = spans.split_at(spans.len() / 2);
                    self.bisect(left, out)?;
                    self.bisect(right, out)
                } else {
                    out.reject(e.to_string(), spans.len());
                    out.error = Some(e);
                    Ok(())
                }
            }
        }
    }
}

/// Whether a refusal may be about some spans only (a smaller request may pass).
fn splittable(e: &BackendError) -> bool {
    let source = std::error::Error::source(e);
    matches!(
        source.and_then(|s| s.downcast_ref::<ZipkinError>()),
        Some(ZipkinError::Status {
            status: 400 | 413,
            ..
        })
    )
}

impl Backend for ZipkinBackend {
    fn name(&self) -> &str {
        "zipkin"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        if spans.is_empty() {
            return Ok(());
        }
        match &mut self.transport {
            Transport::Http(..) => self.post(spans),
            Transport::Scribe(scribe, tags) => scribe.send(spans, *tags),
            #[cfg(feature = "rabbitmq")]
            Transport::Rabbit(rabbit) => rabbit.send(spans),
        }
    }

    /// Over HTTP, a batch the collector refuses (400, 413) is split until every span it
    /// accepts is delivered; the refused ones are counted with the collector's answer.
    fn deliver(&mut self, spans: &[Span]) -> Delivery {
        if spans.is_empty() {
            return Delivery::default();
        }
        match &mut self.transport {
            Transport::Http(..) => {}
            Transport::Scribe(scribe, tags) => {
                return Delivery::from_result(spans.len(), scribe.send(spans, *tags));
            }
            // Exactly the spans the broker confirmed are delivered.
            #[cfg(feature = "rabbitmq")]
            Transport::Rabbit(rabbit) => return rabbit.deliver(spans),
        }
        let mut out = Delivery::default();
        if let Err(e) = self.bisect(spans, &mut out) {
            // Retryable: the spans after `out`'s are tried again later.
            out.error = Some(e);
        }
        out
    }
}

/// Builds a [`ZipkinBackend`].
///
/// ```
/// use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
/// let scribe = ZipkinBackend::builder().encoding(Encoding::Scribe).scribe_addr("10.0.0.5:9410").build().unwrap();
/// assert_eq!(scribe.destination(), "10.0.0.5:9410");
/// assert!(ZipkinBackend::builder().url("ftp://nope").build().is_err());
/// ```
#[derive(Clone)]
#[must_use]
pub struct ZipkinBuilder {
    url: String,
    encoding: Encoding,
    scribe_addr: String,
    gzip: bool,
    timeout: Duration,
    tags: TagEncoding,
    queue: String,
    max_message_bytes: usize,
    /// Where each checked setting came from, for the error that refuses it.
    origin: Origin,
}

/// Names the variable or the builder call that set each setting a build may refuse.
#[derive(Clone, Copy, Debug)]
struct Origin {
    url: &'static str,
    encoding: &'static str,
    scribe_addr: &'static str,
    queue: &'static str,
}

impl Default for Origin {
    fn default() -> Self {
        Self {
            url: "ZipkinBuilder::url",
            encoding: "ZipkinBuilder::encoding",
            scribe_addr: "ZipkinBuilder::scribe_addr",
            queue: "ZipkinBuilder::queue",
        }
    }
}

/// Never shows a password in the URL.
impl std::fmt::Debug for ZipkinBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipkinBuilder")
            .field("url", &redact_url(&self.url))
            .field("encoding", &self.encoding)
            .field("scribe_addr", &self.scribe_addr)
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("tags", &self.tags)
            .field("queue", &self.queue)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

impl Default for ZipkinBuilder {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            encoding: Encoding::JsonV2,
            scribe_addr: DEFAULT_SCRIBE_ADDR.to_owned(),
            gzip: false,
            timeout: DEFAULT_TIMEOUT,
            tags: TagEncoding::Strings,
            queue: DEFAULT_QUEUE.to_owned(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            origin: Origin::default(),
        }
    }
}

impl ZipkinBuilder {
    /// Starts from the `TOMOGRAPH_ZIPKIN_*` variables read through `env`; builder calls
    /// afterwards override them.
    pub fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let mut b = Self::default();
        if let Some(url) = env::non_blank(env, env::ZIPKIN_URL) {
            b.url = url;
            b.origin.url = env::ZIPKIN_URL;
        }
        if let Some(v) = env::non_blank(env, env::ZIPKIN_ENCODING) {
            b.encoding = v
                .parse()
                .map_err(|e: UnknownEncoding| ConfigError::InvalidValue {
                    variable: env::ZIPKIN_ENCODING,
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
            b.origin.encoding = env::ZIPKIN_ENCODING;
        }
        if let Some(addr) = env::non_blank(env, env::SCRIBE_ADDR) {
            b.scribe_addr = addr;
            b.origin.scribe_addr = env::SCRIBE_ADDR;
        }
        if let Some(gzip) = env::read_bool(env, env::ZIPKIN_GZIP)? {
            b.gzip = gzip;
        }
        if let Some(ms) = env::read::<u64>(env, env::ZIPKIN_TIMEOUT_MS, "milliseconds")? {
            b.timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(queue) = env::non_blank(env, env::ZIPKIN_QUEUE) {
            b.queue = queue;
            b.origin.queue = env::ZIPKIN_QUEUE;
        }
        if let Some(n) = env::read(env, env::ZIPKIN_MAX_MESSAGE_BYTES, "a number of bytes")? {
            b.max_message_bytes = n;
        }
        if env::read_bool(env, env::ZIPKIN_TYPED_TAGS)? == Some(true) {
            b.tags = TagEncoding::Typed;
        }
        Ok(b)
    }

    /// The collector's base URL (`http://host:port`, optionally with a path prefix), or a
    /// RabbitMQ broker's, `amqp://user:password@host:port/vhost` (feature `rabbitmq`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self.origin.url = Origin::default().url;
        self
    }

    /// JSON v2, thrift v1 or Scribe.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self.origin.encoding = Origin::default().encoding;
        self
    }

    /// The Scribe collector's `host:port` (for [`Encoding::Scribe`]).
    pub fn scribe_addr(mut self, addr: impl Into<String>) -> Self {
        self.scribe_addr = addr.into();
        self.origin.scribe_addr = Origin::default().scribe_addr;
        self
    }

    /// Gzip HTTP bodies.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// The longest one request may take, connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The RabbitMQ queue (for an `amqp://` URL); default `zipkin`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self.origin.queue = Origin::default().queue;
        self
    }

    /// The largest RabbitMQ message body (for an `amqp://` URL); a batch encoded larger is
    /// split into several messages. Default 5 MB; at least 1 KiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// How thrift (v1 and Scribe) tags are typed.
    pub fn tag_encoding(mut self, tags: TagEncoding) -> Self {
        self.tags = tags;
        self
    }

    /// The backend. Nothing connects yet: the first batch does.
    pub fn build(self) -> Result<ZipkinBackend, ConfigError> {
        if self.url.trim_start().starts_with("amqp") {
            return self.build_broker();
        }
        let transport = match ListEncoding::of(self.encoding, self.tags) {
            None => {
                if self
                    .scribe_addr
                    .rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(ConfigError::InvalidValue {
                        variable: self.origin.scribe_addr,
                        value: self.scribe_addr,
                        reason: "expected host:port".into(),
                    });
                }
                Transport::Scribe(
                    Box::new(ScribeClient::new(self.scribe_addr, self.timeout)),
                    self.tags,
                )
            }
            Some(list) => {
                let path = match list {
                    ListEncoding::Thrift(_) => "/api/v1/spans",
                    ListEncoding::Json => "/api/v2/spans",
                };
                let endpoint = endpoint_url(&self.url, path, self.origin.url)?;
                Transport::Http(
                    HttpPoster::new(endpoint, list.content_type(), self.gzip, self.timeout),
                    list,
                )
            }
        };
        Ok(ZipkinBackend {
            encoding: self.encoding,
            transport,
            body: Vec::new(),
        })
    }

    /// An `amqp://` URL: the RabbitMQ transport.
    #[cfg(feature = "rabbitmq")]
    fn build_broker(self) -> Result<ZipkinBackend, ConfigError> {
        let uri = rabbitmq::parse_url(&self.url, self.origin.url)?;
        let Some(list) = ListEncoding::of(self.encoding, self.tags) else {
            return Err(ConfigError::InvalidValue {
                variable: self.origin.encoding,
                value: "scribe".into(),
                reason: "Scribe is a transport of its own; over RabbitMQ use json or thrift".into(),
            });
        };
        let queue = self.queue.trim();
        if queue.is_empty() || queue.len() > 255 {
            return Err(ConfigError::InvalidValue {
                variable: self.origin.queue,
                value: self.queue.clone(),
                reason: "expected a queue name of 1 to 255 bytes".into(),
            });
        }
        let publisher = rabbitmq::RabbitPublisher::new(
            uri,
            queue.to_owned(),
            list,
            self.timeout,
            self.max_message_bytes,
        );
        Ok(ZipkinBackend {
            encoding: self.encoding,
            transport: Transport::Rabbit(Box::new(publisher)),
            body: Vec::new(),
        })
    }

    #[cfg(not(feature = "rabbitmq"))]
    fn build_broker(self) -> Result<ZipkinBackend, ConfigError> {
        Err(ConfigError::InvalidValue {
            variable: self.origin.url,
            value: redact_url(&self.url),
            reason: "amqp:// URLs need tomograph's `rabbitmq` feature".into(),
        })
    }
}

/// `url` with the password of a `scheme://user:password@…` URL replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// `{base}{path}`, checking the base is an `http://` URL; a base that already ends with one of
/// the span paths is trimmed to its root first.
/// `origin` names where `base` came from, for the error.
fn endpoint_url(base: &str, path: &str, origin: &'static str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidValue {
        variable: origin,
        value: base.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = base.trim();
    let Some(rest) = trimmed.strip_prefix("http://") else {
        return Err(if trimmed.starts_with("https://") {
            invalid(
                "https is not supported (no TLS compiled in); use an http:// collector or a local proxy",
            )
        } else {
            invalid("expected an http:// URL")
        });
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(invalid("expected http://host[:port][/prefix]"));
    }
    let mut root = trimmed.trim_end_matches('/');
    for suffix in ["/api/v2/spans", "/api/v1/spans"] {
        if let Some(r) = root.strip_suffix(suffix) {
            root = r;
        }
    }
    Ok(format!("{root}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let ok = |base: &str, path: &str| endpoint_url(base, path, env::ZIPKIN_URL).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:9411", "/api/v2/spans"),
            "http://127.0.0.1:9411/api/v2/spans"
        );
        assert_eq!(
            ok("http://zipkin:9411/", "/api/v1/spans"),
            "http://zipkin:9411/api/v1/spans"
        );
        assert_eq!(
            ok("http://zipkin/prefix/api/v2/spans", "/api/v1/spans"),
            "http://zipkin/prefix/api/v1/spans"
        );
        for bad in ["", "zipkin:9411", "https://zipkin", "http://", "http:///x"] {
            assert!(
                endpoint_url(bad, "/api/v2/spans", env::ZIPKIN_URL).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn env_is_read() {
        let env = |k: &str| match k {
            "TOMOGRAPH_ZIPKIN_URL" => Some("http://collector:1234".to_owned()),
            "TOMOGRAPH_ZIPKIN_ENCODING" => Some("THRIFT".to_owned()),
            "TOMOGRAPH_ZIPKIN_GZIP" => Some("true".to_owned()),
            "TOMOGRAPH_ZIPKIN_TIMEOUT_MS" => Some("250".to_owned()),
            "TOMOGRAPH_ZIPKIN_TYPED_TAGS" => Some("1".to_owned()),
            _ => None,
        };
        let b = ZipkinBuilder::from_lookup(&env).unwrap();
        assert_eq!(b.encoding, Encoding::ThriftV1);
        assert!(b.gzip);
        assert_eq!(b.timeout, Duration::from_millis(250));
        assert_eq!(b.tags, TagEncoding::Typed);
        let backend = b.build().unwrap();
        assert_eq!(backend.destination(), "http://collector:1234/api/v1/spans");

        let defaults = ZipkinBackend::from_lookup(&|_| None).unwrap();
        assert_eq!(defaults.destination(), "http://127.0.0.1:9411/api/v2/spans");
        assert_eq!(defaults.encoding(), Encoding::JsonV2);
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("amqp://tracer:s3cret@rabbit:5672/%2f"),
            "amqp://tracer:***@rabbit:5672/%2f"
        );
        assert_eq!(redact_url("amqp://rabbit/x@y"), "amqp://rabbit/x@y");
        assert_eq!(redact_url("http://zipkin:9411"), "http://zipkin:9411");
        let b = ZipkinBackend::builder().url("amqp://tracer:s3cret@rabbit:5672/%2f");
        assert!(!format!("{b:?}").contains("s3cret"));
        #[cfg(not(feature = "rabbitmq"))]
        {
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains("rabbitmq"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn bad_env_names_the_variable() {
        for (var, value) in [
            ("TOMOGRAPH_ZIPKIN_ENCODING", "protobuf"),
            ("TOMOGRAPH_ZIPKIN_GZIP", "maybe"),
            ("TOMOGRAPH_ZIPKIN_TIMEOUT_MS", "soon"),
            ("TOMOGRAPH_ZIPKIN_URL", "collector:9411"),
        ] {
            let env = move |k: &str| (k == var).then(|| value.to_owned());
            let err = ZipkinBackend::from_lookup(&env).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let env = |k: &str| match k {
            "TOMOGRAPH_ZIPKIN_ENCODING" => Some("scribe".to_owned()),
            "TOMOGRAPH_SCRIBE_ADDR" => Some("no-port".to_owned()),
            _ => None,
        };
        let err = ZipkinBackend::from_lookup(&env).unwrap_err();
        assert!(err.to_string().contains("TOMOGRAPH_SCRIBE_ADDR"), "{err}");
    }
}
