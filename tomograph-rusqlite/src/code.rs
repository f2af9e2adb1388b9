//! What a failed statement's span records as `db.response.status_code`: SQLite's extended
//! result code by name (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_BUSY`, …), or the name of
//! rusqlite's own error when SQLite did not fail (`InvalidParameterCount`, …).

use rusqlite::ffi;

/// The code recorded for `error`: the name of SQLite's extended result code when SQLite
/// reported the error (its primary code's name when the extended one is not listed here,
/// `SQLITE_UNKNOWN` for a code SQLite does not define), else the name of rusqlite's error
/// variant. On-error hooks see the same value as [`SqlErrorEvent::code`].
///
/// ```
/// use tomograph_rusqlite::error_code;
/// let db = rusqlite::Connection::open_in_memory().unwrap();
/// db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
/// db.execute("INSERT INTO t VALUES (1)", []).unwrap();
/// let error = db.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
/// assert_eq!(error_code(&error), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
///
/// let error = db.prepare("SELEC 1").unwrap_err();
/// assert_eq!(error_code(&error), Some("SQLITE_ERROR"));
///
/// let error = db.execute("INSERT INTO t VALUES (?1)", []).unwrap_err();
/// assert_eq!(error_code(&error), Some("InvalidParameterCount"));
/// ```
///
/// [`SqlErrorEvent::code`]: tomograph::sql::SqlErrorEvent::code
pub fn error_code(error: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::Error as E;
    Some(match error {
        E::SqliteFailure(e, _) => sqlite_code_name(e.extended_code),
        E::SqlInputError { error, .. } => sqlite_code_name(error.extended_code),
        E::SqliteSingleThreadedMode => "SqliteSingleThreadedMode",
        E::FromSqlConversionFailure(..) => "FromSqlConversionFailure",
        E::IntegralValueOutOfRange(..) => "IntegralValueOutOfRange",
        E::Utf8Error(..) => "Utf8Error",
        E::NulError(_) => "NulError",
        E::InvalidParameterName(_) => "InvalidParameterName",
        E::InvalidPath(_) => "InvalidPath",
        E::ExecuteReturnedResults => "ExecuteReturnedResults",
        E::QueryReturnedNoRows => "QueryReturnedNoRows",
        E::QueryReturnedMoreThanOneRow => "QueryReturnedMoreThanOneRow",
        E::InvalidColumnIndex(_) => "InvalidColumnIndex",
        E::InvalidColumnName(_) => "InvalidColumnName",
        E::InvalidColumnType(..) => "InvalidColumnType",
        E::StatementChangedRows(_) => "StatementChangedRows",
        E::ToSqlConversionFailure(_) => "ToSqlConversionFailure",
        E::InvalidQuery => "InvalidQuery",
        E::UnwindingPanic => "UnwindingPanic",
        E::MultipleStatement => "MultipleStatement",
        E::InvalidParameterCount(..) => "InvalidParameterCount",
        _ => return None,
    })
}

macro_rules! code_names {
    ($($name:ident),* $(,)?) => {
        &[$((ffi::$name, stringify!($name))),*]
    };
}

/// SQLite's result codes (primary first, then the extended ones worth telling apart).
const CODE_NAMES: &[(i32, &str)] = code_names![
    SQLITE_ERROR,
    SQLITE_INTERNAL,
    SQLITE_PERM,
    SQLITE_ABORT,
    SQLITE_BUSY,
    SQLITE_LOCKED,
    SQLITE_NOMEM,
    SQLITE_READONLY,
    SQLITE_INTERRUPT,
    SQLITE_IOERR,
    SQLITE_CORRUPT,
    SQLITE_NOTFOUND,
    SQLITE_FULL,
    SQLITE_CANTOPEN,
    SQLITE_PROTOCOL,
    SQLITE_EMPTY,
    SQLITE_SCHEMA,
    SQLITE_TOOBIG,
    SQLITE_CONSTRAINT,
    SQLITE_MISMATCH,
    SQLITE_MISUSE,
    SQLITE_NOLFS,
    SQLITE_AUTH,
    SQLITE_FORMAT,
    SQLITE_RANGE,
    SQLITE_NOTADB,
    SQLITE_NOTICE,
    SQLITE_WARNING,
    SQLITE_ERROR_MISSING_COLLSEQ,
    SQLITE_ERROR_RETRY,
    SQLITE_ERROR_SNAPSHOT,
    SQLITE_LOCKED_SHAREDCACHE,
    SQLITE_LOCKED_VTAB,
    SQLITE_BUSY_RECOVERY,
    SQLITE_BUSY_SNAPSHOT,
    SQLITE_BUSY_TIMEOUT,
    SQLITE_CANTOPEN_NOTEMPDIR,
    SQLITE_CANTOPEN_ISDIR,
    SQLITE_CANTOPEN_FULLPATH,
    SQLITE_CANTOPEN_CONVPATH,
    SQLITE_CANTOPEN_SYMLINK,
    SQLITE_CORRUPT_VTAB,
    SQLITE_CORRUPT_SEQUENCE,
    SQLITE_CORRUPT_INDEX,
    SQLITE_READONLY_RECOVERY,
    SQLITE_READONLY_CANTLOCK,
    SQLITE_READONLY_ROLLBACK,
    SQLITE_READONLY_DBMOVED,
    SQLITE_READONLY_CANTINIT,
    SQLITE_READONLY_DIRECTORY,
    SQLITE_ABORT_ROLLBACK,
    SQLITE_CONSTRAINT_CHECK,
    SQLITE_CONSTRAINT_COMMITHOOK,
    SQLITE_CONSTRAINT_FOREIGNKEY,
    SQLITE_CONSTRAINT_FUNCTION,
    SQLITE_CONSTRAINT_NOTNULL,
    SQLITE_CONSTRAINT_PRIMARYKEY,
    SQLITE_CONSTRAINT_TRIGGER,
    SQLITE_CONSTRAINT_UNIQUE,
    SQLITE_CONSTRAINT_VTAB,
    SQLITE_CONSTRAINT_ROWID,
    SQLITE_CONSTRAINT_PINNED,
    SQLITE_CONSTRAINT_DATATYPE,
    SQLITE_AUTH_USER,
];

/// The name of SQLite result code `code`: its extended name when listed, else its primary
/// code's name.
fn sqlite_code_name(code: i32) -> &'static str {
    let find = |code: i32| {
        CODE_NAMES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, name)| *name)
    };
    find(code)
        .or_else(|| find(code & 0xff))
        .unwrap_or("SQLITE_UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sqlite_code_name(ffi::SQLITE_BUSY), "SQLITE_BUSY");
        assert_eq!(
            sqlite_code_name(ffi::SQLITE_BUSY_TIMEOUT),
            "SQLITE_BUSY_TIMEOUT"
        );
        assert_eq!(
            sqlite_code_name(ffi::SQLITE_CONSTRAINT_UNIQUE),
            "SQLITE_CONSTRAINT_UNIQUE"
        );
        // An extended code not listed falls back to its primary code.
        assert_eq!(sqlite_code_name(ffi::SQLITE_IOERR_READ), "SQLITE_IOERR");
        assert_eq!(sqlite_code_name(0xfe), "SQLITE_UNKNOWN");
    }
}
