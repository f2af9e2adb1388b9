//! Configuration: a builder in code, or the `TOMOGRAPH_*` environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_BACKENDS` | comma list of `zipkin`, `statsd`, `log`, `console` (empty: none) | `log` (examples: `console`) |
//! | `TOMOGRAPH_SERVICE_NAME` | local service name | the binary's name |
//! | `TOMOGRAPH_LOCAL_ADDRESS` | this service's IP address, for its endpoint | none |
//! | `TOMOGRAPH_LOCAL_PORT` | this service's port, for its endpoint | none |
//! | `TOMOGRAPH_SAMPLE_RATE` | 0.0–1.0, decided at each trace's root | `1.0` |
//! | `TOMOGRAPH_SAMPLE_RULES` | samplers by root name, `GET /health=0,POST /checkout=1,*=0.01` (see [`Rules`](crate::sample::Rules)) | none |
//! | `TOMOGRAPH_SAMPLE_LIMIT` | at most this many traces a second kept at the root | none |
//! | `TOMOGRAPH_TAIL_SAMPLING` | `1` holds the traces the head did not keep and keeps those with an error, a slow span or debug (see [`TailSampling`](crate::sample::TailSampling), also for `TOMOGRAPH_TAIL_SLOW_MS`, `_SLOW_SQL_MS`, `_MAX_SPANS`, `_MAX_TRACES`, `_MAX_HOLD_MS`) | off |
//! | `TOMOGRAPH_ENABLED` | `false` starts with tracing switched off | `true` |
//! | `TOMOGRAPH_TRACE_ID_128BIT` | `true` makes new trace ids 128 bits wide | `false` |
//! | `TOMOGRAPH_QUEUE_CAPACITY` | finished spans waiting to be reported, at most (the one buffer a slow collector fills; 136 bytes a slot, allocated at start) | `65536` |
//! | `TOMOGRAPH_BATCH_SIZE` | spans per batch | `512` |
//! | `TOMOGRAPH_BATCH_INTERVAL_MS` | longest a span waits for its batch | `500` |
//! | `TOMOGRAPH_MAX_RETRIES` | retries of a failed batch before it is dropped | `5` |
//! | `TOMOGRAPH_PROPAGATION` | header formats written and read: comma list of `x-trace-info`, `b3`, `b3-single`, `w3c` (read in this order) | `x-trace-info,b3,w3c` written; `b3,w3c,x-trace-info` read |
//! | `TOMOGRAPH_PROPAGATION_INJECT` / `_EXTRACT` | the same for one direction only | as above |
//!
//! The Zipkin and statsd backends read their own variables (details in
//! [`backend::zipkin`](crate::backend::zipkin) and [`backend::statsd`](crate::backend::statsd)):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_ZIPKIN_URL` | collector base URL (`/api/v2/spans` or `/api/v1/spans` appended), or `amqp://user:password@host:port/vhost` for RabbitMQ (feature `rabbitmq`) | `http://127.0.0.1:9411` |
//! | `TOMOGRAPH_ZIPKIN_ENCODING` | `json` (v2), `thrift` (v1), over HTTP or RabbitMQ; `scribe` | `json` |
//! | `TOMOGRAPH_ZIPKIN_QUEUE` | RabbitMQ queue (declared durable) | `zipkin` |
//! | `TOMOGRAPH_ZIPKIN_MAX_MESSAGE_BYTES` | largest RabbitMQ message body; bigger batches are split | `5000000` |
//! | `TOMOGRAPH_SCRIBE_ADDR` | Scribe `host:port` | `127.0.0.1:9410` |
//! | `TOMOGRAPH_ZIPKIN_GZIP` | gzip HTTP bodies | `false` |
//! | `TOMOGRAPH_ZIPKIN_TIMEOUT_MS` | longest one request may take | `5000` |
//! | `TOMOGRAPH_ZIPKIN_TYPED_TAGS` | thrift tags typed (I64/DOUBLE/BOOL) instead of strings | `false` |
//! | `TOMOGRAPH_STATSD_ADDR` | statsd `host:port` (UDP) | `127.0.0.1:8125` |
//! | `TOMOGRAPH_STATSD_PREFIX` | prefix for every metric name | none |
//! | `TOMOGRAPH_STATSD_PACKET_SIZE` | largest datagram, bytes | `512` |

use std::net::IpAddr;
use std::time::Duration;

use crate::backend::{ConsoleBackend, LogBackend};
use crate::error::ConfigError;
use crate::model::{Endpoint, Text};
use crate::propagation::Propagation;
use crate::report::{Backend, ReporterOptions};
use crate::sample::{self, Head, Sampler, TailSampling};

/// Reads one environment variable; a function so tests can pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The backend names `TOMOGRAPH_BACKENDS` accepts.
pub const BACKEND_NAMES: [&str; 4] = ["zipkin", "statsd", "log", "console"];

/// Everything [`crate::init`] needs. Build one with [`Config::builder`] or
/// [`Config::from_env`].
#[derive(Debug)]
pub struct Config {
    service_name: Text,
    local_ip: Option<IpAddr>,
    local_port: Option<u16>,
    sample_rate: f64,
    sampler: Option<Box<dyn Sampler>>,
    tail: Option<TailSampling>,
    enabled: bool,
    wide_trace_ids: bool,
    reporter: ReporterOptions,
    backends: Vec<Box<dyn Backend>>,
    propagation: Propagation,
}

pub(crate) struct ConfigParts {
    pub(crate) local_endpoint: Endpoint,
    pub(crate) head: Head,
    pub(crate) enabled: bool,
    pub(crate) wide_trace_ids: bool,
    pub(crate) reporter: ReporterOptions,
    pub(crate) backends: Vec<Box<dyn Backend>>,
    pub(crate) propagation: Propagation,
}

impl Config {
    /// A builder with the defaults: service named after the binary, sample everything, no
    /// backend.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                service_name: default_service_name().into(),
                local_ip: None,
                local_port: None,
                sample_rate: 1.0,
                sampler: None,
                tail: None,
                enabled: true,
                wide_trace_ids: false,
                reporter: ReporterOptions::default(),
                backends: Vec::new(),
                propagation: Propagation::default(),
            },
        }
    }

    /// The configuration the `TOMOGRAPH_*` variables describe (backends default to `log`).
    ///
    /// ```
    /// // SAFETY of the example: single-threaded doc test.
    /// let config = tomograph::Config::from_env().unwrap();
    /// assert!(config.sample_rate() <= 1.0);
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(ConfigBuilder::from_env("log")?.build())
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The sampling rate at the root.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// The HTTP header formats written and read.
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// The head sampler set by [`ConfigBuilder::sampler`] or `TOMOGRAPH_SAMPLE_RULES` /
    /// `TOMOGRAPH_SAMPLE_LIMIT`; `None` when the plain [`sample_rate`](Config::sample_rate)
    /// applies.
    pub fn sampler(&self) -> Option<&dyn Sampler> {
        self.sampler.as_deref()
    }

    /// The tail sampling options, when it is on.
    pub fn tail_sampling(&self) -> Option<&TailSampling> {
        self.tail.as_ref()
    }

    /// The names of the configured backends.
    pub fn backend_names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    pub(crate) fn into_parts(self) -> ConfigParts {
        let mut local_endpoint = Endpoint::new(self.service_name).with_optional_ip(self.local_ip);
        if let Some(port) = self.local_port {
            local_endpoint = local_endpoint.with_port(port);
        }
        let head = Head::new(self.sampler, self.sample_rate, self.tail.is_some());
        ConfigParts {
            local_endpoint,
            head,
            enabled: self.enabled,
            wide_trace_ids: self.wide_trace_ids,
            reporter: self.reporter.with_tail(self.tail),
            backends: self.backends,
            propagation: self.propagation,
        }
    }
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// Builds a [`Config`].
///
/// ```
/// use tomograph::{Config, ConsoleBackend, ReporterOptions};
/// use std::time::Duration;
/// let config = Config::builder()
///     .service_name("billing")
///     .sample_rate(0.25)
///     .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(200)))
///     .backend(ConsoleBackend::stdout())
///     .build();
/// assert_eq!(config.backend_names(), ["console"]);
/// ```
#[derive(Debug)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Starts from the `TOMOGRAPH_*` variables; `default_backends` (a comma list) applies when
    /// `TOMOGRAPH_BACKENDS` is unset.
    pub fn from_env(default_backends: &str) -> Result<ConfigBuilder, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok(), default_backends)
    }

    /// Like [`from_env`](ConfigBuilder::from_env), reading variables through `env`.
    ///
    /// ```
    /// use tomograph::ConfigBuilder;
    /// let env = |k: &str| match k {
    ///     "TOMOGRAPH_BACKENDS" => Some("console,log".to_owned()),
    ///     "TOMOGRAPH_SERVICE_NAME" => Some("api".to_owned()),
    ///     _ => None,
    /// };
    /// let config = ConfigBuilder::from_lookup(&env, "log").unwrap().build();
    /// assert_eq!(config.service_name(), "api");
    /// assert_eq!(config.backend_names(), ["console", "log"]);
    ///
    /// let bad = |k: &str| (k == "TOMOGRAPH_BACKENDS").then(|| "jaeger".to_owned());
    /// let err = ConfigBuilder::from_lookup(&bad, "log").unwrap_err();
    /// assert!(err.to_string().contains("zipkin, statsd, log, console"));
    /// ```
    pub fn from_lookup(
        env: EnvLookup<'_>,
        default_backends: &str,
    ) -> Result<ConfigBuilder, ConfigError> {
        let mut b = Config::builder();
        if let Some(name) = env("TOMOGRAPH_SERVICE_NAME").filter(|s| !s.trim().is_empty()) {
            b = b.service_name(name.trim().to_owned());
        }
        if let Some(ip) = env("TOMOGRAPH_LOCAL_ADDRESS") {
            b.config.local_ip = Some(parse_var("TOMOGRAPH_LOCAL_ADDRESS", &ip, "an IP address")?);
        }
        if let Some(port) = env("TOMOGRAPH_LOCAL_PORT") {
            b.config.local_port = Some(parse_var("TOMOGRAPH_LOCAL_PORT", &port, "a port number")?);
        }
        if let Some(rate) = env("TOMOGRAPH_SAMPLE_RATE") {
            let rate: f64 = parse_var("TOMOGRAPH_SAMPLE_RATE", &rate, "a number from 0.0 to 1.0")?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::InvalidValue {
                    variable: "TOMOGRAPH_SAMPLE_RATE",
                    value: rate.to_string(),
                    reason: "expected a number from 0.0 to 1.0".into(),
                });
            }
            b = b.sample_rate(rate);
        }
        let sampling = sample::from_lookup(env, b.config.sample_rate)?;
        b.config.sampler = sampling.sampler;
        b.config.tail = sampling.tail;
        if let Some(v) = env("TOMOGRAPH_ENABLED") {
            b = b.enabled(parse_bool("TOMOGRAPH_ENABLED", &v)?);
        }
        if let Some(v) = env("TOMOGRAPH_TRACE_ID_128BIT") {
            b = b.trace_id_128bit(parse_bool("TOMOGRAPH_TRACE_ID_128BIT", &v)?);
        }
        let mut reporter = ReporterOptions::default();
        if let Some(v) = env("TOMOGRAPH_QUEUE_CAPACITY") {
            reporter =
                reporter.queue_capacity(parse_var("TOMOGRAPH_QUEUE_CAPACITY", &v, "a count")?);
        }
        if let Some(v) = env("TOMOGRAPH_BATCH_SIZE") {
            reporter = reporter.batch_size(parse_var("TOMOGRAPH_BATCH_SIZE", &v, "a count")?);
        }
        if let Some(v) = env("TOMOGRAPH_BATCH_INTERVAL_MS") {
            let ms: u64 = parse_var("TOMOGRAPH_BATCH_INTERVAL_MS", &v, "milliseconds")?;
            reporter = reporter.batch_interval(Duration::from_millis(ms));
        }
        if let Some(v) = env("TOMOGRAPH_MAX_RETRIES") {
            reporter = reporter.max_retries(parse_var("TOMOGRAPH_MAX_RETRIES", &v, "a count")?);
        }
        b = b.reporter(reporter);
        b.config.propagation = Propagation::from_lookup(env)?;
        let names = env("TOMOGRAPH_BACKENDS").unwrap_or_else(|| default_backends.to_owned());
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let backend =
                backend_from_env(&name.to_ascii_lowercase(), env, &b.config.service_name)?;
            b.config.backends.push(backend);
        }
        Ok(b)
    }

    /// The local service name (every span's `localEndpoint.serviceName`).
    pub fn service_name(mut self, name: impl Into<Text>) -> Self {
        self.config.service_name = name.into();
        self
    }

    /// This service's address and port, for its endpoint.
    pub fn local_address(mut self, ip: IpAddr, port: u16) -> Self {
        self.config.local_ip = Some(ip);
        self.config.local_port = (port != 0).then_some(port);
        self
    }

    /// The fraction of new traces recorded (clamped to 0.0–1.0), decided from the trace id
    /// (see [`Rate`](crate::sample::Rate)). Children and tokens inherit the root's decision.
    /// Replaces a [`sampler`](ConfigBuilder::sampler) set before.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.config.sample_rate = if rate.is_nan() {
            1.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.config.sampler = None;
        self
    }

    /// The head sampler, deciding at each trace's root (see [`crate::sample`]); replaces the
    /// [`sample_rate`](ConfigBuilder::sample_rate).
    ///
    /// ```
    /// use tomograph::Config;
    /// use tomograph::sample::{Always, Never, RateLimit, Rules};
    /// let config = Config::builder()
    ///     .sampler(RateLimit::per_second(100.0).of(Rules::new().exact("GET /health", Never).otherwise(Always)))
    ///     .build();
    /// assert!(config.sampler().is_some());
    /// ```
    pub fn sampler(mut self, sampler: impl Sampler) -> Self {
        self.config.sampler = Some(Box::new(sampler));
        self
    }

    /// Turns tail sampling on with `options` (see [`TailSampling`]): traces the head
    /// sampler does not keep are recorded, held until their local root ends, and sent when
    /// they had an error, a slow span or debug.
    ///
    /// ```
    /// use tomograph::Config;
    /// use tomograph::sample::TailSampling;
    /// use std::time::Duration;
    /// let config = Config::builder()
    ///     .sample_rate(0.01)
    ///     .tail_sampling(TailSampling::default().slow_sql(Duration::from_millis(100)))
    ///     .build();
    /// assert!(config.tail_sampling().is_some());
    /// ```
    pub fn tail_sampling(mut self, options: TailSampling) -> Self {
        self.config.tail = Some(options);
        self
    }

    /// Starts with tracing on (default) or off; see [`crate::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Makes new trace ids 128 bits wide.
    pub fn trace_id_128bit(mut self, wide: bool) -> Self {
        self.config.wide_trace_ids = wide;
        self
    }

    /// Queue, batch and retry options.
    pub fn reporter(mut self, options: ReporterOptions) -> Self {
        self.config.reporter = options;
        self
    }

    /// The HTTP header formats written and read (see [`crate::propagation`]).
    ///
    /// ```
    /// use tomograph::Config;
    /// use tomograph::propagation::{Format, Propagation};
    /// let config = Config::builder()
    ///     .propagation(Propagation::default().inject_formats([Format::B3, Format::W3c]))
    ///     .build();
    /// assert_eq!(config.propagation().injected(), [Format::B3, Format::W3c]);
    /// ```
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.config.propagation = propagation;
        self
    }

    /// Adds a backend (several may be added; each receives every span).
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.config.backends.push(Box::new(backend));
        self
    }

    /// Adds a boxed backend.
    pub fn boxed_backend(mut self, backend: Box<dyn Backend>) -> Self {
        self.config.backends.push(backend);
        self
    }

    /// The configuration.
    pub fn build(self) -> Config {
        self.config
    }
}

fn backend_from_env(
    name: &str,
    env: EnvLookup<'_>,
    service: &str,
) -> Result<Box<dyn Backend>, ConfigError> {
    let _ = (env, service);
    match name {
        "log" => Ok(Box::new(LogBackend::new())),
        "console" => Ok(Box::new(ConsoleBackend::stdout())),
        #[cfg(feature = "zipkin")]
        "zipkin" => Ok(Box::new(
            crate::backend::zipkin::ZipkinBackend::from_lookup(env)?,
        )),
        #[cfg(not(feature = "zipkin"))]
        "zipkin" => Err(ConfigError::BackendNotCompiled {
            name: name.into(),
            feature: "zipkin",
        }),
        #[cfg(feature = "statsd")]
        "statsd" => Ok(Box::new(
            crate::backend::statsd::StatsdBackend::from_lookup(env)?,
        )),
        #[cfg(not(feature = "statsd"))]
        "statsd" => Err(ConfigError::BackendNotCompiled {
            name: name.into(),
            feature: "statsd",
        }),
        other => Err(ConfigError::UnknownBackend {
            name: other.to_owned(),
            variable: "TOMOGRAPH_BACKENDS",
            valid: BACKEND_NAMES.join(", "),
        }),
    }
}

fn parse_var<T: std::str::FromStr>(
    variable: &'static str,
    value: &str,
    what: &str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidValue {
        variable,
        value: value.to_owned(),
        reason: format!("expected {what}"),
    })
}

/// A boolean variable: `1/true/yes/on` or `0/false/no/off` (empty means false).
pub(crate) fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::InvalidValue {
            variable,
            value: value.to_owned(),
            reason: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn reads_every_core_variable() {
        let env = lookup(&[
            ("TOMOGRAPH_BACKENDS", " log , console "),
            ("TOMOGRAPH_SERVICE_NAME", "checkout"),
            ("TOMOGRAPH_SAMPLE_RATE", "0.5"),
            ("TOMOGRAPH_TRACE_ID_128BIT", "true"),
            ("TOMOGRAPH_QUEUE_CAPACITY", "100"),
            ("TOMOGRAPH_LOCAL_ADDRESS", "10.0.0.7"),
            ("TOMOGRAPH_LOCAL_PORT", "8080"),
        ]);
        let config = ConfigBuilder::from_lookup(&env, "").unwrap().build();
        assert_eq!(config.service_name(), "checkout");
        assert_eq!(config.sample_rate(), 0.5);
        assert_eq!(config.backend_names(), ["log", "console"]);
        assert!(config.wide_trace_ids);
        assert_eq!(config.reporter.get_queue_capacity(), 100);
        let parts = config.into_parts();
        assert_eq!(parts.local_endpoint.port(), Some(8080));
        assert_eq!(parts.local_endpoint.ip(), Some("10.0.0.7".parse().unwrap()));
    }

    #[test]
    fn unknown_backend_lists_the_valid_ones() {
        let env = lookup(&[("TOMOGRAPH_BACKENDS", "log,jaeger")]);
        let err = ConfigBuilder::from_lookup(&env, "").unwrap_err();
        assert!(matches!(&err, ConfigError::UnknownBackend { name, .. } if name == "jaeger"));
        assert!(
            err.to_string().contains("zipkin, statsd, log, console"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (var, value) in [
            ("TOMOGRAPH_SAMPLE_RATE", "1.5"),
            ("TOMOGRAPH_SAMPLE_RATE", "lots"),
            ("TOMOGRAPH_ENABLED", "maybe"),
            ("TOMOGRAPH_QUEUE_CAPACITY", "-1"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(vec![(var, value)].into_boxed_slice());
            let err = ConfigBuilder::from_lookup(&lookup(pairs), "").unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn reads_the_propagation_variables() {
        use crate::propagation::Format;
        let env = lookup(&[
            ("TOMOGRAPH_PROPAGATION", "w3c,b3"),
            ("TOMOGRAPH_PROPAGATION_INJECT", "x-trace-info"),
        ]);
        let config = ConfigBuilder::from_lookup(&env, "").unwrap().build();
        assert_eq!(config.propagation().extracted(), [Format::W3c, Format::B3]);
        assert_eq!(config.propagation().injected(), [Format::XTraceInfo]);
        let bad = lookup(&[("TOMOGRAPH_PROPAGATION", "b3,jaeger")]);
        let err = ConfigBuilder::from_lookup(&bad, "").unwrap_err();
        assert!(err.to_string().contains("TOMOGRAPH_PROPAGATION"), "{err}");
    }

    #[test]
    fn default_backends_apply_only_when_unset() {
        let config = ConfigBuilder::from_lookup(&lookup(&[]), "console")
            .unwrap()
            .build();
        assert_eq!(config.backend_names(), ["console"]);
        let none = ConfigBuilder::from_lookup(&lookup(&[("TOMOGRAPH_BACKENDS", "")]), "console")
            .unwrap()
            .build();
        assert!(none.backend_names().is_empty());
    }
}
