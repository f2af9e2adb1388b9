//! What a database URL says about the database: its system, server and name — never its
//! credentials.

use tomograph::sql::{DbSystem, SqlTracer, SqlTracerBuilder};

/// A [`SqlTracerBuilder`] filled in from a diesel database URL: the system from its scheme
/// (`postgres://`, `postgresql://`, `mysql://`; anything else is an SQLite path), and the
/// server address, port and database name (`server.address`, `server.port`,
/// `db.namespace`) where the URL gives them. User name and password are never read. libpq's
/// `key=value` form (`host=… port=… dbname=…`) is understood too.
///
/// The builder keeps every default policy of [`tomograph::sql`]; set the rest on it.
///
/// ```
/// use tomograph::sql::{DbSystem, QueryText};
/// let db = tomograph_diesel::builder_for_url("postgres://app:secret@10.0.0.7:6432/shop?sslmode=require")
///     .query_text(QueryText::Normalized)
///     .build();
/// assert_eq!(db.system(), DbSystem::Postgres);
/// assert_eq!(db.remote_endpoint().port(), Some(6432));
///
/// let local = tomograph_diesel::builder_for_url("/var/lib/app/data.db").build();
/// assert_eq!(local.system(), DbSystem::Sqlite);
/// ```
pub fn builder_for_url(url: &str) -> SqlTracerBuilder {
    let target = Target::parse(url);
    let mut builder = SqlTracer::builder(target.system);
    if let Some(host) = target.host {
        builder = builder.server(host, target.port);
    }
    if let Some(database) = target.database {
        builder = builder.namespace(database);
    }
    builder
}

/// The parts of a database URL that identify the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) system: DbSystem,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) database: Option<String>,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Self {
        let url = url.trim();
        let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
        if let Some(rest) = strip_scheme(url, &lower, &["postgres://", "postgresql://"]) {
            Self::server_url(DbSystem::Postgres, rest)
        } else if let Some(rest) = strip_scheme(url, &lower, &["mysql://", "mariadb://"]) {
            Self::server_url(DbSystem::MySql, rest)
        } else if looks_like_libpq_keywords(url) {
            Self::libpq_keywords(url)
        } else {
            Self::sqlite(url)
        }
    }

    /// `[user[:password]@]host[:port][/database][?params]`
    fn server_url(system: DbSystem, rest: &str) -> Self {
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_host_port(host_port);
        Self {
            system,
            host: non_empty(host),
            port,
            database: non_empty(&percent_decode(path)),
        }
    }

    fn libpq_keywords(url: &str) -> Self {
        let mut target = Self {
            system: DbSystem::Postgres,
            host: None,
            port: None,
            database: None,
        };
        for pair in url.split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim_matches('\'');
            match key {
                "host" | "hostaddr" => target.host = non_empty(value),
                "port" => target.port = value.parse().ok(),
                "dbname" => target.database = non_empty(value),
                _ => {}
            }
        }
        target
    }

    fn sqlite(url: &str) -> Self {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("file:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or_default();
        let database = match path {
            "" | ":memory:" => None,
            path => Some(path.to_owned()),
        };
        Self {
            system: DbSystem::Sqlite,
            host: None,
            port: None,
            database,
        }
    }
}

fn strip_scheme<'a>(url: &'a str, lower: &str, schemes: &[&str]) -> Option<&'a str> {
    schemes
        .iter()
        .find(|s| lower.starts_with(**s))
        .and_then(|s| url.get(s.len()..))
}

fn looks_like_libpq_keywords(url: &str) -> bool {
    url.split_whitespace().next().is_some_and(|first| {
        first
            .split_once('=')
            .is_some_and(|(k, _)| matches!(k, "host" | "hostaddr" | "port" | "dbname" | "user"))
    })
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (s, None),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `%xx` escapes decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(system: DbSystem, host: Option<&str>, port: Option<u16>, db: Option<&str>) -> Target {
        Target {
            system,
            host: host.map(str::to_owned),
            port,
            database: db.map(str::to_owned),
        }
    }

    #[test]
    fn each_system_reads_statements_in_its_dialect() {
        use tomograph::sql::Dialect;
        for (url, dialect) in [
            ("mysql://root@127.0.0.1/test", Dialect::MYSQL),
            ("mariadb://root@127.0.0.1/test", Dialect::MYSQL),
            ("postgres://u@h/db", Dialect::Postgres),
            ("host=h dbname=db", Dialect::Postgres),
            ("file.db", Dialect::Sqlite),
        ] {
            assert_eq!(builder_for_url(url).build().dialect(), dialect, "{url}");
        }
    }

    #[test]
    fn parses_urls_without_credentials() {
        for (url, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                t(
                    DbSystem::Postgres,
                    Some("127.0.0.1"),
                    Some(5432),
                    Some("test"),
                ),
            ),
            (
                "PostgreSQL://u:p%40ss@db.example:6432/my%20db?sslmode=disable",
                t(
                    DbSystem::Postgres,
                    Some("db.example"),
                    Some(6432),
                    Some("my db"),
                ),
            ),
            (
                "postgres://user:pa:ss@[::1]:5433/x",
                t(DbSystem::Postgres, Some("::1"), Some(5433), Some("x")),
            ),
            (
                "mysql://root@127.0.0.1:3306/test",
                t(DbSystem::MySql, Some("127.0.0.1"), Some(3306), Some("test")),
            ),
            (
                "mysql://localhost",
                t(DbSystem::MySql, Some("localhost"), None, None),
            ),
            (
                "host=10.1.2.3 port=5432 dbname=shop user=app password=secret",
                t(
                    DbSystem::Postgres,
                    Some("10.1.2.3"),
                    Some(5432),
                    Some("shop"),
                ),
            ),
            (":memory:", t(DbSystem::Sqlite, None, None, None)),
            (
                "file:app.db?mode=ro",
                t(DbSystem::Sqlite, None, None, Some("app.db")),
            ),
            (
                "/tmp/x.db",
                t(DbSystem::Sqlite, None, None, Some("/tmp/x.db")),
            ),
            ("", t(DbSystem::Sqlite, None, None, None)),
            ("postgres://", t(DbSystem::Postgres, None, None, None)),
            (
                "pöstgres",
                t(DbSystem::Sqlite, None, None, Some("pöstgres")),
            ),
        ] {
            assert_eq!(Target::parse(url), want, "{url}");
        }
    }
}
