//! Connection establishment through diesel's default instrumentation: a `connect` span, the
//! error when the server refuses, no `on_error` call (hooks are per statement), and every
//! connection established afterwards traced.
//!
//! One test binary, one default instrumentation: this file installs it once for all its tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Once;

use diesel::prelude::*;
use tomograph::Kind;
use tomograph_diesel::DieselTracer;

use common::*;

static HOOKS: std::sync::OnceLock<Hooks> = std::sync::OnceLock::new();

fn install() -> Hooks {
    static ONCE: Once = Once::new();
    let hooks = HOOKS.get_or_init(Hooks::default).clone();
    ONCE.call_once(|| {
        let sql = hooks.install(tomograph::sql::SqlTracer::builder(
            tomograph::sql::DbSystem::Other("diesel"),
        ));
        DieselTracer::new(sql.build()).install_default().unwrap();
    });
    hooks
}

/// `url` with its port replaced by one nobody listens on.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn wrong_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    format!("{scheme}://{host}:1/{path}")
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn refused<C: Connection>(url: &str) {
    let memory = memory();
    let hooks = install();
    let before = hooks.calls().len();
    let (result, trace) = traced("refused", || C::establish(url));
    assert!(result.is_err(), "connecting to port 1 must fail");
    let spans = exact_spans(&memory, trace, 2);
    let connect = one(&spans, "connect");
    assert_eq!(connect.parent_id(), Some(root(&spans).id()));
    assert_eq!(connect.kind(), Some(Kind::Client));
    assert!(connect.is_error());
    assert!(has_note(connect, "error"));
    assert_eq!(tag(connect, "error.type").as_deref(), Some("BadConnection"));
    assert!(
        !format!("{connect:?}").contains(url),
        "the URL (credentials) is not recorded"
    );
    assert_eq!(
        hooks.calls().len(),
        before,
        "connection errors do not call on_error"
    );
}

fn connected<C: Connection>(url: &str)
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    let memory = memory();
    install();
    let (_, trace) = traced("connected", || {
        let mut conn = C::establish(url).unwrap();
        diesel::sql_query("SELECT 'after connect'")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 3);
    let root = root(&spans);
    let connect = one(&spans, "connect");
    assert!(!connect.is_error());
    assert_eq!(connect.parent_id(), Some(root.id()));
    let select = one(&spans, "SELECT");
    assert_eq!(select.parent_id(), Some(root.id()));
    assert!(select.start() >= connect.end());
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_connect_span_and_failure() {
    connected::<SqliteConnection>(":memory:");
    let memory = memory();
    let (result, trace) = traced("sqlite refused", || {
        SqliteConnection::establish("/nonexistent-dir-tomograph/x.db")
    });
    assert!(result.is_err());
    let spans = exact_spans(&memory, trace, 2);
    assert!(one(&spans, "connect").is_error());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_connection_refused() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    connected::<PgConnection>(&url);
    refused::<PgConnection>(&wrong_port(&url));
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_connection_refused() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_MYSQL_URL") else {
        return;
    };
    connected::<MysqlConnection>(&url);
    refused::<MysqlConnection>(&wrong_port(&url));
}

#[test]
fn outside_a_trace_connecting_makes_no_span() {
    let memory = memory();
    install();
    tomograph::flush(std::time::Duration::from_secs(5)).unwrap();
    let before = memory.spans().len();
    #[cfg(feature = "sqlite")]
    drop(SqliteConnection::establish(":memory:").unwrap());
    tomograph::flush(std::time::Duration::from_secs(5)).unwrap();
    assert!(
        memory.spans()[before..]
            .iter()
            .all(|s| s.name() != "connect" || s.parent_id().is_some())
    );
}
