//! The suite against SQLite (in memory; always runs).
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

suite! {
    db: sqlx::Sqlite,
    url: Some("sqlite::memory:".to_owned()),
    system: "sqlite",
    placeholders: ("?1", "?2"),
    unique_violation: "2067",
    syntax_error: "1",
    unreachable: "sqlite:///nonexistent-tg-sqlx-dir/db.sqlite?mode=ro",
    server: |_| None,
    namespace: |_| None,
}
