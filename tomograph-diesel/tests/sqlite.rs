//! SQLite: the shared scenarios, RETURNING, savepoints, and every policy of tomograph::sql.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use tomograph::sql::{QueryText, SqlMode};

fn connect() -> Option<(SqliteConnection, String)> {
    let url = ":memory:".to_owned();
    Some((SqliteConnection::establish(&url).expect("sqlite"), url))
}

backend_scenarios! {
    conn: SqliteConnection,
    connect: connect,
    system: "sqlite",
    ddl: |t| format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)"),
    qb_table: "tg_diesel_sqlite_qb",
}

/// A connection with a table `t (id, name unique)`, traced by `build(builder)`.
fn conn_with(
    configure: impl FnOnce(tomograph::sql::SqlTracerBuilder) -> tomograph::sql::SqlTracerBuilder,
    diesel_options: impl FnOnce(DieselTracer) -> DieselTracer,
) -> (SqliteConnection, DieselTracer) {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .execute(&mut conn)
        .unwrap();
    let tracer = diesel_options(DieselTracer::new(
        configure(tomograph_diesel::builder_for_url(":memory:")).build(),
    ));
    tracer.instrument(&mut conn);
    (conn, tracer)
}

diesel::table! {
    t (id) {
        id -> Integer,
        name -> Text,
    }
}

#[test]
fn insert_returning() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b, |d| d);
    let (id, trace) = traced("returning", || {
        diesel::insert_into(t::table)
            .values(t::name.eq("x"))
            .returning(t::id)
            .get_result::<i32>(&mut conn)
            .unwrap()
    });
    assert_eq!(id, 1);
    let spans = exact_spans(&memory, trace, 2);
    let insert = one(&spans, "INSERT t");
    assert_statement(insert, "INSERT t", "sqlite");
    assert!(tag(insert, "sql.query").unwrap().contains("RETURNING"));
    assert!(
        has_note(insert, "statement cached"),
        "first run of a prepared statement"
    );
}

#[test]
fn repeated_statement_is_cached_once() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b, |d| d);
    let (_, trace) = traced("cache", || {
        for _ in 0..2 {
            t::table.select(t::id).load::<i32>(&mut conn).unwrap();
        }
    });
    let spans = exact_spans(&memory, trace, 3);
    let selects: Vec<_> = spans.iter().filter(|s| s.name() == "SELECT t").collect();
    assert_eq!(selects.len(), 2);
    assert_eq!(
        selects
            .iter()
            .filter(|s| has_note(s, "statement cached"))
            .count(),
        1
    );
}

#[test]
fn nested_transaction_is_a_savepoint_span_inside_the_transaction() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b, |d| d);
    let (_, trace) = traced("nested", || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::insert_into(t::table)
                .values(t::name.eq("outer"))
                .execute(conn)?;
            let inner = conn.transaction::<(), _, _>(|conn| {
                diesel::insert_into(t::table)
                    .values(t::name.eq("inner"))
                    .execute(conn)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(inner.is_err());
            Ok(())
        })
        .unwrap();
    });
    // BEGIN, INSERT, SAVEPOINT, INSERT, ROLLBACK TO, TRANSACTION (depth 2), COMMIT, TRANSACTION, root
    let spans = exact_spans(&memory, trace, 9);
    let depth = |d: &str| {
        let found: Vec<_> = spans
            .iter()
            .filter(|s| {
                s.name() == "TRANSACTION" && tag(s, "db.transaction.depth").as_deref() == Some(d)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one TRANSACTION at depth {d}: {}",
            names(&spans)
        );
        found[0]
    };
    let (tx, sp) = (depth("1"), depth("2"));
    assert_eq!(sp.parent_id(), Some(tx.id()));
    assert_eq!(tag(sp, "db.transaction.depth").as_deref(), Some("2"));
    assert_eq!(
        tag(sp, "db.transaction.outcome").as_deref(),
        Some("rollback")
    );
    assert_eq!(tag(tx, "db.transaction.outcome").as_deref(), Some("commit"));
    assert_eq!(one(&spans, "SAVEPOINT").parent_id(), Some(sp.id()));
    assert_eq!(one(&spans, "ROLLBACK").parent_id(), Some(sp.id()));
    assert_eq!(one(&spans, "COMMIT").parent_id(), Some(tx.id()));
    let inserts: Vec<_> = spans.iter().filter(|s| s.name() == "INSERT t").collect();
    assert_eq!(inserts.len(), 2);
    assert!(inserts.iter().any(|s| s.parent_id() == Some(tx.id())));
    assert!(inserts.iter().any(|s| s.parent_id() == Some(sp.id())));
}

#[test]
fn statements_under_a_span_opened_in_a_transaction_are_its_children() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b, |d| d);
    let (_, trace) = traced("inner span", || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let _step = tomograph::span("step").start();
            diesel::insert_into(t::table)
                .values(t::name.eq("a"))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();
    });
    let spans = exact_spans(&memory, trace, 6);
    let step = one(&spans, "step");
    assert_eq!(one(&spans, "INSERT t").parent_id(), Some(step.id()));
    assert_eq!(
        one(&spans, "COMMIT").parent_id(),
        Some(one(&spans, "TRANSACTION").id())
    );
}

#[test]
fn transaction_spans_can_be_switched_off() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b, |d| d.trace_transactions(false));
    let (_, trace) = traced("no tx spans", || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::insert_into(t::table)
                .values(t::name.eq("a"))
                .execute(conn)
        })
        .unwrap();
    });
    let spans = exact_spans(&memory, trace, 4);
    let root = root(&spans);
    assert!(spans.iter().all(|s| s.name() != "TRANSACTION"));
    for name in ["BEGIN", "INSERT t", "COMMIT"] {
        assert_eq!(one(&spans, name).parent_id(), Some(root.id()));
    }
}

#[test]
fn normalized_text_has_no_literals() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b.query_text(QueryText::Normalized), |d| d);
    let (_, trace) = traced("normalized", || {
        diesel::sql_query("INSERT INTO t (id, name) VALUES (7, 'hidden')")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 2);
    let insert = one(&spans, "INSERT t");
    assert_eq!(
        tag(insert, "sql.query").as_deref(),
        Some("INSERT INTO t (id, name) VALUES (?, ?)")
    );
}

#[test]
fn text_off_keeps_only_the_operation() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b.query_text(QueryText::Off), |d| d);
    let (_, trace) = traced("off", || {
        diesel::sql_query("DELETE FROM t WHERE name = 'x'")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 2);
    let delete = one(&spans, "DELETE t");
    assert_eq!(tag(delete, "sql.query"), None);
    assert_eq!(tag(delete, "db.query.text"), None);
    assert_eq!(tag(delete, "db.operation.name").as_deref(), Some("DELETE"));
}

#[test]
fn long_text_is_capped() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b.max_query_len(20), |d| d);
    let (_, trace) = traced("cap", || {
        diesel::sql_query("SELECT id, name FROM t WHERE id > 0 ORDER BY name")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 2);
    assert_eq!(
        tag(one(&spans, "SELECT t"), "sql.query").as_deref(),
        Some("SELECT id, name FROM…")
    );
}

#[test]
fn parameters_only_when_opted_in() {
    let memory = memory();
    for record in [false, true] {
        let (mut conn, _) = conn_with(|b| b.record_parameters(record), |d| d);
        let (_, trace) = traced("params", || {
            diesel::insert_into(t::table)
                .values((t::id.eq(5), t::name.eq("bound-value")))
                .execute(&mut conn)
                .unwrap();
        });
        let spans = exact_spans(&memory, trace, 2);
        let insert = one(&spans, "INSERT t");
        let text = tag(insert, "sql.query").unwrap();
        assert!(
            !text.contains("binds") && !text.contains("bound-value"),
            "{text}"
        );
        match record {
            false => assert_eq!(tag(insert, "db.query.parameter.0"), None),
            true => {
                // One tag per value, as diesel's debug list shows it.
                assert_eq!(tag(insert, "db.query.parameter.0").as_deref(), Some("5"));
                assert_eq!(
                    tag(insert, "db.query.parameter.1").as_deref(),
                    Some("\"bound-value\"")
                );
                assert_eq!(tag(insert, "db.query.parameter.2"), None);
            }
        }
    }
}

#[test]
fn annotation_mode_puts_notes_on_the_current_span() {
    let memory = memory();
    let hooks = Hooks::default();
    let (mut conn, _) = conn_with(|b| hooks.install(b.mode(SqlMode::Annotations)), |d| d);
    let (_, trace) = traced("notes", || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::insert_into(t::table)
                .values(t::name.eq("a"))
                .execute(conn)
        })
        .unwrap();
        assert!(diesel::sql_query("SELEKT").execute(&mut conn).is_err());
    });
    let spans = exact_spans(&memory, trace, 1);
    let root = &spans[0];
    for note in [
        "sql BEGIN",
        "sql BEGIN done",
        "sql INSERT",
        "sql INSERT done",
        "sql COMMIT done",
        "sql SQL error",
    ] {
        assert!(has_note(root, note), "{note}: {:?}", root.annotations());
    }
    assert!(root.is_error());
    assert_eq!(hooks.calls().len(), 1);
}

#[test]
fn switched_off_at_run_time_traces_nothing_but_still_calls_hooks() {
    let memory = memory();
    let hooks = Hooks::default();
    let (mut conn, tracer) = conn_with(|b| hooks.install(b), |d| d);
    tracer.sql().set_enabled(false);
    let (_, trace) = traced("off at run time", || {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::insert_into(t::table)
                .values(t::name.eq("a"))
                .execute(conn)
        })
        .unwrap();
        assert!(
            diesel::insert_into(t::table)
                .values(t::name.eq("a"))
                .execute(&mut conn)
                .is_err()
        );
    });
    let calls = hooks.calls();
    assert_eq!(calls.len(), 1);
    assert!(!calls[0].3, "no span while off");
    tracer.sql().set_enabled(true);
    let (_, trace_on) = traced("on again", || {
        t::table.select(t::id).load::<i32>(&mut conn).unwrap();
    });
    exact_spans(&memory, trace_on, 2);
    exact_spans(&memory, trace, 1);
}

#[test]
fn outside_a_trace_nothing_is_traced_but_failures_reach_the_hooks() {
    let memory = memory();
    let hooks = Hooks::default();
    let (mut conn, _) = conn_with(|b| hooks.install(b), |d| d);
    let before = memory.spans().len();
    t::table.select(t::id).load::<i32>(&mut conn).unwrap();
    assert!(diesel::sql_query("SELEKT 1").execute(&mut conn).is_err());
    assert_eq!(hooks.calls().len(), 1);
    assert_eq!(hooks.calls()[0].0, "SELEKT 1");
    tomograph::flush(std::time::Duration::from_secs(5)).unwrap();
    assert!(
        memory.spans()[before..]
            .iter()
            .all(|s| s.tag_value("db.system.name").is_none() || s.parent_id().is_some()),
        "no root statement spans"
    );
}

#[test]
fn trace_roots_makes_each_statement_its_own_trace() {
    let memory = memory();
    let (mut conn, _) = conn_with(|b| b.trace_roots(true).namespace("roots-test"), |d| d);
    diesel::sql_query("SELECT 'roots' AS x")
        .execute(&mut conn)
        .unwrap();
    let found = memory.wait_for(std::time::Duration::from_secs(5), |spans| {
        spans
            .iter()
            .any(|s| tag(s, "db.namespace").as_deref() == Some("roots-test"))
    });
    let span = found
        .iter()
        .find(|s| tag(s, "db.namespace").as_deref() == Some("roots-test"))
        .unwrap();
    assert_eq!(span.parent_id(), None);
    assert_eq!(span.name(), "SELECT");
}

#[test]
fn health_checks_are_skipped_unless_asked_for() {
    let memory = memory();
    for trace_checks in [false, true] {
        let (mut conn, _) = conn_with(|b| b, |d| d.trace_health_checks(trace_checks));
        let (_, trace) = traced("health", || {
            diesel::sql_query("SELECT 1").execute(&mut conn).unwrap();
            diesel::sql_query("SELECT 2").execute(&mut conn).unwrap();
        });
        let expected = if trace_checks { 3 } else { 2 };
        let spans = exact_spans(&memory, trace, expected);
        assert_eq!(
            with_sql(&spans, "SELECT 1").len(),
            usize::from(trace_checks)
        );
    }
}

#[test]
fn hooks_run_once_per_failure_in_order() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (first, second) = (order.clone(), order.clone());
    let (mut conn, _) = conn_with(
        move |b| {
            b.on_error(move |_| first.lock().unwrap().push("first"))
                .on_error(move |_| second.lock().unwrap().push("second"))
        },
        |d| d,
    );
    let _ = traced("order", || {
        for _ in 0..3 {
            assert!(diesel::sql_query("SELEKT").execute(&mut conn).is_err());
        }
    });
    assert_eq!(*order.lock().unwrap(), ["first", "second"].repeat(3));
}

#[test]
fn failed_commit_and_the_rollback_after_it_stay_in_the_transaction() {
    let memory = memory();
    let hooks = Hooks::default();
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(&mut conn)
    .unwrap();
    DieselTracer::new(
        hooks
            .install(tomograph_diesel::builder_for_url(":memory:"))
            .build(),
    )
    .instrument(&mut conn);
    let (result, trace) = traced("failed commit", || {
        let result = conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("INSERT INTO child (id, parent_id) VALUES (1, 42)").execute(conn)
        });
        diesel::sql_query("SELECT 'after'")
            .execute(&mut conn)
            .unwrap();
        result
    });
    assert!(result.is_err(), "the deferred foreign key fails the COMMIT");
    // BEGIN, INSERT, COMMIT (failed), ROLLBACK, transaction, SELECT, root
    let spans = exact_spans(&memory, trace, 7);
    let tx = one(&spans, "TRANSACTION");
    assert!(tx.is_error());
    assert_eq!(
        tag(tx, "db.transaction.outcome").as_deref(),
        Some("rollback")
    );
    let commit = one(&spans, "COMMIT");
    assert!(commit.is_error());
    assert_eq!(commit.parent_id(), Some(tx.id()));
    assert_eq!(one(&spans, "ROLLBACK").parent_id(), Some(tx.id()));
    assert_eq!(one(&spans, "SELECT").parent_id(), Some(root(&spans).id()));
    assert_eq!(hooks.calls().len(), 1);
    assert_eq!(hooks.calls()[0].0, "COMMIT");
}
