//! Transactions: a `TRANSACTION` span holding `BEGIN`, the statements and `COMMIT` /
//! `ROLLBACK`; failures of `BEGIN` and `COMMIT`; annotation mode.
#![allow(clippy::unwrap_used)]

mod common;

use common::{counting, find, get, has_note, in_trace, names, spans, tag};
use rusqlite::{DropBehavior, TransactionBehavior};
use tomograph::Span;
use tomograph::sql::SqlMode;
use tomograph_rusqlite::{TracedConnection, sql_tracer};

fn db() -> TracedConnection {
    let db = TracedConnection::open_in_memory(sql_tracer().build()).unwrap();
    db.inner()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    db
}

fn rows(db: &TracedConnection) -> i64 {
    db.inner()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// Checks the shape: `expected` statement spans, children of `TRANSACTION`, child of the root.
fn assert_transaction(spans: &[Span], expected: &[&str], outcome: Option<&str>) {
    let transaction = find(spans, "TRANSACTION");
    let root = spans.last().unwrap();
    assert_eq!(transaction.parent_id(), Some(root.id()));
    assert_eq!(
        tag(transaction, "db.system.name").as_deref(),
        Some("sqlite")
    );
    assert_eq!(
        tag(transaction, "db.transaction.outcome").as_deref(),
        outcome
    );
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_id() == Some(transaction.id()))
        .map(Span::name)
        .collect();
    assert_eq!(children, expected);
    let mut expected_order: Vec<&str> = expected.to_vec();
    expected_order.extend(["TRANSACTION", root.name()]);
    assert_eq!(names(spans), expected_order);
}

#[test]
fn commit() {
    let mut db = db();
    let (trace, ()) = in_trace("commit", || {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (?1)", [1]).unwrap();
        let mut stmt = tx.prepare("INSERT INTO t VALUES (?1)").unwrap();
        stmt.execute([2]).unwrap();
        drop(stmt);
        tx.commit().unwrap();
    });
    assert_eq!(rows(&db), 2);
    let spans = spans(trace, 6);
    assert_transaction(
        &spans,
        &["BEGIN", "INSERT t", "INSERT t", "COMMIT"],
        Some("commit"),
    );
    assert_eq!(
        tag(&spans[0], "db.query.text").as_deref(),
        Some("BEGIN DEFERRED")
    );
    let transaction = find(&spans, "TRANSACTION");
    assert_eq!(
        tag(transaction, "db.transaction.behavior").as_deref(),
        Some("deferred")
    );
    assert!(transaction.start() <= spans[0].start() && spans[3].end() <= transaction.end());
}

#[test]
fn rollback_explicit_and_on_drop() {
    let mut db = db();
    let (trace, ()) = in_trace("rollback", || {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.rollback().unwrap();
    });
    assert_eq!(rows(&db), 0);
    let found = spans(trace, 5);
    assert_transaction(&found, &["BEGIN", "INSERT t", "ROLLBACK"], Some("rollback"));

    let (trace, ()) = in_trace("dropped", || {
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
    });
    assert_eq!(rows(&db), 0);
    let spans = spans(trace, 5);
    assert_transaction(&spans, &["BEGIN", "INSERT t", "ROLLBACK"], Some("rollback"));
    assert_eq!(
        tag(&spans[0], "db.query.text").as_deref(),
        Some("BEGIN IMMEDIATE")
    );
}

#[test]
fn drop_behaviors() {
    let mut db = db();
    let (trace, ()) = in_trace("drop commits", || {
        let mut tx = db.transaction().unwrap();
        tx.set_drop_behavior(DropBehavior::Commit);
        assert_eq!(tx.drop_behavior(), DropBehavior::Commit);
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
    });
    assert_eq!(rows(&db), 1);
    assert_transaction(
        &spans(trace, 5),
        &["BEGIN", "INSERT t", "COMMIT"],
        Some("commit"),
    );

    let (trace, ()) = in_trace("ended by hand", || {
        let tx = db.transaction().unwrap();
        tx.execute_batch("INSERT INTO t VALUES (2); COMMIT")
            .unwrap();
        tx.finish().unwrap();
    });
    assert_eq!(rows(&db), 2);
    // No second COMMIT/ROLLBACK: the transaction was already over.
    assert_transaction(&spans(trace, 4), &["BEGIN", "INSERT t"], None);
}

#[test]
fn begin_failure() {
    let (builder, count) = counting(sql_tracer());
    let db = TracedConnection::open_in_memory(builder.build()).unwrap();
    let (trace, ()) = in_trace("nested", || {
        let outer = db.unchecked_transaction().unwrap();
        let error = db.unchecked_transaction().unwrap_err();
        assert!(
            error.to_string().contains("within a transaction"),
            "{error}"
        );
        outer.commit().unwrap();
    });
    assert_eq!(get(&count), 1);
    let spans = spans(trace, 6);
    assert_eq!(
        names(&spans),
        [
            "BEGIN",
            "BEGIN",
            "TRANSACTION",
            "COMMIT",
            "TRANSACTION",
            "nested"
        ]
    );
    let failed: Vec<&Span> = spans.iter().filter(|s| s.is_error()).collect();
    assert_eq!(failed.len(), 2, "the failed BEGIN and its TRANSACTION");
    assert_eq!(failed[0].name(), "BEGIN");
    assert_eq!(failed[1].name(), "TRANSACTION");
    assert_eq!(failed[0].parent_id(), Some(failed[1].id()));
}

#[test]
fn commit_failure_rolls_back() {
    let (builder, count) = counting(sql_tracer());
    let mut db = TracedConnection::open_in_memory(builder.build()).unwrap();
    db.inner()
        .execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
    let (trace, ()) = in_trace("deferred constraint", || {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO child VALUES (99)", []).unwrap();
        let error = tx.commit().unwrap_err();
        assert_eq!(
            tomograph_rusqlite::error_code(&error),
            Some("SQLITE_CONSTRAINT_FOREIGNKEY")
        );
    });
    assert_eq!(get(&count), 1);
    assert!(db.is_autocommit());
    let spans = spans(trace, 6);
    assert_transaction(
        &spans,
        &["BEGIN", "INSERT child", "COMMIT", "ROLLBACK"],
        Some("rollback"),
    );
    let commit = find(&spans, "COMMIT");
    assert!(commit.is_error());
    assert_eq!(
        tag(commit, "db.response.status_code").as_deref(),
        Some("SQLITE_CONSTRAINT_FOREIGNKEY")
    );
    assert!(find(&spans, "TRANSACTION").is_error());
}

#[test]
fn annotation_mode_has_no_transaction_span() {
    let mut db =
        TracedConnection::open_in_memory(sql_tracer().mode(SqlMode::Annotations).build()).unwrap();
    db.inner().execute_batch("CREATE TABLE t (x)").unwrap();
    let (trace, ()) = in_trace("annotated", || {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
    });
    let spans = spans(trace, 1);
    assert_eq!(names(&spans), ["annotated"]);
    for note in ["sql BEGIN done", "sql INSERT done", "sql COMMIT done"] {
        assert!(has_note(&spans[0], note), "{note}: {:?}", spans[0]);
    }
}

#[test]
fn savepoints_are_nested_transactions_with_the_same_schema() {
    let mut db = db();
    let (trace, ()) = in_trace("savepoints", || {
        let mut tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        {
            let mut kept = tx.savepoint().unwrap();
            kept.execute("INSERT INTO t VALUES (2)", []).unwrap();
            {
                let undone = kept.savepoint().unwrap();
                undone.execute("INSERT INTO t VALUES (3)", []).unwrap();
                // dropped: rolled back to its savepoint
            }
            kept.commit().unwrap();
        }
        tx.commit().unwrap();
    });
    assert_eq!(rows(&db), 2);
    // BEGIN, INSERT, SAVEPOINT, INSERT, SAVEPOINT, INSERT, ROLLBACK TO, TRANSACTION (3),
    // RELEASE, TRANSACTION (2), COMMIT, TRANSACTION (1), root
    let spans = spans(trace, 13);
    let at_depth = |depth: &str| {
        let found: Vec<&Span> = spans
            .iter()
            .filter(|s| {
                s.name() == "TRANSACTION"
                    && tag(s, "db.transaction.depth").as_deref() == Some(depth)
            })
            .collect();
        assert_eq!(found.len(), 1, "depth {depth}: {:?}", names(&spans));
        found[0]
    };
    let (outer, kept, undone) = (at_depth("1"), at_depth("2"), at_depth("3"));
    let root = spans.last().unwrap();
    assert_eq!(outer.parent_id(), Some(root.id()));
    assert_eq!(kept.parent_id(), Some(outer.id()));
    assert_eq!(undone.parent_id(), Some(kept.id()));
    for (tx, outcome) in [(outer, "commit"), (kept, "commit"), (undone, "rollback")] {
        // One schema for every transaction and savepoint, in every adapter.
        assert_eq!(tag(tx, "db.system.name").as_deref(), Some("sqlite"));
        assert_eq!(tag(tx, "db.transaction.outcome").as_deref(), Some(outcome));
        assert!(has_note(tx, outcome), "{tx:?}");
        assert!(!tx.is_error());
    }
    assert_eq!(
        tag(outer, "db.transaction.behavior").as_deref(),
        Some("deferred")
    );
    let children = |tx: &Span| -> Vec<String> {
        spans
            .iter()
            .filter(|s| s.parent_id() == Some(tx.id()))
            .map(|s| s.name().to_owned())
            .collect()
    };
    assert_eq!(
        children(outer),
        ["BEGIN", "INSERT t", "TRANSACTION", "COMMIT"]
    );
    assert_eq!(
        children(kept),
        ["SAVEPOINT", "INSERT t", "TRANSACTION", "RELEASE"]
    );
    assert_eq!(children(undone), ["SAVEPOINT", "INSERT t", "ROLLBACK"]);
}

#[test]
fn a_failed_begin_is_a_failed_transaction() {
    let db = db();
    let (trace, ()) = in_trace("failed begin", || {
        let _open = db.unchecked_transaction().unwrap();
        // A second BEGIN on the same connection: "cannot start a transaction within a transaction".
        assert!(db.unchecked_transaction().is_err());
    });
    let spans = spans(trace, 6);
    let failed: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name() == "TRANSACTION" && s.is_error())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", names(&spans));
    assert_eq!(
        tag(failed[0], "db.transaction.outcome").as_deref(),
        Some("failed")
    );
    assert_eq!(
        tag(failed[0], "db.response.status_code").as_deref(),
        Some("SQLITE_ERROR")
    );
    assert_eq!(
        tag(failed[0], "error.type").as_deref(),
        Some("SQLITE_ERROR")
    );
}
