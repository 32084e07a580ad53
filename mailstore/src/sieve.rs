//! One user's Sieve scripts (RFC 5804 section 1.1: many scripts, at most one active) and the
//! vacation de-duplication records (RFC 5230 section 4.2), in the user's own LMDB environment:
//!
//! - `sieve_scripts`: script name → script text (UTF-8, validated by the caller);
//! - `sieve_state`: `active` → the active script's name; `vacation/<key>` → expiry (unix
//!   seconds, decimal).
//!
//! Script changes are logged writes (the replication log marks the user) and replication carries
//! the scripts and the active one (`repl/settings.rs`). Vacation records are unlogged and not
//! replicated: they are a cache of whom was answered, not user data.

use std::cell::Cell;

use heed::RwTxn;

use crate::user::UserStore;
use crate::Error;

const ACTIVE: &str = "active";
const VACATION: &str = "vacation/";

/// Why a script operation was refused; each is one ManageSieve response code.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("there is no script named {0:?}")]
    NoSuchScript(String),
    #[error("a script named {0:?} already exists")]
    ScriptExists(String),
    #[error("script {0:?} is active: deactivate it first")]
    Active(String),
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<heed::Error> for ScriptError {
    fn from(e: heed::Error) -> Self {
        ScriptError::Store(Error::Index(e))
    }
}

impl UserStore {
    /// Runs `f` in one logged write transaction. A refusal aborts the transaction (nothing is
    /// written and the log is not marked).
    fn script_write<T>(&self, f: impl FnOnce(&mut RwTxn<'_>) -> Result<T, ScriptError>) -> Result<T, ScriptError> {
        let refused = Cell::new(None);
        let out = self.write(|txn| match f(txn) {
            Ok(v) => Ok(v),
            Err(ScriptError::Store(e)) => Err(e),
            Err(other) => {
                refused.set(Some(other));
                Err(Error::NotAllowed("script operation refused".into()))
            }
        });
        match (out, refused.into_inner()) {
            (_, Some(refusal)) => Err(refusal),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(ScriptError::Store(e)),
        }
    }

    /// Every script name, sorted, with whether it is the active one.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn list_scripts(&self) -> Result<Vec<(String, bool)>, Error> {
        let txn = self.rtxn()?;
        let active = self.sieve_state.get(&txn, ACTIVE)?.map(str::to_owned);
        let mut out = Vec::new();
        for item in self.sieve_scripts.iter(&txn)? {
            let (name, _) = item?;
            out.push((name.to_owned(), active.as_deref() == Some(name)));
        }
        Ok(out)
    }

    /// A script's text.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn get_script(&self, name: &str) -> Result<Option<String>, Error> {
        let txn = self.rtxn()?;
        Ok(self.sieve_scripts.get(&txn, name)?.map(str::to_owned))
    }

    /// The active script's name and text, if a script is active.
    ///
    /// # Errors
    /// LMDB errors; [`Error::Corrupt`] when the active name has no script.
    pub fn active_script(&self) -> Result<Option<(String, String)>, Error> {
        let txn = self.rtxn()?;
        let Some(name) = self.sieve_state.get(&txn, ACTIVE)? else {
            return Ok(None);
        };
        match self.sieve_scripts.get(&txn, name)? {
            Some(text) => Ok(Some((name.to_owned(), text.to_owned()))),
            None => Err(Error::Corrupt(format!("active Sieve script {name:?} does not exist"))),
        }
    }

    /// Creates or replaces a script; replacing the active script keeps it active.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_script(&self, name: &str, text: &str) -> Result<(), Error> {
        self.write(|txn| Ok(self.sieve_scripts.put(txn, name, text)?))
    }

    /// Number of scripts and their total size in bytes, `name` left out (for quota checks of a
    /// script about to replace it).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn script_usage_without(&self, name: &str) -> Result<(usize, u64), Error> {
        let txn = self.rtxn()?;
        let (mut count, mut bytes) = (0, 0);
        for item in self.sieve_scripts.iter(&txn)? {
            let (n, text) = item?;
            if n != name {
                count += 1;
                bytes += text.len() as u64;
            }
        }
        Ok((count, bytes))
    }

    /// Deletes a script (RFC 5804 section 2.10: never the active one).
    ///
    /// # Errors
    /// [`ScriptError::NoSuchScript`], [`ScriptError::Active`], LMDB errors.
    pub fn delete_script(&self, name: &str) -> Result<(), ScriptError> {
        self.script_write(|txn| {
            if self.sieve_state.get(txn, ACTIVE)? == Some(name) {
                return Err(ScriptError::Active(name.to_owned()));
            }
            if !self.sieve_scripts.delete(txn, name)? {
                return Err(ScriptError::NoSuchScript(name.to_owned()));
            }
            Ok(())
        })
    }

    /// Renames a script (RFC 5804 section 2.11.1); the active script stays active.
    ///
    /// # Errors
    /// [`ScriptError::NoSuchScript`] for `from`, [`ScriptError::ScriptExists`] for `to`,
    /// LMDB errors.
    pub fn rename_script(&self, from: &str, to: &str) -> Result<(), ScriptError> {
        self.script_write(|txn| {
            let Some(text) = self.sieve_scripts.get(txn, from)?.map(str::to_owned) else {
                return Err(ScriptError::NoSuchScript(from.to_owned()));
            };
            if from == to {
                return Ok(());
            }
            if self.sieve_scripts.get(txn, to)?.is_some() {
                return Err(ScriptError::ScriptExists(to.to_owned()));
            }
            self.sieve_scripts.delete(txn, from)?;
            self.sieve_scripts.put(txn, to, &text)?;
            if self.sieve_state.get(txn, ACTIVE)? == Some(from) {
                self.sieve_state.put(txn, ACTIVE, to)?;
            }
            Ok(())
        })
    }

    /// Makes `name` the only active script, or deactivates scripting with `None` (RFC 5804
    /// section 2.8).
    ///
    /// # Errors
    /// [`ScriptError::NoSuchScript`], LMDB errors.
    pub fn set_active_script(&self, name: Option<&str>) -> Result<(), ScriptError> {
        self.script_write(|txn| {
            match name {
                Some(name) => {
                    if self.sieve_scripts.get(txn, name)?.is_none() {
                        return Err(ScriptError::NoSuchScript(name.to_owned()));
                    }
                    self.sieve_state.put(txn, ACTIVE, name)?;
                }
                None => {
                    self.sieve_state.delete(txn, ACTIVE)?;
                }
            }
            Ok(())
        })
    }

    /// Claims the vacation record `key` until `expires` (unix seconds): `true` when no
    /// unexpired record existed, i.e. the reply is due and is now recorded. Expired records
    /// of this user are pruned in the same transaction.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn vacation_claim(&self, key: &str, now: i64, expires: i64) -> Result<bool, Error> {
        let full = format!("{VACATION}{key}");
        self.write_unlogged(|txn| {
            let mut expired = Vec::new();
            for item in self.sieve_state.prefix_iter(txn, VACATION)? {
                let (k, v) = item?;
                if v.parse::<i64>().map_or(true, |t| t <= now) {
                    expired.push(k.to_owned());
                }
            }
            for k in &expired {
                self.sieve_state.delete(txn, k)?;
            }
            if self.sieve_state.get(txn, &full)?.is_some() {
                return Ok(false);
            }
            self.sieve_state.put(txn, &full, &expires.to_string())?;
            Ok(true)
        })
    }

    /// Forgets a vacation record, so that the next message may be answered (used when sending
    /// the claimed reply failed).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn vacation_forget(&self, key: &str) -> Result<(), Error> {
        let full = format!("{VACATION}{key}");
        self.write_unlogged(|txn| {
            self.sieve_state.delete(txn, &full)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions, Username};

    use super::ScriptError;

    fn user() -> (tempfile::TempDir, std::sync::Arc<crate::UserStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let u = store.user(&Username::new("tim").unwrap()).unwrap();
        (dir, u)
    }

    #[test]
    fn scripts_follow_rfc5804_rules() {
        let (_d, u) = user();
        assert!(u.list_scripts().unwrap().is_empty());
        assert!(u.active_script().unwrap().is_none());
        u.put_script("a", "keep;").unwrap();
        u.put_script("b", "discard;").unwrap();
        assert!(matches!(u.set_active_script(Some("c")), Err(ScriptError::NoSuchScript(_))));
        u.set_active_script(Some("a")).unwrap();
        assert_eq!(u.list_scripts().unwrap(), [("a".into(), true), ("b".into(), false)]);
        assert!(matches!(u.delete_script("a"), Err(ScriptError::Active(_))));
        assert!(matches!(u.rename_script("a", "b"), Err(ScriptError::ScriptExists(_))));
        assert!(matches!(u.rename_script("x", "y"), Err(ScriptError::NoSuchScript(_))));
        u.rename_script("a", "main").unwrap();
        assert_eq!(u.active_script().unwrap(), Some(("main".into(), "keep;".into())));
        u.put_script("main", "stop;").unwrap();
        assert_eq!(u.active_script().unwrap().unwrap().1, "stop;");
        assert_eq!(u.script_usage_without("main").unwrap(), (1, 8));
        u.set_active_script(None).unwrap();
        u.delete_script("main").unwrap();
        assert!(matches!(u.delete_script("main"), Err(ScriptError::NoSuchScript(_))));
        assert_eq!(u.get_script("b").unwrap().as_deref(), Some("discard;"));
    }

    #[test]
    fn vacation_records_expire() {
        let (_d, u) = user();
        assert!(u.vacation_claim("k", 100, 200).unwrap());
        assert!(!u.vacation_claim("k", 150, 250).unwrap());
        assert!(u.vacation_claim("other", 150, 250).unwrap());
        assert!(u.vacation_claim("k", 200, 300).unwrap(), "expired at 200");
        u.vacation_forget("k").unwrap();
        assert!(u.vacation_claim("k", 201, 300).unwrap());
    }
}
