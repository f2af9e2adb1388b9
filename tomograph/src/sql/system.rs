//! [`DbSystem`]: which database a tracer talks to.

/// The kind of database, for the remote endpoint and `db.system.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbSystem {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// Another database, by its OpenTelemetry name.
    Other(&'static str),
}

impl DbSystem {
    /// The OpenTelemetry `db.system.name` (`sqlite`, `postgresql`, `mysql`).
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Sqlite => "sqlite",
            DbSystem::Postgres => "postgresql",
            DbSystem::MySql => "mysql",
            DbSystem::Other(name) => name,
        }
    }
}
