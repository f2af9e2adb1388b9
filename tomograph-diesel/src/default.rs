//! diesel's default instrumentation: tracing for every connection established from now on.

use std::sync::RwLock;

use diesel::connection::{Instrumentation, set_default_instrumentation};

use crate::error::InstallError;
use crate::tracer::DieselTracer;

static DEFAULT: RwLock<Option<DieselTracer>> = RwLock::new(None);

fn make_default() -> Option<Box<dyn Instrumentation>> {
    let guard = DEFAULT
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard
        .as_ref()
        .map(|tracer| Box::new(tracer.instrumentation()) as Box<dyn Instrumentation>)
}

impl DieselTracer {
    /// Makes this diesel's default instrumentation: every connection established from now on
    /// (`Connection::establish`, r2d2 and diesel-async pools included) is traced, and its
    /// establishment shows as a `connect` span — the only way to see connection attempts,
    /// failed ones included. Replaces diesel's previous default (one per process).
    ///
    /// A failed connection attempt ends its `connect` span with the error (`error` tag and
    /// note, `error.type` such as `BadConnection`). It does not call the `on_error` hooks,
    /// which are for statements: `establish` returns the error to its caller.
    ///
    /// ```
    /// use diesel::prelude::*;
    /// # tomograph::testing::memory_tracer();
    /// tomograph_diesel::DieselTracer::from_url(":memory:").install_default()?;
    ///
    /// let _request = tomograph::span("request").start();
    /// let mut conn = SqliteConnection::establish(":memory:")?; // a `connect` span
    /// diesel::sql_query("SELECT 42").execute(&mut conn)?;     // a SELECT span
    /// # tomograph_diesel::uninstall_default()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When diesel's registry of the default is poisoned (a panic while it was being set).
    pub fn install_default(self) -> Result<(), InstallError> {
        *DEFAULT
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(self);
        set_default_instrumentation(make_default).map_err(InstallError::from_diesel)
    }
}

/// Stops tracing connections established from now on through diesel's default (installed by
/// [`DieselTracer::install_default`]); connections made before keep theirs.
///
/// # Errors
/// When diesel's registry of the default is poisoned.
pub fn uninstall_default() -> Result<(), InstallError> {
    *DEFAULT
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    set_default_instrumentation(|| None).map_err(InstallError::from_diesel)
}
