//! Configuration: a builder in code, or the `TOMOGRAPH_*` environment variables.
//!
//! The variables, their meanings and defaults are listed once, in [`crate::env`].

use std::net::IpAddr;
use std::time::Duration;

use crate::backend::{self, Backend};
use crate::env::{self, EnvLookup};
use crate::error::ConfigError;
use crate::model::{Endpoint, Text};
use crate::propagation::Propagation;
use crate::report::ReporterOptions;
use crate::sample::{self, Head, Sampler, TailSampling};

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
        Self::from_lookup(&env::process, default_backends)
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
        if let Some(name) = env::non_blank(env, env::SERVICE_NAME) {
            b = b.service_name(name);
        }
        b.config.local_ip = env::read(env, env::LOCAL_ADDRESS, "an IP address")?;
        b.config.local_port = env::read(env, env::LOCAL_PORT, "a port number")?;
        if let Some(rate) = env::read::<f64>(env, env::SAMPLE_RATE, "a number from 0.0 to 1.0")? {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::InvalidValue {
                    variable: env::SAMPLE_RATE,
                    value: rate.to_string(),
                    reason: "expected a number from 0.0 to 1.0".into(),
                });
            }
            b = b.sample_rate(rate);
        }
        let sampling = sample::from_lookup(env, b.config.sample_rate)?;
        b.config.sampler = sampling.sampler;
        b.config.tail = sampling.tail;
        if let Some(on) = env::read_bool(env, env::ENABLED)? {
            b = b.enabled(on);
        }
        if let Some(wide) = env::read_bool(env, env::TRACE_ID_128BIT)? {
            b = b.trace_id_128bit(wide);
        }
        let mut reporter = ReporterOptions::default();
        if let Some(n) = env::read(env, env::QUEUE_CAPACITY, "a count")? {
            reporter = reporter.queue_capacity(n);
        }
        if let Some(n) = env::read(env, env::BATCH_SIZE, "a count")? {
            reporter = reporter.batch_size(n);
        }
        if let Some(ms) = env::read(env, env::BATCH_INTERVAL_MS, "milliseconds")? {
            reporter = reporter.batch_interval(Duration::from_millis(ms));
        }
        if let Some(n) = env::read(env, env::MAX_RETRIES, "a count")? {
            reporter = reporter.max_retries(n);
        }
        b = b.reporter(reporter);
        b.config.propagation = Propagation::from_lookup(env)?;
        let names = env(env::BACKENDS).unwrap_or_else(|| default_backends.to_owned());
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let backend = backend::from_env(&name.to_ascii_lowercase(), env)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::env::fixed as lookup;

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
        assert_eq!(config.reporter.queue_capacity, 100);
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
