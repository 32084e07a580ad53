//! Per-user data that is not mail but must survive a failover: the Sieve scripts and which one is
//! active (RFC 5804), and the user's own quota limit. Replicated as one value: small, changed
//! rarely, and compared through the user digest like the mailboxes. Vacation de-duplication
//! records are not part of it (a cache of whom was answered; after a failover a sender may get
//! one more vacation reply).

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::user::UserStore;
use crate::Error;

const ACTIVE: &str = "active";
const LIMIT: &str = "limit";

/// A user's settings as replication partners compare them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSettings {
    /// Script name → text, sorted by name.
    pub scripts: Vec<(String, String)>,
    pub active_script: Option<String>,
    /// The user's own quota limit in bytes (`Some(0)`: unlimited); `None`: the instance default.
    pub quota_limit: Option<u64>,
}

impl UserSettings {
    pub(crate) fn digest_into(&self, h: &mut Sha256) {
        h.update(b"\0settings\0");
        for (name, text) in &self.scripts {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(Sha256::digest(text.as_bytes()));
        }
        h.update([0xff]);
        h.update(self.active_script.as_deref().unwrap_or("").as_bytes());
        h.update([0, u8::from(self.active_script.is_some())]);
        match self.quota_limit {
            Some(l) => h.update([[1].as_slice(), &l.to_be_bytes()].concat()),
            None => h.update([0]),
        }
    }
}

impl UserStore {
    pub(crate) fn settings_in(&self, txn: &RoTxn<'_>) -> Result<UserSettings, Error> {
        let mut scripts = Vec::new();
        for item in self.sieve_scripts.iter(txn)? {
            let (name, text) = item?;
            scripts.push((name.to_string(), text.to_string()));
        }
        Ok(UserSettings {
            scripts,
            active_script: self.sieve_state.get(txn, ACTIVE)?.map(str::to_string),
            quota_limit: self.quota.get(txn, LIMIT)?,
        })
    }

    /// The user's scripts, active script and quota limit.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn settings(&self) -> Result<UserSettings, Error> {
        let txn = self.rtxn()?;
        self.settings_in(&txn)
    }

    /// Makes this side's settings the partner's (scripts replaced as a whole).
    pub(crate) fn apply_settings_in(&self, txn: &mut RwTxn<'_>, s: &UserSettings) -> Result<(), Error> {
        self.sieve_scripts.clear(txn)?;
        for (name, text) in &s.scripts {
            self.sieve_scripts.put(txn, name, text)?;
        }
        match &s.active_script {
            Some(a) => self.sieve_state.put(txn, ACTIVE, a)?,
            None => {
                self.sieve_state.delete(txn, ACTIVE)?;
            }
        }
        match s.quota_limit {
            Some(l) => self.quota.put(txn, LIMIT, &l)?,
            None => {
                self.quota.delete(txn, LIMIT)?;
            }
        }
        Ok(())
    }
}
