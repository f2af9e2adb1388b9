//! The `TOMOGRAPH_*` environment variables: their names, their table, how they are read and
//! parsed. Nothing else in the crate reads the environment for its configuration: the
//! tracer's [`Config`](crate::Config), the backends' builders and the HTTP layer all read it
//! through an [`EnvLookup`] and the parsers here.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_BACKENDS` | comma list of `zipkin`, `statsd`, `log`, `console` (empty: none) | `log` (`console` in examples) |
//! | `TOMOGRAPH_SERVICE_NAME` | local service name | the binary's name |
//! | `TOMOGRAPH_LOCAL_ADDRESS` | this service's IP address, for its endpoint | none |
//! | `TOMOGRAPH_LOCAL_PORT` | this service's port, for its endpoint | none |
//! | `TOMOGRAPH_SAMPLE_RATE` | 0.0–1.0, decided at the root, inherited by children and tokens | `1.0` |
//! | `TOMOGRAPH_SAMPLE_RULES` | samplers by root name, first match wins: `GET /health=0,POST /checkout=1,GET /static/*=10/s,*=0.01` (a fraction or `N/s` each; names no rule matches follow `TOMOGRAPH_SAMPLE_RATE`) | none |
//! | `TOMOGRAPH_SAMPLE_LIMIT` | at most this many traces a second kept at the root (smooth) | none |
//! | `TOMOGRAPH_TAIL_SAMPLING` | `true`: also record the traces the root did not keep, hold them until their local root ends, send those with an error, a slow span or debug | `false` |
//! | `TOMOGRAPH_TAIL_SLOW_MS` | a span longer than this keeps its held trace | `1000` |
//! | `TOMOGRAPH_TAIL_SLOW_SQL_MS` | a SQL statement (a span with `db.system.name`) longer than this keeps its held trace | `250` |
//! | `TOMOGRAPH_TAIL_MAX_SPANS` | spans held at most; beyond, the oldest traces are decided early | `100000` |
//! | `TOMOGRAPH_TAIL_MAX_TRACES` | traces held at most; beyond, the oldest are decided early | `10000` |
//! | `TOMOGRAPH_TAIL_MAX_HOLD_MS` | longest a trace is held before it is decided early | `30000` |
//! | `TOMOGRAPH_ENABLED` | `false` starts with tracing switched off | `true` |
//! | `TOMOGRAPH_TRACE_ID_128BIT` | `true` makes new trace ids 128 bits wide | `false` |
//! | `TOMOGRAPH_QUEUE_CAPACITY` | finished spans waiting to be reported, at most (the one buffer a slow collector fills; 136 bytes a slot, allocated at start) | `65536` |
//! | `TOMOGRAPH_BATCH_SIZE` | spans per batch | `512` |
//! | `TOMOGRAPH_BATCH_INTERVAL_MS` | longest a span waits for its batch | `500` |
//! | `TOMOGRAPH_MAX_RETRIES` | retries of a failed batch before it is dropped | `5` |
//! | `TOMOGRAPH_PROPAGATION` | header formats written and read: comma list of `x-trace-info`, `b3`, `b3-single`, `w3c` (read in this order) | `x-trace-info,b3,w3c` written; `b3,w3c,x-trace-info` read |
//! | `TOMOGRAPH_PROPAGATION_INJECT` | the header formats written only | as `TOMOGRAPH_PROPAGATION` |
//! | `TOMOGRAPH_PROPAGATION_EXTRACT` | the header formats read only | as `TOMOGRAPH_PROPAGATION` |
//! | `TOMOGRAPH_HTTP_SERVICE_NAME` | the service of the tower layer's server spans (`TraceLayer::from_env`) | the tracer's |
//! | `TOMOGRAPH_ZIPKIN_URL` | collector base URL (`/api/v2/spans` or `/api/v1/spans` appended; a URL that already ends with it is taken as is), or `amqp://user:password@host:port/vhost` to publish to RabbitMQ (feature `rabbitmq`; vhost `/` is `%2f`; the password is never logged) | `http://127.0.0.1:9411` |
//! | `TOMOGRAPH_ZIPKIN_ENCODING` | `json` (v2), `thrift` (v1), over HTTP or RabbitMQ; `scribe` | `json` |
//! | `TOMOGRAPH_ZIPKIN_QUEUE` | RabbitMQ queue zipkin-server's collector reads (declared durable) | `zipkin` |
//! | `TOMOGRAPH_ZIPKIN_MAX_MESSAGE_BYTES` | largest RabbitMQ message body; bigger batches are split | `5000000` |
//! | `TOMOGRAPH_SCRIBE_ADDR` | Scribe `host:port` (encoding `scribe`) | `127.0.0.1:9410` |
//! | `TOMOGRAPH_ZIPKIN_GZIP` | `true` gzips HTTP bodies (`Content-Encoding: gzip`) | `false` |
//! | `TOMOGRAPH_ZIPKIN_TIMEOUT_MS` | longest one request (connect + send + answer; for RabbitMQ connect + publish + confirms) may take | `5000` |
//! | `TOMOGRAPH_ZIPKIN_TYPED_TAGS` | `true` sends thrift tags typed (I64/DOUBLE/BOOL) instead of as strings | `false` |
//! | `TOMOGRAPH_STATSD_ADDR` | statsd `host:port` (UDP) | `127.0.0.1:8125` |
//! | `TOMOGRAPH_STATSD_PREFIX` | prefix for every metric name | none |
//! | `TOMOGRAPH_STATSD_PACKET_SIZE` | largest datagram, bytes (512 is safe everywhere; 1432 fits a LAN's MTU) | `512` |
//!
//! A boolean is `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (empty: false). The table
//! above, [`VARIABLES`] and the README's are checked against each other by a test.

use crate::error::ConfigError;

/// Reads one environment variable; a function so tests can pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`EnvLookup`] (what every `from_env` reads).
pub fn process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `TOMOGRAPH_BACKENDS`.
pub const BACKENDS: &str = "TOMOGRAPH_BACKENDS";
/// `TOMOGRAPH_SERVICE_NAME`.
pub const SERVICE_NAME: &str = "TOMOGRAPH_SERVICE_NAME";
/// `TOMOGRAPH_LOCAL_ADDRESS`.
pub const LOCAL_ADDRESS: &str = "TOMOGRAPH_LOCAL_ADDRESS";
/// `TOMOGRAPH_LOCAL_PORT`.
pub const LOCAL_PORT: &str = "TOMOGRAPH_LOCAL_PORT";
/// `TOMOGRAPH_SAMPLE_RATE`.
pub const SAMPLE_RATE: &str = "TOMOGRAPH_SAMPLE_RATE";
/// `TOMOGRAPH_SAMPLE_RULES`.
pub const SAMPLE_RULES: &str = "TOMOGRAPH_SAMPLE_RULES";
/// `TOMOGRAPH_SAMPLE_LIMIT`.
pub const SAMPLE_LIMIT: &str = "TOMOGRAPH_SAMPLE_LIMIT";
/// `TOMOGRAPH_TAIL_SAMPLING`.
pub const TAIL_SAMPLING: &str = "TOMOGRAPH_TAIL_SAMPLING";
/// `TOMOGRAPH_TAIL_SLOW_MS`.
pub const TAIL_SLOW_MS: &str = "TOMOGRAPH_TAIL_SLOW_MS";
/// `TOMOGRAPH_TAIL_SLOW_SQL_MS`.
pub const TAIL_SLOW_SQL_MS: &str = "TOMOGRAPH_TAIL_SLOW_SQL_MS";
/// `TOMOGRAPH_TAIL_MAX_SPANS`.
pub const TAIL_MAX_SPANS: &str = "TOMOGRAPH_TAIL_MAX_SPANS";
/// `TOMOGRAPH_TAIL_MAX_TRACES`.
pub const TAIL_MAX_TRACES: &str = "TOMOGRAPH_TAIL_MAX_TRACES";
/// `TOMOGRAPH_TAIL_MAX_HOLD_MS`.
pub const TAIL_MAX_HOLD_MS: &str = "TOMOGRAPH_TAIL_MAX_HOLD_MS";
/// `TOMOGRAPH_ENABLED`.
pub const ENABLED: &str = "TOMOGRAPH_ENABLED";
/// `TOMOGRAPH_TRACE_ID_128BIT`.
pub const TRACE_ID_128BIT: &str = "TOMOGRAPH_TRACE_ID_128BIT";
/// `TOMOGRAPH_QUEUE_CAPACITY`.
pub const QUEUE_CAPACITY: &str = "TOMOGRAPH_QUEUE_CAPACITY";
/// `TOMOGRAPH_BATCH_SIZE`.
pub const BATCH_SIZE: &str = "TOMOGRAPH_BATCH_SIZE";
/// `TOMOGRAPH_BATCH_INTERVAL_MS`.
pub const BATCH_INTERVAL_MS: &str = "TOMOGRAPH_BATCH_INTERVAL_MS";
/// `TOMOGRAPH_MAX_RETRIES`.
pub const MAX_RETRIES: &str = "TOMOGRAPH_MAX_RETRIES";
/// `TOMOGRAPH_PROPAGATION`.
pub const PROPAGATION: &str = "TOMOGRAPH_PROPAGATION";
/// `TOMOGRAPH_PROPAGATION_INJECT`.
pub const PROPAGATION_INJECT: &str = "TOMOGRAPH_PROPAGATION_INJECT";
/// `TOMOGRAPH_PROPAGATION_EXTRACT`.
pub const PROPAGATION_EXTRACT: &str = "TOMOGRAPH_PROPAGATION_EXTRACT";
/// `TOMOGRAPH_HTTP_SERVICE_NAME`.
pub const HTTP_SERVICE_NAME: &str = "TOMOGRAPH_HTTP_SERVICE_NAME";
/// `TOMOGRAPH_ZIPKIN_URL`.
pub const ZIPKIN_URL: &str = "TOMOGRAPH_ZIPKIN_URL";
/// `TOMOGRAPH_ZIPKIN_ENCODING`.
pub const ZIPKIN_ENCODING: &str = "TOMOGRAPH_ZIPKIN_ENCODING";
/// `TOMOGRAPH_ZIPKIN_QUEUE`.
pub const ZIPKIN_QUEUE: &str = "TOMOGRAPH_ZIPKIN_QUEUE";
/// `TOMOGRAPH_ZIPKIN_MAX_MESSAGE_BYTES`.
pub const ZIPKIN_MAX_MESSAGE_BYTES: &str = "TOMOGRAPH_ZIPKIN_MAX_MESSAGE_BYTES";
/// `TOMOGRAPH_SCRIBE_ADDR`.
pub const SCRIBE_ADDR: &str = "TOMOGRAPH_SCRIBE_ADDR";
/// `TOMOGRAPH_ZIPKIN_GZIP`.
pub const ZIPKIN_GZIP: &str = "TOMOGRAPH_ZIPKIN_GZIP";
/// `TOMOGRAPH_ZIPKIN_TIMEOUT_MS`.
pub const ZIPKIN_TIMEOUT_MS: &str = "TOMOGRAPH_ZIPKIN_TIMEOUT_MS";
/// `TOMOGRAPH_ZIPKIN_TYPED_TAGS`.
pub const ZIPKIN_TYPED_TAGS: &str = "TOMOGRAPH_ZIPKIN_TYPED_TAGS";
/// `TOMOGRAPH_STATSD_ADDR`.
pub const STATSD_ADDR: &str = "TOMOGRAPH_STATSD_ADDR";
/// `TOMOGRAPH_STATSD_PREFIX`.
pub const STATSD_PREFIX: &str = "TOMOGRAPH_STATSD_PREFIX";
/// `TOMOGRAPH_STATSD_PACKET_SIZE`.
pub const STATSD_PACKET_SIZE: &str = "TOMOGRAPH_STATSD_PACKET_SIZE";

/// One configuration variable: its name and its default as the tables write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Variable {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as the documentation's tables write it (`` `json` ``, `none`, …).
    pub default: &'static str,
}

const fn var(name: &'static str, default: &'static str) -> Variable {
    Variable { name, default }
}

/// Every variable the crate reads, in the order of the table above.
pub const VARIABLES: &[Variable] = &[
    var(BACKENDS, "`log` (`console` in examples)"),
    var(SERVICE_NAME, "the binary's name"),
    var(LOCAL_ADDRESS, "none"),
    var(LOCAL_PORT, "none"),
    var(SAMPLE_RATE, "`1.0`"),
    var(SAMPLE_RULES, "none"),
    var(SAMPLE_LIMIT, "none"),
    var(TAIL_SAMPLING, "`false`"),
    var(TAIL_SLOW_MS, "`1000`"),
    var(TAIL_SLOW_SQL_MS, "`250`"),
    var(TAIL_MAX_SPANS, "`100000`"),
    var(TAIL_MAX_TRACES, "`10000`"),
    var(TAIL_MAX_HOLD_MS, "`30000`"),
    var(ENABLED, "`true`"),
    var(TRACE_ID_128BIT, "`false`"),
    var(QUEUE_CAPACITY, "`65536`"),
    var(BATCH_SIZE, "`512`"),
    var(BATCH_INTERVAL_MS, "`500`"),
    var(MAX_RETRIES, "`5`"),
    var(
        PROPAGATION,
        "`x-trace-info,b3,w3c` written; `b3,w3c,x-trace-info` read",
    ),
    var(PROPAGATION_INJECT, "as `TOMOGRAPH_PROPAGATION`"),
    var(PROPAGATION_EXTRACT, "as `TOMOGRAPH_PROPAGATION`"),
    var(HTTP_SERVICE_NAME, "the tracer's"),
    var(ZIPKIN_URL, "`http://127.0.0.1:9411`"),
    var(ZIPKIN_ENCODING, "`json`"),
    var(ZIPKIN_QUEUE, "`zipkin`"),
    var(ZIPKIN_MAX_MESSAGE_BYTES, "`5000000`"),
    var(SCRIBE_ADDR, "`127.0.0.1:9410`"),
    var(ZIPKIN_GZIP, "`false`"),
    var(ZIPKIN_TIMEOUT_MS, "`5000`"),
    var(ZIPKIN_TYPED_TAGS, "`false`"),
    var(STATSD_ADDR, "`127.0.0.1:8125`"),
    var(STATSD_PREFIX, "none"),
    var(STATSD_PACKET_SIZE, "`512`"),
];

/// `name`'s value when it is set and not blank, trimmed.
pub(crate) fn non_blank(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `value` parsed as a `T`; the error names `variable` and says `what` was expected.
pub(crate) fn parse_var<T: std::str::FromStr>(
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

/// Reads `name` through `env` and parses it (`None` when unset).
pub(crate) fn read<T: std::str::FromStr>(
    env: EnvLookup<'_>,
    name: &'static str,
    what: &str,
) -> Result<Option<T>, ConfigError> {
    env(name).map(|v| parse_var(name, &v, what)).transpose()
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

/// Reads the boolean `name` through `env` (`None` when unset).
pub(crate) fn read_bool(
    env: EnvLookup<'_>,
    name: &'static str,
) -> Result<Option<bool>, ConfigError> {
    env(name).map(|v| parse_bool(name, &v)).transpose()
}

/// A fixed environment for unit tests: `pairs` of variable and value, nothing else set.
#[cfg(test)]
pub(crate) fn fixed(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows `| `NAME` | meaning | default |` of a markdown table, as (name, default).
    fn table_rows(text: &str) -> Vec<(String, String)> {
        text.lines()
            .map(|l| l.trim_start_matches("//!").trim())
            .filter(|l| l.starts_with("| `TOMOGRAPH_"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                let name = cells[0].trim_matches('`').to_owned();
                (
                    name,
                    cells.last().map(|c| (*c).to_owned()).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn check_against(what: &str, rows: &[(String, String)]) {
        for (name, default) in rows {
            let variable = VARIABLES.iter().find(|v| v.name == name);
            let variable = variable
                .unwrap_or_else(|| panic!("{what} lists {name}, which env::VARIABLES lacks"));
            assert_eq!(
                variable.default, default,
                "{what}: the default of {name} differs from env::VARIABLES"
            );
        }
        for variable in VARIABLES {
            assert!(
                rows.iter().any(|(name, _)| name == variable.name),
                "{what} lacks {} (in env::VARIABLES)",
                variable.name
            );
        }
    }

    #[test]
    fn the_readme_table_is_the_variables_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("the workspace README");
        check_against("README.md", &table_rows(&readme));
    }

    #[test]
    fn the_module_table_is_the_variables_table() {
        check_against("env.rs's table", &table_rows(include_str!("env.rs")));
    }

    #[test]
    fn every_name_is_tomograph_prefixed_and_listed_once() {
        for (i, v) in VARIABLES.iter().enumerate() {
            assert!(v.name.starts_with("TOMOGRAPH_"), "{}", v.name);
            assert!(
                !VARIABLES[i + 1..].iter().any(|w| w.name == v.name),
                "{} twice",
                v.name
            );
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("X", " Yes ").ok(), Some(true));
        assert_eq!(parse_bool("X", "").ok(), Some(false));
        assert!(
            parse_bool("X", "maybe")
                .unwrap_err()
                .to_string()
                .contains('X')
        );
    }
}
