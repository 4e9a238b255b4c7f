//! What a run must undo, in terms every module shares: [`CleanupEvent`], one cleanup step and
//! how it went (for warnings and the audit record), and [`Orphan`], what a source hands the
//! guardian to undo on its own should stepsecret be killed (see `run::guardian`).
//!
//! A leaf: the sources produce these, the run and the audit log consume them, and none of
//! those needs to know the others.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::reference::Backend;

/// One cleanup step and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupEvent {
    /// What was cleaned up, e.g. `revoke Vault lease database/creds/ro/abc`.
    pub what: String,
    /// `None` when it worked, else why not.
    pub error: Option<String>,
}

/// What the guardian must undo for one source if stepsecret dies before its own cleanup: the
/// backend, and a payload only that backend's source reads back
/// (`sources::revoke_orphaned`). The payload may hold a credential (a login token): it is
/// wiped on drop and never shown.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
pub struct Orphan {
    /// Which source made the payload, and so which one undoes it.
    pub backend: Backend,
    /// The source's own instructions, as JSON text.
    pub payload: String,
}

impl Drop for Orphan {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.payload);
    }
}

impl fmt::Debug for Orphan {
    /// The backend only: the payload may hold a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Orphan")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}
