//! Every error path: the span is marked and closed, `on_error` runs once, the caller gets
//! rusqlite's error unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{counting, find, get, has_note, in_trace, memory, names, spans, tag, temp_db};
use rusqlite::{Connection, OpenFlags};
use tomograph::Span;
use tomograph_rusqlite::{TracedConnection, error_code, sql_tracer};

/// A traced connection (with a counting hook) and an untraced twin with the same schema.
fn pair() -> (
    TracedConnection,
    Connection,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let schema =
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER);
                  INSERT INTO users (name, n) VALUES ('ada', -9223372036854775808), ('bob', 1);";
    let (builder, count) = counting(sql_tracer());
    let traced = TracedConnection::open_in_memory(builder.build()).unwrap();
    traced.inner().execute_batch(schema).unwrap();
    let plain = Connection::open_in_memory().unwrap();
    plain.execute_batch(schema).unwrap();
    (traced, plain, count)
}

/// The caller sees the same error as with plain rusqlite.
fn same_error<T: std::fmt::Debug, U: std::fmt::Debug>(
    traced: rusqlite::Result<T>,
    plain: rusqlite::Result<U>,
) -> rusqlite::Error {
    let (traced, plain) = (traced.unwrap_err(), plain.unwrap_err());
    assert_eq!(traced.to_string(), plain.to_string());
    assert_eq!(format!("{traced:?}"), format!("{plain:?}"));
    traced
}

fn assert_failed(span: &Span, name: &str, code: &str) {
    assert_eq!(span.name(), name);
    assert!(span.is_error(), "{span:?}");
    assert!(has_note(span, "error"));
    assert_eq!(
        tag(span, "db.response.status_code").as_deref(),
        Some(code),
        "{span:?}"
    );
}

#[test]
fn syntax_errors_in_execute_and_prepare() {
    let (db, plain, count) = pair();
    let (trace, ()) = in_trace("syntax", || {
        same_error(
            db.execute("SELECT * FORM users", []),
            plain.execute("SELECT * FORM users", []),
        );
        same_error(
            db.prepare("INSERT INTO nowhere VALUES (1)").map(|_| ()),
            plain.prepare("INSERT INTO nowhere VALUES (1)").map(|_| ()),
        );
        same_error(
            db.prepare_cached("DELETE FROM users WHERE").map(|_| ()),
            plain.prepare_cached("DELETE FROM users WHERE").map(|_| ()),
        );
        same_error(
            db.execute_batch("CREATE TABLE ("),
            plain.execute_batch("CREATE TABLE ("),
        );
    });
    assert_eq!(get(&count), 4);
    let spans = spans(trace, 5);
    assert_eq!(
        names(&spans),
        [
            "SELECT",
            "INSERT nowhere",
            "DELETE users",
            "CREATE TABLE",
            "syntax"
        ]
    );
    for span in &spans[..4] {
        assert_failed(span, span.name(), "SQLITE_ERROR");
        assert_eq!(span.parent_id(), Some(spans[4].id()));
    }
    assert!(tag(&spans[0], "error").unwrap().contains("syntax error"));
    assert!(tag(&spans[1], "error").unwrap().contains("no such table"));
}

#[test]
fn constraint_violations() {
    let (db, plain, count) = pair();
    let (trace, ()) = in_trace("constraints", || {
        let sql = "INSERT INTO users (name) VALUES (?1)";
        same_error(db.execute(sql, ["ada"]), plain.execute(sql, ["ada"]));
        let mut stmt = db.prepare(sql).unwrap();
        let mut twin = plain.prepare(sql).unwrap();
        let error = same_error(
            stmt.execute([None::<String>]),
            twin.execute([None::<String>]),
        );
        assert_eq!(error_code(&error), Some("SQLITE_CONSTRAINT_NOTNULL"));
        // The statement stays usable, and traced.
        assert_eq!(stmt.insert(["cy"]).unwrap(), 3);
    });
    assert_eq!(get(&count), 2);
    let spans = spans(trace, 4);
    assert_eq!(
        names(&spans),
        [
            "INSERT users",
            "INSERT users",
            "INSERT users",
            "constraints"
        ]
    );
    assert_failed(&spans[0], "INSERT users", "SQLITE_CONSTRAINT_UNIQUE");
    assert_failed(&spans[1], "INSERT users", "SQLITE_CONSTRAINT_NOTNULL");
    assert!(!spans[2].is_error());
}

#[test]
fn busy_database() {
    let path = temp_db("busy");
    let holder = Connection::open(&path).unwrap();
    holder
        .execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let (builder, count) = counting(sql_tracer());
    let db = TracedConnection::open(&path, builder.build()).unwrap();
    db.busy_timeout(Duration::ZERO).unwrap();
    let (trace, error) = in_trace("busy", || {
        db.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap_err()
    });
    assert_eq!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );
    assert_eq!(get(&count), 1);
    let spans = spans(trace, 2);
    assert_failed(&spans[0], "SELECT t", "SQLITE_BUSY");
    holder.execute_batch("COMMIT").unwrap();
    drop((holder, db));
    let _ = std::fs::remove_file(path);
}

#[test]
fn locked_table_in_a_shared_cache() {
    let uri = format!(
        "file:locked-{}?mode=memory&cache=shared",
        std::process::id()
    );
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI;
    let writer = Connection::open_with_flags(&uri, flags).unwrap();
    writer
        .execute_batch("CREATE TABLE t (x); BEGIN; INSERT INTO t VALUES (1);")
        .unwrap();
    let (builder, count) = counting(sql_tracer());
    let db = TracedConnection::new(
        Connection::open_with_flags(&uri, flags).unwrap(),
        builder.build(),
    );
    let (trace, error) = in_trace("locked", || {
        let mut stmt = db.prepare("SELECT x FROM t").unwrap();
        stmt.exists([]).unwrap_err()
    });
    assert_eq!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseLocked)
    );
    assert_eq!(get(&count), 1);
    let spans = spans(trace, 2);
    assert_failed(&spans[0], "SELECT t", "SQLITE_LOCKED_SHAREDCACHE");
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn error_while_reading_rows_closes_the_span_with_the_rows_read() {
    let (db, plain, count) = pair();
    // abs(i64::MIN) overflows when SQLite reaches that row.
    let sql = "SELECT abs(n) FROM users ORDER BY id DESC";
    let (trace, ()) = in_trace("rows", || {
        let mut stmt = db.prepare(sql).unwrap();
        let mut twin = plain.prepare(sql).unwrap();
        let traced: Vec<rusqlite::Result<i64>> =
            stmt.query_map([], |r| r.get(0)).unwrap().collect();
        let untraced: Vec<rusqlite::Result<i64>> =
            twin.query_map([], |r| r.get(0)).unwrap().collect();
        assert_eq!(format!("{traced:?}"), format!("{untraced:?}"));
        assert_eq!(traced.len(), 2);
        assert!(traced[1].is_err());
    });
    assert_eq!(get(&count), 1);
    let spans = spans(trace, 2);
    assert_failed(&spans[0], "SELECT users", "SQLITE_ERROR");
    assert!(
        tag(&spans[0], "error")
            .unwrap()
            .contains("integer overflow")
    );
    assert_eq!(
        tag(&spans[0], "db.response.returned_rows").as_deref(),
        Some("1")
    );
}

#[test]
fn rusqlite_errors_are_recorded_with_their_name() {
    let (db, plain, count) = pair();
    let (trace, ()) = in_trace("rusqlite", || {
        same_error(db.execute("SELECT ?1", []), plain.execute("SELECT ?1", []));
        same_error(db.execute("SELECT 1", []), plain.execute("SELECT 1", []));
        same_error(
            db.query_one("SELECT name FROM users", [], |r| r.get::<_, String>(0)),
            plain.query_one("SELECT name FROM users", [], |r| r.get::<_, String>(0)),
        );
        same_error(
            db.query_row("SELECT name FROM users", [], |r| r.get::<_, i64>(0)),
            plain.query_row("SELECT name FROM users", [], |r| r.get::<_, i64>(0)),
        );
    });
    assert_eq!(get(&count), 4);
    let spans = spans(trace, 5);
    assert_failed(&spans[0], "SELECT", "InvalidParameterCount");
    assert_failed(&spans[1], "SELECT", "ExecuteReturnedResults");
    assert_failed(&spans[2], "SELECT users", "QueryReturnedMoreThanOneRow");
    assert_failed(&spans[3], "SELECT users", "InvalidColumnType");
}

#[test]
fn no_rows_is_not_a_failure() {
    let (db, plain, count) = pair();
    let sql = "SELECT name FROM users WHERE id = 99";
    let (trace, ()) = in_trace("no rows", || {
        let error = same_error(
            db.query_row(sql, [], |r| r.get::<_, String>(0)),
            plain.query_row(sql, [], |r| r.get::<_, String>(0)),
        );
        assert!(matches!(error, rusqlite::Error::QueryReturnedNoRows));
        let mut stmt = db.prepare(sql).unwrap();
        assert!(stmt.query_row([], |r| r.get::<_, String>(0)).is_err());
        let result: Result<String, rusqlite::Error> = db.query_row_and_then(sql, [], |r| r.get(0));
        assert!(matches!(result, Err(rusqlite::Error::QueryReturnedNoRows)));
    });
    assert_eq!(get(&count), 0);
    let spans = spans(trace, 4);
    for span in &spans[..3] {
        assert!(!span.is_error());
        assert_eq!(tag(span, "db.response.returned_rows").as_deref(), Some("0"));
    }
}

#[test]
fn hooks_run_when_not_tracing_and_may_tag_the_span() {
    memory();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let db = TracedConnection::open_in_memory(
        sql_tracer()
            .on_error(move |event| {
                log.lock()
                    .unwrap()
                    .push((event.sql().to_owned(), event.code().map(str::to_owned)));
                event.tag("app.retry", false);
            })
            .build(),
    )
    .unwrap();
    // No trace in progress: no span, but the hook runs.
    assert!(db.execute("SELECT * FORM t", []).is_err());
    let mut stmt = db.prepare("SELECT ?1").unwrap();
    assert!(stmt.execute([1]).is_err());
    // Switched off inside a trace: the same.
    let (trace, ()) = in_trace("hooks", || {
        db.tracer().set_enabled(false);
        assert!(db.execute("SELECT * FORM t", []).is_err());
        db.tracer().set_enabled(true);
        assert!(stmt.execute([2]).is_err());
    });
    drop(stmt);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                "SELECT * FORM t".to_owned(),
                Some("SQLITE_ERROR".to_owned())
            ),
            (
                "SELECT ?1".to_owned(),
                Some("ExecuteReturnedResults".to_owned())
            ),
            (
                "SELECT * FORM t".to_owned(),
                Some("SQLITE_ERROR".to_owned())
            ),
            (
                "SELECT ?1".to_owned(),
                Some("ExecuteReturnedResults".to_owned())
            ),
        ]
    );
    let spans = spans(trace, 2);
    assert_eq!(names(&spans), ["SELECT", "hooks"]);
    let failed = find(&spans, "SELECT");
    assert_eq!(tag(failed, "app.retry").as_deref(), Some("false"));
}

/// What SQLite says about a failed statement, recorded by default with every quoted literal
/// masked, and as it is with `record_parameters(true)`. SQLite's own messages name columns,
/// not values (`UNIQUE constraint failed: v.name`, `cannot store TEXT value in INTEGER column
/// v.n`), but a CHECK constraint's message quotes the check, literals included.
#[test]
fn error_messages_are_masked_unless_opted_in() {
    let _memory = memory();
    let secret = "s3cr3t-O'Hara";
    for record in [false, true] {
        let db = TracedConnection::open_in_memory(sql_tracer().record_parameters(record).build())
            .unwrap();
        db.inner()
            .execute_batch(
                "CREATE TABLE v (name TEXT UNIQUE CHECK (name <> 'forbidden-literal'), n INTEGER) STRICT",
            )
            .unwrap();
        let insert = "INSERT INTO v (name, n) VALUES (?1, ?2)";
        let (trace, ()) = in_trace("sqlite messages", || {
            db.execute(insert, (secret, 1)).unwrap();
            let unique = db.execute(insert, (secret, 2)).unwrap_err();
            assert_eq!(unique.to_string(), "UNIQUE constraint failed: v.name");
            let check = db.execute(insert, ("forbidden-literal", 3)).unwrap_err();
            assert_eq!(
                check.to_string(),
                "CHECK constraint failed: name <> 'forbidden-literal'"
            );
            let mistyped = db.execute(insert, ("other", secret)).unwrap_err();
            assert_eq!(
                mistyped.to_string(),
                "cannot store TEXT value in INTEGER column v.n"
            );
        });
        let spans = spans(trace, 5);
        let errors: Vec<String> = spans.iter().filter_map(|s| tag(s, "error")).collect();
        let everything = format!("{spans:?}");
        if record {
            assert_eq!(
                errors,
                [
                    "UNIQUE constraint failed: v.name",
                    "CHECK constraint failed: name <> 'forbidden-literal'",
                    "cannot store TEXT value in INTEGER column v.n"
                ]
            );
            assert_eq!(
                tag(&spans[3], "db.query.parameter.1").as_deref(),
                Some("'s3cr3t-O''Hara'")
            );
        } else {
            assert_eq!(
                errors,
                [
                    "UNIQUE constraint failed: v.name",
                    "CHECK constraint failed: name <> ?",
                    "cannot store TEXT value in INTEGER column v.n"
                ]
            );
            assert!(!everything.contains("s3cr3t"), "{everything}");
            assert!(!everything.contains("forbidden"), "{everything}");
        }
    }
}
