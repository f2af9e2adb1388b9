//! The suite against the MariaDB/MySQL of `TOMOGRAPH_TEST_MYSQL_URL`.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

suite! {
    db: sqlx::MySql,
    url: tomograph::testing::require_env("TOMOGRAPH_TEST_MYSQL_URL"),
    system: "mysql",
    placeholders: ("?", "?"),
    unique_violation: "1062",
    syntax_error: "1064",
    unreachable: "mysql://root@127.0.0.1:1/test",
    server: url_server,
    namespace: url_database,
}
