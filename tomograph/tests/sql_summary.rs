//! The query summary never carries a literal: generated statements in every dialect, with
//! literals that look like SQL (quotes, comments, keywords, table names) in every place a
//! value can go.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tomograph::sql::{Dialect, MAX_SUMMARY_LEN, summarize};

/// Every literal's content carries this marker; no name or keyword does.
const MARK: &str = "zq";

/// Text inside a literal: the marker among words that would fool a naive scanner.
fn content() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(" FROM ".to_owned()),
        Just(" JOIN users ".to_owned()),
        Just("; DELETE FROM t".to_owned()),
        Just("-- ".to_owned()),
        Just("/* ".to_owned()),
        Just("*/".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(",".to_owned()),
        Just("\"".to_owned()),
        Just("`".to_owned()),
        Just("[".to_owned()),
        "[a-z]{1,6}",
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|pieces| {
        let mut s = String::from(MARK);
        for p in pieces {
            s.push_str(&p);
            s.push_str(MARK);
        }
        s
    })
}

/// A literal as `dialect` writes one, quotes escaped as it requires.
fn literal(dialect: Dialect) -> impl Strategy<Value = String> {
    (content(), 0..6u8).prop_map(move |(c, form)| match (dialect, form) {
        (_, 0) => format!("'{}'", c.replace('\'', "''")),
        (_, 1) => format!("{}4{}", 1, 2),
        (Dialect::Postgres, 2) => format!("$q${c}$q$"),
        (Dialect::Postgres, 3) => format!("E'{}'", c.replace('\\', "\\\\").replace('\'', "\\'")),
        (Dialect::MySql { .. }, 2) => {
            format!("\"{}\"", c.replace('\\', "\\\\").replace('"', "\\\""))
        }
        (Dialect::MySql { .. }, 3) => format!("'{}'", c.replace('\\', "\\\\").replace('\'', "\\'")),
        (_, 4) => format!("X'{}'", "0a1b"),
        _ => format!("'{}'", c.replace('\'', "''")),
    })
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::Postgres),
        Just(Dialect::MYSQL),
        Just(Dialect::Sqlite),
        Just(Dialect::Standard),
    ]
}

fn table() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("users".to_owned()),
        Just("audit.events".to_owned()),
        Just("orders".to_owned()),
        Just("t".to_owned()),
    ]
}

/// A statement with literals `a`, `b`, `c` in value positions.
fn statement(tables: (String, String), values: (String, String, String), shape: u8) -> String {
    let ((t1, t2), (a, b, c)) = (tables, values);
    match shape {
        0 => format!("SELECT * FROM {t1} WHERE name = {a} AND id IN ({b}, {c})"),
        1 => format!("INSERT INTO {t1} (a, b) VALUES ({a}, {b}), ({c}, 1)"),
        2 => format!("UPDATE {t1} SET note = {a} WHERE id = {b} -- {c}"),
        3 => format!("DELETE FROM {t1} WHERE note LIKE {a} OR tag = {b}"),
        4 => format!(
            "WITH recent AS (SELECT * FROM {t1} WHERE at > {a}) SELECT r.id, {b} FROM recent r JOIN {t2} o ON o.id = r.id WHERE o.x = {c}"
        ),
        5 => format!(
            "INSERT INTO {t2} SELECT {a}, id FROM {t1} WHERE y = {b} AND z = {c} /* done */"
        ),
        _ => format!("SELECT {a} AS x, ({b}) FROM {t1}, {t2} WHERE z = {c}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_literal_ever_appears_in_a_summary(
        (dialect, tables, values, shape) in dialect().prop_flat_map(|d| (
            Just(d),
            (table(), table()),
            (literal(d), literal(d), literal(d)),
            0..7u8,
        ))
    ) {
        let sql = statement(tables.clone(), values, shape);
        let summary = summarize(&sql, dialect).expect("every shape has an operation");
        let text = summary.text();
        prop_assert!(!text.contains(MARK), "{text:?} from {sql:?}");
        prop_assert!(!text.contains("0a1b") && !text.contains("42"), "{text:?} from {sql:?}");
        prop_assert!(text.len() <= MAX_SUMMARY_LEN);
        prop_assert!(text.contains(tables.0.as_str()), "{text:?} from {sql:?}");
        if let Some(collection) = summary.collection() {
            prop_assert!(!collection.contains(MARK));
        }
    }

    #[test]
    fn unquoted_noise_around_a_literal_keeps_it_out(
        noise in "[a-zA-Z0-9 ,()*=<>.]{0,80}",
        lit in content(),
        dialect in dialect(),
    ) {
        let sql = format!("SELECT {noise} FROM t WHERE a = '{}'", lit.replace('\'', "''"));
        if let Some(summary) = summarize(&sql, dialect) {
            prop_assert!(summary.text().len() <= MAX_SUMMARY_LEN);
            if !noise.contains(MARK) {
                prop_assert!(!summary.text().contains(MARK), "{:?} from {sql:?}", summary.text());
            }
        }
    }
}
