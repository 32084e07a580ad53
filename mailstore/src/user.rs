//! One user's index: an LMDB environment of its own (damage stays with one user) plus the
//! user's message files. Mailbox operations live here, message operations in `messages.rs`.

use std::path::Path;
use std::sync::Arc;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, SerdeBincode, Str, Unit, U32, U64};
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn};
use tokio::sync::watch;

use crate::blob::BlobDir;
use crate::names::{MailboxName, Username};
use crate::repl::ChangeLog;
use crate::schema::{CacheRecord, ExpungedRecord, MailboxRecord, MessageRecord, UserMeta};
use crate::Error;

/// Special-use folders every new user gets (RFC 6154), besides INBOX.
pub const DEFAULT_FOLDERS: [(&str, &str); 4] =
    [("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Junk", "\\Junk")];

const MAP_SIZE: usize = 8 << 30;

pub(crate) type MsgDb = Database<Bytes, SerdeBincode<MessageRecord>>;

/// A user's open index and files. Cheap to share (`Arc`); every write is one LMDB transaction,
/// durable when the call returns.
pub struct UserStore {
    pub(crate) user: Username,
    pub(crate) env: Env,
    pub(crate) meta: Database<Str, SerdeBincode<UserMeta>>,
    pub(crate) names: Database<Str, U32<BigEndian>>,
    pub(crate) mboxes: Database<U32<BigEndian>, SerdeBincode<MailboxRecord>>,
    pub(crate) msgs: MsgDb,
    pub(crate) cache: Database<Bytes, SerdeBincode<CacheRecord>>,
    /// SORT/THREAD keys by message key (`sortcache.rs`).
    pub(crate) sortkeys: crate::sortcache::SortDb,
    pub(crate) expunged: Database<Bytes, SerdeBincode<ExpungedRecord>>,
    pub(crate) guids: Database<Bytes, U32<BigEndian>>,
    pub(crate) subs: Database<Str, Unit>,
    /// Sieve scripts by name, and the active name + vacation records (`sieve.rs`).
    pub(crate) sieve_scripts: Database<Str, Str>,
    pub(crate) sieve_state: Database<Str, Str>,
    /// Storage usage and the per-user limit override (`quota.rs`).
    pub(crate) quota: Database<Str, U64<BigEndian>>,
    /// The instance's quota for users without an override (`[store] quota_bytes`; 0 = none).
    pub(crate) default_quota: u64,
    pub(crate) blobs: BlobDir,
    changes: watch::Sender<u64>,
    /// The instance's replication log, marked by every logged write (`None` in a store opened
    /// without one).
    log: Option<Arc<ChangeLog>>,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore").field("user", &self.user).finish()
    }
}

impl UserStore {
    /// Opens (creating on first use, with INBOX and the special-use folders) a user's index.
    ///
    /// # Errors
    /// I/O or LMDB errors; they concern this user only.
    pub(crate) fn open(
        user: Username,
        meta_dir: &Path,
        mail_dir: &Path,
        log: Option<Arc<ChangeLog>>,
        default_quota: u64,
    ) -> Result<Arc<Self>, Error> {
        std::fs::create_dir_all(meta_dir)?;
        std::fs::create_dir_all(mail_dir)?;
        let mut opts = EnvOpenOptions::new();
        opts.map_size(MAP_SIZE).max_dbs(16).max_readers(1024);
        #[allow(unsafe_code)]
        // SAFETY: the environment's files are only ever opened through this function, by this
        // process (one mailstored per data dir); the Store keeps at most one Env per user open.
        let env = unsafe { opts.open(meta_dir)? };
        let mut wtxn = env.write_txn()?;
        let store = UserStore {
            meta: env.create_database(&mut wtxn, Some("meta"))?,
            names: env.create_database(&mut wtxn, Some("names"))?,
            mboxes: env.create_database(&mut wtxn, Some("mailboxes"))?,
            msgs: env.create_database(&mut wtxn, Some("messages"))?,
            cache: env.create_database(&mut wtxn, Some("cache"))?,
            sortkeys: env.create_database(&mut wtxn, Some(crate::sortcache::SORTKEYS))?,
            expunged: env.create_database(&mut wtxn, Some("expunged"))?,
            guids: env.create_database(&mut wtxn, Some("guids"))?,
            subs: env.create_database(&mut wtxn, Some("subscriptions"))?,
            sieve_scripts: env.create_database(&mut wtxn, Some("sieve_scripts"))?,
            sieve_state: env.create_database(&mut wtxn, Some("sieve_state"))?,
            quota: env.create_database(&mut wtxn, Some("quota"))?,
            default_quota,
            blobs: BlobDir::new(mail_dir.to_path_buf()),
            changes: watch::channel(0).0,
            log,
            user,
            env: env.clone(),
        };
        let fresh = store.meta.get(&wtxn, "meta")?.is_none();
        if fresh {
            store.meta.put(&mut wtxn, "meta", &UserMeta { next_mailbox_id: 1, ..Default::default() })?;
            store.create_in(&mut wtxn, &MailboxName::inbox(), None)?;
            store.subs.put(&mut wtxn, "INBOX", &())?;
            for (name, use_) in DEFAULT_FOLDERS {
                let name = MailboxName::new(name)?;
                store.create_in(&mut wtxn, &name, Some(use_.to_string()))?;
                store.subs.put(&mut wtxn, name.as_str(), &())?;
            }
        }
        store.init_usage(&mut wtxn)?;
        wtxn.commit()?;
        Ok(Arc::new(store))
    }

    pub fn user(&self) -> &Username {
        &self.user
    }

    /// A receiver that changes whenever this user's index is committed (IDLE, NOOP updates).
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    pub(crate) fn rtxn(&self) -> Result<RoTxn<'_, heed::WithTls>, Error> {
        Ok(self.env.read_txn()?)
    }

    /// Runs `f` in one write transaction, commits (durably), marks the user in the replication
    /// log and notifies watchers.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut RwTxn<'_>) -> Result<T, Error>) -> Result<T, Error> {
        self.write_txn(true, f)
    }

    /// As [`UserStore::write`] without marking the log: for changes a replica applies, which its
    /// primary already holds.
    pub(crate) fn write_unlogged<T>(&self, f: impl FnOnce(&mut RwTxn<'_>) -> Result<T, Error>) -> Result<T, Error> {
        self.write_txn(false, f)
    }

    /// The log is marked before the commit (a crash after the commit still finds the user logged;
    /// if marking fails, nothing is committed) and again after it (a sync that read the state
    /// just before the commit and acked meanwhile cannot drop this change). See `repl/log.rs`.
    fn write_txn<T>(&self, logged: bool, f: impl FnOnce(&mut RwTxn<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let log = if logged { self.log.as_deref() } else { None };
        let mut wtxn = self.env.write_txn()?;
        let out = f(&mut wtxn)?;
        if let Some(log) = log {
            log.mark(&self.user)?;
        }
        wtxn.commit()?;
        if let Some(log) = log {
            if let Err(e) = log.mark(&self.user) {
                tracing::error!(user = %self.user, error = %e, "change log: cannot mark user after commit");
            }
        }
        self.notify();
        Ok(out)
    }

    pub(crate) fn get_meta(&self, txn: &RoTxn<'_>) -> Result<UserMeta, Error> {
        self.meta.get(txn, "meta")?.ok_or_else(|| Error::Corrupt("user meta record missing".into()))
    }

    /// Looks a mailbox up by name.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn mailbox(&self, name: &MailboxName) -> Result<Option<MailboxRecord>, Error> {
        let txn = self.rtxn()?;
        self.mailbox_in(&txn, name)
    }

    pub(crate) fn mailbox_in(&self, txn: &RoTxn<'_>, name: &MailboxName) -> Result<Option<MailboxRecord>, Error> {
        match self.names.get(txn, name.as_str())? {
            Some(id) => Ok(self.mboxes.get(txn, &id)?),
            None => Ok(None),
        }
    }

    /// # Errors
    /// LMDB errors.
    pub fn mailbox_by_id(&self, id: u32) -> Result<Option<MailboxRecord>, Error> {
        let txn = self.rtxn()?;
        Ok(self.mboxes.get(&txn, &id)?)
    }

    pub(crate) fn existing(&self, txn: &RoTxn<'_>, name: &MailboxName) -> Result<MailboxRecord, Error> {
        match self.mailbox_in(txn, name)? {
            Some(m) if !m.noselect => Ok(m),
            _ => Err(Error::NoSuchMailbox(name.to_string())),
        }
    }

    /// Every mailbox, sorted by name.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxRecord>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.names.iter(&txn)? {
            let (_, id) = item?;
            if let Some(m) = self.mboxes.get(&txn, &id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub(crate) fn next_uidvalidity(&self, txn: &mut RwTxn<'_>) -> Result<u32, Error> {
        let mut meta = self.get_meta(txn)?;
        let now = chrono::Utc::now().timestamp() as u32;
        let v = now.max(meta.last_uidvalidity.wrapping_add(1)).max(1);
        meta.last_uidvalidity = v;
        self.meta.put(txn, "meta", &meta)?;
        Ok(v)
    }

    pub(crate) fn create_in(
        &self,
        txn: &mut RwTxn<'_>,
        name: &MailboxName,
        special_use: Option<String>,
    ) -> Result<MailboxRecord, Error> {
        if let Some(existing) = self.mailbox_in(txn, name)? {
            if existing.noselect {
                let mut m = existing;
                m.noselect = false;
                m.uidvalidity = self.next_uidvalidity(txn)?;
                self.mboxes.put(txn, &m.id, &m)?;
                return Ok(m);
            }
            return Err(Error::MailboxExists(name.to_string()));
        }
        for parent in name.ancestors() {
            if self.mailbox_in(txn, &parent)?.is_none() {
                self.create_in(txn, &parent, None)?;
            }
        }
        let mut meta = self.get_meta(txn)?;
        let id = meta.next_mailbox_id;
        meta.next_mailbox_id += 1;
        self.meta.put(txn, "meta", &meta)?;
        let uidvalidity = self.next_uidvalidity(txn)?;
        let rec = MailboxRecord {
            id,
            unique_id: hex::encode(rand::random::<[u8; 16]>()),
            name: name.to_string(),
            uidvalidity,
            uidnext: 1,
            highestmodseq: 1,
            recent_uid: 1,
            special_use,
            keywords: Vec::new(),
            exists: 0,
            noselect: false,
        };
        self.mboxes.put(txn, &id, &rec)?;
        self.names.put(txn, name.as_str(), &id)?;
        Ok(rec)
    }

    /// CREATE (RFC 3501 6.3.3); missing parents are created too.
    ///
    /// # Errors
    /// [`Error::MailboxExists`], LMDB errors.
    pub fn create_mailbox(&self, name: &MailboxName, special_use: Option<String>) -> Result<MailboxRecord, Error> {
        self.write(|txn| self.create_in(txn, name, special_use))
    }

    pub(crate) fn children_in(&self, txn: &RoTxn<'_>, name: &MailboxName) -> Result<Vec<MailboxRecord>, Error> {
        let prefix = format!("{}{}", name.as_str(), crate::names::SEPARATOR);
        let mut out = Vec::new();
        for item in self.names.prefix_iter(txn, &prefix)? {
            let (_, id) = item?;
            if let Some(m) = self.mboxes.get(txn, &id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// DELETE (RFC 3501 6.3.4). The messages go to the expunged area (kept for the retention,
    /// so the folder can be restored). A mailbox with children keeps its name as `\Noselect`.
    ///
    /// # Errors
    /// [`Error::NotAllowed`] for INBOX or a `\Noselect` name with children;
    /// [`Error::NoSuchMailbox`].
    pub fn delete_mailbox(&self, name: &MailboxName) -> Result<(), Error> {
        if name.is_inbox() {
            return Err(Error::NotAllowed("INBOX cannot be deleted".into()));
        }
        self.write(|txn| {
            let mut m = self.mailbox_in(txn, name)?.ok_or_else(|| Error::NoSuchMailbox(name.to_string()))?;
            let has_children = !self.children_in(txn, name)?.is_empty();
            if m.noselect && has_children {
                return Err(Error::NotAllowed(format!(
                    "{name} has child mailboxes and holds no messages; delete the children first"
                )));
            }
            let uids: Vec<u32> = self.uids_in(txn, m.id)?;
            self.expunge_uids_in(txn, &mut m, &uids)?;
            if has_children {
                m.noselect = true;
                self.mboxes.put(txn, &m.id, &m)?;
            } else {
                self.mboxes.delete(txn, &m.id)?;
                self.names.delete(txn, name.as_str())?;
            }
            Ok(())
        })
    }

    /// RENAME (RFC 3501 6.3.5), children included. Renaming INBOX moves its messages to a new
    /// mailbox and leaves INBOX empty; INBOX's children are not renamed.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], [`Error::MailboxExists`], [`Error::NotAllowed`] when renaming a
    /// mailbox into its own subtree.
    pub fn rename_mailbox(&self, from: &MailboxName, to: &MailboxName) -> Result<(), Error> {
        if to.is_child_of(from) || to == from {
            return Err(Error::NotAllowed("cannot rename a mailbox into itself".into()));
        }
        self.write(|txn| {
            let src = self.mailbox_in(txn, from)?.ok_or_else(|| Error::NoSuchMailbox(from.to_string()))?;
            if let Some(dst) = self.mailbox_in(txn, to)? {
                if !dst.noselect || to.is_inbox() {
                    return Err(Error::MailboxExists(to.to_string()));
                }
            }
            if from.is_inbox() {
                let mut dst = self.create_in(txn, to, None)?;
                let mut inbox = src;
                let uids = self.uids_in(txn, inbox.id)?;
                self.copy_in(txn, &inbox, &uids, &mut dst)?;
                self.remove_uids_in(txn, &mut inbox, &uids)?;
                return Ok(());
            }
            let mut moving = vec![src];
            moving.extend(self.children_in(txn, from)?);
            for mut m in moving {
                let old = MailboxName::new(&m.name)?;
                let new = old.reparent(from, to);
                if self.names.get(txn, new.as_str())?.is_some() {
                    return Err(Error::MailboxExists(new.to_string()));
                }
                self.names.delete(txn, old.as_str())?;
                self.names.put(txn, new.as_str(), &m.id)?;
                if self.subs.delete(txn, old.as_str())? {
                    self.subs.put(txn, new.as_str(), &())?;
                }
                m.name = new.to_string();
                self.mboxes.put(txn, &m.id, &m)?;
            }
            for parent in to.ancestors() {
                if self.mailbox_in(txn, &parent)?.is_none() {
                    self.create_in(txn, &parent, None)?;
                }
            }
            Ok(())
        })
    }

    /// # Errors
    /// LMDB errors.
    pub fn subscribe(&self, name: &MailboxName) -> Result<(), Error> {
        self.write(|txn| Ok(self.subs.put(txn, name.as_str(), &())?))
    }

    /// # Errors
    /// LMDB errors.
    pub fn unsubscribe(&self, name: &MailboxName) -> Result<bool, Error> {
        self.write(|txn| Ok(self.subs.delete(txn, name.as_str())?))
    }

    /// Subscribed names (which may name mailboxes that no longer exist, RFC 3501 6.3.6).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn subscriptions(&self) -> Result<Vec<String>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.subs.iter(&txn)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }
}
