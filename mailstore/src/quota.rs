//! Per-user storage quota (the STORAGE resource of RFC 9208, in bytes): usage is the sum of the
//! sizes of live messages — the expunged area (undelete) does not count — kept in the user's
//! index by the same write transaction that adds or removes a message, so it is exact after a
//! crash too. Indexes written before quotas existed get their usage counted at open.
//!
//! The limit is the instance default (`[store] quota_bytes`) unless the user has an override
//! (`mailctl quota set`). Overrides are replicated with the user's other settings
//! (`repl/settings.rs`); `mailctl` also sets them on every backend it is given.

use heed::{RoTxn, RwTxn};

use crate::user::UserStore;
use crate::Error;

/// Key of the usage counter (bytes) in the `quota` database.
const USAGE: &str = "usage";
/// Key of the per-user limit override (bytes, 0 = unlimited); absent means the default.
const LIMIT: &str = "limit";

/// A user's limit override as `mailctl quota set` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOverride {
    /// Back to the instance default.
    Default,
    /// No limit for this user.
    Unlimited,
    /// This many bytes.
    Bytes(u64),
}

impl UserStore {
    /// Counts the usage from the messages when the index has no counter yet.
    pub(crate) fn init_usage(&self, txn: &mut RwTxn<'_>) -> Result<(), Error> {
        if self.quota.get(txn, USAGE)?.is_none() {
            let used = self.live_bytes_in(txn)?;
            self.quota.put(txn, USAGE, &used)?;
        }
        Ok(())
    }

    fn live_bytes_in(&self, txn: &RoTxn<'_>) -> Result<u64, Error> {
        let mut total = 0u64;
        for item in self.msgs.iter(txn)? {
            total += u64::from(item?.1.size);
        }
        Ok(total)
    }

    pub(crate) fn usage_in(&self, txn: &RoTxn<'_>) -> Result<u64, Error> {
        Ok(self.quota.get(txn, USAGE)?.unwrap_or(0))
    }

    /// Adds `bytes` to the usage (a message became live).
    pub(crate) fn add_usage(&self, txn: &mut RwTxn<'_>, bytes: u64) -> Result<(), Error> {
        let used = self.usage_in(txn)?;
        self.quota.put(txn, USAGE, &used.saturating_add(bytes))?;
        Ok(())
    }

    /// Subtracts `bytes` from the usage (a live message went away).
    pub(crate) fn sub_usage(&self, txn: &mut RwTxn<'_>, bytes: u64) -> Result<(), Error> {
        let used = self.usage_in(txn)?;
        if bytes > used {
            tracing::warn!(user = %self.user, used, bytes, "quota usage would go below zero; kept at 0");
        }
        self.quota.put(txn, USAGE, &used.saturating_sub(bytes))?;
        Ok(())
    }

    /// The limit in force (0 = unlimited).
    pub(crate) fn limit_in(&self, txn: &RoTxn<'_>) -> Result<u64, Error> {
        Ok(self.quota.get(txn, LIMIT)?.unwrap_or(self.default_quota))
    }

    /// Refuses storing `more` bytes when that would take the usage over the limit.
    pub(crate) fn admit_in(&self, txn: &RoTxn<'_>, more: u64) -> Result<(), Error> {
        let limit = self.limit_in(txn)?;
        let usage = self.usage_in(txn)?;
        if limit > 0 && more > 0 && usage.saturating_add(more) > limit {
            return Err(Error::OverQuota { usage, limit, needed: more });
        }
        Ok(())
    }

    /// Refuses, before anything is stored, a delivery of `bytes` in all (several copies of a
    /// message filed by Sieve) that would not fit: all copies or none.
    ///
    /// # Errors
    /// [`Error::OverQuota`], LMDB errors.
    pub fn admit(&self, bytes: u64) -> Result<(), Error> {
        let txn = self.rtxn()?;
        self.admit_in(&txn, bytes)
    }

    /// Usage and limit in bytes (limit 0 = unlimited), what GETQUOTA reports as STORAGE (in
    /// KiB there, RFC 9208 5.1).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn quota(&self) -> Result<(u64, u64), Error> {
        let txn = self.rtxn()?;
        Ok((self.usage_in(&txn)?, self.limit_in(&txn)?))
    }

    /// The user's own limit, if set (`Some(0)`: unlimited).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn quota_override(&self) -> Result<Option<u64>, Error> {
        let txn = self.rtxn()?;
        Ok(self.quota.get(&txn, LIMIT)?)
    }

    /// Sets or clears the user's own limit (a logged write: replication carries it).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn set_quota_override(&self, o: QuotaOverride) -> Result<(), Error> {
        self.write(|txn| {
            match o {
                QuotaOverride::Default => {
                    self.quota.delete(txn, LIMIT)?;
                }
                QuotaOverride::Unlimited => self.quota.put(txn, LIMIT, &0)?,
                QuotaOverride::Bytes(n) => self.quota.put(txn, LIMIT, &n)?,
            }
            Ok(())
        })
    }

    /// The usage counter and the usage counted from the messages now, in one read transaction:
    /// equal unless the index is damaged (`mailctl quota get` shows both).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn usage_check(&self) -> Result<(u64, u64), Error> {
        let txn = self.rtxn()?;
        Ok((self.usage_in(&txn)?, self.live_bytes_in(&txn)?))
    }
}
