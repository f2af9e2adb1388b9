//! What databases say about a failed statement reaches no backend with the bound value in it.
//!
//! A unique-key violation and a type error (an integer column given a string), each caused by
//! a secret bound value, on MariaDB and on PostgreSQL, through sqlx and through diesel, with
//! every backend on at once: the Zipkin collector peer (its stored spans, `GET /_spans`), Etsy
//! statsd (its counter and timer names), the log backend and the console backend (their
//! captured output). By default the secret appears nowhere and the messages keep their shape
//! (`Duplicate entry ? for key 'PRIMARY'`); with `record_parameters(true)` (diesel; sqlx
//! refuses it for these drivers, whose bound values are opaque) the raw message and the
//! values are there — which also proves the captures see what the spans carry.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::Value;
use sqlx::AssertSqlSafe;
use tomograph::backend::statsd::StatsdBackend;
use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::sql::SqlTracerError;
use tomograph::testing::require_env;
use tomograph::{Config, ConsoleBackend, FutureExt, LogBackend, ReporterOptions};
use tomograph_diesel::DieselTracer;
use tomograph_sqlx::TracedPool;
use tomograph_test_support::collector::get_json;
use tomograph_test_support::statsd::query;

/// Every line the log backend wrote.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "tomograph" {
            LOGGED.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// What the console backend wrote.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn statsd_names(admin: &str) -> Vec<String> {
    ["counters", "timers"]
        .into_iter()
        .flat_map(|what| query(what, admin).into_keys())
        .collect()
}

/// One database as the scenarios need it: where it is, its placeholders, its type error.
#[derive(Clone, Copy)]
struct Db {
    system: &'static str,
    url: &'static str,
    /// `INSERT INTO {t} (id, n) VALUES (<id>, <n as the secret>)`: a type error.
    type_error: &'static str,
    insert: &'static str,
}

const POSTGRES: Db = Db {
    system: "postgresql",
    url: "TOMOGRAPH_TEST_POSTGRES_URL",
    type_error: "INSERT INTO {t} (id, n) VALUES ($1, CAST($2 AS INTEGER))",
    insert: "INSERT INTO {t} (id, n) VALUES ($1, 1)",
};

const MARIADB: Db = Db {
    system: "mysql",
    url: "TOMOGRAPH_TEST_MYSQL_URL",
    type_error: "INSERT INTO {t} (id, n) VALUES (?, ?)",
    insert: "INSERT INTO {t} (id, n) VALUES (?, 1)",
};

fn sql(template: &str, table: &str) -> String {
    template.replace("{t}", table)
}

/// The failures through sqlx (pool type `$db`), under a root span of their own; evaluates
/// to the trace.
macro_rules! through_sqlx {
    ($db:ty, $url:expr, $dbinfo:expr, $table:expr, $secret:expr) => {{
        let (url, db, table, secret): (&str, Db, &str, &str) = ($url, $dbinfo, $table, $secret);
        // What `Debug` shows unescaped.
        let mark = secret.rsplit('"').next().unwrap();
        let pool = sqlx::Pool::<$db>::connect(url).await.unwrap();
        // Bound values are opaque in these drivers: opting in is refused at build time.
        let refused = tomograph_sqlx::tracer_builder(&pool)
            .record_parameters(true)
            .try_build()
            .unwrap_err();
        assert!(
            matches!(refused, SqlTracerError::OpaqueParameters { .. }),
            "{refused}"
        );
        let tracer = tomograph_sqlx::tracer_builder(&pool).build();
        let pool = TracedPool::with_tracer(pool, tracer);
        for setup in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (id VARCHAR(100) PRIMARY KEY, n INTEGER)"),
        ] {
            sqlx::query(AssertSqlSafe(setup))
                .execute(pool.inner())
                .await
                .unwrap();
        }
        let trace = async {
            let insert = sql(db.insert, table);
            sqlx::query(AssertSqlSafe(insert.clone()))
                .bind(secret.to_owned())
                .execute(&pool)
                .await
                .unwrap();
            let duplicate = sqlx::query(AssertSqlSafe(insert))
                .bind(secret.to_owned())
                .execute(&pool)
                .await
                .unwrap_err();
            // The driver's error names the value (PostgreSQL in its detail).
            assert!(format!("{duplicate:?}").contains(mark), "{duplicate:?}");
            let mistyped = sqlx::query(AssertSqlSafe(sql(db.type_error, table)))
                .bind("other".to_owned())
                .bind(secret.to_owned())
                .execute(&pool)
                .await
                .unwrap_err();
            assert!(format!("{mistyped:?}").contains(mark), "{mistyped:?}");
            tomograph::get_trace_info().unwrap().trace_id().to_string()
        }
        .traced_with(tomograph::span(format!("redaction sqlx {}", db.system)).root())
        .await;
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(pool.inner())
            .await
            .unwrap();
        trace
    }};
}

/// The failures through diesel (connection type `$conn`), under a root span of their own;
/// evaluates to the trace.
macro_rules! through_diesel {
    ($conn:ty, $url:expr, $dbinfo:expr, $table:expr, $secret:expr, $record:expr) => {{
        let (url, db, table, secret, record): (&str, Db, &str, &str, bool) =
            ($url, $dbinfo, $table, $secret, $record);
        let mark = secret.rsplit('"').next().unwrap();
        let mut conn = <$conn>::establish(url).unwrap();
        for setup in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (id VARCHAR(100) PRIMARY KEY, n INTEGER)"),
        ] {
            diesel::sql_query(setup).execute(&mut conn).unwrap();
        }
        let tracer = DieselTracer::new(
            tomograph_diesel::builder_for_url(url)
                .record_parameters(record)
                .build(),
        );
        tracer.instrument(&mut conn);
        let root = tomograph::span(format!("redaction diesel {} {record}", db.system))
            .root()
            .start();
        let trace = tomograph::get_trace_info().unwrap().trace_id().to_string();
        let insert = sql(db.insert, table);
        diesel::sql_query(insert.clone())
            .bind::<Text, _>(secret.to_owned())
            .execute(&mut conn)
            .unwrap();
        let duplicate = diesel::sql_query(insert)
            .bind::<Text, _>(secret.to_owned())
            .execute(&mut conn)
            .unwrap_err();
        // The driver's error names the value (PostgreSQL in its detail).
        assert!(said(&duplicate).contains(mark), "{duplicate:?}");
        let mistyped = diesel::sql_query(sql(db.type_error, table))
            .bind::<Text, _>("other".to_owned())
            .bind::<Text, _>(secret.to_owned())
            .execute(&mut conn)
            .unwrap_err();
        assert!(said(&mistyped).contains(mark), "{mistyped:?}");
        drop(root);
        diesel::sql_query(format!("DROP TABLE {table}"))
            .execute(&mut conn)
            .unwrap();
        trace
    }};
}

/// What a diesel error says: its message and the database's detail.
fn said(error: &diesel::result::Error) -> String {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            format!("{} {:?}", info.message(), info.details())
        }
        other => other.to_string(),
    }
}

/// The `error` tags of a trace's failed statements, as the collector stored them.
fn errors_of(spans: &[Value]) -> Vec<String> {
    spans
        .iter()
        .filter_map(|s| s["tags"]["error"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn database_errors_carry_no_bound_value_to_any_backend() {
    let (Some(zipkin), Some(statsd), Some(admin), Some(postgres), Some(mysql)) = (
        require_env("TOMOGRAPH_TEST_ZIPKIN_URL"),
        require_env("TOMOGRAPH_TEST_STATSD_ADDR"),
        require_env("TOMOGRAPH_TEST_STATSD_ADMIN"),
        require_env(POSTGRES.url),
        require_env(MARIADB.url),
    ) else {
        return;
    };
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let console = Console::default();
    tomograph::init(
        Config::builder()
            .service_name("redaction-test")
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(10)))
            .backend(
                ZipkinBackend::builder()
                    .url(zipkin.clone())
                    .build()
                    .unwrap(),
            )
            .backend(StatsdBackend::builder(statsd).build().unwrap())
            .backend(LogBackend::new())
            .backend(ConsoleBackend::to_writer(console.clone()))
            .build(),
    )
    .unwrap();

    let run = format!("{:08x}", fastrand_u32());
    // Quotes inside, as users' data has them: a mask must not end early.
    let hidden_mark = format!("{run}-H1DDEN");
    let shown_mark = format!("{run}-SH0WN");
    let hidden = format!("Hid'den\"{hidden_mark}");
    let shown = format!("Sho'wn\"{shown_mark}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut hidden_traces = Vec::new();
    rt.block_on(async {
        hidden_traces.push(through_sqlx!(
            sqlx::Postgres,
            &postgres,
            POSTGRES,
            "tg_redact_sqlx_pg",
            &hidden
        ));
        hidden_traces.push(through_sqlx!(
            sqlx::MySql,
            &mysql,
            MARIADB,
            "tg_redact_sqlx_my",
            &hidden
        ));
    });
    hidden_traces.push(through_diesel!(
        PgConnection,
        &postgres,
        POSTGRES,
        "tg_redact_diesel_pg",
        &hidden,
        false
    ));
    hidden_traces.push(through_diesel!(
        MysqlConnection,
        &mysql,
        MARIADB,
        "tg_redact_diesel_my",
        &hidden,
        false
    ));
    let shown_traces = [
        through_diesel!(
            PgConnection,
            &postgres,
            POSTGRES,
            "tg_redact_diesel_pg",
            &shown,
            true
        ),
        through_diesel!(
            MysqlConnection,
            &mysql,
            MARIADB,
            "tg_redact_diesel_my",
            &shown,
            true
        ),
    ];
    tomograph::flush(Duration::from_secs(10)).unwrap();

    // Zipkin: every span accepted; the default traces' messages masked but informative.
    let zipkin = zipkin.trim_end_matches('/');
    assert_eq!(
        get_json(&format!("{zipkin}/_errors")),
        serde_json::json!([])
    );
    let stored = get_json(&format!("{zipkin}/_spans"));
    let stored = stored.as_array().unwrap();
    let of = |trace: &str| -> Vec<Value> {
        stored
            .iter()
            .filter(|s| s["traceId"].as_str() == Some(trace))
            .cloned()
            .collect()
    };
    let runs = [
        ("sqlx", "postgresql"),
        ("sqlx", "mysql"),
        ("diesel", "postgresql"),
        ("diesel", "mysql"),
    ];
    for (trace, (via, system)) in hidden_traces.iter().zip(runs) {
        let spans = of(trace);
        // root, INSERT, INSERT (duplicate), INSERT (type error)
        assert_eq!(spans.len(), 4, "{spans:#?}");
        let text = serde_json::to_string(&spans).unwrap();
        assert!(
            !text.contains(&run),
            "the secret reached the collector: {text}"
        );
        let errors = errors_of(&spans);
        assert_eq!(errors.len(), 2, "{spans:#?}");
        let failed: Vec<&Value> = spans
            .iter()
            .filter(|s| s["tags"]["error"].is_string())
            .collect();
        for span in &failed {
            // sqlx gives the SQLSTATE; diesel's errors carry none.
            if via == "sqlx" {
                assert!(
                    span["tags"]["db.response.status_code"].is_string(),
                    "{span:#?}"
                );
            }
            assert!(span["tags"]["error.type"].is_string(), "{span:#?}");
        }
        match system {
            "postgresql" => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains("duplicate key value violates unique constraint")),
                    "{errors:?}"
                );
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains("invalid input syntax for type integer: ?")),
                    "{errors:?}"
                );
            }
            _ => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains("Duplicate entry ? for key 'PRIMARY'")),
                    "{errors:?}"
                );
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains("Incorrect integer value: ? for column")),
                    "{errors:?}"
                );
            }
        }
        assert!(
            failed
                .iter()
                .any(|s| s["tags"]["error.type"] == "UniqueViolation"),
            "{failed:#?}"
        );
    }
    // Opted in: the raw messages and each bound value.
    for trace in &shown_traces {
        let spans = of(trace);
        assert_eq!(spans.len(), 4, "{spans:#?}");
        let errors = errors_of(&spans);
        assert_eq!(errors.len(), 2, "{spans:#?}");
        // PostgreSQL's unique violation names the value only in its detail, which is not
        // recorded; its type error and both of MariaDB's quote it.
        assert!(errors.iter().any(|e| e.contains(&shown)), "{errors:?}");
        assert!(
            spans.iter().any(|s| s["tags"]["db.query.parameter.1"]
                .as_str()
                .is_some_and(|v| v.contains(&run))),
            "{spans:#?}"
        );
    }

    // statsd: our spans arrived, and no name carries the secret.
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = loop {
        let names = statsd_names(&admin);
        if names.iter().any(|n| n.contains("redaction-test")) || Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ours: HashSet<&String> = names
        .iter()
        .filter(|n| n.contains("redaction-test"))
        .collect();
    assert!(ours.iter().any(|n| n.contains("INSERT")), "{ours:?}");
    for name in &names {
        assert!(!name.contains(&run), "the secret reached statsd: {name}");
    }

    // Log and console: the default traces' lines say nothing of the secret; the opted-in
    // ones show it (the capture works).
    let logged = LOGGED.lock().unwrap().clone();
    let printed = String::from_utf8(console.0.lock().unwrap().clone()).unwrap();
    for trace in &hidden_traces {
        let lines: Vec<&String> = logged
            .iter()
            .filter(|l| l.contains(trace.as_str()))
            .collect();
        assert_eq!(lines.len(), 4, "{logged:#?}");
        for line in lines {
            assert!(!line.contains(&run), "the secret was logged: {line}");
        }
    }
    for trace in &shown_traces {
        assert!(
            logged
                .iter()
                .any(|l| l.contains(trace.as_str()) && l.contains(&shown)),
            "{logged:#?}"
        );
    }
    assert!(!printed.is_empty());
    for trace in &hidden_traces {
        assert!(printed.contains(trace.as_str()), "{printed}");
    }
    assert!(
        !printed.contains(&hidden_mark),
        "the secret was printed: {printed}"
    );
    assert!(printed.contains(&shown_mark), "{printed}");
    tomograph::shutdown(Duration::from_secs(5)).unwrap();
}

fn fastrand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id()
}
