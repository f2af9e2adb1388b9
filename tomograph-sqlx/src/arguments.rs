//! Bound values as readable text, for users who opt in with
//! [`record_parameters`](tomograph::sql::SqlTracerBuilder::record_parameters).
//!
//! sqlx gives no access to a query's arguments but their `Debug`. SQLite's arguments are
//! kept as values (`SqliteArguments { values: SqliteArgumentsBuffer([Int64(42),
//! Text("x")]) }`), which this module reads back one by one and writes as SQL literals (`42`,
//! `'x'`, `x'ff00'`, `NULL`). PostgreSQL's and MySQL's are encoded into the wire format at
//! bind time (`PgArguments { … buffer: [0, 0, 0, 15, …] }`): nothing readable is left, so the
//! tracer builder refuses the option for them ([`crate::tracer_builder_for`]).

/// Nothing: the driver keeps its arguments encoded.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn opaque<A>(_arguments: &A) -> Vec<(usize, String)> {
    Vec::new()
}

/// SQLite's arguments, read from their `Debug`; when that cannot be read (a sqlx release
/// that prints them differently), the `Debug` text itself as one value.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(arguments: &sqlx::sqlite::SqliteArguments) -> Vec<(usize, String)> {
    let debug = format!("{arguments:?}");
    parse_sqlite(&debug).unwrap_or_else(|| vec![(0, debug)])
}

#[cfg(feature = "sqlite")]
/// The values in `SqliteArguments { values: SqliteArgumentsBuffer([…]) }`.
fn parse_sqlite(debug: &str) -> Option<Vec<(usize, String)>> {
    const OPEN: &str = "SqliteArgumentsBuffer([";
    let start = debug.find(OPEN)? + OPEN.len();
    let mut reader = Reader {
        s: debug,
        pos: start,
    };
    let mut values = Vec::new();
    loop {
        if reader.eat("])") {
            return Some(values);
        }
        if !values.is_empty() && !reader.eat(", ") {
            return None;
        }
        let value = reader.value()?;
        values.push((values.len(), value));
    }
}

#[cfg(feature = "sqlite")]
struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

#[cfg(feature = "sqlite")]
impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn eat(&mut self, text: &str) -> bool {
        let found = self.rest().starts_with(text);
        if found {
            self.pos += text.len();
        }
        found
    }

    /// One `SqliteArgumentValue`: `Null`, `Int(1)`, `Int64(1)`, `Double(1.5)`, `Text("…")`,
    /// `TextSlice("…")`, `Blob([1, 2])`.
    fn value(&mut self) -> Option<String> {
        if self.eat("Null") {
            return Some("NULL".to_owned());
        }
        let name_len = self.rest().find('(')?;
        let name = &self.rest()[..name_len];
        self.pos += name_len + 1;
        let value = match name {
            "Int" | "Int64" | "Double" => {
                let len = self.rest().find(')')?;
                let number = self.rest()[..len].to_owned();
                self.pos += len;
                number
            }
            "Text" | "TextSlice" => {
                let text = self.string()?;
                format!("'{}'", text.replace('\'', "''"))
            }
            "Blob" => {
                let len = self.rest().find(']')?;
                let list = self.rest().get(1..len)?;
                let mut hex = String::from("x'");
                for byte in list.split(", ").filter(|b| !b.is_empty()) {
                    hex.push_str(&format!("{:02x}", byte.parse::<u8>().ok()?));
                }
                hex.push('\'');
                self.pos += len + 1;
                hex
            }
            _ => return None,
        };
        self.eat(")").then_some(value)
    }

    /// A Rust `Debug` string (`"a\"b\u{1f642}"`), unescaped.
    fn string(&mut self) -> Option<String> {
        if !self.eat("\"") {
            return None;
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Some(out);
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '0' => out.push('\0'),
                    'u' => {
                        let mut code = String::new();
                        chars.next().filter(|(_, c)| *c == '{')?;
                        for (_, c) in chars.by_ref() {
                            if c == '}' {
                                break;
                            }
                            code.push(c);
                        }
                        out.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_value() {
        let debug = r#"SqliteArguments { values: SqliteArgumentsBuffer([Int64(4242), Text("it's \"x\"\n\u{1f642}"), Null, Double(1.5), Int(-3), Blob([255, 0]), TextSlice("])")]) }"#;
        assert_eq!(
            parse_sqlite(debug).unwrap(),
            [
                (0, "4242".to_owned()),
                (1, "'it''s \"x\"\n🙂'".to_owned()),
                (2, "NULL".to_owned()),
                (3, "1.5".to_owned()),
                (4, "-3".to_owned()),
                (5, "x'ff00'".to_owned()),
                (6, "'])'".to_owned()),
            ]
        );
        assert_eq!(
            parse_sqlite("SqliteArguments { values: SqliteArgumentsBuffer([]) }"),
            Some(Vec::new())
        );
        assert_eq!(parse_sqlite("SqliteArguments { other }"), None);
    }

    #[test]
    fn reads_what_sqlx_prints() {
        use sqlx::Arguments;
        let mut arguments = sqlx::sqlite::SqliteArguments::default();
        arguments.add(42_i64).unwrap();
        arguments.add("O'Brien").unwrap();
        arguments.add(None::<i32>).unwrap();
        arguments.add(vec![1_u8, 2]).unwrap();
        assert_eq!(
            sqlite(&arguments),
            [
                (0, "42".to_owned()),
                (1, "'O''Brien'".to_owned()),
                (2, "NULL".to_owned()),
                (3, "x'0102'".to_owned()),
            ]
        );
    }
}
