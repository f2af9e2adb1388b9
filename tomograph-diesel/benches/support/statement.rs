//! The statement both diesel benches run, on a table of their own: set-up and the query.

use std::hint::black_box;

use diesel::connection::LoadConnection;
use diesel::prelude::*;

diesel::table! {
    #[sql_name = "tg_diesel_bench"]
    t (id) {
        id -> Integer,
        name -> Text,
    }
}

pub fn setup<C: Connection>(conn: &mut C)
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    for sql in [
        "DROP TABLE IF EXISTS tg_diesel_bench",
        "CREATE TABLE tg_diesel_bench (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO tg_diesel_bench (id, name) VALUES (1, 'one')",
    ] {
        diesel::sql_query(sql).execute(conn).expect("bench table");
    }
}

/// `SELECT name … WHERE id = ? LIMIT ?`, diesel's `.first()`: SQLite (3.51, bundled) treats a
/// bound LIMIT as a constant of the plan, so every execution re-binds it and re-prepares the
/// statement (`sqlite3Reprepare`), although diesel keeps it prepared — as for every `.first()`
/// and `.limit(n)` on SQLite.
pub fn simple_query<C>(conn: &mut C) -> String
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    for<'a> diesel::dsl::Limit<ByIdName>: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    t::table
        .filter(t::id.eq(black_box(1)))
        .select(t::name)
        .first::<String>(conn)
        .expect("query")
}

/// `SELECT name … WHERE id = ?`, without a LIMIT: SQLite keeps it prepared between executions.
#[allow(dead_code, reason = "the peers bench's alone")]
pub fn prepared_query<C>(conn: &mut C) -> String
where
    C: LoadConnection,
    for<'a> ByIdName: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    t::table
        .filter(t::id.eq(black_box(1)))
        .select(t::name)
        .get_result::<String>(conn)
        .expect("query")
}

/// The name of the row with a given id, before `.first()` adds its LIMIT.
pub type ByIdName =
    diesel::dsl::Select<diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>, t::name>;
