//! The statsd backend: a timer per span and a counter per note, over UDP.
//!
//! The default names are the original library's, so old dashboards keep working:
//!
//! - server = `"{service} {address with . → -} {port}"` with spaces → `-`, from the span's
//!   local endpoint (`test client` at `10.0.0.1` port 0 → `test-client-10-0-0-1-0`). When the
//!   endpoint has no IP address (a host name was given, or none) the address part is left
//!   out (`test-client-0`); a missing port is `0`, as in the original.
//! - each span is a timer `{server}.{span name}:{ms}|ms` (milliseconds, µs precision);
//! - each note — `start`, the annotations, `stop` — is a counter `{server}.{span name}.{note}:1|c`.
//!
//! A SQL span (one with a `db.system.name`, `db.operation.name`, `sql.query` or
//! `db.query.text` tag) is named by its statement's operation (`SELECT`, `INSERT`, …: its
//! `db.operation.name` tag, `SQL` without one), never by its SQL text, so a service has one
//! timer per operation. Statement spans of the SQL adapters (those with a
//! `db.query.summary`) also make the database metrics: a timer `db.{system}.{summary}`
//! (`db.postgresql.SELECT-users`, one per statement shape) and, on failure, a counter
//! `db.{system}.errors.{status code}` (`db.postgresql.errors.23505`); see
//! [`StatsdBuilder::db_metrics`]. A [prefix](StatsdBuilder::prefix)
//! goes in front of every name; a [naming function](StatsdBuilder::naming) replaces the
//! `{server}.{span name}` part.
//!
//! Every name is sanitized for statsd and Graphite: letters, digits, `_` and `-` are kept,
//! whitespace becomes `-`, anything else (`:`, `|`, `@`, `;`, `=`, `/`, quotes, non-ASCII) `_`;
//! `.` separates Graphite path segments, and empty segments are removed. Segments are cut at
//! 100 characters.
//!
//! Lines are written with cadence's [`BufferedUdpMetricSink`] on a non-blocking socket, packed
//! into datagrams of at most [`max_packet_size`](StatsdBuilder::max_packet_size) bytes, and
//! flushed at the end of every batch. A statsd that is not listening costs nothing: send
//! errors are counted in the log (a warning once), never reported to the application. (Lines
//! are formatted here rather than through cadence's `StatsdClient` because its timers are
//! whole milliseconds, which would turn every sub-millisecond SQL statement into `0`.)
//!
//! # Environment
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_STATSD_ADDR` | statsd `host:port` (UDP) | `127.0.0.1:8125` |
//! | `TOMOGRAPH_STATSD_PREFIX` | prefix for every metric name | none |
//! | `TOMOGRAPH_STATSD_PACKET_SIZE` | largest datagram, bytes (512 is safe everywhere; 1432 fits a LAN's MTU) | `512` |
//!
//! ```
//! use tomograph::backend::statsd::{StatsdBackend, default_name};
//! use tomograph::{Endpoint, Span, SpanId, Timestamp, TraceId};
//! use std::time::Duration;
//!
//! let statsd = StatsdBackend::builder("127.0.0.1:8125").prefix("shop").build().unwrap();
//! let start = Timestamp::now();
//! let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(1).unwrap(), "client request",
//!         Endpoint::new("test client").with_ip("10.0.0.1".parse().unwrap()), start)
//!     .with_end(start + Duration::from_micros(1500));
//! assert_eq!(default_name(&span), "test-client-10-0-0-1-0.client-request");
//! assert_eq!(
//!     statsd.lines(&span),
//!     [
//!         "shop.test-client-10-0-0-1-0.client-request:1.5|ms",
//!         "shop.test-client-10-0-0-1-0.client-request.start:1|c",
//!         "shop.test-client-10-0-0-1-0.client-request.stop:1|c",
//!     ]
//! );
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;

use cadence::{BufferedUdpMetricSink, MetricSink};

use crate::backend::Backend;
use crate::env::{self, EnvLookup};
use crate::error::{BackendError, ConfigError};
use crate::keys;
use crate::model::{Span, TagValue};

/// The default statsd address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8125";
/// The default largest datagram.
pub const DEFAULT_PACKET_SIZE: usize = 512;
/// Longest segment of a metric name, in characters.
const MAX_SEGMENT: usize = 100;
/// Tags that mark a span as a SQL statement.
const SQL_TAGS: [&str; 4] = [
    keys::db::SYSTEM_NAME,
    keys::db::OPERATION_NAME,
    keys::SQL_QUERY,
    keys::db::QUERY_TEXT,
];

type NamingFn = Arc<dyn Fn(&Span) -> Option<String> + Send + Sync>;

/// The original library's name of a span (before the prefix): `{server}.{span name}`, see the
/// module docs. SQL spans are named by their operation.
///
/// ```
/// use tomograph::backend::statsd::default_name;
/// use tomograph::{Endpoint, Kind, Span, SpanId, Timestamp, TraceId};
/// let t = Timestamp::now();
/// let id = |n| SpanId::from_u64(n).unwrap();
/// let trace = TraceId::from_u64(9).unwrap();
/// let web = Endpoint::new("web").with_ip("::1".parse().unwrap()).with_port(8080);
/// let sql = Span::new(trace, id(2), "SELECT", web.clone(), t)
///     .with_kind(Kind::Client)
///     .with_tag("db.operation.name", "SELECT")
///     .with_tag("sql.query", "SELECT * FROM users WHERE name = 'a:b|c@d'");
/// assert_eq!(default_name(&sql), "web---1-8080.SELECT");
/// let odd = Span::new(trace, id(3), "GET /users/:id|x", Endpoint::new("api gw"), t);
/// assert_eq!(default_name(&odd), "api-gw-0.GET-_users__id_x");
/// ```
pub fn default_name(span: &Span) -> String {
    let local = span.local_endpoint();
    let mut server = String::with_capacity(64);
    server.push_str(local.service_name());
    if let Some(ip) = local.ip() {
        server.push(' ');
        match ip {
            IpAddr::V4(v4) => {
                let _ = write!(server, "{v4}");
            }
            // `:` would become `_`; the address's separators become `-` like IPv4's dots.
            IpAddr::V6(v6) => server.push_str(&v6.to_string().replace(':', "-")),
        }
    }
    let _ = write!(server, " {}", local.port().unwrap_or(0));
    let mut name = String::with_capacity(server.len() + span.name().len() + 1);
    // The server is one Graphite segment: its dots (an IPv4 address) become `-`.
    push_segment(&mut name, &server, false);
    name.push('.');
    if is_sql(span) {
        // The statement's operation, which the SQL span carries as a tag (`SQL` without it,
        // as for any statement whose operation is unknown).
        match span.tags().get("db.operation.name") {
            Some(TagValue::Str(operation)) => push_segment(&mut name, operation, true),
            _ => name.push_str("SQL"),
        }
    } else {
        push_segment(&mut name, span.name(), true);
    }
    name
}

fn is_sql(span: &Span) -> bool {
    span.tags()
        .iter()
        .any(|t| SQL_TAGS.contains(&t.key.as_str()))
}

/// `text` made safe as (part of) a statsd/Graphite metric name, see the module docs.
///
/// ```
/// use tomograph::backend::statsd::sanitize;
/// assert_eq!(sanitize("a b.c:d|e@f\ng"), "a-b.c_d_e_f-g");
/// assert_eq!(sanitize("..x..y."), "x.y");
/// assert_eq!(sanitize("été"), "_t_");
/// ```
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_segment(&mut out, text, true);
    out
}

/// Appends `text` sanitized; with `dots`, `.` separates segments (empty ones dropped),
/// otherwise `.` becomes `-`. An empty result appends `_`.
fn push_segment(out: &mut String, text: &str, dots: bool) {
    let begin = out.len();
    let mut segment_len = 0usize;
    for c in text.chars() {
        let mapped = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            '.' if dots => {
                if segment_len > 0 {
                    out.push('.');
                    segment_len = 0;
                }
                continue;
            }
            '.' => '-',
            c if c.is_whitespace() => '-',
            _ => '_',
        };
        if segment_len < MAX_SEGMENT {
            out.push(mapped);
            segment_len += 1;
        }
    }
    if out.ends_with('.') && out.len() > begin {
        out.pop();
    }
    if out.len() == begin {
        out.push('_');
    }
}

/// Milliseconds with µs precision, trailing zeros dropped (`1.5`, `0.012`, `7`).
fn push_millis(out: &mut String, span: &Span) {
    let micros = span.duration().as_micros();
    let (ms, frac) = (micros / 1000, micros % 1000);
    let _ = write!(out, "{ms}");
    if frac != 0 {
        let mut digits = format!("{frac:03}");
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push('.');
        out.push_str(&digits);
    }
}

/// Sends spans to statsd. Build one with [`StatsdBackend::builder`] or
/// [`StatsdBackend::from_env`].
pub struct StatsdBackend {
    sink: BufferedUdpMetricSink,
    target: SocketAddr,
    prefix: String,
    naming: Option<NamingFn>,
    note_counters: bool,
    db_metrics: bool,
    line: String,
    errors: u64,
}

impl std::fmt::Debug for StatsdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdBackend")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("custom_naming", &self.naming.is_some())
            .field("note_counters", &self.note_counters)
            .finish()
    }
}

impl StatsdBackend {
    /// A builder sending to `addr` (`host:port`).
    pub fn builder(addr: impl Into<String>) -> StatsdBuilder {
        StatsdBuilder {
            addr: addr.into(),
            addr_origin: "StatsdBackend::builder",
            prefix: String::new(),
            packet_size: DEFAULT_PACKET_SIZE,
            naming: None,
            note_counters: true,
            db_metrics: true,
        }
    }

    /// A backend configured by `TOMOGRAPH_STATSD_*` (see the module docs).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env::process)
    }

    /// Like [`from_env`](StatsdBackend::from_env), reading variables through `env`.
    ///
    /// ```
    /// use tomograph::backend::statsd::StatsdBackend;
    /// let env = |k: &str| match k {
    ///     "TOMOGRAPH_STATSD_ADDR" => Some("127.0.0.1:9125".to_owned()),
    ///     "TOMOGRAPH_STATSD_PREFIX" => Some("prod.web".to_owned()),
    ///     _ => None,
    /// };
    /// let statsd = StatsdBackend::from_lookup(&env).unwrap();
    /// assert_eq!(statsd.target().port(), 9125);
    /// assert_eq!(statsd.prefix(), "prod.web");
    /// ```
    pub fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        StatsdBuilder::from_lookup(env)?.build()
    }

    /// Where datagrams go.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The sanitized prefix (empty when none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lines `span` becomes: its timer, then a counter per note (unless disabled).
    pub fn lines(&self, span: &Span) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        self.for_each_line(span, &mut line, |l| lines.push(l.to_owned()));
        lines
    }

    fn for_each_line(&self, span: &Span, line: &mut String, mut emit: impl FnMut(&str)) {
        let base = match &self.naming {
            Some(naming) => match naming(span) {
                Some(name) => sanitize(&name),
                None => return,
            },
            None => default_name(span),
        };
        line.clear();
        if !self.prefix.is_empty() {
            line.push_str(&self.prefix);
            line.push('.');
        }
        line.push_str(&base);
        let name_len = line.len();
        line.push(':');
        push_millis(line, span);
        line.push_str("|ms");
        emit(line);
        if self.note_counters {
            for (_, note) in span.notes() {
                line.truncate(name_len);
                line.push('.');
                push_segment(line, note, true);
                line.push_str(":1|c");
                emit(line);
            }
        }
        if self.db_metrics {
            self.db_lines(span, line, emit);
        }
    }

    /// A SQL statement's metrics, in the spirit of OpenTelemetry's
    /// `db.client.operation.duration`: a timer `db.{system}.{summary}` and, when it failed, a
    /// counter `db.{system}.errors.{status code}` (else its `error.type`, else `_OTHER`).
    /// Only spans with a query summary (the SQL adapters') have them.
    fn db_lines(&self, span: &Span, line: &mut String, mut emit: impl FnMut(&str)) {
        let (Some(TagValue::Str(system)), Some(TagValue::Str(summary))) = (
            span.tag_value(keys::db::SYSTEM_NAME),
            span.tag_value(keys::db::QUERY_SUMMARY),
        ) else {
            return;
        };
        line.clear();
        if !self.prefix.is_empty() {
            line.push_str(&self.prefix);
            line.push('.');
        }
        line.push_str("db.");
        push_segment(line, system, false);
        let db_len = line.len();
        line.push('.');
        // One segment: `SELECT audit.events` → `SELECT-audit-events`.
        push_segment(line, summary, false);
        line.push(':');
        push_millis(line, span);
        line.push_str("|ms");
        emit(line);
        if span.is_error() {
            let code = span
                .tag_value(keys::db::RESPONSE_STATUS_CODE)
                .or_else(|| span.tag_value(keys::ERROR_TYPE))
                .map_or_else(|| keys::ERROR_TYPE_OTHER.to_owned(), ToString::to_string);
            line.truncate(db_len);
            line.push_str(".errors.");
            push_segment(line, &code, false);
            line.push_str(":1|c");
            emit(line);
        }
    }
}

impl Backend for StatsdBackend {
    fn name(&self) -> &str {
        "statsd"
    }

    /// Writes every span's lines and flushes the last datagram. Never fails: UDP to a statsd
    /// that is down is not worth retrying, and no error should reach the application.
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        let mut line = std::mem::take(&mut self.line);
        let mut errors = 0u64;
        for span in spans {
            self.for_each_line(span, &mut line, |l| {
                if self.sink.emit(l).is_err() {
                    errors += 1;
                }
            });
        }
        self.line = line;
        self.note_errors(errors + u64::from(self.sink.flush().is_err()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        let failed = self.sink.flush().is_err();
        self.note_errors(u64::from(failed));
        Ok(())
    }
}

impl StatsdBackend {
    fn note_errors(&mut self, errors: u64) {
        if errors == 0 {
            return;
        }
        if self.errors == 0 {
            log::warn!(
                "tomograph: statsd at {} is not accepting metrics; dropping them \
                 (this warning is shown once)",
                self.target
            );
        }
        self.errors += errors;
        log::debug!("tomograph: statsd send errors so far: {}", self.errors);
    }
}

/// Builds a [`StatsdBackend`].
///
/// ```
/// use tomograph::backend::statsd::StatsdBackend;
/// let statsd = StatsdBackend::builder("127.0.0.1:8125")
///     .prefix("billing")
///     .max_packet_size(1432)
///     .naming(|span| Some(format!("spans.{}", span.name())))
///     .build()
///     .unwrap();
/// assert_eq!(statsd.prefix(), "billing");
/// ```
#[must_use]
pub struct StatsdBuilder {
    addr: String,
    /// Where `addr` came from (the variable or the builder call), for the error that refuses it.
    addr_origin: &'static str,
    prefix: String,
    packet_size: usize,
    naming: Option<NamingFn>,
    note_counters: bool,
    db_metrics: bool,
}

impl std::fmt::Debug for StatsdBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdBuilder")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .field("packet_size", &self.packet_size)
            .field("custom_naming", &self.naming.is_some())
            .field("note_counters", &self.note_counters)
            .finish()
    }
}

impl StatsdBuilder {
    /// Starts from `TOMOGRAPH_STATSD_*` read through `env`.
    pub fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let addr = env::non_blank(env, env::STATSD_ADDR).unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let mut b = StatsdBackend::builder(addr);
        b.addr_origin = env::STATSD_ADDR;
        if let Some(prefix) = env(env::STATSD_PREFIX) {
            b = b.prefix(prefix.trim());
        }
        if let Some(size) = env::read(env, env::STATSD_PACKET_SIZE, "a size in bytes")? {
            b = b.max_packet_size(size);
        }
        Ok(b)
    }

    /// A prefix for every name (sanitized; empty for none).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = if prefix.trim_matches('.').is_empty() {
            String::new()
        } else {
            sanitize(prefix)
        };
        self
    }

    /// The largest datagram in bytes (at least 64). Lines are packed up to it.
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.packet_size = bytes.max(64);
        self
    }

    /// Replaces the `{server}.{span name}` part of the names: return the span's name (it is
    /// sanitized), or `None` to send nothing for this span. [`default_name`] is the default.
    pub fn naming(
        mut self,
        naming: impl Fn(&Span) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.naming = Some(Arc::new(naming));
        self
    }

    /// Whether each note becomes a counter (default: true, as in the original).
    pub fn note_counters(mut self, on: bool) -> Self {
        self.note_counters = on;
        self
    }

    /// Whether SQL statements also make the database metrics (default: true): a timer
    /// `db.{system}.{summary}` per statement span (`db.postgresql.SELECT-users`) and a
    /// counter `db.{system}.errors.{status code}` per failed one, beside the span's own
    /// timer and counters.
    pub fn db_metrics(mut self, on: bool) -> Self {
        self.db_metrics = on;
        self
    }

    /// The backend, with its UDP socket bound (nothing is sent yet).
    pub fn build(self) -> Result<StatsdBackend, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            variable: self.addr_origin,
            value: self.addr.clone(),
            reason,
        };
        let target = self
            .addr
            .to_socket_addrs()
            .map_err(|e| invalid(format!("expected host:port ({e})")))?
            .next()
            .ok_or_else(|| invalid("resolves to no address".into()))?;
        let bind: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket_error = |e: std::io::Error| ConfigError::Backend {
            name: "statsd",
            source: Box::new(e),
        };
        let socket = UdpSocket::bind(bind).map_err(socket_error)?;
        socket.set_nonblocking(true).map_err(socket_error)?;
        super::metrics::install(&socket, target, &self.prefix);
        let sink = BufferedUdpMetricSink::with_capacity(target, socket, self.packet_size).map_err(
            |e| ConfigError::Backend {
                name: "statsd",
                source: Box::new(e),
            },
        )?;
        Ok(StatsdBackend {
            sink,
            target,
            prefix: self.prefix,
            naming: self.naming,
            note_counters: self.note_counters,
            db_metrics: self.db_metrics,
            line: String::new(),
            errors: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Note, SpanId, Timestamp, TraceId};
    use std::time::Duration;

    fn span(name: &str, endpoint: Endpoint, micros: u64) -> Span {
        let t = Timestamp::from_unix_micros(1_000_000);
        Span::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(1).unwrap(),
            name.to_owned(),
            endpoint,
            t,
        )
        .with_end(t + Duration::from_micros(micros))
    }

    #[test]
    fn millis_formatting() {
        let e = || Endpoint::new("s");
        for (micros, text) in [
            (0, "0"),
            (12, "0.012"),
            (1500, "1.5"),
            (7000, "7"),
            (1_234_567, "1234.567"),
        ] {
            let mut out = String::new();
            push_millis(&mut out, &span("x", e(), micros));
            assert_eq!(out, text);
        }
    }

    #[test]
    fn hostile_text_never_reaches_a_name() {
        let backend = StatsdBackend::builder("127.0.0.1:9")
            .prefix("..p:re|fix@..")
            .build()
            .unwrap();
        let s = span("a:b|c@d\ne f;g=h/i", Endpoint::new("svc:1|x@y z"), 10).with_annotation(
            Note::new(Timestamp::from_unix_micros(1_000_001), "note:1|c\n@x"),
        );
        for line in backend.lines(&s) {
            let (name, rest) = line.split_once(':').unwrap();
            assert!(rest.ends_with("|ms") || rest == "1|c", "{line}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
                "{line}"
            );
            assert!(
                !name.contains("..") && !name.starts_with('.') && !name.ends_with('.'),
                "{line}"
            );
        }
        assert_eq!(backend.prefix(), "p_re_fix_");
    }

    #[test]
    fn sql_spans_are_named_by_operation() {
        // As the SQL tracer makes them: the operation is a tag of the span.
        let s = span("select * from t where x = 'a b'", Endpoint::new("app"), 5)
            .with_tag("db.system.name", "sqlite")
            .with_tag("db.operation.name", "SELECT");
        assert_eq!(default_name(&s), "app-0.SELECT");
    }

    #[test]
    fn statements_make_database_metrics() {
        let backend = StatsdBackend::builder("127.0.0.1:9")
            .note_counters(false)
            .build()
            .unwrap();
        let ok = span("SELECT audit.events", Endpoint::new("app"), 1500)
            .with_tag(keys::db::SYSTEM_NAME, "postgresql")
            .with_tag(keys::db::OPERATION_NAME, "SELECT")
            .with_tag(keys::db::QUERY_SUMMARY, "SELECT audit.events");
        assert_eq!(
            backend.lines(&ok),
            [
                "app-0.SELECT:1.5|ms",
                "db.postgresql.SELECT-audit-events:1.5|ms"
            ]
        );
        let failed = ok
            .clone()
            .with_tag(keys::ERROR, "duplicate key")
            .with_tag(keys::db::RESPONSE_STATUS_CODE, "23505");
        assert_eq!(
            backend.lines(&failed)[2..],
            ["db.postgresql.errors.23505:1|c"]
        );
        let off = StatsdBackend::builder("127.0.0.1:9")
            .note_counters(false)
            .db_metrics(false)
            .build()
            .unwrap();
        assert_eq!(off.lines(&ok), ["app-0.SELECT:1.5|ms"]);
    }

    #[test]
    fn naming_function_and_counters_off() {
        let backend = StatsdBackend::builder("127.0.0.1:9")
            .naming(|s| (s.name() != "skip").then(|| format!("custom.{}", s.name())))
            .note_counters(false)
            .build()
            .unwrap();
        assert_eq!(
            backend.lines(&span("x y", Endpoint::new("s"), 2000)),
            ["custom.x-y:2|ms"]
        );
        assert!(
            backend
                .lines(&span("skip", Endpoint::new("s"), 1))
                .is_empty()
        );
    }

    #[test]
    fn send_without_listener_is_ok() {
        // Port 9 (discard) on loopback: nothing listens; the kernel may report refusals.
        let mut backend = StatsdBackend::builder("127.0.0.1:9").build().unwrap();
        let spans: Vec<Span> = (0..200)
            .map(|i| span(&format!("s{i}"), Endpoint::new("a"), 1))
            .collect();
        for _ in 0..3 {
            assert!(backend.send(&spans).is_ok());
        }
        assert!(backend.flush().is_ok());
    }
}
