//! Shared by the test binaries: running code in a root span of its own, finding spans and
//! tags, recording `on_error` calls, and the suite every database runs ([`suite!`]).
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tomograph::sql::{SqlErrorEvent, SqlTracerBuilder};
use tomograph::{FutureExt, Span, SpanId, TraceId};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `body` inside a new root span `name` (its own trace); returns the trace, the root's
/// id and the output.
pub async fn in_root<F: Future>(name: &'static str, body: F) -> (TraceId, SpanId, F::Output) {
    tomograph::testing::memory_tracer();
    async move {
        let token = tomograph::get_trace_info().expect("the root span is current");
        (token.trace_id(), token.span_id(), body.await)
    }
    .traced_with(tomograph::span(name).root())
    .await
}

/// The spans of `trace` once there are at least `count`.
pub fn spans(trace: TraceId, count: usize) -> Vec<Span> {
    let memory = tomograph::testing::memory_tracer();
    let spans = tomograph::testing::wait_for_trace(&memory, trace, count, TIMEOUT);
    assert!(
        spans.len() >= count,
        "expected {count} spans, got {}: {:?}",
        spans.len(),
        names(&spans)
    );
    spans
}

/// The spans of `trace` after a pause long enough for stragglers (to check that nothing
/// more arrived).
pub fn settled(trace: TraceId, count: usize) -> Vec<Span> {
    spans(trace, count);
    std::thread::sleep(Duration::from_millis(100));
    let memory = tomograph::testing::memory_tracer();
    tomograph::testing::wait_for_trace(&memory, trace, count, TIMEOUT)
}

pub fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(Span::name).collect()
}

/// The only span named `name`.
pub fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {:?}", names(spans));
    found[0]
}

/// The span named `name` whose `sql.query` contains `text`.
pub fn by_sql<'a>(spans: &'a [Span], name: &str, text: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name() == name && tag(s, "sql.query").is_some_and(|q| q.contains(text)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one span {name:?} with {text:?} in {spans:#?}"
    );
    found[0]
}

pub fn tag(span: &Span, key: &str) -> Option<String> {
    span.tag_value(key).map(ToString::to_string)
}

pub fn has_note(span: &Span, note: &str) -> bool {
    span.notes().any(|(_, n)| n == note)
}

/// A table name no other test (here or in another engineer's suite) uses.
pub fn table(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tg_sqlx_{test}_{}_{}_{}",
        std::process::id(),
        nanos % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One `on_error` call.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub sql: String,
    pub code: Option<String>,
    /// `error.type`, as the span carries it.
    pub error_type: String,
    pub error: String,
    pub span: Option<SpanId>,
}

/// Records every `on_error` call of a tracer.
#[derive(Debug, Clone, Default)]
pub struct Hooks(Arc<Mutex<Vec<HookCall>>>);

impl Hooks {
    pub fn install(&self, builder: SqlTracerBuilder) -> SqlTracerBuilder {
        let calls = self.0.clone();
        builder.on_error(move |event: &mut SqlErrorEvent<'_>| {
            event.tag("hook.seen", true);
            calls.lock().unwrap().push(HookCall {
                sql: event.sql().to_owned(),
                code: event.code().map(str::to_owned),
                error_type: event.error_type().to_owned(),
                error: event.error().to_string(),
                span: event.span().map(Span::id),
            });
        })
    }

    pub fn calls(&self) -> Vec<HookCall> {
        self.0.lock().unwrap().clone()
    }
}

/// Host and port of a `scheme://user@host:port/db` URL.
pub fn url_server(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Database name of a `scheme://user@host:port/db` URL.
pub fn url_database(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let db = path.split('?').next()?;
    (!db.is_empty()).then(|| db.to_owned())
}

/// Checks what every statement span carries: kind CLIENT, the database as remote endpoint,
/// and the database's tags.
pub fn assert_db_span(
    span: &Span,
    system: &str,
    server: Option<(&str, u16)>,
    namespace: Option<&str>,
) {
    assert_eq!(span.kind(), Some(tomograph::Kind::Client), "{span:?}");
    let remote = span.remote_endpoint().expect("a remote endpoint");
    assert_eq!(remote.service_name(), system);
    assert_eq!(tag(span, "db.system.name").as_deref(), Some(system));
    // Named by the query summary (`SELECT users`), whose first word is the operation; a
    // statement the summary cannot read is named by the database.
    let operation = tag(span, "db.operation.name").expect("an operation");
    assert!(
        span.name() == system || span.name().split(' ').next() == Some(operation.as_str()),
        "{span:?}"
    );
    assert_eq!(tag(span, "db.query.summary").as_deref(), Some(span.name()));
    match server {
        Some((address, port)) => {
            assert_eq!(tag(span, "server.address").as_deref(), Some(address));
            assert_eq!(tag(span, "server.port"), Some(port.to_string()));
            assert_eq!(remote.port(), Some(port));
        }
        None => assert_eq!(tag(span, "server.address"), None),
    }
    if let Some(namespace) = namespace {
        assert_eq!(tag(span, "db.namespace").as_deref(), Some(namespace));
    }
}

/// The suite every database runs. Parameters: the database type, an expression giving the
/// URL (or `None` to skip), the placeholder for the first and second bind parameters, the
/// expected codes of a unique violation and a syntax error, a URL nothing answers at, and the
/// expected remote address/port and namespace.
#[allow(unused_macros)]
macro_rules! suite {
    (
        db: $db:ty,
        url: $url:expr,
        system: $system:expr,
        placeholders: ($p1:expr, $p2:expr),
        unique_violation: $unique:expr,
        syntax_error: $syntax:expr,
        unreachable: $unreachable:expr,
        server: $server:expr,
        namespace: $namespace:expr $(,)?
    ) => {
        use std::time::Duration;

        use futures_util::{StreamExt, TryStreamExt};
        use sqlx::{AssertSqlSafe, Executor, Row};
        use tomograph::FutureExt;
        use tomograph_sqlx::{TracedPool, tracer_builder};

        use common::*;

        type Db = $db;

        /// The server and database name the spans should carry.
        fn expected() -> (Option<(String, u16)>, Option<String>) {
            let url: Option<String> = $url;
            let url = url.unwrap_or_default();
            let server: fn(&str) -> Option<(String, u16)> = $server;
            let namespace: fn(&str) -> Option<String> = $namespace;
            (server(&url), namespace(&url))
        }

        fn check_db_span(span: &tomograph::Span) {
            let (server, namespace) = expected();
            assert_db_span(
                span,
                $system,
                server.as_ref().map(|(a, p)| (a.as_str(), *p)),
                namespace.as_deref(),
            );
        }

        fn q(sql: String) -> AssertSqlSafe<String> {
            AssertSqlSafe(sql)
        }

        async fn pool(max: u32, hooks: &Hooks) -> Option<TracedPool<Db>> {
            let url: Option<String> = $url;
            let url = url?;
            let pool = sqlx::pool::PoolOptions::<Db>::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&url)
                .await
                .expect("the test database accepts connections");
            let tracer = hooks.install(tracer_builder(&pool)).build();
            Some(TracedPool::with_tracer(pool, tracer))
        }

        /// A table with rows (1, 'a'), (2, 'b'), (3, 'c'), created without tracing.
        async fn fixture(pool: &TracedPool<Db>, test: &str) -> String {
            let t = table(test);
            pool.inner()
                .execute(q(format!(
                    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE)"
                )))
                .await
                .expect("create table");
            pool.inner()
                .execute(q(format!(
                    "INSERT INTO {t} (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')"
                )))
                .await
                .expect("fill table");
            t
        }

        async fn drop_table(pool: &TracedPool<Db>, t: &str) {
            pool.inner()
                .execute(q(format!("DROP TABLE {t}")))
                .await
                .expect("drop table");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_executor_method_is_a_child_span() {
            let memory = tomograph::testing::memory_tracer();
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "methods").await;
            let (p1, p2) = ($p1, $p2);

            let (trace, root, ()) = in_root("methods", async {
                let done = sqlx::query(q(format!(
                    "INSERT INTO {t} (id, name) VALUES (10, 'x'), (11, 'y')"
                )))
                .execute(&pool)
                .await
                .unwrap();
                assert_eq!(done.rows_affected(), 2);
                let all = sqlx::query(q(format!("SELECT id, name FROM {t} ORDER BY name")))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                assert_eq!(all.len(), 5);
                let (id, name): (i64, String) =
                    sqlx::query_as(q(format!("SELECT id, name FROM {t} WHERE id = {p1}")))
                        .bind(2_i64)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                assert_eq!((id, name.as_str()), (2, "b"));
                let count: i64 = sqlx::query_scalar(q(format!(
                    "SELECT COUNT(*) FROM {t} WHERE id > {p1} AND name <> {p2}"
                )))
                .bind(1_i64)
                .bind("zzz")
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(count, 4);
                let none = sqlx::query(q(format!("SELECT id FROM {t} WHERE id = 99")))
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                assert!(none.is_none());
                let streamed: Vec<i64> = sqlx::query_scalar::<Db, i64>(q(format!(
                    "SELECT id FROM {t} WHERE id < 4 ORDER BY id"
                )))
                .fetch(&pool)
                .try_collect()
                .await
                .unwrap();
                assert_eq!(streamed, [1, 2, 3]);
                // The output type of the `query!` macros is `Map`, from `try_map` too.
                let mapped: Vec<String> = sqlx::query(q(format!(
                    "SELECT name FROM {t} WHERE id >= 10 ORDER BY id"
                )))
                .try_map(|row: <Db as sqlx::Database>::Row| row.try_get::<String, _>(0))
                .fetch_all(&pool)
                .await
                .unwrap();
                assert_eq!(mapped, ["x", "y"]);
                let statement = (&pool)
                    .prepare(sqlx::SqlSafeStr::into_sql_str(q(format!(
                        "DELETE FROM {t} WHERE id = {p1}"
                    ))))
                    .await
                    .unwrap();
                let deleted = sqlx::Statement::query(&statement)
                    .bind(11_i64)
                    .execute(&pool)
                    .await
                    .unwrap();
                assert_eq!(deleted.rows_affected(), 1);
                let mut conn = pool.acquire().await.unwrap();
                let updated = sqlx::query(q(format!("UPDATE {t} SET name = 'z' WHERE id = 10")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(updated.rows_affected(), 1);
            })
            .await;

            let spans = spans(trace, 11);
            assert_eq!(spans.len(), 11, "{:?}", names(&spans));
            for span in spans.iter().filter(|s| s.id() != root) {
                assert_eq!(span.parent_id(), Some(root), "{span:?}");
                check_db_span(span);
                assert!(!span.is_error(), "{span:?}");
            }
            let insert = by_sql(&spans, &format!("INSERT {t}"), "'x'");
            assert_eq!(
                tag(insert, "db.response.affected_rows").as_deref(),
                Some("2")
            );
            assert_eq!(tag(insert, "sql.query"), tag(insert, "db.query.text"));
            let select_t = format!("SELECT {t}");
            let all = by_sql(&spans, &select_t, "ORDER BY name");
            assert_eq!(tag(all, "db.response.returned_rows").as_deref(), Some("5"));
            assert_eq!(
                tag(
                    by_sql(&spans, &select_t, &format!("FROM {t} WHERE id = {p1}")),
                    "db.response.returned_rows"
                )
                .as_deref(),
                Some("1")
            );
            assert_eq!(
                tag(
                    by_sql(&spans, &select_t, "COUNT(*)"),
                    "db.response.returned_rows"
                )
                .as_deref(),
                Some("1")
            );
            assert_eq!(
                tag(
                    by_sql(&spans, &select_t, "id = 99"),
                    "db.response.returned_rows"
                )
                .as_deref(),
                Some("0")
            );
            assert_eq!(
                tag(
                    by_sql(&spans, &select_t, "id < 4"),
                    "db.response.returned_rows"
                )
                .as_deref(),
                Some("3")
            );
            assert_eq!(
                tag(
                    by_sql(&spans, &select_t, "id >= 10"),
                    "db.response.returned_rows"
                )
                .as_deref(),
                Some("2")
            );
            let deletes: Vec<_> = spans
                .iter()
                .filter(|s| s.name() == format!("DELETE {t}"))
                .collect();
            assert_eq!(deletes.len(), 2, "prepare and execute");
            let prepare = deletes
                .iter()
                .find(|s| has_note(s, "prepare"))
                .expect("a prepare span");
            assert_eq!(
                tag(prepare, "db.response.returned_rows").as_deref(),
                Some("0")
            );
            let execute = deletes
                .iter()
                .find(|s| !has_note(s, "prepare"))
                .expect("an execute span");
            assert_eq!(
                tag(execute, "db.response.affected_rows").as_deref(),
                Some("1")
            );
            assert_eq!(
                tag(
                    by_sql(&spans, &format!("UPDATE {t}"), "'z'"),
                    "db.response.affected_rows"
                )
                .as_deref(),
                Some("1")
            );
            assert!(hooks.calls().is_empty());
            // Parameters are not recorded by default.
            assert!(
                spans
                    .iter()
                    .all(|s| tag(s, "db.query.parameter.0").is_none())
            );
            let _ = memory;
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statements_are_named_by_their_query_summary() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "summary").await;
            let statements = [
                format!("SELECT name FROM {t} WHERE id = 1"),
                format!("INSERT INTO {t} (id, name) VALUES (50, 'secret-summary')"),
                format!("UPDATE {t} SET name = 'secret-other' WHERE id = 50"),
                format!("DELETE FROM {t} WHERE id = 50 AND name = 'secret-other'"),
                format!(
                    "WITH recent AS (SELECT id FROM {t} WHERE id > 1) SELECT COUNT(*) FROM recent"
                ),
                format!("SELECT a.name FROM {t} a JOIN {t} b ON b.id = a.id WHERE a.name <> 'x'"),
            ];
            let (trace, root, ()) = in_root("summaries", async {
                for sql in &statements {
                    sqlx::query(q(sql.clone())).execute(&pool).await.unwrap();
                }
            })
            .await;
            let spans = spans(trace, statements.len() + 1);
            let expected = [
                (format!("SELECT {t}"), "SELECT", Some(t.as_str())),
                (format!("INSERT {t}"), "INSERT", Some(t.as_str())),
                (format!("UPDATE {t}"), "UPDATE", Some(t.as_str())),
                (format!("DELETE {t}"), "DELETE", Some(t.as_str())),
                // The CTE's name is no table; two operations: no single collection.
                (format!("SELECT {t} SELECT"), "SELECT", None),
                (format!("SELECT {t} {t}"), "SELECT", None),
            ];
            for (sql, (name, operation, collection)) in statements.iter().zip(&expected) {
                let span = by_sql(&spans, name, &sql[sql.len() - 12..]);
                assert_eq!(span.parent_id(), Some(root));
                check_db_span(span);
                assert_eq!(
                    tag(span, "db.query.summary").as_deref(),
                    Some(name.as_str())
                );
                assert_eq!(tag(span, "db.operation.name").as_deref(), Some(*operation));
                assert_eq!(
                    tag(span, "db.collection.name").as_deref(),
                    *collection,
                    "{sql}"
                );
                assert!(
                    !span.name().contains("secret"),
                    "no literal in {:?}",
                    span.name()
                );
            }
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stream_dropped_early_ends_its_span_with_the_rows_so_far() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "stream").await;
            let (trace, root, ()) = in_root("stream", async {
                let mut rows =
                    sqlx::query(q(format!("SELECT id FROM {t} ORDER BY id"))).fetch(&pool);
                let first = rows.next().await.expect("a row").unwrap();
                assert_eq!(first.try_get::<i64, _>(0).unwrap(), 1);
                drop(rows);
                // A stream that is never polled starts no statement.
                let never = sqlx::query(q(format!("SELECT name FROM {t}"))).fetch(&pool);
                drop(never);
            })
            .await;
            let spans = settled(trace, 2);
            let select_t = format!("SELECT {t}");
            assert_eq!(names(&spans), [select_t.as_str(), "stream"]);
            let select = one(&spans, &select_t);
            assert_eq!(select.parent_id(), Some(root));
            assert_eq!(
                tag(select, "db.response.returned_rows").as_deref(),
                Some("1")
            );
            assert!(has_note(select, "dropped"), "{select:?}");
            assert!(!select.is_error());
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_committed_transaction_groups_its_statements() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "commit").await;
            let p1 = $p1;
            let (trace, root, ()) = in_root("commit", async {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(q(format!("INSERT INTO {t} (id, name) VALUES ({p1}, 'tx')")))
                    .bind(20_i64)
                    .execute(&mut tx)
                    .await
                    .unwrap();
                let mut savepoint = tx.begin().await.unwrap();
                sqlx::query(q(format!("UPDATE {t} SET name = 'inner' WHERE id = 20")))
                    .execute(&mut savepoint)
                    .await
                    .unwrap();
                savepoint.commit().await.unwrap();
                let n: i64 = sqlx::query_scalar(q(format!("SELECT COUNT(*) FROM {t}")))
                    .fetch_one(&mut tx)
                    .await
                    .unwrap();
                assert_eq!(n, 4);
                tx.commit().await.unwrap();
            })
            .await;
            let name: String = sqlx::query_scalar(q(format!("SELECT name FROM {t} WHERE id = 20")))
                .fetch_one(pool.inner())
                .await
                .unwrap();
            assert_eq!(name, "inner");

            let spans = spans(trace, 10);
            let transactions: Vec<_> = spans.iter().filter(|s| s.name() == "TRANSACTION").collect();
            assert_eq!(transactions.len(), 2);
            let outer = transactions
                .iter()
                .find(|s| s.parent_id() == Some(root))
                .expect("outer transaction");
            let inner = transactions
                .iter()
                .find(|s| s.parent_id() == Some(outer.id()))
                .expect("savepoint");
            for tx in [outer, inner] {
                assert_eq!(tag(tx, "db.transaction.outcome").as_deref(), Some("commit"));
                assert_eq!(tag(tx, "db.system.name").as_deref(), Some($system));
            }
            let child = |name: &str, text: &str, parent: &tomograph::Span| {
                let span = by_sql(&spans, name, text);
                assert_eq!(span.parent_id(), Some(parent.id()), "{name} {text}");
                check_db_span(span);
            };
            child("BEGIN", "BEGIN", outer);
            child(&format!("INSERT {t}"), "'tx'", outer);
            child(&format!("SELECT {t}"), "COUNT(*)", outer);
            child("COMMIT", "COMMIT", outer);
            child("SAVEPOINT", "SAVEPOINT _sqlx_savepoint_1", inner);
            child(&format!("UPDATE {t}"), "'inner'", inner);
            child("RELEASE", "RELEASE SAVEPOINT _sqlx_savepoint_1", inner);
            // The transaction spans enclose their statements.
            let commit = by_sql(&spans, "COMMIT", "COMMIT");
            assert!(outer.start() <= by_sql(&spans, "BEGIN", "BEGIN").start());
            assert!(commit.end() <= outer.end());
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rolled_back_and_dropped_transactions_show_their_rollback() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "rollback").await;
            let (trace, root, ()) = in_root("rollback", async {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(q(format!("INSERT INTO {t} (id, name) VALUES (30, 'gone')")))
                    .execute(&mut tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let mut conn = pool.acquire().await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                sqlx::query(q(format!(
                    "INSERT INTO {t} (id, name) VALUES (31, 'dropped')"
                )))
                .execute(&mut tx)
                .await
                .unwrap();
                drop(tx);
            })
            .await;
            let n: i64 = sqlx::query_scalar(q(format!("SELECT COUNT(*) FROM {t} WHERE id >= 30")))
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 0);

            let spans = spans(trace, 9);
            let transactions: Vec<_> = spans.iter().filter(|s| s.name() == "TRANSACTION").collect();
            assert_eq!(transactions.len(), 2);
            for tx in &transactions {
                assert_eq!(tx.parent_id(), Some(root));
                assert_eq!(
                    tag(tx, "db.transaction.outcome").as_deref(),
                    Some("rollback")
                );
                let children: Vec<&str> = spans
                    .iter()
                    .filter(|s| s.parent_id() == Some(tx.id()))
                    .map(|s| s.name())
                    .collect();
                assert_eq!(children, ["BEGIN", &format!("INSERT {t}"), "ROLLBACK"]);
            }
            let rollbacks: Vec<_> = spans.iter().filter(|s| s.name() == "ROLLBACK").collect();
            assert_eq!(
                rollbacks
                    .iter()
                    .filter(|s| has_note(s, "queued on drop"))
                    .count(),
                1
            );
            assert!(hooks.calls().is_empty());
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_unique_violation_is_recorded_with_its_code_and_hooked() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let t = fixture(&pool, "unique").await;
            let sql = format!("INSERT INTO {t} (id, name) VALUES (40, 'a')");
            let (trace, root, result) = in_root("unique", async {
                sqlx::query(q(sql.clone())).execute(&pool).await
            })
            .await;
            let error = result.expect_err("a duplicate name");
            assert!(
                error
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()),
                "{error}"
            );

            let spans = spans(trace, 2);
            let insert = one(&spans, &format!("INSERT {t}"));
            assert_eq!(insert.parent_id(), Some(root));
            assert!(insert.is_error());
            assert_eq!(
                tag(insert, "error"),
                Some(tomograph::sql::redact_message(&error.to_string())),
                "the message, quoted values masked"
            );
            assert!(has_note(insert, "error"));
            assert_eq!(
                tag(insert, "db.response.status_code").as_deref(),
                Some($unique)
            );
            assert_eq!(tag(insert, "hook.seen").as_deref(), Some("true"));
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_eq!(calls[0].sql, sql);
            assert_eq!(calls[0].code.as_deref(), Some($unique));
            assert_eq!(calls[0].error_type, "UniqueViolation");
            assert_eq!(
                tag(insert, "error.type").as_deref(),
                Some("UniqueViolation")
            );
            assert_eq!(calls[0].span, Some(insert.id()));
            drop_table(&pool, &t).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_syntax_error_is_recorded_with_its_code_and_hooked() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let (trace, root, result) = in_root("syntax", async {
                let mut conn = pool.acquire().await.unwrap();
                sqlx::query("SELEC 1 FROM nowhere")
                    .fetch_all(&mut conn)
                    .await
            })
            .await;
            let error = result.expect_err("not SQL");
            let spans = spans(trace, 2);
            // Text the summary cannot read: named by the database.
            let span = one(&spans, $system);
            assert_eq!(tag(span, "db.operation.name").as_deref(), Some("SQL"));
            assert_eq!(span.parent_id(), Some(root));
            assert!(span.is_error());
            assert_eq!(
                tag(span, "error"),
                Some(tomograph::sql::redact_message(&error.to_string())),
                "the message, quoted values masked"
            );
            assert_eq!(
                tag(span, "db.response.status_code").as_deref(),
                Some($syntax)
            );
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_eq!(calls[0].sql, "SELEC 1 FROM nowhere");
            assert_eq!(calls[0].code.as_deref(), Some($syntax));
            // No finer class than the code: `error.type` is the code.
            assert_eq!(calls[0].error_type, $syntax);
            assert_eq!(tag(span, "error.type").as_deref(), Some($syntax));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statements_waiting_for_a_pooled_connection_say_how_long() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let (trace, root, ()) = in_root("pool of 2", async {
                let tasks: Vec<_> = (0..20)
                    .map(|n| {
                        let pool = pool.clone();
                        tokio::spawn(
                            async move {
                                let sql = format!("SELECT {n} AS waiting_task");
                                sqlx::query(q(sql)).fetch_one(&pool).await.map(|_| ())
                            }
                            .in_current_trace(),
                        )
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap().unwrap();
                }
            })
            .await;
            let spans = spans(trace, 21);
            let statements: Vec<&tomograph::Span> =
                spans.iter().filter(|s| s.id() != root).collect();
            assert_eq!(statements.len(), 20);
            for span in statements {
                assert_eq!(span.parent_id(), Some(root));
                let wait = tag(span, "db.client.connection.wait_time_us");
                assert!(
                    wait.as_deref()
                        .and_then(|w| w.parse::<u64>().ok())
                        .is_some(),
                    "every pooled statement says how long it waited: {span:?}"
                );
            }
            assert!(hooks.calls().is_empty());
        }

        /// `execute`, `fetch_all` and `fetch` through the pool acquire inside the traced
        /// statement too: 20 tasks on a pool of 2, every statement tagged with its wait.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn execute_fetch_all_and_fetch_through_the_pool_say_how_long_they_waited() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };
            let (trace, root, ()) = in_root("pool of 2, every method", async {
                let tasks: Vec<_> = (0..20)
                    .map(|n| {
                        let pool = pool.clone();
                        tokio::spawn(
                            async move {
                                let sql = format!("SELECT {n} AS waiting_task");
                                match n % 3 {
                                    0 => sqlx::query(q(sql)).execute(&pool).await.map(|_| ()),
                                    1 => sqlx::query(q(sql))
                                        .fetch_all(&pool)
                                        .await
                                        .map(|rows| assert_eq!(rows.len(), 1)),
                                    _ => sqlx::query(q(sql))
                                        .fetch(&pool)
                                        .try_collect::<Vec<_>>()
                                        .await
                                        .map(|rows| assert_eq!(rows.len(), 1)),
                                }
                            }
                            .in_current_trace(),
                        )
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap().unwrap();
                }
            })
            .await;
            let spans = spans(trace, 21);
            let statements: Vec<&tomograph::Span> =
                spans.iter().filter(|s| s.id() != root).collect();
            assert_eq!(statements.len(), 20, "{:?}", names(&spans));
            let mut waits = Vec::new();
            for span in statements {
                assert_eq!(span.parent_id(), Some(root));
                let wait = tag(span, "db.client.connection.wait_time_us")
                    .and_then(|w| w.parse::<u64>().ok());
                waits.push(wait.unwrap_or_else(|| {
                    panic!("every pooled statement says how long it waited: {span:?}")
                }));
            }
            assert!(waits.iter().any(|&w| w > 0), "some waited: {waits:?}");
            assert!(hooks.calls().is_empty());
            assert_eq!(pool.pending(), 0);
        }

        /// A statement that timed out waiting for the only connection of a traced pool (held
        /// meanwhile), under a root: what it returned, its one span, the root and the pool.
        struct TimedOut {
            error: sqlx::Error,
            select: tomograph::Span,
            root: tomograph::SpanId,
            hooks: Hooks,
            pool: TracedPool<Db>,
        }

        /// Runs `statement` on a pool of one connection, held, whose acquires give up after
        /// 300 ms; checks that it failed with `PoolTimedOut`.
        async fn timed_out<T>(
            url: &str,
            root: &'static str,
            statement: impl AsyncFnOnce(&TracedPool<Db>) -> Result<T, sqlx::Error>,
        ) -> TimedOut {
            let hooks = Hooks::default();
            let pool = sqlx::pool::PoolOptions::<Db>::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(300))
                .connect(url)
                .await
                .unwrap();
            let pool =
                TracedPool::with_tracer(pool.clone(), hooks.install(tracer_builder(&pool)).build());
            let (trace, root, result) = in_root(root, async {
                let _busy = pool.acquire().await.unwrap();
                statement(&pool).await
            })
            .await;
            let Err(error) = result else {
                panic!("the only connection is taken")
            };
            assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
            let spans = spans(trace, 2);
            let select = one(&spans, "SELECT").clone();
            TimedOut {
                error,
                select,
                root,
                hooks,
                pool,
            }
        }

        /// A pool timeout on `execute` (the pooled `fetch_many`) fails the statement with
        /// `PoolTimedOut`, its wait tagged, the hook called once.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_pool_timeout_fails_an_execute() {
            let url: Option<String> = $url;
            let Some(url) = url else { return };
            let TimedOut {
                select,
                root,
                hooks,
                pool,
                ..
            } = timed_out(&url, "timeout on execute", async |pool| {
                sqlx::query("SELECT 2").execute(pool).await
            })
            .await;
            let select = &select;
            assert_eq!(select.parent_id(), Some(root));
            assert!(select.is_error());
            assert_eq!(tag(select, "error.type").as_deref(), Some("PoolTimedOut"));
            let wait = tag(select, "db.client.connection.wait_time_us")
                .and_then(|w| w.parse::<u64>().ok())
                .expect("the wait is tagged");
            assert!(wait >= 300_000, "waited the timeout: {wait} µs");
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].error_type, "PoolTimedOut");
            assert_eq!(calls[0].sql, "SELECT 2");
            assert_eq!(pool.pending(), 0);
        }

        /// The pool's `pending` gauge counts the statements waiting for a connection through
        /// the wrapper and its clones, traced or not.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_pending_gauge_counts_statements_waiting_for_a_connection() {
            let hooks = Hooks::default();
            let Some(pool) = pool(1, &hooks).await else {
                return;
            };
            let _gauges = pool.watch_gauges("pending");
            let held = pool.acquire().await.unwrap();
            assert_eq!(pool.pending(), 0);
            let tasks: Vec<_> = (0..3)
                .map(|n| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let sql = format!("SELECT {n} AS pending_task");
                        if n == 0 {
                            // Traced: inside a trace of its own.
                            in_root("pending", async {
                                sqlx::query(q(sql)).execute(&pool).await.map(|_| ())
                            })
                            .await
                            .2
                        } else {
                            // Outside any trace: the untraced path counts too.
                            sqlx::query(q(sql)).fetch_one(&pool).await.map(|_| ())
                        }
                    })
                })
                .collect();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while pool.pending() < 3 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "pending stays at {}",
                    pool.pending()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(pool.pending(), 3);
            // What the gauges report (`watch_gauges` reads `pool_state`).
            let state = pool.pool_state();
            assert_eq!((state.used(), state.pending()), (1, Some(3)));
            drop(held);
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            assert_eq!(pool.pending(), 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_pool_timeout_fails_the_statement() {
            let url: Option<String> = $url;
            let Some(url) = url else { return };
            let TimedOut {
                error,
                select,
                root,
                hooks,
                ..
            } = timed_out(&url, "timeout", async |pool| {
                sqlx::query("SELECT 1").fetch_one(pool).await
            })
            .await;
            let select = &select;
            assert_eq!(select.parent_id(), Some(root));
            assert_eq!(
                tag(select, "error"),
                Some(tomograph::sql::redact_message(&error.to_string())),
                "the message, quoted values masked"
            );
            assert_eq!(tag(select, "db.response.status_code"), None);
            // A pool timeout has its own class, and the statement's wait is recorded.
            assert_eq!(tag(select, "error.type").as_deref(), Some("PoolTimedOut"));
            assert!(
                tag(select, "db.client.connection.wait_time_us")
                    .and_then(|w| w.parse::<u64>().ok())
                    .is_some(),
                "{select:?}"
            );
            let calls = hooks.calls();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].error_type, "PoolTimedOut");
            assert_eq!(
                (calls[0].sql.as_str(), calls[0].code.as_deref()),
                ("SELECT 1", None)
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_unreachable_database_fails_the_statement() {
            let Some(_) = pool(1, &Hooks::default()).await else {
                return;
            };
            let unreachable: &str = $unreachable;
            let hooks = Hooks::default();
            let pool = sqlx::pool::PoolOptions::<Db>::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy(unreachable)
                .unwrap();
            let expected_server = tomograph_sqlx::tracer_builder(&pool).build();
            let pool =
                TracedPool::with_tracer(pool.clone(), hooks.install(tracer_builder(&pool)).build());
            let (trace, root, result) = in_root("unreachable", async {
                sqlx::query("SELECT 1").fetch_all(&pool).await
            })
            .await;
            let error = result.expect_err("nothing listens there");
            let spans = spans(trace, 2);
            let select = one(&spans, "SELECT");
            assert_eq!(select.parent_id(), Some(root));
            assert_eq!(
                tag(select, "error"),
                Some(tomograph::sql::redact_message(&error.to_string())),
                "the message, quoted values masked"
            );
            assert_eq!(
                select.remote_endpoint(),
                Some(expected_server.remote_endpoint())
            );
            assert_eq!(hooks.calls().len(), 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_tasks_sharing_a_pool_of_five_each_get_their_own_spans() {
            let hooks = Hooks::default();
            let Some(pool) = pool(5, &hooks).await else {
                return;
            };
            const TASKS: usize = 200;
            let (trace, root, tasks) = in_root("concurrent", async {
                let mut handles = Vec::new();
                for i in 0..TASKS {
                    let pool = pool.clone();
                    handles.push(tokio::spawn(
                        async move {
                            let me = tomograph::get_trace_info()
                                .expect("the task's span")
                                .span_id();
                            tokio::task::yield_now().await;
                            sqlx::query(q(format!("SELECT {i} AS task")))
                                .fetch_one(&pool)
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis((i % 3) as u64)).await;
                            let mut conn = pool.acquire().await.unwrap();
                            sqlx::query(q(format!("SELECT {i} AS again")))
                                .fetch_all(&mut conn)
                                .await
                                .unwrap();
                            (i, me)
                        }
                        .traced_with(tomograph::span(format!("task {i}"))),
                    ));
                }
                let mut tasks = Vec::new();
                for handle in handles {
                    tasks.push(handle.await.unwrap());
                }
                tasks
            })
            .await;
            let spans = spans(trace, 1 + 3 * TASKS);
            assert_eq!(spans.len(), 1 + 3 * TASKS);
            for (i, task) in tasks {
                let task_span = spans
                    .iter()
                    .find(|s| s.id() == task)
                    .expect("the task's span");
                assert_eq!(task_span.name(), format!("task {i}"));
                assert_eq!(task_span.parent_id(), Some(root));
                for text in [
                    format!("SELECT {i} AS task"),
                    format!("SELECT {i} AS again"),
                ] {
                    let span = spans
                        .iter()
                        .find(|s| tag(s, "sql.query").as_deref() == Some(text.as_str()))
                        .expect("the statement's span");
                    assert_eq!(span.parent_id(), Some(task), "{text}");
                }
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statements_follow_manual_spans_traced_fns_and_spawned_tasks() {
            let hooks = Hooks::default();
            let Some(pool) = pool(2, &hooks).await else {
                return;
            };

            // What `#[traced]` expands to: the body in a future traced by the fn's name.
            async fn load(pool: &TracedPool<Db>) -> usize {
                async {
                    tokio::task::yield_now().await;
                    sqlx::query("SELECT 'in load'")
                        .fetch_all(pool)
                        .await
                        .unwrap()
                        .len()
                }
                .traced("load")
                .await
            }

            let (trace, root, ()) = in_root("context", async {
                {
                    let _manual = tomograph::span("manual").start();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    sqlx::query("SELECT 'in manual'")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                }
                assert_eq!(load(&pool).await, 1);
                let spawned = pool.clone();
                tokio::spawn(
                    async move {
                        tokio::task::yield_now().await;
                        sqlx::query("SELECT 'in spawned'")
                            .execute(&spawned)
                            .await
                            .unwrap();
                    }
                    .in_current_trace(),
                )
                .await
                .unwrap();
                // A stream is a child of where it was made, wherever it is polled.
                let rows = {
                    let _maker = tomograph::span("maker").start();
                    sqlx::query("SELECT 'made'").fetch(&pool)
                };
                let _poller = tomograph::span("poller").start();
                let n = rows.count().await;
                assert_eq!(n, 1);
            })
            .await;
            let spans = spans(trace, 9);
            let parent = |text: &str| {
                let span = by_sql(&spans, "SELECT", text);
                let parent = span.parent_id().expect("a parent");
                spans
                    .iter()
                    .find(|s| s.id() == parent)
                    .map_or("?", |s| s.name())
            };
            assert_eq!(parent("in manual"), "manual");
            assert_eq!(parent("in load"), "load");
            assert_eq!(parent("in spawned"), "context");
            assert_eq!(parent("made"), "maker");
            assert_eq!(one(&spans, "load").parent_id(), Some(root));
            assert_eq!(tomograph::stack_depth(), 0);
        }
    };
}
