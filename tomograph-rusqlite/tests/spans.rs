//! Statement spans: names, tags, parentage, the text policy, parameters, annotation mode.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{find, has_note, in_trace, memory, names, spans, tag, temp_db};
use tomograph::sql::{QueryText, SqlMode};
use tomograph::{FutureExt, Kind, Span};
use tomograph_rusqlite::{TracedConnection, sql_tracer};

fn db() -> TracedConnection {
    let db = TracedConnection::open_in_memory(sql_tracer().build()).unwrap();
    db.inner()
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    db
}

/// `name`: the query summary (`INSERT users`), whose first word is the operation.
fn assert_statement(span: &Span, parent: &Span, name: &str, text: &str) {
    let operation = name.split(' ').next().unwrap_or(name);
    assert_eq!(span.name(), name);
    assert_eq!(tag(span, "db.query.summary").as_deref(), Some(name));
    assert_eq!(span.kind(), Some(Kind::Client));
    assert_eq!(span.parent_id(), Some(parent.id()));
    assert_eq!(span.trace_id(), parent.trace_id());
    assert_eq!(span.remote_endpoint().unwrap().service_name(), "sqlite");
    assert_eq!(tag(span, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(tag(span, "db.operation.name").as_deref(), Some(operation));
    assert_eq!(tag(span, "sql.query").as_deref(), Some(text));
    assert_eq!(tag(span, "db.query.text").as_deref(), Some(text));
    assert!(!span.is_error());
    assert!(
        span.tags()
            .iter()
            .all(|t| !t.key.starts_with("db.query.parameter")),
        "parameters are off by default"
    );
}

#[test]
fn connection_statements_are_children_of_the_current_span() {
    let db = TracedConnection::open_in_memory(sql_tracer().build()).unwrap();
    let (trace, name) = in_trace("connection", || {
        db.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .unwrap();
        assert_eq!(
            db.execute("INSERT INTO users (name) VALUES (?1)", ["secret-ada"])
                .unwrap(),
            1
        );
        db.query_row("SELECT name FROM users WHERE id = ?1", [1], |r| {
            r.get::<_, String>(0)
        })
        .unwrap()
    });
    assert_eq!(name, "secret-ada");
    let spans = spans(trace, 4);
    assert_eq!(
        names(&spans),
        [
            "CREATE TABLE users",
            "INSERT users",
            "SELECT users",
            "connection"
        ]
    );
    let root = &spans[3];
    assert_statement(
        &spans[0],
        root,
        "CREATE TABLE users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    );
    assert_statement(
        &spans[1],
        root,
        "INSERT users",
        "INSERT INTO users (name) VALUES (?1)",
    );
    assert_eq!(
        tag(&spans[1], "db.response.affected_rows").as_deref(),
        Some("1")
    );
    assert_statement(
        &spans[2],
        root,
        "SELECT users",
        "SELECT name FROM users WHERE id = ?1",
    );
    assert_eq!(
        tag(&spans[2], "db.response.returned_rows").as_deref(),
        Some("1")
    );
    // Bound values appear nowhere.
    for span in &spans {
        for t in span.tags() {
            assert!(!t.value.to_string().contains("secret"), "{t:?}");
        }
    }
}

#[test]
fn on_file_database_with_namespace() {
    let path = temp_db("spans");
    let db = TracedConnection::open(&path, sql_tracer().namespace("main").build()).unwrap();
    let (trace, count) = in_trace("file", || {
        db.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2)")
            .unwrap();
        let one: i64 = db
            .query_one("SELECT count(*) FROM t WHERE x = 1", [], |r| r.get(0))
            .unwrap();
        let changed = db.execute("UPDATE t SET x = x + 10", []).unwrap();
        (one, changed)
    });
    assert_eq!(count, (1, 2));
    let spans = spans(trace, 4);
    assert_eq!(
        names(&spans),
        ["CREATE TABLE t", "SELECT t", "UPDATE t", "file"]
    );
    assert_eq!(tag(&spans[1], "db.namespace").as_deref(), Some("main"));
    assert_eq!(
        tag(&spans[2], "db.response.affected_rows").as_deref(),
        Some("2")
    );
    assert!(
        spans[..3]
            .iter()
            .all(|s| s.parent_id() == Some(spans[3].id()))
    );
    drop(db);
    let _ = std::fs::remove_file(path);
}

#[test]
fn statements_are_children_of_the_innermost_manual_span() {
    let db = db();
    let (trace, ()) = in_trace("outer", || {
        db.execute("INSERT INTO users (name) VALUES ('a')", [])
            .unwrap();
        let inner = tomograph::span("inner").start();
        db.execute("DELETE FROM users", []).unwrap();
        drop(inner);
    });
    let spans = spans(trace, 4);
    assert_eq!(
        names(&spans),
        ["INSERT users", "DELETE users", "inner", "outer"]
    );
    let (inner, outer) = (find(&spans, "inner"), find(&spans, "outer"));
    assert_eq!(find(&spans, "INSERT users").parent_id(), Some(outer.id()));
    assert_eq!(find(&spans, "DELETE users").parent_id(), Some(inner.id()));
    assert_eq!(inner.parent_id(), Some(outer.id()));
}

#[test]
fn statements_in_traced_futures_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (trace, ()) = in_trace("request", || {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                runtime.spawn(
                    async move {
                        let db = db();
                        db.execute("INSERT INTO users (name) VALUES (?1)", [i])
                            .unwrap();
                        tokio::task::yield_now().await;
                        db.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
                            .unwrap();
                    }
                    .traced(format!("task {i}")),
                )
            })
            .collect();
        runtime.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    let spans = spans(trace, 13);
    let root = find(&spans, "request");
    for i in 0..4 {
        let task = find(&spans, &format!("task {i}"));
        assert_eq!(task.parent_id(), Some(root.id()));
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_id() == Some(task.id()))
            .map(Span::name)
            .collect();
        assert_eq!(children, ["INSERT users", "SELECT users"], "task {i}");
    }
}

#[test]
fn prepared_and_cached_statements() {
    let db = db();
    let (trace, ()) = in_trace("prepared", || {
        let mut insert = db.prepare("INSERT INTO users (name) VALUES (?1)").unwrap();
        for name in ["a", "b", "c"] {
            insert.execute([name]).unwrap();
        }
        assert_eq!(insert.insert(["d"]).unwrap(), 4);
        assert_eq!(insert.sql(), "INSERT INTO users (name) VALUES (?1)");
        drop(insert);

        let mut select = db.prepare("SELECT name FROM users ORDER BY id").unwrap();
        let all: Vec<String> = select
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, ["a", "b", "c", "d"]);
        // Dropped after one row: the span ends with the rows read.
        let mut rows = select.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        drop(rows);
        let upper: Vec<String> = select
            .query_and_then([], |r| r.get::<_, String>(0).map(|s| s.to_uppercase()))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(upper, ["A", "B", "C", "D"]);
        drop(select);

        for _ in 0..2 {
            let mut cached = db
                .prepare_cached("SELECT count(*) FROM users WHERE name = ?1")
                .unwrap();
            assert!(cached.exists(["a"]).unwrap());
        }
    });
    let spans = spans(trace, 10);
    assert_eq!(
        names(&spans),
        [
            "INSERT users",
            "INSERT users",
            "INSERT users",
            "INSERT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "prepared"
        ]
    );
    let rows: Vec<Option<String>> = spans[4..7]
        .iter()
        .map(|s| tag(s, "db.response.returned_rows"))
        .collect();
    assert_eq!(rows, [Some("4".into()), Some("1".into()), Some("4".into())]);
    for span in &spans[7..9] {
        assert_eq!(
            tag(span, "db.query.text").as_deref(),
            Some("SELECT count(*) FROM users WHERE name = ?1")
        );
    }
    assert!(
        spans[..9]
            .iter()
            .all(|s| s.parent_id() == Some(spans[9].id()))
    );
}

/// Spans whose text contains `marker`, among everything the test binary reported.
fn spans_with(marker: &str) -> Vec<Span> {
    let _ = tomograph::flush(std::time::Duration::from_secs(5));
    memory()
        .spans()
        .into_iter()
        .filter(|s| tag(s, "db.query.text").is_some_and(|t| t.contains(marker)))
        .collect()
}

#[test]
fn no_spans_outside_a_trace_unless_trace_roots() {
    memory();
    let db = db();
    assert!(!db.tracer().would_trace());
    db.execute(
        "INSERT INTO users (name) VALUES ('x') -- marker-outside",
        [],
    )
    .unwrap();
    let mut stmt = db.prepare("SELECT 1 -- marker-outside-prepared").unwrap();
    stmt.query_row([], |r| r.get::<_, i64>(0)).unwrap();
    assert!(spans_with("marker-outside").is_empty());

    let roots = TracedConnection::open_in_memory(sql_tracer().trace_roots(true).build()).unwrap();
    roots
        .query_row("SELECT 2 -- marker-roots", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let found = spans_with("marker-roots");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].parent_id(), None);
    assert_eq!(found[0].name(), "SELECT");
}

#[test]
fn run_time_switch() {
    let db = db();
    let (trace, ()) = in_trace("switch", || {
        db.tracer().set_enabled(false);
        assert!(!db.tracer().would_trace());
        db.execute("INSERT INTO users (name) VALUES ('off')", [])
            .unwrap();
        db.tracer().set_enabled(true);
        db.execute("DELETE FROM users", []).unwrap();
    });
    let spans = spans(trace, 2);
    assert_eq!(names(&spans), ["DELETE users", "switch"]);
}

#[test]
fn literal_masking_length_cap_and_no_text() {
    let masked =
        TracedConnection::open_in_memory(sql_tracer().query_text(QueryText::Normalized).build())
            .unwrap();
    let capped = TracedConnection::open_in_memory(sql_tracer().max_query_len(24).build()).unwrap();
    let off =
        TracedConnection::open_in_memory(sql_tracer().query_text(QueryText::Off).build()).unwrap();
    let (trace, ()) = in_trace("policies", || {
        masked
            .query_row("SELECT 'password-123' = 'x', 4242 AS  answer", [], |r| {
                r.get::<_, bool>(0)
            })
            .unwrap();
        capped
            .query_row(
                "SELECT 1 AS a_rather_long_column_name_that_goes_past_the_cap",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        off.query_row("SELECT 'hidden'", [], |r| r.get::<_, String>(0))
            .unwrap();
    });
    let spans = spans(trace, 4);
    assert_eq!(
        tag(&spans[0], "db.query.text").as_deref(),
        Some("SELECT ? = ?, ? AS answer")
    );
    let cut = tag(&spans[1], "db.query.text").unwrap();
    assert_eq!(cut, "SELECT 1 AS a_rather_lon…");
    assert_eq!(spans[2].name(), "SELECT");
    assert_eq!(tag(&spans[2], "db.query.text"), None);
    assert_eq!(tag(&spans[2], "sql.query"), None);
}

#[test]
fn parameters_only_when_opted_in() {
    let db =
        TracedConnection::open_in_memory(sql_tracer().record_parameters(true).build()).unwrap();
    db.inner()
        .execute_batch("CREATE TABLE t (a, b, c)")
        .unwrap();
    let (trace, ()) = in_trace("parameters", || {
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            (42, "O'Brien", None::<i64>),
        )
        .unwrap();
        let mut stmt = db.prepare("SELECT a FROM t WHERE b = :name").unwrap();
        stmt.query_row(rusqlite::named_params! {":name": "O'Brien"}, |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
        let mut rows = stmt
            .query(rusqlite::named_params! {":name": "nobody"})
            .unwrap();
        assert!(rows.next().unwrap().is_none());
        drop(rows);
        db.query_row("SELECT length(?1)", ["x".repeat(300)], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    });
    let spans = spans(trace, 5);
    // One tag per value, `db.query.parameter.<0-based index or name>`, as SQLite writes it.
    let params: Vec<Vec<(String, String)>> = spans[..4]
        .iter()
        .map(|s| {
            s.tags()
                .iter()
                .filter_map(|t| {
                    let key = t.key.strip_prefix("db.query.parameter.")?;
                    Some((key.to_owned(), t.value.to_string()))
                })
                .collect()
        })
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        params[0],
        pairs(&[("0", "42"), ("1", "'O''Brien'"), ("2", "NULL")])
    );
    assert_eq!(params[1], pairs(&[("name", "'O''Brien'")]));
    assert_eq!(params[2], pairs(&[("name", "'nobody'")]));
    assert_eq!(params[3].len(), 1);
    let long = &params[3][0].1;
    assert!(long.starts_with("'xxxx") && long.ends_with('…'), "{long}");
    assert!(long.len() <= tomograph::sql::MAX_PARAMETER_LEN + '…'.len_utf8());
}

#[test]
fn annotation_mode_notes_the_current_span() {
    let db =
        TracedConnection::open_in_memory(sql_tracer().mode(SqlMode::Annotations).build()).unwrap();
    let (trace, ()) = in_trace("annotated", || {
        db.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let mut stmt = db.prepare("SELECT 2").unwrap();
        stmt.query_row([], |r| r.get::<_, i64>(0)).unwrap();
    });
    let spans = spans(trace, 1);
    assert_eq!(names(&spans), ["annotated"]);
    let root = &spans[0];
    assert!(has_note(root, "sql SELECT"));
    assert!(has_note(root, "sql SELECT done"));
    assert_eq!(
        root.notes()
            .filter(|(_, v)| *v == "sql SELECT done")
            .count(),
        2
    );
    let texts: Vec<String> = root
        .tags()
        .iter()
        .filter(|t| &*t.key == "sql.query")
        .map(|t| t.value.to_string())
        .collect();
    assert_eq!(texts, ["SELECT 1", "SELECT 2"]);
}

/// In annotation mode the statement's notes are on the current span, and an `on_error` hook
/// runs with that span to tag: what the hook itself traces (a span, a note — a log line
/// through the bridges) is recorded too, and its tag lands on the span.
#[test]
fn annotation_mode_hooks_may_trace() {
    let tracer = sql_tracer()
        .mode(SqlMode::Annotations)
        .on_error(|event| {
            let _alert = tomograph::span("alert").start();
            tomograph::annotate("alerted");
            event.tag("alert.sent", true);
        })
        .build();
    let db = TracedConnection::open_in_memory(tracer).unwrap();
    let (trace, ()) = in_trace("annotated", || {
        db.query_row("SELECT * FROM missing", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
    });
    let spans = spans(trace, 2);
    let root = find(&spans, "annotated");
    let alert = find(&spans, "alert");
    assert_eq!(alert.parent_id(), Some(root.id()));
    assert!(has_note(alert, "alerted"));
    assert!(has_note(root, "sql SELECT error"));
    assert_eq!(tag(root, "alert.sent").as_deref(), Some("true"));
    assert!(tag(root, "error").is_some_and(|e| e.contains("no such table")));
}

/// A hook that panics is caught and logged: the statement fails as it would have, the hooks
/// after it still run, a seed span the hook left open is closed as the panic left it, and the
/// request's own seed span is not taken for one (it ends as the request says, unmarked).
#[test]
fn a_panicking_hook_leaves_the_statement_and_the_request_alone() {
    for mode in [SqlMode::Spans, SqlMode::Annotations] {
        let later = Arc::new(AtomicUsize::new(0));
        let seen = later.clone();
        let tracer = sql_tracer()
            .mode(mode)
            .on_error(|_| {
                tomograph::start("hooks", "hook work", "", 0);
                panic!("the hook failed");
            })
            .on_error(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            })
            .build();
        let db = TracedConnection::open_in_memory(tracer).unwrap();
        memory();
        tomograph::start("svc", "request", "", 0);
        let trace = tomograph::get_trace_info().unwrap().trace_id();
        let error = db
            .query_row("SELECT * FROM missing", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(error.to_string().contains("no such table"), "{error}");
        assert_eq!(
            later.load(Ordering::SeqCst),
            1,
            "{mode:?}: the next hook ran"
        );
        tomograph::start("svc", "after", "", 0);
        tomograph::stop("after").unwrap();
        tomograph::stop("request").unwrap();
        assert_eq!(tomograph::stack_depth(), 0);

        let expected = if mode == SqlMode::Spans { 4 } else { 3 };
        let spans = spans(trace, expected);
        assert_eq!(spans.len(), expected, "{mode:?}: {:?}", names(&spans));
        let (request, after, hook) = (
            find(&spans, "request"),
            find(&spans, "after"),
            find(&spans, "hook work"),
        );
        // Not closed as left by the panic (in annotation mode it carries the statement's
        // error, as its notes do).
        assert_ne!(
            tag(request, "error").as_deref(),
            Some("panicked"),
            "{mode:?}"
        );
        assert_eq!(after.parent_id(), Some(request.id()));
        assert_eq!(tag(hook, "error").as_deref(), Some("panicked"));
        if mode == SqlMode::Spans {
            assert_eq!(tag(request, "error"), None);
            let statement = find(&spans, "SELECT missing");
            assert!(tag(statement, "error").is_some_and(|e| e.contains("no such table")));
        } else {
            assert!(has_note(request, "sql SELECT error"));
        }
    }
}

#[tomograph::traced]
fn load_user(db: &TracedConnection, id: i64) -> rusqlite::Result<String> {
    db.query_row("SELECT name FROM users WHERE id = ?1", [id], |r| r.get(0))
}

#[tomograph::traced]
async fn count_users(db: &TracedConnection) -> rusqlite::Result<i64> {
    tokio::task::yield_now().await;
    db.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
}

#[test]
fn statements_inside_traced_functions() {
    let db = db();
    db.inner()
        .execute("INSERT INTO users (name) VALUES ('ada')", [])
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (trace, ()) = in_trace("traced functions", || {
        assert_eq!(load_user(&db, 1).unwrap(), "ada");
        // A failing statement fails the function's span too (it returns the `Err`).
        assert!(load_user(&db, 2).is_err());
        assert_eq!(runtime.block_on(count_users(&db)).unwrap(), 1);
    });
    let spans = spans(trace, 7);
    assert_eq!(
        names(&spans),
        [
            "SELECT users",
            "load_user",
            "SELECT users",
            "load_user",
            "SELECT users",
            "count_users",
            "traced functions"
        ]
    );
    let root = &spans[6];
    for pair in [0, 2, 4] {
        assert_eq!(spans[pair].parent_id(), Some(spans[pair + 1].id()));
        assert_eq!(spans[pair + 1].parent_id(), Some(root.id()));
    }
    // No rows is not a failed statement; the function's `Err` is the function's.
    assert!(!spans[2].is_error());
    assert!(spans[3].is_error());
}
