//! What the session needs from the shell: an [`Authenticator`] that checks SASL PLAIN
//! credentials and hands back the user's [`ScriptStore`], and the store itself (shaped like
//! Dovecot's sieve-storage vfuncs: list, get, put, delete, rename, activate, quota check).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::codec::ScriptName;
use crate::Secret;

/// SASL PLAIN credentials (RFC 4616): `authzid` is `None` when the client left it empty.
/// The password may be a frontend login ticket; the authenticator decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    pub authzid: Option<String>,
    pub authcid: String,
    pub password: Secret<String>,
}

/// A successful login: the canonical user name (announced as the `OWNER` capability, RFC
/// 5804 section 1.7) and that user's scripts.
#[derive(Debug)]
pub struct Login<S> {
    pub owner: String,
    pub store: S,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong credentials, unknown user, or an authzid the user may not act as. Counts towards
    /// [`crate::Config::max_auth_failures`].
    #[error("authentication failed")]
    Rejected,
    /// The directory or ticket check is unavailable: `NO (TRYLATER)`, not counted.
    #[error("authentication temporarily unavailable: {0}")]
    TryLater(String),
    /// The user's mailbox lives on another backend: `NO (REFERRAL url)` (RFC 5804 section
    /// 1.3), e.g. `sieve://backend2.example`.
    #[error("user is served by {0}")]
    Referral(String),
}

/// Checks credentials. Called on the connection's thread; a slow directory makes the shell
/// wait, so the shell may run the session on a blocking task.
pub trait Authenticator {
    type Store: ScriptStore;

    /// # Errors
    ///
    /// [`AuthError`] as documented on its variants.
    fn authenticate(&mut self, credentials: &PlainCredentials) -> Result<Login<Self::Store>, AuthError>;
}

/// Why a store operation failed; each maps to one `NO` response code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("There is no script by that name")]
    NonExistent,
    #[error("A script with that name already exists")]
    AlreadyExists,
    #[error("You may not delete an active script")]
    Active,
    #[error("Too many scripts")]
    QuotaMaxScripts,
    #[error("Script is too large")]
    QuotaMaxSize,
    /// Another quota, e.g. the user's total script storage.
    #[error("Quota exceeded")]
    Quota,
    #[error("Temporary failure, try again later")]
    TryLater,
    /// Anything else; the text is shown to the user, so it names no file or secret.
    #[error("{0}")]
    Failed(String),
}

/// One user's scripts. At most one script is active (RFC 5804 section 1.1); every method is
/// atomic on its own, so two sessions of the same user cannot break the rules below.
pub trait ScriptStore {
    /// Every script with whether it is the active one.
    ///
    /// # Errors
    ///
    /// [`StoreError::TryLater`] or [`StoreError::Failed`].
    fn list(&mut self) -> Result<Vec<(ScriptName, bool)>, StoreError>;

    /// # Errors
    ///
    /// [`StoreError::NonExistent`].
    fn get(&mut self, name: &ScriptName) -> Result<String, StoreError>;

    /// Creates or replaces a script (already validated). Replacing the active script keeps it
    /// active.
    ///
    /// # Errors
    ///
    /// [`StoreError::QuotaMaxScripts`], [`StoreError::QuotaMaxSize`], [`StoreError::Quota`].
    fn put(&mut self, name: &ScriptName, script: &str) -> Result<(), StoreError>;

    /// # Errors
    ///
    /// [`StoreError::NonExistent`]; [`StoreError::Active`] for the active script.
    fn delete(&mut self, name: &ScriptName) -> Result<(), StoreError>;

    /// Renames a script; the active script stays active under its new name.
    ///
    /// # Errors
    ///
    /// [`StoreError::NonExistent`] when `from` is missing, [`StoreError::AlreadyExists`] when
    /// `to` exists.
    fn rename(&mut self, from: &ScriptName, to: &ScriptName) -> Result<(), StoreError>;

    /// Makes `name` the only active script, or deactivates all with `None`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NonExistent`].
    fn set_active(&mut self, name: Option<&ScriptName>) -> Result<(), StoreError>;

    /// Whether [`ScriptStore::put`] of `size` bytes under `name` would fit (RFC 5804
    /// section 2.5).
    ///
    /// # Errors
    ///
    /// The quota error `put` would return.
    fn have_space(&mut self, name: &ScriptName, size: u64) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
struct Scripts {
    scripts: BTreeMap<ScriptName, String>,
    active: Option<ScriptName>,
}

/// A [`ScriptStore`] in memory, for tests. Clones share the same scripts, so a test keeps
/// one to look at what a session did.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Scripts>>,
    max_scripts: Option<usize>,
    max_size: Option<u64>,
    max_total: Option<u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The same store with quotas: number of scripts, bytes per script, bytes in total.
    pub fn with_quota(mut self, max_scripts: Option<usize>, max_size: Option<u64>, max_total: Option<u64>) -> Self {
        self.max_scripts = max_scripts;
        self.max_size = max_size;
        self.max_total = max_total;
        self
    }

    /// The active script's name.
    pub fn active(&self) -> Option<String> {
        self.lock().active.as_ref().map(|n| n.as_str().to_string())
    }

    /// A script's text, `None` when it does not exist.
    pub fn script(&self, name: &str) -> Option<String> {
        let name = ScriptName::new(name).ok()?;
        self.lock().scripts.get(&name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scripts> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_space(&self, s: &Scripts, name: &ScriptName, size: u64) -> Result<(), StoreError> {
        let existing = s.scripts.get(name).map(|old| old.len() as u64);
        if self.max_size.is_some_and(|max| size > max) {
            return Err(StoreError::QuotaMaxSize);
        }
        if existing.is_none() && self.max_scripts.is_some_and(|max| s.scripts.len() >= max) {
            return Err(StoreError::QuotaMaxScripts);
        }
        let total: u64 = s.scripts.values().map(|v| v.len() as u64).sum::<u64>() - existing.unwrap_or(0) + size;
        if self.max_total.is_some_and(|max| total > max) {
            return Err(StoreError::Quota);
        }
        Ok(())
    }
}

impl ScriptStore for MemoryStore {
    fn list(&mut self) -> Result<Vec<(ScriptName, bool)>, StoreError> {
        let s = self.lock();
        Ok(s.scripts.keys().map(|n| (n.clone(), s.active.as_ref() == Some(n))).collect())
    }

    fn get(&mut self, name: &ScriptName) -> Result<String, StoreError> {
        self.lock().scripts.get(name).cloned().ok_or(StoreError::NonExistent)
    }

    fn put(&mut self, name: &ScriptName, script: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        self.check_space(&s, name, script.len() as u64)?;
        s.scripts.insert(name.clone(), script.to_string());
        Ok(())
    }

    fn delete(&mut self, name: &ScriptName) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.scripts.contains_key(name) {
            return Err(StoreError::NonExistent);
        }
        if s.active.as_ref() == Some(name) {
            return Err(StoreError::Active);
        }
        s.scripts.remove(name);
        Ok(())
    }

    fn rename(&mut self, from: &ScriptName, to: &ScriptName) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.scripts.contains_key(from) {
            return Err(StoreError::NonExistent);
        }
        if s.scripts.contains_key(to) {
            return Err(StoreError::AlreadyExists);
        }
        let script = s.scripts.remove(from).unwrap_or_default();
        s.scripts.insert(to.clone(), script);
        if s.active.as_ref() == Some(from) {
            s.active = Some(to.clone());
        }
        Ok(())
    }

    fn set_active(&mut self, name: Option<&ScriptName>) -> Result<(), StoreError> {
        let mut s = self.lock();
        if let Some(name) = name {
            if !s.scripts.contains_key(name) {
                return Err(StoreError::NonExistent);
            }
        }
        s.active = name.cloned();
        Ok(())
    }

    fn have_space(&mut self, name: &ScriptName, size: u64) -> Result<(), StoreError> {
        let s = self.lock();
        self.check_space(&s, name, size)
    }
}
