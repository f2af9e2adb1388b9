//! Every policy of `tomograph::sql`, through a traced sqlx pool (SQLite in memory).
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tomograph::sql::{QueryText, SqlMode, SqlTracerBuilder};
use tomograph_sqlx::{TracedPool, tracer_builder};

async fn pool(
    configure: impl FnOnce(SqlTracerBuilder) -> SqlTracerBuilder,
) -> TracedPool<sqlx::Sqlite> {
    tomograph::testing::memory_tracer();
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let tracer = configure(tracer_builder(&pool)).build();
    TracedPool::with_tracer(pool, tracer)
}

/// Every span recorded so far whose `sql.query` contains `marker` (after a flush).
fn spans_with(marker: &str) -> Vec<tomograph::Span> {
    tomograph::flush(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    tomograph::testing::memory_tracer()
        .spans()
        .into_iter()
        .filter(|s| tag(s, "sql.query").is_some_and(|q| q.contains(marker)))
        .collect()
}

#[tokio::test]
async fn normalized_text_hides_literals_and_the_cap_cuts_long_statements() {
    let pool = pool(|b| b.query_text(QueryText::Normalized).max_query_len(40)).await;
    let (trace, _, ()) = in_root("normalized", async {
        sqlx::query("SELECT 'secret' AS a, 42 AS b, 'another secret' AS c, 3.5 AS d")
            .fetch_all(&pool)
            .await
            .unwrap();
    })
    .await;
    let normalized = spans(trace, 2);
    let select = one(&normalized, "SELECT");
    let text = tag(select, "sql.query").unwrap();
    assert_eq!(text, "SELECT ? AS a, ? AS b, ? AS c, ? AS d");
    assert!(!text.contains("secret"));

    let (trace, _, ()) = in_root("capped", async {
        sqlx::query("SELECT 1 AS one, 2 AS two, 3 AS three, 4 AS four, 5 AS five")
            .fetch_all(&pool)
            .await
            .unwrap();
    })
    .await;
    let capped = spans(trace, 2);
    let text = tag(one(&capped, "SELECT"), "db.query.text").unwrap();
    assert_eq!(text, "SELECT ? AS one, ? AS two, ? AS three, ?…");
}

#[tokio::test]
async fn text_off_keeps_only_the_operation() {
    let pool = pool(|b| b.query_text(QueryText::Off)).await;
    let (trace, _, ()) = in_root("off", async {
        sqlx::query("SELECT 'hidden'")
            .fetch_all(&pool)
            .await
            .unwrap();
    })
    .await;
    let spans = spans(trace, 2);
    let select = one(&spans, "SELECT");
    assert_eq!(tag(select, "sql.query"), None);
    assert_eq!(tag(select, "db.query.text"), None);
    assert_eq!(tag(select, "db.operation.name").as_deref(), Some("SELECT"));
}

#[tokio::test]
async fn parameters_are_recorded_only_when_opted_in() {
    let pool = pool(|b| b.record_parameters(true)).await;
    let (trace, _, ()) = in_root("parameters", async {
        sqlx::query("SELECT ?1, ?2")
            .bind(4242_i64)
            .bind("hello")
            .fetch_all(&pool)
            .await
            .unwrap();
        // No arguments: nothing to record.
        sqlx::query("SELECT 'plain'")
            .fetch_all(&pool)
            .await
            .unwrap();
    })
    .await;
    let spans = spans(trace, 3);
    let bound = by_sql(&spans, "SELECT", "?1, ?2");
    // One tag per value, as SQL literals.
    assert_eq!(tag(bound, "db.query.parameter.0").as_deref(), Some("4242"));
    assert_eq!(
        tag(bound, "db.query.parameter.1").as_deref(),
        Some("'hello'")
    );
    assert_eq!(tag(bound, "db.query.parameter.2"), None);
    assert_eq!(
        tag(by_sql(&spans, "SELECT", "'plain'"), "db.query.parameter.0"),
        None
    );
}

#[tokio::test]
async fn annotation_mode_writes_notes_on_the_current_span() {
    let hooks = Hooks::default();
    let pool = pool(|b| hooks.install(b.mode(SqlMode::Annotations))).await;
    let (trace, root, ()) = in_root("annotations", async {
        sqlx::query("SELECT 1").fetch_all(&pool).await.unwrap();
        sqlx::query("SELEC 2").fetch_all(&pool).await.unwrap_err();
        let tx = pool.begin().await.unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    let spans = settled(trace, 1);
    assert_eq!(names(&spans), ["annotations"]);
    let span = &spans[0];
    assert_eq!(span.id(), root);
    let notes: Vec<&str> = span.notes().map(|(_, n)| n).collect();
    for note in [
        "sql SELECT",
        "sql SELECT done",
        "sql SQL",
        "sql SQL error",
        "sql BEGIN",
        "sql COMMIT done",
    ] {
        assert!(notes.contains(&note), "{note} in {notes:?}");
    }
    assert_eq!(tag(span, "db.response.status_code").as_deref(), Some("1"));
    assert_eq!(hooks.calls().len(), 1);
}

#[tokio::test]
async fn statements_outside_a_trace_are_roots_only_with_trace_roots() {
    let quiet = pool(|b| b).await;
    sqlx::query("SELECT 'untraced marker 7c1'")
        .fetch_all(&quiet)
        .await
        .unwrap();
    let mut conn = quiet.acquire().await.unwrap();
    sqlx::query("SELECT 'untraced marker 7c1'")
        .fetch_all(&mut conn)
        .await
        .unwrap();

    let roots = pool(|b| b.trace_roots(true)).await;
    sqlx::query("SELECT 'root marker 7c1'")
        .fetch_all(&roots)
        .await
        .unwrap();
    let tx = roots.begin().await.unwrap();
    tx.rollback().await.unwrap();

    let root_spans = spans_with("root marker 7c1");
    assert_eq!(root_spans.len(), 1);
    assert_eq!(root_spans[0].parent_id(), None);
    assert!(spans_with("untraced marker 7c1").is_empty());
    // The transaction outside a trace is a root too, with its statements under it.
    let all = tomograph::testing::memory_tracer().spans();
    let rollback = all.iter().find(|s| {
        s.name() == "ROLLBACK"
            && s.parent_id().is_some_and(|p| {
                all.iter()
                    .any(|t| t.id() == p && t.name() == "TRANSACTION" && t.parent_id().is_none())
            })
    });
    assert!(rollback.is_some());
}

#[tokio::test]
async fn switched_off_nothing_is_recorded_but_hooks_still_run() {
    let hooks = Hooks::default();
    let pool = pool(|b| hooks.install(b)).await;
    pool.tracer().set_enabled(false);
    let (trace, _, ()) = in_root("switched", async {
        sqlx::query("SELECT 'while off'")
            .fetch_all(&pool)
            .await
            .unwrap();
        sqlx::query("SELEC 'while off'")
            .fetch_all(&pool)
            .await
            .unwrap_err();
        pool.tracer().set_enabled(true);
        sqlx::query("SELECT 'back on'")
            .fetch_all(&pool)
            .await
            .unwrap();
    })
    .await;
    let spans = settled(trace, 2);
    assert_eq!(names(&spans), ["SELECT", "switched"]);
    assert_eq!(
        tag(&spans[0], "sql.query").as_deref(),
        Some("SELECT 'back on'")
    );
    let calls = hooks.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].sql, "SELEC 'while off'");
    assert_eq!(calls[0].span, None);
}

#[tokio::test]
async fn an_unsampled_trace_records_no_statement() {
    let pool = pool(|b| b).await;
    let token = tomograph::TraceToken::new(
        tomograph::TraceId::random(false),
        tomograph::SpanId::random(),
        false,
    );
    let rows = tomograph::FutureExt::in_trace(
        async {
            sqlx::query("SELECT 'unsampled marker 9d2'")
                .fetch_all(&pool)
                .await
                .unwrap()
                .len()
        },
        token,
    )
    .await;
    assert_eq!(rows, 1);
    assert!(spans_with("unsampled marker 9d2").is_empty());
}

#[tokio::test]
async fn error_messages_are_masked_unless_opted_in() {
    for record in [false, true] {
        let pool = pool(|b| b.record_parameters(record)).await;
        let (trace, _, ()) = in_root("messages", async {
            sqlx::query("CREATE TABLE m (name TEXT CHECK (name <> 'forbidden-literal'))")
                .execute(&pool)
                .await
                .unwrap();
            let error = sqlx::query("INSERT INTO m VALUES (?1)")
                .bind("forbidden-literal")
                .execute(&pool)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("'forbidden-literal'"), "{error}");
        })
        .await;
        let spans = spans(trace, 3);
        let insert = one(&spans, "INSERT m");
        let error = tag(insert, "error").unwrap();
        assert_eq!(tag(insert, "error.type").as_deref(), Some("CheckViolation"));
        if record {
            assert!(
                error.ends_with("CHECK constraint failed: name <> 'forbidden-literal'"),
                "{error}"
            );
            assert_eq!(
                tag(insert, "db.query.parameter.0").as_deref(),
                Some("'forbidden-literal'")
            );
        } else {
            assert!(
                error.ends_with("CHECK constraint failed: name <> ?"),
                "{error}"
            );
            // (The CREATE's text has the literal: text is recorded as written.)
            assert!(!format!("{insert:?}").contains("forbidden"), "{insert:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_names_its_statements_itself() {
    let pool = pool(|b| b).await;
    let (trace, _, ()) = in_root("named", async {
        let named = tomograph::sql::summarized(
            "load cart",
            sqlx::query_scalar::<_, i64>("SELECT 6 * 7").fetch_one(&pool),
        );
        assert_eq!(named.await.unwrap(), 42);
        let plain: i64 = sqlx::query_scalar("SELECT 7 * 6")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(plain, 42);
    })
    .await;
    let spans = spans(trace, 3);
    let named = one(&spans, "load cart");
    assert_eq!(tag(named, "db.query.summary").as_deref(), Some("load cart"));
    assert_eq!(tag(named, "db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(tag(named, "sql.query").as_deref(), Some("SELECT 6 * 7"));
    let plain = by_sql(&spans, "SELECT", "7 * 6");
    assert_eq!(tag(plain, "db.query.summary").as_deref(), Some("SELECT"));
}
