//! The state shared by the server tasks and the [`crate::Emulator`] handle.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::npm::WebComponents;
use crate::options::{IssuerMode, KeyType};
use crate::state::State;

/// State shared by the server tasks and the handle.
pub(crate) struct Shared {
    pub(crate) project_id: String,
    pub(crate) base_url: String,
    pub(crate) management_key: Option<String>,
    pub(crate) control_token: Option<String>,
    pub(crate) key_type: KeyType,
    pub(crate) issuer: IssuerMode,
    /// The `--web-components` packages, served at `/npm/...`.
    pub(crate) web_components: Option<WebComponents>,
    pub(crate) state: Mutex<State>,
}

impl Shared {
    /// The state lock; a panic in another holder does not make the data unusable
    /// for an emulator, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `iss` of issued tokens.
    pub(crate) fn issuer(&self) -> String {
        match self.issuer {
            IssuerMode::Url => format!("{}/{}", self.base_url, self.project_id),
            IssuerMode::ProjectId => self.project_id.clone(),
        }
    }
}
