//! What replication needs from the roles database: a consistent snapshot and its import, applying
//! a primary's changelog entries under the primary's own sequence numbers, and changelog
//! retention.
//!
//! A follower's database is a copy of the primary's: same users, same backends, same changelog
//! numbering (so a follower could be promoted and serve its own followers). Its `last_seq` is the
//! last change it applied; it resumes from there.

use std::ops::Bound;

use heed::RwTxn;
use serde::{Deserialize, Serialize};

use crate::db::{Meta, META_LAST_SEQ, META_OLDEST_SEQ};
use crate::{Backend, Change, Result, Roles, RolesError, UserRole};

/// The whole content of a roles database at one sequence number, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last change included.
    pub seq: u64,
    /// Users in key order.
    pub users: Vec<(String, UserRole)>,
    /// Backends in name order.
    pub backends: Vec<Backend>,
}

impl Roles {
    fn meta_rw(&self) -> Result<&Meta> {
        match (&self.meta, self.read_only) {
            (Some(meta), false) => Ok(meta),
            _ => Err(RolesError::ReadOnly),
        }
    }

    /// The first sequence number still in the changelog (1 until the changelog is trimmed):
    /// [`Roles::changes_since`]`(after, ..)` is complete only when `after + 1 >= oldest_seq()`; a
    /// follower further behind needs a [`Snapshot`].
    ///
    /// # Errors
    /// LMDB errors.
    pub fn oldest_seq(&self) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta_get(&rtxn, META_OLDEST_SEQ)?.unwrap_or(1))
    }

    /// Everything (users, backends, the sequence they correspond to) in one read transaction.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let rtxn = self.env.read_txn()?;
        let seq = self.last_seq_in(&rtxn)?;
        let mut users = Vec::new();
        for item in self.users.iter(&rtxn)? {
            let (name, role) = item?;
            users.push((name.to_string(), role));
        }
        let mut backends = Vec::new();
        for item in self.backends.iter(&rtxn)? {
            backends.push(item?.1);
        }
        Ok(Snapshot { seq, users, backends })
    }

    /// Replaces the whole content with `snapshot` in one write transaction: users, backends and
    /// changelog are cleared, the snapshot written, and the database then stands at
    /// `snapshot.seq` with an empty changelog (`oldest_seq = seq + 1`). Readers see the old
    /// content or the new one, never a mix.
    ///
    /// # Errors
    /// [`RolesError::ReadOnly`]; LMDB errors.
    pub fn replace_all(&self, snapshot: &Snapshot) -> Result<()> {
        let meta = self.meta_rw()?;
        let mut wtxn = self.env.write_txn()?;
        self.users.clear(&mut wtxn)?;
        self.backends.clear(&mut wtxn)?;
        self.changelog.clear(&mut wtxn)?;
        for (user, role) in &snapshot.users {
            self.users.put(&mut wtxn, user, role)?;
        }
        for backend in &snapshot.backends {
            self.backends.put(&mut wtxn, &backend.name, backend)?;
        }
        meta.put(&mut wtxn, META_LAST_SEQ, &snapshot.seq)?;
        meta.put(&mut wtxn, META_OLDEST_SEQ, &(snapshot.seq + 1))?;
        wtxn.commit()?;
        Ok(())
    }

    /// Applies a primary's changelog entries, in order, in one write transaction, each under the
    /// primary's sequence number (the change and its changelog entry together). The entries must
    /// continue this database's sequence without a gap: the first is `last_seq() + 1`.
    ///
    /// The changes are applied as logged, without the checks [`crate::Writer`] makes: the primary
    /// made them, and the copy must end up identical even where a check would now refuse.
    ///
    /// Returns the new last sequence.
    ///
    /// # Errors
    /// [`RolesError::Invalid`] on a gap or reordering (nothing is applied); [`RolesError::ReadOnly`];
    /// LMDB errors.
    pub fn apply(&self, changes: &[(u64, Change)]) -> Result<u64> {
        self.meta_rw()?;
        let mut wtxn = self.env.write_txn()?;
        let mut last = self.last_seq_in(&wtxn)?;
        for (seq, change) in changes {
            if *seq != last + 1 {
                return Err(RolesError::Invalid(format!(
                    "change {seq} does not follow {last}: a gap in the changelog"
                )));
            }
            self.apply_one(&mut wtxn, *seq, change)?;
            last = *seq;
        }
        wtxn.commit()?;
        Ok(last)
    }

    fn apply_one(&self, wtxn: &mut RwTxn<'_>, seq: u64, change: &Change) -> Result<()> {
        match change {
            Change::SetUser { user, role } => self.users.put(wtxn, user, role)?,
            Change::DeleteUser { user } => {
                self.users.delete(wtxn, user)?;
            }
            Change::SetBackend(backend) => self.backends.put(wtxn, &backend.name, backend)?,
            Change::DeleteBackend { name } => {
                self.backends.delete(wtxn, name)?;
            }
        }
        self.changelog.put(wtxn, &seq, change)?;
        Ok(())
    }

    /// Keeps only the last `keep` changelog entries; `last_seq` stays what it was (remembered in
    /// `meta`), `oldest_seq` moves up. Returns how many entries were removed.
    ///
    /// # Errors
    /// [`RolesError::ReadOnly`]; LMDB errors.
    pub fn trim_changelog(&self, keep: u64) -> Result<u64> {
        let meta = self.meta_rw()?;
        let mut wtxn = self.env.write_txn()?;
        let last = self.last_seq_in(&wtxn)?;
        let oldest = self.meta_get(&wtxn, META_OLDEST_SEQ)?.unwrap_or(1);
        let new_oldest = (last.saturating_sub(keep) + 1).max(oldest);
        if new_oldest == oldest {
            return Ok(0);
        }
        let range = (Bound::Unbounded, Bound::Excluded(new_oldest));
        let removed = self.changelog.delete_range(&mut wtxn, &range)?;
        meta.put(&mut wtxn, META_LAST_SEQ, &last)?;
        meta.put(&mut wtxn, META_OLDEST_SEQ, &new_oldest)?;
        wtxn.commit()?;
        Ok(removed as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{active, backend};

    fn primary() -> (tempfile::TempDir, Roles) {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        roles.set_backend(backend("a1", None)).unwrap();
        roles
            .write(|w| {
                for i in 0..50 {
                    w.set_user(&format!("u{i}"), active("a1"))?;
                }
                Ok(())
            })
            .unwrap();
        roles.delete_user("u3").unwrap();
        (dir, roles)
    }

    #[test]
    fn apply_copies_changes_and_numbers() {
        let (_d, p) = primary();
        let dir = tempfile::tempdir().unwrap();
        let f = Roles::open(dir.path()).unwrap();
        let changes = p.changes_since(0, 1000).unwrap();
        assert_eq!(f.apply(&changes[..10]).unwrap(), 10);
        let err = f.apply(&changes[11..]).unwrap_err();
        assert!(err.to_string().contains("gap"), "{err}");
        assert_eq!(f.last_seq().unwrap(), 10, "a refused batch applies nothing");
        assert_eq!(f.apply(&changes[10..]).unwrap(), 52);
        assert_eq!(f.snapshot().unwrap(), p.snapshot().unwrap());
        assert_eq!(f.changes_since(0, 1000).unwrap(), changes);
    }

    #[test]
    fn trim_keeps_last_seq_and_numbering() {
        let (_d, p) = primary();
        assert_eq!(p.oldest_seq().unwrap(), 1);
        assert_eq!(p.trim_changelog(10).unwrap(), 42);
        assert_eq!(p.oldest_seq().unwrap(), 43);
        assert_eq!(p.last_seq().unwrap(), 52);
        assert_eq!(p.changes_since(0, 100).unwrap().first().unwrap().0, 43);
        assert_eq!(p.trim_changelog(10).unwrap(), 0, "nothing more to trim");
        assert_eq!(p.trim_changelog(0).unwrap(), 10);
        assert_eq!(p.last_seq().unwrap(), 52, "last_seq survives an empty changelog");
        p.set_user("late", active("a1")).unwrap();
        assert_eq!(p.last_seq().unwrap(), 53, "numbering continues after the trim");
    }

    #[test]
    fn snapshot_replaces_everything() {
        let (_d, p) = primary();
        let dir = tempfile::tempdir().unwrap();
        let f = Roles::open(dir.path()).unwrap();
        f.set_backend(backend("stale", None)).unwrap();
        f.set_user("ghost", active("stale")).unwrap();
        let snap = p.snapshot().unwrap();
        assert_eq!(snap.seq, 52);
        assert_eq!(snap.users.len(), 49);
        f.replace_all(&snap).unwrap();
        assert_eq!(f.snapshot().unwrap(), snap);
        assert_eq!(f.oldest_seq().unwrap(), 53);
        assert_eq!(f.lookup("ghost").unwrap(), None);
        p.set_user("new", active("a1")).unwrap();
        f.apply(&p.changes_since(52, 10).unwrap()).unwrap();
        assert_eq!(f.snapshot().unwrap(), p.snapshot().unwrap());
    }
}
