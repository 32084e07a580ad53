//! The instance's store: `mail/<user>/` files and `metadata/<user>/` LMDB environments, with an
//! LRU of open environments so that 2,000 users don't keep 2,000 maps open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::names::Username;
use crate::repl::ChangeLog;
use crate::user::UserStore;
use crate::Error;

/// Store-wide settings (from the `[store]` section of the instance config).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How many user environments stay open when idle.
    pub open_index_cache: usize,
    /// Seconds an expunged message stays restorable before the purge task removes it.
    pub expunge_retention_secs: i64,
    /// Storage quota in bytes of users without an override of their own; 0 means unlimited.
    pub quota_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { open_index_cache: 128, expunge_retention_secs: 7 * 86400, quota_bytes: 0 }
    }
}

struct Open {
    users: HashMap<Username, (Arc<UserStore>, u64)>,
    tick: u64,
}

/// All users of one mailstored instance.
pub struct Store {
    mail: PathBuf,
    metadata: PathBuf,
    options: StoreOptions,
    open: Mutex<Open>,
    log: Arc<ChangeLog>,
}

impl Store {
    /// Opens (creating) `data_dir/mail`, `data_dir/metadata` and the replication change log
    /// `data_dir/repl`. A log that cannot be trusted (first start, operating-system crash) is
    /// rebuilt with every user marked.
    ///
    /// # Errors
    /// I/O errors creating the directories, LMDB errors opening the log.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, Error> {
        let mail = data_dir.join("mail");
        let metadata = data_dir.join("metadata");
        std::fs::create_dir_all(&mail)?;
        std::fs::create_dir_all(&metadata)?;
        let (log, trusted) = ChangeLog::open(&data_dir.join("repl"))?;
        let store = Store {
            mail,
            metadata,
            options,
            open: Mutex::new(Open { users: HashMap::new(), tick: 0 }),
            log: Arc::new(log),
        };
        if !trusted {
            let users = store.users()?;
            tracing::info!(users = users.len(), "change log rebuilt: every user will be compared");
            for u in &users {
                store.log.mark(u)?;
            }
        }
        Ok(store)
    }

    /// Up to `limit` users changed since their last [`Store::ack_user`], least recently marked
    /// first, each with the mark to ack once it is synced.
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn changed_users(&self, limit: usize) -> Result<Vec<(Username, u64)>, Error> {
        self.log.changed(limit)
    }

    /// Takes `user` off the change log if it has not changed again since `mark` (from
    /// [`Store::changed_users`]); returns whether it was taken off.
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn ack_user(&self, user: &Username, mark: u64, synced_at_ms: u64) -> Result<bool, Error> {
        self.log.ack(user, mark, synced_at_ms)
    }

    /// The user's pending mark (`None`: nothing of it waits for the replica). A writer that
    /// reads this after its commit and sees [`Store::changed_users`] hand out a mark at least as
    /// high knows that sync read its change.
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn mark_of(&self, user: &Username) -> Result<Option<u64>, Error> {
        self.log.mark_of(user)
    }

    /// Unix milliseconds of the oldest change the replica does not hold yet, if any.
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn oldest_pending_ms(&self) -> Result<Option<u64>, Error> {
        self.log.oldest_ms()
    }

    /// When `user`'s oldest pending change was logged (unix ms), if it is pending.
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn pending_since_ms(&self, user: &Username) -> Result<Option<u64>, Error> {
        self.log.since_of(user)
    }

    /// Marks `user` changed by hand (`mailctl repl sync --user`, a failed sync to retry).
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn mark_user(&self, user: &Username) -> Result<u64, Error> {
        self.log.mark(user)
    }

    /// Calls `f` after every change logged for replication (the sync worker's wake-up).
    pub fn on_change(&self, f: Box<dyn Fn() + Send + Sync>) {
        self.log.on_mark(f);
    }

    /// How many users wait for a sync (replication lag in users).
    ///
    /// # Errors
    /// LMDB errors of the log.
    pub fn pending_users(&self) -> Result<u64, Error> {
        self.log.pending()
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The user's store, opened (and on first use created) on demand.
    ///
    /// # Errors
    /// I/O or LMDB errors opening this user's index; other users are unaffected.
    pub fn user(&self, user: &Username) -> Result<Arc<UserStore>, Error> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.tick += 1;
        let tick = open.tick;
        if let Some((u, t)) = open.users.get_mut(user) {
            *t = tick;
            return Ok(u.clone());
        }
        let u = UserStore::open(
            user.clone(),
            &self.metadata.join(user.as_str()),
            &self.mail.join(user.as_str()),
            Some(self.log.clone()),
            self.options.quota_bytes,
        )
        .map_err(|e| {
            tracing::error!(user = %user, error = %e, "cannot open user index");
            e
        })?;
        open.users.insert(user.clone(), (u.clone(), tick));
        let cap = self.options.open_index_cache.max(1);
        while open.users.len() > cap {
            // Evict the least recently used environment that no session holds.
            let victim = open
                .users
                .iter()
                .filter(|(_, (s, _))| Arc::strong_count(s) == 1)
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    open.users.remove(&k);
                }
                None => break,
            }
        }
        Ok(u)
    }

    /// Users that have an index on disk.
    ///
    /// # Errors
    /// I/O errors listing `metadata/`.
    pub fn users(&self) -> Result<Vec<Username>, Error> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.metadata)? {
            let name = entry?.file_name();
            if let Some(u) = name.to_str().and_then(|s| Username::new(s).ok()) {
                out.push(u);
            }
        }
        out.sort();
        Ok(out)
    }

    /// One pass of the purge task over every user; a user whose index fails is logged and
    /// skipped. Returns the number of messages purged.
    pub fn purge_all(&self) -> usize {
        let cutoff = chrono::Utc::now().timestamp() - self.options.expunge_retention_secs;
        let mut total = 0;
        let users = match self.users() {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "purge: cannot list users");
                return 0;
            }
        };
        for user in users {
            match self.user(&user).and_then(|u| u.purge_expunged(cutoff)) {
                Ok(n) => total += n,
                Err(e) => tracing::error!(user = %user, error = %e, "purge failed for user"),
            }
        }
        total
    }
}
