//! `normalize` against statements full of random literals, one property per dialect: no
//! literal survives, neither byte for byte nor as any substring of 6 or more characters.
//!
//! Literal contents are drawn from quotes, backslashes, dollar signs, comment starts, white
//! space, unicode and upper-case letters; the statements around them use only lower-case
//! words, `=`, `?`, `$1`, parentheses and commas, so any 6-character piece of a literal found
//! in the output can only be a leak.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tomograph::sql::{Dialect, normalize};

fn content() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\''),
            Just('"'),
            Just('\\'),
            Just('$'),
            Just('`'),
            Just('['),
            Just(']'),
            Just('-'),
            Just('*'),
            Just('/'),
            Just('#'),
            Just(' '),
            Just('\n'),
            Just('é'),
            Just('🙂'),
            Just('Q'),
            Just('Z'),
            Just('X'),
            Just('K'),
            Just('W'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A literal as written in the statement, and the text it holds.
#[derive(Debug, Clone)]
struct Literal {
    written: String,
    value: String,
}

fn lit(written: String, value: String) -> Literal {
    Literal { written, value }
}

fn hex() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 3..12)
        .prop_map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect())
}

fn number() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (100u64..u64::MAX).prop_map(|n| n.to_string()),
        (100u32..u32::MAX, 100u32..u32::MAX).prop_map(|(a, b)| format!("{a}.{b}")),
        (100u32..u32::MAX, 0u8..30).prop_map(|(a, e)| format!("{a}e-{e}")),
    ]
    .prop_map(|n| lit(n.clone(), n))
}

fn boolean() -> impl Strategy<Value = Literal> {
    prop_oneof![Just("TRUE"), Just("FALSE")].prop_map(|b| lit(b.to_owned(), b.to_owned()))
}

/// `value` with `quote` doubled.
fn doubled(value: &str, quote: char) -> String {
    value.replace(quote, &format!("{quote}{quote}"))
}

/// `value` with backslash escapes for backslashes and `quote` (or a doubled quote).
fn escaped(value: &str, quote: char, double: bool) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote && double => {
                out.push(c);
                out.push(c);
            }
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A dollar tag that does not occur in `value`.
fn tag_for(value: &str, wanted: &str) -> String {
    let mut tag = format!("${wanted}$");
    let mut n = 0;
    while value.contains(&tag) {
        n += 1;
        tag = format!("$t{n}$");
    }
    tag
}

fn postgres_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        content().prop_map(|v| lit(format!("'{}'", doubled(&v, '\'')), v)),
        (content(), any::<bool>())
            .prop_map(|(v, double)| lit(format!("E'{}'", escaped(&v, '\'', double)), v)),
        (
            content(),
            prop_oneof![Just(""), Just("a"), Just("tag"), Just("QZ")]
        )
            .prop_map(|(v, t)| {
                let tag = tag_for(&v, t);
                lit(format!("{tag}{v}{tag}"), v)
            }),
        // Nested dollar tags: an inner quote inside an outer one.
        (content(), content()).prop_map(|(a, b)| {
            let inner = tag_for(&format!("{a}{b}"), "inner");
            let body = format!("{a}{inner}{b}{inner}");
            let outer = tag_for(&body, "outer");
            lit(format!("{outer}{body}{outer}"), body)
        }),
        content().prop_map(|v| lit(format!("U&'{}'", doubled(&v, '\'')), v)),
        hex().prop_map(|h| lit(format!("X'{h}'"), h)),
        hex().prop_map(|h| lit(format!("x'{h}'"), h)),
        number(),
        boolean(),
    ]
}

fn mysql_literal(ansi_quotes: bool) -> BoxedStrategy<Literal> {
    let mut options = vec![
        (content(), any::<bool>())
            .prop_map(|(v, double)| lit(format!("'{}'", escaped(&v, '\'', double)), v))
            .boxed(),
        (content(), any::<bool>())
            .prop_map(|(v, double)| lit(format!("_utf8mb4'{}'", escaped(&v, '\'', double)), v))
            .boxed(),
        hex().prop_map(|h| lit(format!("X'{h}'"), h)).boxed(),
        hex().prop_map(|h| lit(format!("0x{h}"), h)).boxed(),
        (1u64..u64::MAX)
            .prop_map(|n| {
                let bits = format!("{n:b}");
                lit(format!("b'{bits}'"), bits)
            })
            .boxed(),
        number().boxed(),
        boolean().boxed(),
    ];
    if !ansi_quotes {
        options.push(
            (content(), any::<bool>())
                .prop_map(|(v, double)| lit(format!("\"{}\"", escaped(&v, '"', double)), v))
                .boxed(),
        );
    }
    prop::strategy::Union::new(options).boxed()
}

fn sqlite_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        content().prop_map(|v| lit(format!("'{}'", doubled(&v, '\'')), v)),
        hex().prop_map(|h| lit(format!("X'{h}'"), h)),
        number(),
        boolean(),
    ]
}

/// The statement's pieces between literals: conditions, quoted names and comments in the
/// dialect's syntax (comments hold quotes too).
#[derive(Debug, Clone, Copy)]
enum Glue {
    And,
    In,
    Name,
    LineComment,
    BlockComment,
    HashComment,
}

fn glue(hash_comments: bool) -> BoxedStrategy<Vec<(Glue, String)>> {
    let kinds = if hash_comments {
        prop_oneof![
            Just(Glue::And),
            Just(Glue::In),
            Just(Glue::Name),
            Just(Glue::LineComment),
            Just(Glue::BlockComment),
            Just(Glue::HashComment),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(Glue::And),
            Just(Glue::In),
            Just(Glue::Name),
            Just(Glue::LineComment),
            Just(Glue::BlockComment),
        ]
        .boxed()
    };
    prop::collection::vec((kinds, content()), 1..8).boxed()
}

/// Builds a statement from `literals`, glued by `glue`; `name` quotes a name.
fn statement(literals: &[Literal], glue: &[(Glue, String)], name: fn(&str) -> String) -> String {
    let mut sql = String::from("select a, b from t where ");
    for (k, literal) in literals.iter().enumerate() {
        let (kind, text) = &glue[k % glue.len()];
        let comment_text: String = text
            .chars()
            .filter(|c| !matches!(c, '\n' | '*' | '/'))
            .collect();
        match kind {
            Glue::And => sql.push_str(&format!("c = {} and ", literal.written)),
            Glue::In => sql.push_str(&format!("c in ({}, $1, ?) and ", literal.written)),
            Glue::Name => sql.push_str(&format!("{} = {} and ", name("na me"), literal.written)),
            Glue::LineComment => {
                sql.push_str(&format!("-- {comment_text}\nc = {} and ", literal.written));
            }
            Glue::BlockComment => {
                sql.push_str(&format!(
                    "/* {comment_text} */ c = {} and ",
                    literal.written
                ));
            }
            Glue::HashComment => {
                sql.push_str(&format!("# {comment_text}\nc = {} and ", literal.written));
            }
        }
    }
    sql.push_str("d = 0 -- it's the end");
    sql
}

/// No literal survives in `normalized`: not as written, not as any piece of 6 or more
/// characters of what it holds or of how it is written.
fn assert_masked(sql: &str, normalized: &str, literals: &[Literal]) -> Result<(), TestCaseError> {
    for literal in literals {
        prop_assert!(
            !normalized.contains(&literal.written),
            "{:?} survives in {normalized:?} (from {sql:?})",
            literal.written
        );
        for text in [&literal.value, &literal.written] {
            let chars: Vec<char> = text.chars().collect();
            for window in chars.windows(6) {
                let piece: String = window.iter().collect();
                prop_assert!(
                    !normalized.contains(&piece),
                    "{piece:?} of {:?} survives in {normalized:?} (from {sql:?})",
                    literal.written
                );
            }
        }
    }
    prop_assert!(
        !normalized.contains("it's"),
        "a comment survives: {normalized:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn postgres_literals_never_survive(
        literals in prop::collection::vec(postgres_literal(), 1..6),
        glue in glue(false),
    ) {
        let sql = statement(&literals, &glue, |n| format!("\"{n}\""));
        let normalized = normalize(&sql, Dialect::Postgres);
        assert_masked(&sql, &normalized, &literals)?;
    }

    #[test]
    fn mysql_literals_never_survive(
        literals in prop::collection::vec(mysql_literal(false), 1..6),
        glue in glue(true),
    ) {
        let sql = statement(&literals, &glue, |n| format!("`{n}`"));
        let normalized = normalize(&sql, Dialect::MYSQL);
        assert_masked(&sql, &normalized, &literals)?;
    }

    #[test]
    fn mysql_ansi_quotes_literals_never_survive(
        literals in prop::collection::vec(mysql_literal(true), 1..6),
        glue in glue(true),
    ) {
        let sql = statement(&literals, &glue, |n| format!("\"{n}\""));
        let dialect = Dialect::MySql { ansi_quotes: true, backslash_escapes: true };
        let normalized = normalize(&sql, dialect);
        assert_masked(&sql, &normalized, &literals)?;
    }

    #[test]
    fn sqlite_literals_never_survive(
        literals in prop::collection::vec(sqlite_literal(), 1..6),
        glue in glue(false),
        brackets in any::<bool>(),
    ) {
        let name: fn(&str) -> String = if brackets { |n| format!("[{n}]") } else { |n| format!("\"{n}\"") };
        let sql = statement(&literals, &glue, name);
        let normalized = normalize(&sql, Dialect::Sqlite);
        assert_masked(&sql, &normalized, &literals)?;
    }

    #[test]
    fn standard_literals_never_survive(
        literals in prop::collection::vec(sqlite_literal(), 1..6),
        glue in glue(false),
    ) {
        let sql = statement(&literals, &glue, |n| format!("\"{n}\""));
        let normalized = normalize(&sql, Dialect::Standard);
        assert_masked(&sql, &normalized, &literals)?;
    }
}

#[test]
fn the_reported_statements() {
    let sql = r"SELECT * FROM users WHERE name IN ('C:\', 'secret')";
    for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::Standard] {
        assert_eq!(
            normalize(sql, dialect),
            "SELECT * FROM users WHERE name IN (?, ?)",
            "{dialect:?}"
        );
    }
    assert_eq!(
        normalize(
            r#"SELECT * FROM users WHERE name = "secret""#,
            Dialect::MYSQL
        ),
        "SELECT * FROM users WHERE name = ?"
    );
    assert_eq!(
        normalize(
            r#"SELECT * FROM users WHERE "name" = 'x'"#,
            Dialect::MySql {
                ansi_quotes: true,
                backslash_escapes: true
            }
        ),
        r#"SELECT * FROM users WHERE "name" = ?"#
    );
    assert_eq!(
        normalize(
            r"SELECT 'C:\', 'secret'",
            Dialect::MySql {
                ansi_quotes: false,
                backslash_escapes: false
            }
        ),
        "SELECT ?, ?"
    );
}
