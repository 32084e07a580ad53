//! The change log (Cyrus's `sync_log`): which users changed since the replica last caught up,
//! coalesced to one entry per user.
//!
//! # Where it lives and why
//!
//! One small LMDB environment per instance under `data_dir/repl/` (not under `metadata/`, where
//! every directory is a user's index and `_repl` would be a valid user name). A table maps user →
//! *mark*, a sequence number taken from an instance-wide counter each time the user is marked, so
//! [`ChangeLog::ack`] can tell "synced up to here" from "changed again meanwhile".
//!
//! The environment is opened with `MDB_NOSYNC`: marking costs a write transaction but **no
//! fsync**, so a delivery pays nothing beyond the fsyncs of its message file and user index. What
//! that gives up is only an operating-system crash (a killed process leaves its writes in the page
//! cache). Such a crash is detected at the next open: the environment records the kernel's boot
//! id and, on a clean close, a `clean` marker; if neither vouches for it, the log is thrown away
//! and rebuilt as "every user changed", which the sync turns into one state compare per user
//! (cheap when [`crate::UserStore::user_state_digest`] matches) — replay is the normal path.
//!
//! A write marks its user twice: before its index commit (so a crash right after the commit still
//! finds the user logged) and after it (so an ack by a sync that read the state just before the
//! commit cannot drop the change). Measured on the development machine (2 cores, ext4 on a
//! virtual disk, release build, `measure_mark_cost` in `repl/tests.rs`): a mark costs 5–6 µs; an
//! `append` of a small message 12–17 ms, a logged `subscribe` (one synced LMDB commit) 6–7 ms,
//! the same write unlogged the same within noise. A synced log commit would have added about one
//! such commit (~6 ms) per mark, i.e. roughly doubled the cost of a flag change.

use std::path::{Path, PathBuf};

use heed::byteorder::BigEndian;
use heed::types::{Str, U64};
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use crate::blob::sync_dir;
use crate::names::Username;
use crate::Error;

const MAP_SIZE: usize = 256 << 20;
const CLEAN: &str = "clean";
const BOOT_ID: &str = "boot_id";
/// Key of the instance-wide mark counter in `meta`.
const SEQ: &str = "seq";

/// The instance's durable, coalesced record of which users changed.
pub struct ChangeLog {
    dir: PathBuf,
    env: Env,
    users: Database<Str, U64<BigEndian>>,
    /// user → unix milliseconds of the oldest change not yet on the replica (replication lag).
    since: Database<Str, U64<BigEndian>>,
    meta: Database<Str, U64<BigEndian>>,
    /// Called after each mark: wakes the sync worker, so that a change travels at once instead
    /// of at the next poll.
    hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeLog").field("dir", &self.dir).finish()
    }
}

/// The kernel's boot id, where the system exposes one (Linux); `None` elsewhere, where only a
/// clean close vouches for the log.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

impl ChangeLog {
    /// Opens (creating) the log in `dir`. Returns it and whether it can be trusted; when it
    /// cannot (first open, or an operating-system crash since the last run), it comes back
    /// empty and the caller must mark every user.
    ///
    /// # Errors
    /// I/O and LMDB errors.
    pub(crate) fn open(dir: &Path) -> Result<(Self, bool), Error> {
        std::fs::create_dir_all(dir)?;
        let clean = dir.join(CLEAN);
        let had_env = dir.join("data.mdb").exists();
        let same_boot = match (boot_id(), std::fs::read_to_string(dir.join(BOOT_ID)).ok()) {
            (Some(now), Some(then)) => now == then.trim(),
            _ => false,
        };
        let trusted = had_env && (clean.exists() || same_boot);
        if !trusted {
            for f in ["data.mdb", "lock.mdb"] {
                match std::fs::remove_file(dir.join(f)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        if clean.exists() {
            std::fs::remove_file(&clean)?;
        }
        if let Some(id) = boot_id() {
            std::fs::write(dir.join(BOOT_ID), id)?;
        }
        sync_dir(dir)?;
        let mut opts = EnvOpenOptions::new();
        opts.map_size(MAP_SIZE).max_dbs(4);
        #[allow(unsafe_code)]
        // SAFETY: NO_SYNC trades durability against an OS crash only, which `open` detects (boot
        // id, clean marker) and repairs by rebuilding; the files are opened by this process alone,
        // once per Store.
        let env = unsafe { opts.flags(EnvFlags::NO_SYNC).open(dir)? };
        let mut wtxn = env.write_txn()?;
        let users = env.create_database(&mut wtxn, Some("users"))?;
        let since = env.create_database(&mut wtxn, Some("since"))?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        wtxn.commit()?;
        Ok((ChangeLog { dir: dir.to_path_buf(), env, users, since, meta, hook: std::sync::OnceLock::new() }, trusted))
    }

    /// Records that `user` changed; returns the new mark.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn mark(&self, user: &Username) -> Result<u64, Error> {
        let mut wtxn = self.env.write_txn()?;
        let seq = self.meta.get(&wtxn, SEQ)?.unwrap_or(0) + 1;
        self.meta.put(&mut wtxn, SEQ, &seq)?;
        self.users.put(&mut wtxn, user.as_str(), &seq)?;
        if self.since.get(&wtxn, user.as_str())?.is_none() {
            self.since.put(&mut wtxn, user.as_str(), &now_ms())?;
        }
        wtxn.commit()?;
        if let Some(h) = self.hook.get() {
            h();
        }
        Ok(seq)
    }

    /// Sets the function called after each mark (once; later calls are ignored).
    pub fn on_mark(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.hook.set(f);
    }

    /// The user's current mark, if it is pending.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn mark_of(&self, user: &Username) -> Result<Option<u64>, Error> {
        let rtxn = self.env.read_txn()?;
        Ok(self.users.get(&rtxn, user.as_str())?)
    }

    /// Unix milliseconds of the oldest change not yet on the replica (`None`: nothing pending).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn oldest_ms(&self) -> Result<Option<u64>, Error> {
        let rtxn = self.env.read_txn()?;
        let mut oldest: Option<u64> = None;
        for item in self.since.iter(&rtxn)? {
            let (_, t) = item?;
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        Ok(oldest)
    }

    /// When the user's oldest pending change was logged (unix ms).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn since_of(&self, user: &Username) -> Result<Option<u64>, Error> {
        let rtxn = self.env.read_txn()?;
        Ok(self.since.get(&rtxn, user.as_str())?)
    }

    /// Up to `limit` changed users with their marks, least recently marked first.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn changed(&self, limit: usize) -> Result<Vec<(Username, u64)>, Error> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.users.iter(&rtxn)? {
            let (name, mark) = item?;
            if let Ok(u) = Username::new(name) {
                out.push((u, mark));
            }
        }
        out.sort_by_key(|(_, m)| *m);
        out.truncate(limit);
        Ok(out)
    }

    /// How many users are waiting to be synced.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn pending(&self) -> Result<u64, Error> {
        let rtxn = self.env.read_txn()?;
        Ok(self.users.len(&rtxn)?)
    }

    /// Drops `user` from the log if it has not been marked again since `mark`; returns whether
    /// it was dropped. A lost ack (crash) only means one more compare. `synced_at_ms` is when the
    /// sync read the state it sent: a user marked again stays pending, but only changes after
    /// that moment are still missing on the replica, so its lag restarts there.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn ack(&self, user: &Username, mark: u64, synced_at_ms: u64) -> Result<bool, Error> {
        let mut wtxn = self.env.write_txn()?;
        let dropped = match self.users.get(&wtxn, user.as_str())? {
            Some(m) if m <= mark => {
                self.since.delete(&mut wtxn, user.as_str())?;
                self.users.delete(&mut wtxn, user.as_str())?
            }
            Some(_) => {
                let t = self.since.get(&wtxn, user.as_str())?.unwrap_or(0).max(synced_at_ms);
                self.since.put(&mut wtxn, user.as_str(), &t)?;
                false
            }
            None => false,
        };
        wtxn.commit()?;
        Ok(dropped)
    }
}

impl Drop for ChangeLog {
    /// A clean close: flush the environment, then leave the marker that vouches for it.
    fn drop(&mut self) {
        let done = self.env.force_sync().map_err(Error::from).and_then(|()| {
            std::fs::write(self.dir.join(CLEAN), b"")?;
            sync_dir(&self.dir)?;
            Ok(())
        });
        if let Err(e) = done {
            tracing::error!(error = %e, "change log: clean close failed; the next start rebuilds it");
        }
    }
}
