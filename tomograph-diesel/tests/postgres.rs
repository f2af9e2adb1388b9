//! PostgreSQL (`TOMOGRAPH_TEST_POSTGRES_URL`): the shared scenarios and INSERT … RETURNING.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

fn connect() -> Option<(PgConnection, String)> {
    let url = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL")?;
    Some((PgConnection::establish(&url).expect("postgres"), url))
}

backend_scenarios! {
    conn: PgConnection,
    connect: connect,
    system: "postgresql",
    ddl: |t| format!("CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)"),
    qb_table: "tg_diesel_pg_qb",
}

diesel::table! {
    #[sql_name = "tg_diesel_pg_returning"]
    returning_t (id) {
        id -> Integer,
        name -> Text,
    }
}

#[test]
fn insert_returning_and_server_tags() {
    let memory = memory();
    let hooks = Hooks::default();
    let Some(mut conn) = setup("tg_diesel_pg_returning", &hooks) else {
        return;
    };
    let (id, trace) = traced("returning", || {
        diesel::insert_into(returning_t::table)
            .values(returning_t::name.eq("x"))
            .returning(returning_t::id)
            .get_result::<i32>(&mut conn)
            .unwrap()
    });
    assert!(id > 0);
    let spans = exact_spans(&memory, trace, 2);
    let insert = one(&spans, "INSERT tg_diesel_pg_returning");
    assert_statement(insert, "INSERT tg_diesel_pg_returning", "postgresql");
    let text = tag(insert, "sql.query").unwrap();
    assert!(text.contains("RETURNING") && text.contains("$1"), "{text}");
    assert!(tag(insert, "server.address").is_some());
    assert!(tag(insert, "server.port").is_some());
    assert!(tag(insert, "db.namespace").is_some());
    assert!(insert.remote_endpoint().unwrap().port().is_some());
}

#[test]
fn failed_commit_ends_the_transaction() {
    let memory = memory();
    let hooks = Hooks::default();
    // The child first: it depends on the parent that `setup` drops and creates again.
    let Some((mut first, _)) = connect() else {
        return;
    };
    diesel::sql_query("DROP TABLE IF EXISTS tg_diesel_pg_deferred_child")
        .execute(&mut first)
        .unwrap();
    let Some(mut conn) = setup("tg_diesel_pg_deferred_parent", &hooks) else {
        return;
    };
    diesel::sql_query(
        "CREATE TABLE tg_diesel_pg_deferred_child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES tg_diesel_pg_deferred_parent (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(&mut conn)
    .unwrap();
    let (result, trace) = traced("pg failed commit", || {
        let result = conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("INSERT INTO tg_diesel_pg_deferred_child VALUES (1, 42)")
                .execute(conn)
        });
        diesel::sql_query("SELECT 'after'")
            .execute(&mut conn)
            .unwrap();
        result
    });
    assert!(matches!(
        result,
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _
        ))
    ));
    let spans = spans(&memory, trace, 6);
    let tx = one(&spans, "TRANSACTION");
    assert!(tx.is_error());
    assert_eq!(
        tag(tx, "error.type").as_deref(),
        Some("ForeignKeyViolation")
    );
    assert_eq!(
        tag(tx, "db.transaction.outcome").as_deref(),
        Some("rollback")
    );
    assert_eq!(one(&spans, "COMMIT").parent_id(), Some(tx.id()));
    let after = with_sql(&spans, "'after'");
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].parent_id(),
        Some(root(&spans).id()),
        "not in the finished transaction"
    );
}
