//! Helpers shared by the test files: a traced run, span lookups, an `on_error` recorder.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tomograph::sql::SqlTracerBuilder;
use tomograph::{Kind, MemoryBackend, Span, TagValue, TraceId};

/// The per-binary memory tracer.
pub fn memory() -> MemoryBackend {
    tomograph::testing::memory_tracer()
}

/// Runs `f` under a new root span `name`; returns its result and the trace.
pub fn traced<R>(name: &str, f: impl FnOnce() -> R) -> (R, TraceId) {
    // The tracer first: a test run alone may be the binary's first to trace.
    memory();
    let root = tomograph::span(name.to_owned()).root().start();
    let trace = root
        .token()
        .expect("the test tracer samples everything")
        .trace_id();
    let out = f();
    drop(root);
    (out, trace)
}

/// The trace's spans once `count` have arrived (and a little more time for stragglers that
/// should not be there).
pub fn spans(memory: &MemoryBackend, trace: TraceId, count: usize) -> Vec<Span> {
    let spans = tomograph::testing::wait_for_trace(memory, trace, count, Duration::from_secs(10));
    assert!(
        spans.len() >= count,
        "expected {count} spans, got {}: {}",
        spans.len(),
        names(&spans)
    );
    spans
}

/// Exactly the trace's spans, `count` of them.
pub fn exact_spans(memory: &MemoryBackend, trace: TraceId, count: usize) -> Vec<Span> {
    let got = spans(memory, trace, count);
    // anything late would have been flushed with the root, which ends last
    assert_eq!(got.len(), count, "spans: {}", names(&got));
    got
}

pub fn names(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| s.name().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The only span called `name`.
pub fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} span in: {}", names(spans));
    found[0]
}

/// Spans whose `sql.query` contains `needle`.
pub fn with_sql<'a>(spans: &'a [Span], needle: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| tag(s, "sql.query").is_some_and(|q| q.contains(needle)))
        .collect()
}

pub fn root(spans: &[Span]) -> &Span {
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent_id().is_none()).collect();
    assert_eq!(roots.len(), 1, "one root in: {}", names(spans));
    roots[0]
}

pub fn tag(span: &Span, key: &str) -> Option<String> {
    span.tag_value(key).map(TagValue::to_string)
}

pub fn has_note(span: &Span, value: &str) -> bool {
    span.notes().any(|(_, v)| v == value)
}

/// A statement span: CLIENT, to the database, named by its query summary (`INSERT users`,
/// whose first word is the operation), with the operation, summary and system tags.
pub fn assert_statement(span: &Span, name: &str, system: &str) {
    let operation = name.split(' ').next().unwrap_or(name);
    assert_eq!(span.name(), name);
    assert_eq!(tag(span, "db.query.summary").as_deref(), Some(name));
    assert_eq!(span.kind(), Some(Kind::Client), "{span:?}");
    assert_eq!(tag(span, "db.operation.name").as_deref(), Some(operation));
    assert_eq!(tag(span, "db.system.name").as_deref(), Some(system));
    assert_eq!(
        span.remote_endpoint().map(|e| e.service_name()),
        Some(system)
    );
}

/// One `on_error` call: (sql, error message, code, span was recorded).
pub type HookCall = (String, String, Option<String>, bool);

/// What the `on_error` hooks saw.
#[derive(Clone, Default)]
pub struct Hooks(Arc<Mutex<Vec<HookCall>>>);

impl Hooks {
    pub fn install(&self, builder: SqlTracerBuilder) -> SqlTracerBuilder {
        let seen = self.0.clone();
        builder.on_error(move |event| {
            let recorded = event.span().is_some();
            event.tag("hooked", true);
            seen.lock().unwrap().push((
                event.sql().to_owned(),
                event.error().to_string(),
                event.code().map(str::to_owned),
                recorded,
            ));
        })
    }

    pub fn calls(&self) -> Vec<HookCall> {
        self.0.lock().unwrap().clone()
    }
}

/// The scenarios every backend must pass. `$connect` gives `Option<(connection, url)>`
/// (`None`: skip); `$ddl` makes a table `(id auto primary key, name unique)` from a name.
#[macro_export]
macro_rules! backend_scenarios {
    (
        conn: $conn:ty,
        connect: $connect:expr,
        system: $system:literal,
        ddl: $ddl:expr,
        qb_table: $qb_table:literal,
    ) => {
        use diesel::prelude::*;
        use tomograph_diesel::DieselTracer;
        use $crate::common::*;

        diesel::table! {
            #[sql_name = $qb_table]
            qb (id) {
                id -> Integer,
                name -> Text,
            }
        }

        fn setup(table: &str, hooks: &Hooks) -> Option<$conn> {
            let (mut conn, url): ($conn, String) = ($connect)()?;
            diesel::sql_query(format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut conn)
                .expect("drop");
            let ddl: fn(&str) -> String = $ddl;
            diesel::sql_query(ddl(table))
                .execute(&mut conn)
                .expect("create");
            DieselTracer::new(
                hooks
                    .install(tomograph_diesel::builder_for_url(&url))
                    .build(),
            )
            .instrument(&mut conn);
            Some(conn)
        }

        #[test]
        fn query_builder_and_raw_sql_are_child_spans() {
            let memory = memory();
            let hooks = Hooks::default();
            let Some(mut conn) = setup($qb_table, &hooks) else {
                return;
            };
            let (ids, trace) = traced("qb", || {
                diesel::insert_into(qb::table)
                    .values(qb::name.eq("secret-ada"))
                    .execute(&mut conn)
                    .expect("insert");
                let ids: Vec<i32> = qb::table
                    .filter(qb::name.eq("secret-ada"))
                    .select(qb::id)
                    .load(&mut conn)
                    .expect("select");
                #[derive(QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let count: Count =
                    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", $qb_table))
                        .get_result(&mut conn)
                        .expect("raw select");
                assert_eq!(count.n, 1);
                ids
            });
            assert_eq!(ids.len(), 1);
            let spans = exact_spans(&memory, trace, 4);
            let root = one(&spans, "qb");
            for span in spans.iter().filter(|s| s.id() != root.id()) {
                assert_eq!(span.parent_id(), Some(root.id()), "{span:?}");
                assert!(
                    !format!("{:?}", span.tags()).contains("secret-ada"),
                    "no bound values: {span:?}"
                );
                assert!(!format!("{:?}", span.tags()).contains("binds"), "{span:?}");
            }
            let insert_qb = format!("INSERT {}", $qb_table);
            let insert = one(&spans, &insert_qb);
            assert_statement(insert, &insert_qb, $system);
            assert!(tag(insert, "sql.query").unwrap().starts_with("INSERT INTO"));
            assert_eq!(tag(insert, "db.query.text"), tag(insert, "sql.query"));
            let select_qb = format!("SELECT {}", $qb_table);
            let selects: Vec<&tomograph::Span> =
                spans.iter().filter(|s| s.name() == select_qb).collect();
            assert_eq!(selects.len(), 2);
            for select in &selects {
                assert_statement(select, &select_qb, $system);
            }
            assert_eq!(with_sql(&spans, "COUNT(*)").len(), 1);
            assert!(hooks.calls().is_empty());
        }

        #[test]
        fn committed_transaction_is_a_span_around_its_statements() {
            let memory = memory();
            let hooks = Hooks::default();
            let table = concat!($qb_table, "_commit");
            let Some(mut conn) = setup(table, &hooks) else {
                return;
            };
            let (_, trace) = traced("commit", || {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    diesel::sql_query(format!("INSERT INTO {table} (name) VALUES ('a')"))
                        .execute(conn)?;
                    diesel::sql_query(format!("INSERT INTO {table} (name) VALUES ('b')"))
                        .execute(conn)?;
                    Ok(())
                })
                .expect("commit");
            });
            let spans = exact_spans(&memory, trace, 6);
            let root = one(&spans, "commit");
            let tx = one(&spans, "TRANSACTION");
            assert_eq!(tx.parent_id(), Some(root.id()));
            assert_eq!(tag(tx, "db.transaction.outcome").as_deref(), Some("commit"));
            assert_eq!(tag(tx, "db.system.name").as_deref(), Some($system));
            assert!(!tx.is_error());
            let insert = format!("INSERT {table}");
            for name in ["BEGIN", insert.as_str(), "COMMIT"] {
                for span in spans.iter().filter(|s| s.name() == name) {
                    assert_eq!(
                        span.parent_id(),
                        Some(tx.id()),
                        "{name} inside the transaction"
                    );
                    assert_statement(span, name, $system);
                }
            }
            assert_eq!(spans.iter().filter(|s| s.name() == insert).count(), 2);
            let n: i64 = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<CountRow>(&mut conn)
                .expect("count")
                .n;
            assert_eq!(n, 2);
        }

        #[derive(QueryableByName)]
        struct CountRow {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }

        #[test]
        fn rolled_back_transaction_says_so() {
            let memory = memory();
            let hooks = Hooks::default();
            let table = concat!($qb_table, "_rollback");
            let Some(mut conn) = setup(table, &hooks) else {
                return;
            };
            let (result, trace) = traced("rollback", || {
                conn.transaction::<(), diesel::result::Error, _>(|conn| {
                    diesel::sql_query(format!("INSERT INTO {table} (name) VALUES ('a')"))
                        .execute(conn)?;
                    Err(diesel::result::Error::RollbackTransaction)
                })
            });
            assert!(matches!(
                result,
                Err(diesel::result::Error::RollbackTransaction)
            ));
            let spans = exact_spans(&memory, trace, 5);
            let tx = one(&spans, "TRANSACTION");
            assert_eq!(
                tag(tx, "db.transaction.outcome").as_deref(),
                Some("rollback")
            );
            assert!(has_note(tx, "rollback"));
            for name in ["BEGIN", &format!("INSERT {table}"), "ROLLBACK"] {
                assert_eq!(one(&spans, name).parent_id(), Some(tx.id()), "{name}");
            }
            assert!(
                hooks.calls().is_empty(),
                "a rollback is not a failed statement"
            );
            let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<CountRow>(&mut conn)
                .expect("count")
                .n;
            assert_eq!(n, 0);
        }

        #[test]
        fn unique_violation_is_an_error_span_and_calls_the_hooks_once() {
            let memory = memory();
            let hooks = Hooks::default();
            let table = concat!($qb_table, "_unique");
            let Some(mut conn) = setup(table, &hooks) else {
                return;
            };
            let insert = format!("INSERT INTO {table} (name) VALUES ('dup')");
            let (result, trace) = traced("unique", || {
                diesel::sql_query(&insert)
                    .execute(&mut conn)
                    .expect("first");
                diesel::sql_query(&insert).execute(&mut conn)
            });
            assert!(matches!(
                result,
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _
                ))
            ));
            let spans = exact_spans(&memory, trace, 3);
            let failed: Vec<&tomograph::Span> = spans.iter().filter(|s| s.is_error()).collect();
            assert_eq!(failed.len(), 1, "{}", names(&spans));
            let failed = failed[0];
            assert_statement(failed, &format!("INSERT {table}"), $system);
            assert_eq!(
                tag(failed, "error.type").as_deref(),
                Some("UniqueViolation")
            );
            assert!(has_note(failed, "error"));
            assert_eq!(tag(failed, "hooked").as_deref(), Some("true"));
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_eq!(calls[0].0, insert);
            // The hook gets the driver's message; the span, its quoted values masked.
            assert_eq!(
                tag(failed, "error"),
                Some(tomograph::sql::redact_message(&calls[0].1))
            );
            assert!(calls[0].3, "the hook saw the span");
        }

        #[test]
        fn statements_are_named_by_their_query_summary() {
            let memory = memory();
            let hooks = Hooks::default();
            let table = concat!($qb_table, "_summary");
            let Some(mut conn) = setup(table, &hooks) else {
                return;
            };
            let statements = [
                format!("INSERT INTO {table} (name) VALUES ('secret-a')"),
                format!("SELECT name FROM {table} WHERE name = 'secret-a'"),
                format!("UPDATE {table} SET name = 'secret-b' WHERE name = 'secret-a'"),
                format!(
                    "WITH recent AS (SELECT name FROM {table}) SELECT COUNT(*) AS n FROM recent"
                ),
                format!("SELECT a.name FROM {table} a JOIN {table} b ON b.name = a.name"),
                format!("DELETE FROM {table} WHERE name = 'secret-b'"),
            ];
            let (_, trace) = traced("summaries", || {
                for sql in &statements {
                    diesel::sql_query(sql.as_str())
                        .execute(&mut conn)
                        .expect(sql);
                }
            });
            let spans = exact_spans(&memory, trace, statements.len() + 1);
            let expected = [
                (format!("INSERT {table}"), Some(table)),
                (format!("SELECT {table}"), Some(table)),
                (format!("UPDATE {table}"), Some(table)),
                (format!("SELECT {table} SELECT"), None),
                (format!("SELECT {table} {table}"), None),
                (format!("DELETE {table}"), Some(table)),
            ];
            for (span, (name, collection)) in spans.iter().zip(&expected) {
                assert_statement(span, name, $system);
                assert_eq!(
                    tag(span, "db.collection.name").as_deref(),
                    *collection,
                    "{name}"
                );
                assert!(!span.name().contains("secret"), "{span:?}");
            }
        }

        #[test]
        fn syntax_error_is_an_error_span() {
            let memory = memory();
            let hooks = Hooks::default();
            let table = concat!($qb_table, "_syntax");
            let Some(mut conn) = setup(table, &hooks) else {
                return;
            };
            let (result, trace) = traced("syntax", || {
                diesel::sql_query("SELEKT nothing FROM nowhere").execute(&mut conn)
            });
            assert!(result.is_err());
            let spans = exact_spans(&memory, trace, 2);
            // Text the summary cannot read: named by the database.
            let failed = one(&spans, $system);
            assert_eq!(tag(failed, "db.operation.name").as_deref(), Some("SQL"));
            assert!(failed.is_error());
            assert_eq!(
                tag(failed, "sql.query").as_deref(),
                Some("SELEKT nothing FROM nowhere")
            );
            assert_eq!(tag(failed, "error.type").as_deref(), Some("DatabaseError"));
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].0, "SELEKT nothing FROM nowhere");
        }
    };
}

/// What the `on_error` hooks saw of pool timeouts: (sql, error.type, span recorded).
#[derive(Clone, Default)]
pub struct TypeHooks(Arc<Mutex<Vec<(String, String, bool)>>>);

impl TypeHooks {
    pub fn install(&self, builder: SqlTracerBuilder) -> SqlTracerBuilder {
        let seen = self.0.clone();
        builder.on_error(move |event| {
            seen.lock().unwrap().push((
                event.sql().to_owned(),
                event.error_type().to_owned(),
                event.span().is_some(),
            ));
        })
    }

    pub fn calls(&self) -> Vec<(String, String, bool)> {
        self.0.lock().unwrap().clone()
    }
}

/// The span of a pool that gave up after `timeout`: `acquire connection`, CLIENT, child of
/// `parent`, failed with `PoolTimedOut`, the database's tags, the wait, and a start when the
/// wait started.
pub fn assert_pool_timeout(
    spans: &[Span],
    parent: tomograph::SpanId,
    system: &str,
    timeout: Duration,
) {
    let acquire = one(spans, "acquire connection");
    assert_eq!(acquire.parent_id(), Some(parent), "{acquire:?}");
    assert_eq!(acquire.kind(), Some(Kind::Client));
    assert!(acquire.is_error(), "{acquire:?}");
    assert!(tag(acquire, "error").is_some_and(|e| !e.is_empty()));
    assert_eq!(tag(acquire, "error.type").as_deref(), Some("PoolTimedOut"));
    assert_eq!(tag(acquire, "db.system.name").as_deref(), Some(system));
    assert_eq!(
        acquire.remote_endpoint().map(|e| e.service_name()),
        Some(system)
    );
    let waited = tag(acquire, "db.client.connection.wait_time_us")
        .and_then(|w| w.parse::<u64>().ok())
        .expect("the wait is tagged");
    assert!(
        u128::from(waited) >= timeout.as_micros(),
        "waited {waited} µs, timeout {timeout:?}"
    );
    assert!(
        acquire.duration() >= timeout,
        "the span starts when the wait started: {:?}",
        acquire.duration()
    );
}

/// Each waiter's trace (a root and its `… AS waiter` statement) says how long it waited for
/// a pooled connection, and some waited.
pub fn assert_waiters_waited(memory: &MemoryBackend, traces: impl IntoIterator<Item = TraceId>) {
    let mut waits = Vec::new();
    for trace in traces {
        let spans = exact_spans(memory, trace, 2);
        let root = root(&spans);
        let statement = with_sql(&spans, "AS waiter");
        assert_eq!(statement.len(), 1, "{}", names(&spans));
        assert_eq!(statement[0].parent_id(), Some(root.id()));
        waits.push(wait_of(statement[0]));
    }
    assert!(waits.iter().any(|&w| w > 0), "some waited: {waits:?}");
}

/// The wait tag of a statement span, parsed (panics when it has none).
pub fn wait_of(span: &Span) -> u64 {
    tag(span, "db.client.connection.wait_time_us")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no parseable wait on {span:?}"))
}
