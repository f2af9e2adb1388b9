//! What the adapter must know about each sqlx driver: its name, where its server is, how to
//! reach the driver's own executors, and how to read its results.
//!
//! One implementation per cargo feature (`sqlite`, `postgres`, `mysql`); everything else in
//! the crate is generic over [`TracedDatabase`].

use sqlx::{Connection, Database, Executor, Pool};
use tomograph::sql::DbSystem;

use crate::options::ServerInfo;

mod sealed {
    pub trait Sealed {}
}

/// The connect options of database `DB` (`PgConnectOptions`, `SqliteConnectOptions`, …).
pub type ConnectOptionsOf<DB> = <<DB as Database>::Connection as Connection>::Options;

/// A sqlx database this crate can trace: [`sqlx::Postgres`] (feature `postgres`),
/// [`sqlx::MySql`] (feature `mysql`) and [`sqlx::Sqlite`] (feature `sqlite`, on by default).
///
/// Sealed: the methods are the adapter's driver glue, not an extension point.
pub trait TracedDatabase: Database + sealed::Sealed {
    /// The database's OpenTelemetry name and remote service name.
    const SYSTEM: DbSystem;

    /// Server address, port and database name from a pool's connect options.
    fn server_info(options: &ConnectOptionsOf<Self>) -> ServerInfo;

    #[doc(hidden)]
    /// The driver's executor for a pool (sqlx implements it only under a bound that generic
    /// code cannot state without overflowing the trait solver).
    fn pool_executor(pool: &Pool<Self>) -> impl Executor<'_, Database = Self>;

    #[doc(hidden)]
    /// The driver's executor for one connection.
    fn connection_executor(conn: &mut Self::Connection) -> impl Executor<'_, Database = Self>;

    #[doc(hidden)]
    /// The database's code for a failed statement, for `db.response.status_code`:
    /// PostgreSQL's SQLSTATE, MySQL's error number, SQLite's extended result code.
    fn status_code(error: &dyn sqlx::error::DatabaseError) -> Option<String>;

    #[doc(hidden)]
    /// Rows changed, as the driver reports them for one statement.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    #[doc(hidden)]
    /// When the driver keeps bound values opaque, its name, for the builder's refusal of
    /// `record_parameters(true)`.
    const OPAQUE_ARGUMENTS: Option<&'static str>;

    #[doc(hidden)]
    /// The bound values as `(0-based index, readable text)`, for `db.query.parameter.<key>`
    /// (only when the user opted in); nothing when the driver keeps them opaque.
    fn describe_arguments(arguments: &Self::Arguments) -> Vec<(usize, String)>;
}

macro_rules! traced_database {
    ($(#[$attr:meta])* $db:ty, $system:expr, $info:path, $opaque:expr, $describe:expr, $code:expr) => {
        $(#[$attr])*
        impl sealed::Sealed for $db {}

        $(#[$attr])*
        impl TracedDatabase for $db {
            const SYSTEM: DbSystem = $system;
            const OPAQUE_ARGUMENTS: Option<&'static str> = $opaque;

            fn server_info(options: &ConnectOptionsOf<Self>) -> ServerInfo {
                $info(options)
            }

            fn pool_executor(pool: &Pool<Self>) -> impl Executor<'_, Database = Self> {
                pool
            }

            fn connection_executor(
                conn: &mut Self::Connection,
            ) -> impl Executor<'_, Database = Self> {
                conn
            }

            fn status_code(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
                $code(error)
            }

            fn rows_affected(result: &Self::QueryResult) -> u64 {
                result.rows_affected()
            }

            fn describe_arguments(arguments: &Self::Arguments) -> Vec<(usize, String)> {
                $describe(arguments)
            }
        }
    };
}

traced_database!(
    #[cfg(feature = "sqlite")]
    sqlx::Sqlite,
    DbSystem::Sqlite,
    crate::options::sqlite,
    None,
    crate::arguments::sqlite,
    sqlstate
);
traced_database!(
    #[cfg(feature = "postgres")]
    sqlx::Postgres,
    DbSystem::Postgres,
    crate::options::postgres,
    Some("sqlx's PostgreSQL driver"),
    crate::arguments::opaque,
    sqlstate
);
traced_database!(
    #[cfg(feature = "mysql")]
    sqlx::MySql,
    DbSystem::MySql,
    crate::options::mysql,
    Some("sqlx's MySQL driver"),
    crate::arguments::opaque,
    mysql_error_number
);

/// The code sqlx reports: PostgreSQL's SQLSTATE (`23505`), SQLite's extended result code
/// (`2067`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn sqlstate(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
    error.code().map(std::borrow::Cow::into_owned)
}

/// MySQL's error number (`1062`), OpenTelemetry's status code for MySQL and MariaDB (sqlx's
/// `code()` is the coarser SQLSTATE, `23000`).
#[cfg(feature = "mysql")]
fn mysql_error_number(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
    match error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        Some(mysql) => Some(mysql.number().to_string()),
        None => error.code().map(std::borrow::Cow::into_owned),
    }
}
