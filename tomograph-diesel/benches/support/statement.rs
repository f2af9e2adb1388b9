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

pub fn simple_query<C>(conn: &mut C) -> String
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    for<'a> diesel::dsl::Limit<
        diesel::dsl::Select<diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>, t::name>,
    >: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    t::table
        .filter(t::id.eq(black_box(1)))
        .select(t::name)
        .first::<String>(conn)
        .expect("query")
}
