//! The suite against the PostgreSQL of `TOMOGRAPH_TEST_POSTGRES_URL`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

suite! {
    db: sqlx::Postgres,
    url: tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL"),
    system: "postgresql",
    placeholders: ("$1", "$2"),
    unique_violation: "23505",
    syntax_error: "42601",
    unreachable: "postgres://postgres@127.0.0.1:1/test",
    server: url_server,
    namespace: url_database,
}
