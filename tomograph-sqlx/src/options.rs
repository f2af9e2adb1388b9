//! Where a database is, read from a pool's connect options: the remote endpoint of every span
//! and the `server.address`, `server.port` and `db.namespace` tags.

use sqlx::Pool;
use tomograph::sql::{SqlTracer, SqlTracerBuilder};

use crate::database::{ConnectOptionsOf, TracedDatabase};

/// A database server's address, port and database name, as far as the connect options say.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use sqlx::sqlite::SqliteConnectOptions;
/// use tomograph_sqlx::{ServerInfo, TracedDatabase};
/// let options = SqliteConnectOptions::new().filename("shop.db");
/// let info = sqlx::Sqlite::server_info(&options);
/// assert_eq!(info.namespace(), Some("shop.db"));
/// assert_eq!(info.address(), None);
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    address: Option<String>,
    port: Option<u16>,
    namespace: Option<String>,
}

impl ServerInfo {
    /// Host name, IP address or Unix socket path of the server.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// TCP port of the server.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The database name (`db.namespace`): the database on a server, the file for SQLite.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Applies what is known to a [`SqlTracer`] builder.
    pub fn apply(&self, mut builder: SqlTracerBuilder) -> SqlTracerBuilder {
        if let Some(address) = &self.address {
            builder = builder.server(address.clone(), self.port);
        }
        if let Some(namespace) = &self.namespace {
            builder = builder.namespace(namespace.clone());
        }
        builder
    }
}

/// A [`SqlTracer`] builder for `pool`'s database: the system, server and database name are
/// filled in from its connect options; add the policy (`query_text`, `on_error`, …) and
/// build.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tomograph::sql::QueryText;
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let tracer = tomograph_sqlx::tracer_builder(&pool).query_text(QueryText::Normalized).build();
/// assert_eq!(tracer.remote_endpoint().service_name(), "sqlite");
/// let pool = tomograph_sqlx::TracedPool::with_tracer(pool, tracer);
/// # let _ = pool;
/// # });
/// # }
/// ```
pub fn tracer_builder<DB: TracedDatabase>(pool: &Pool<DB>) -> SqlTracerBuilder {
    tracer_builder_for::<DB>(&pool.connect_options())
}

/// Like [`tracer_builder`], from connect options.
///
/// sqlx's PostgreSQL and MySQL drivers keep bound values encoded (a wire buffer, not text),
/// so for them [`record_parameters(true)`](SqlTracerBuilder::record_parameters) is refused:
/// [`try_build`](SqlTracerBuilder::try_build) fails with
/// [`SqlTracerError::OpaqueParameters`](tomograph::sql::SqlTracerError::OpaqueParameters).
/// SQLite's values are recorded, one tag `db.query.parameter.<index>` each.
///
/// ```
/// # #[cfg(feature = "postgres")] {
/// use sqlx::postgres::PgConnectOptions;
/// let options: PgConnectOptions = "postgres://app@127.0.0.1/shop".parse().unwrap();
/// let refused = tomograph_sqlx::tracer_builder_for::<sqlx::Postgres>(&options)
///     .record_parameters(true)
///     .try_build();
/// assert!(refused.unwrap_err().to_string().contains("opaque"));
/// # }
/// ```
pub fn tracer_builder_for<DB: TracedDatabase>(options: &ConnectOptionsOf<DB>) -> SqlTracerBuilder {
    let builder = DB::server_info(options).apply(SqlTracer::builder(DB::SYSTEM));
    match DB::OPAQUE_ARGUMENTS {
        Some(driver) => builder.opaque_parameters(driver),
        None => builder,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The server's address and port: a Unix socket's path (no port), or host and port.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn server(
    socket: Option<&std::path::PathBuf>,
    host: &str,
    port: u16,
) -> (Option<String>, Option<u16>) {
    match socket {
        Some(socket) => (Some(socket.display().to_string()), None),
        None => (non_empty(host), Some(port)),
    }
}

#[cfg(feature = "postgres")]
pub(crate) fn postgres(options: &sqlx::postgres::PgConnectOptions) -> ServerInfo {
    let (address, port) = server(options.get_socket(), options.get_host(), options.get_port());
    ServerInfo {
        address,
        port,
        namespace: options
            .get_database()
            .and_then(non_empty)
            .or_else(|| non_empty(options.get_username())),
    }
}

#[cfg(feature = "mysql")]
pub(crate) fn mysql(options: &sqlx::mysql::MySqlConnectOptions) -> ServerInfo {
    let (address, port) = server(options.get_socket(), options.get_host(), options.get_port());
    ServerInfo {
        address,
        port,
        namespace: options.get_database().and_then(non_empty),
    }
}

#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(options: &sqlx::sqlite::SqliteConnectOptions) -> ServerInfo {
    ServerInfo {
        address: None,
        port: None,
        namespace: non_empty(&options.get_filename().to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_url() -> Result<(), sqlx::Error> {
        let options: sqlx::postgres::PgConnectOptions =
            "postgres://alice@db.example:6543/shop".parse()?;
        let info = postgres(&options);
        assert_eq!(info.address(), Some("db.example"));
        assert_eq!(info.port(), Some(6543));
        assert_eq!(info.namespace(), Some("shop"));
        // PostgreSQL's default database is the user's name.
        let options: sqlx::postgres::PgConnectOptions = "postgres://alice@127.0.0.1".parse()?;
        assert_eq!(
            tracer_builder_for::<sqlx::Postgres>(&options)
                .build()
                .dialect(),
            tomograph::sql::Dialect::Postgres
        );
        let info = postgres(&options);
        assert_eq!(info.port(), Some(5432));
        assert_eq!(info.namespace(), Some("alice"));
        Ok(())
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_url() -> Result<(), sqlx::Error> {
        let options: sqlx::mysql::MySqlConnectOptions = "mysql://root@10.1.2.3/test".parse()?;
        let info = mysql(&options);
        assert_eq!(info.address(), Some("10.1.2.3"));
        assert_eq!(info.port(), Some(3306));
        assert_eq!(info.namespace(), Some("test"));
        let options: sqlx::mysql::MySqlConnectOptions = "mysql://root@localhost".parse()?;
        assert_eq!(mysql(&options).namespace(), None);
        // MySQL and MariaDB: backslash escapes and "…" strings.
        let tracer = tracer_builder_for::<sqlx::MySql>(&options).build();
        assert_eq!(tracer.dialect(), tomograph::sql::Dialect::MYSQL);
        // Bound values are encoded at bind time: opting in is refused.
        assert_eq!(
            tracer_builder_for::<sqlx::MySql>(&options)
                .record_parameters(true)
                .try_build()
                .unwrap_err(),
            tomograph::sql::SqlTracerError::OpaqueParameters {
                driver: "sqlx's MySQL driver"
            }
        );
        Ok(())
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_file() -> Result<(), sqlx::Error> {
        let options: sqlx::sqlite::SqliteConnectOptions = "sqlite://data/app.db".parse()?;
        let info = sqlite(&options);
        assert_eq!(info.namespace(), Some("data/app.db"));
        let tracer = tracer_builder_for::<sqlx::Sqlite>(&options)
            .record_parameters(true)
            .build();
        assert_eq!(tracer.dialect(), tomograph::sql::Dialect::Sqlite);
        assert_eq!((info.address(), info.port()), (None, None));
        Ok(())
    }
}
