//! MySQL / MariaDB (`TOMOGRAPH_TEST_MYSQL_URL`): the shared scenarios.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

fn connect() -> Option<(MysqlConnection, String)> {
    let url = tomograph::testing::require_env("TOMOGRAPH_TEST_MYSQL_URL")?;
    Some((MysqlConnection::establish(&url).expect("mysql"), url))
}

backend_scenarios! {
    conn: MysqlConnection,
    connect: connect,
    system: "mysql",
    ddl: |t| format!("CREATE TABLE {t} (id INTEGER AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE)"),
    qb_table: "tg_diesel_my_qb",
}
