//! What a replica does with the differences a sync sends (Cyrus's `sync_server`): each call is
//! one write transaction ([`UserStore::apply_batch`] applies a whole user update in one), addresses mailboxes by unique id (names change, unique ids don't),
//! keeps `uidnext > max UID` and `highestmodseq >= max MODSEQ`, and is idempotent, so a sync that
//! is cut off and replayed converges. Applied changes are not marked in this side's change log:
//! its partner already holds them.

use heed::RwTxn;

use crate::blob::Guid;
use crate::names::MailboxName;
use crate::schema::{msg_key, CacheRecord, Flags, MailboxRecord, MessageRecord};
use crate::user::UserStore;
use crate::Error;

/// One change of a user's update, as [`UserStore::apply_batch`] takes it; each variant is the
/// `apply_*` call of the same name. Mailboxes are named by unique id.
#[derive(Clone, Debug)]
pub enum ReplOp {
    Mailbox {
        unique_id: String,
        name: MailboxName,
        uidvalidity: u32,
        special_use: Option<String>,
    },
    /// `raw` only when the replica lacks the GUID's file.
    Message {
        mailbox: String,
        uid: u32,
        record: MessageRecord,
        raw: Option<Vec<u8>>,
    },
    Flags {
        mailbox: String,
        uid: u32,
        flags: Flags,
        modseq: u64,
    },
    Expunge {
        mailbox: String,
        uids: Vec<u32>,
    },
    Counters {
        mailbox: String,
        last_uid: u32,
        highestmodseq: u64,
    },
    DeleteMailbox {
        unique_id: String,
    },
    Subscriptions(Vec<String>),
    /// The user's Sieve scripts, active script and quota limit, as a whole.
    Settings(crate::repl::UserSettings),
}

impl UserStore {
    /// Applies a user's update in one transaction: all of it or, on the first error, none of it
    /// (message files sent with it may stay, unreferenced, as after a failed APPEND). Files are
    /// written and parsed before the transaction opens, so it stays short.
    ///
    /// # Errors
    /// The first failing operation's error (see the `apply_*` calls); nothing is applied then.
    pub fn apply_batch(&self, ops: &[ReplOp]) -> Result<(), Error> {
        let mut caches = Vec::new();
        for op in ops {
            if let ReplOp::Message { record, raw, .. } = op {
                caches.push(self.message_cache(record, raw.as_deref())?);
            }
        }
        self.write_unlogged(|txn| {
            let mut caches = caches.iter();
            for op in ops {
                match op {
                    ReplOp::Mailbox { unique_id, name, uidvalidity, special_use } => {
                        self.apply_mailbox_in(txn, unique_id, name, *uidvalidity, special_use.clone())?;
                    }
                    ReplOp::Message { mailbox, uid, record, .. } => {
                        let cache = caches.next().expect("one cache per message op");
                        self.apply_message_in(txn, mailbox, *uid, record, cache)?;
                    }
                    ReplOp::Flags { mailbox, uid, flags, modseq } => {
                        self.apply_flags_in(txn, mailbox, *uid, flags, *modseq)?;
                    }
                    ReplOp::Expunge { mailbox, uids } => {
                        self.apply_expunge_in(txn, mailbox, uids)?;
                    }
                    ReplOp::Counters { mailbox, last_uid, highestmodseq } => {
                        self.apply_counters_in(txn, mailbox, *last_uid, *highestmodseq)?;
                    }
                    ReplOp::DeleteMailbox { unique_id } => {
                        self.apply_delete_mailbox_in(txn, unique_id)?;
                    }
                    ReplOp::Subscriptions(names) => self.apply_subscriptions_in(txn, names)?,
                    ReplOp::Settings(settings) => self.apply_settings_in(txn, settings)?,
                }
            }
            Ok(())
        })
    }

    fn applied_mailbox(&self, txn: &RwTxn<'_>, unique_id: &str) -> Result<MailboxRecord, Error> {
        self.by_unique_id_in(txn, unique_id)?.ok_or_else(|| Error::NoSuchMailbox(format!("unique id {unique_id}")))
    }

    /// Whether this user's message file with `guid` is here (then a sync sends the record only).
    pub fn has_guid(&self, guid: &Guid) -> bool {
        self.blobs.exists(guid)
    }

    /// Creates the mailbox `unique_id`, or renames it to `name`, with the partner's UIDVALIDITY
    /// and special use. A different mailbox holding `name` here is moved aside to
    /// `name.repl-<its unique id>` (its own update, or its deletion, follows in the same sync),
    /// so that swaps and renames over deleted names converge in any order. Children are renamed
    /// by their own calls; missing parents are created.
    ///
    /// # Errors
    /// [`Error::InvalidMailboxName`], LMDB errors.
    pub fn apply_mailbox(
        &self,
        unique_id: &str,
        name: &MailboxName,
        uidvalidity: u32,
        special_use: Option<String>,
    ) -> Result<MailboxRecord, Error> {
        self.write_unlogged(|txn| self.apply_mailbox_in(txn, unique_id, name, uidvalidity, special_use))
    }

    fn apply_mailbox_in(
        &self,
        txn: &mut RwTxn<'_>,
        unique_id: &str,
        name: &MailboxName,
        uidvalidity: u32,
        special_use: Option<String>,
    ) -> Result<MailboxRecord, Error> {
        if let Some(occupant) = self.mailbox_in(txn, name)? {
            if occupant.unique_id != unique_id {
                let parked = MailboxName::new(&format!("{}.repl-{}", name, occupant.unique_id))?;
                self.names.delete(txn, name.as_str())?;
                self.names.put(txn, parked.as_str(), &occupant.id)?;
                let mut o = occupant;
                o.name = parked.to_string();
                self.mboxes.put(txn, &o.id, &o)?;
            }
        }
        let mut m = match self.by_unique_id_in(txn, unique_id)? {
            Some(m) => m,
            None => {
                let mut m = self.create_in(txn, name, None)?;
                m.unique_id = unique_id.to_string();
                m
            }
        };
        if m.name != name.as_str() {
            self.names.delete(txn, &m.name)?;
            self.names.put(txn, name.as_str(), &m.id)?;
            m.name = name.to_string();
            for parent in name.ancestors() {
                if self.mailbox_in(txn, &parent)?.is_none() {
                    self.create_in(txn, &parent, None)?;
                }
            }
        }
        m.uidvalidity = uidvalidity;
        m.special_use = special_use;
        m.noselect = false;
        self.mboxes.put(txn, &m.id, &m)?;
        let mut meta = self.get_meta(txn)?;
        if meta.last_uidvalidity < uidvalidity {
            meta.last_uidvalidity = uidvalidity;
            self.meta.put(txn, "meta", &meta)?;
        }
        Ok(m)
    }

    /// Raises the mailbox's counters to the partner's: `uidnext` to `last_uid + 1` (UIDs given
    /// and expunged there are never reused here) and `highestmodseq`. Never lowers them.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], LMDB errors.
    pub fn apply_counters(&self, unique_id: &str, last_uid: u32, highestmodseq: u64) -> Result<(), Error> {
        self.write_unlogged(|txn| self.apply_counters_in(txn, unique_id, last_uid, highestmodseq))
    }

    fn apply_counters_in(
        &self,
        txn: &mut RwTxn<'_>,
        unique_id: &str,
        last_uid: u32,
        highestmodseq: u64,
    ) -> Result<(), Error> {
        let mut m = self.applied_mailbox(txn, unique_id)?;
        m.uidnext = m.uidnext.max(last_uid.saturating_add(1));
        m.highestmodseq = m.highestmodseq.max(highestmodseq);
        self.mboxes.put(txn, &m.id, &m)?;
        Ok(())
    }

    /// Stores the partner's message `uid` with its record (GUID, flags, MODSEQ, INTERNALDATE).
    /// `raw` is needed only when [`UserStore::has_guid`] is false; it is written (and checked
    /// against the GUID) before the index transaction. Applying a message already here under the
    /// same UID and GUID updates its flags and MODSEQ.
    ///
    /// # Errors
    /// [`Error::UidConflict`] when `uid` holds a different message here (resolve with
    /// [`UserStore::renumber_conflict`]); [`Error::Corrupt`] when `raw` does not hash to the
    /// GUID, or is missing while the file is; [`Error::NoSuchMailbox`]; I/O and LMDB errors.
    pub fn apply_message(
        &self,
        mailbox_unique_id: &str,
        uid: u32,
        rec: &MessageRecord,
        raw: Option<&[u8]>,
    ) -> Result<(), Error> {
        let cache = self.message_cache(rec, raw)?;
        self.write_unlogged(|txn| self.apply_message_in(txn, mailbox_unique_id, uid, rec, &cache))
    }

    /// Writes (or finds) the message file and parses it for the index's cache.
    fn message_cache(&self, rec: &MessageRecord, raw: Option<&[u8]>) -> Result<CacheRecord, Error> {
        let content = match raw {
            Some(raw) => {
                let guid = self.blobs.put(raw)?;
                if guid != rec.guid {
                    return Err(Error::Corrupt(format!(
                        "content sent for {} hashes to {}",
                        rec.guid.to_hex(),
                        guid.to_hex()
                    )));
                }
                raw.to_vec()
            }
            None if self.has_guid(&rec.guid) => self.blobs.get(&rec.guid)?,
            None => return Err(Error::Corrupt(format!("content of {} missing on the replica", rec.guid.to_hex()))),
        };
        let a = mailscale_mime::analyze(&content);
        Ok(CacheRecord {
            envelope: a.envelope,
            bodystructure: a.bodystructure,
            body: a.body,
            header_len: a.header_len as u32,
            sent_date: a.sent_date,
        })
    }

    fn apply_message_in(
        &self,
        txn: &mut RwTxn<'_>,
        mailbox_unique_id: &str,
        uid: u32,
        rec: &MessageRecord,
        cache: &CacheRecord,
    ) -> Result<(), Error> {
        let mut m = self.applied_mailbox(txn, mailbox_unique_id)?;
        let key = msg_key(m.id, uid);
        match self.msgs.get(txn, &key)? {
            Some(here) if here.guid != rec.guid => {
                return Err(Error::UidConflict { mailbox: m.name.clone(), uid });
            }
            Some(_) => {}
            None => {
                self.cache.put(txn, &key, cache)?;
                // Filled by the first SORT/THREAD that needs it (sortcache.rs).
                self.drop_sort_record(txn, &key)?;
                self.add_ref(txn, &rec.guid)?;
                self.add_usage(txn, u64::from(rec.size))?;
                m.exists += 1;
            }
        }
        self.msgs.put(txn, &key, rec)?;
        m.uidnext = m.uidnext.max(uid.saturating_add(1));
        m.highestmodseq = m.highestmodseq.max(rec.modseq);
        Self::remember_keywords(&mut m, &rec.flags);
        self.mboxes.put(txn, &m.id, &m)?;
        Ok(())
    }

    /// Sets a message's flags and MODSEQ to the partner's. Returns false when the message is not
    /// here (expunged meanwhile, or not yet sent).
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], LMDB errors.
    pub fn apply_flags(&self, mailbox_unique_id: &str, uid: u32, flags: &Flags, modseq: u64) -> Result<bool, Error> {
        self.write_unlogged(|txn| self.apply_flags_in(txn, mailbox_unique_id, uid, flags, modseq))
    }

    fn apply_flags_in(
        &self,
        txn: &mut RwTxn<'_>,
        mailbox_unique_id: &str,
        uid: u32,
        flags: &Flags,
        modseq: u64,
    ) -> Result<bool, Error> {
        let mut m = self.applied_mailbox(txn, mailbox_unique_id)?;
        let key = msg_key(m.id, uid);
        let Some(mut rec) = self.msgs.get(txn, &key)? else {
            return Ok(false);
        };
        rec.flags = flags.clone();
        rec.modseq = modseq;
        self.msgs.put(txn, &key, &rec)?;
        m.highestmodseq = m.highestmodseq.max(modseq);
        Self::remember_keywords(&mut m, flags);
        self.mboxes.put(txn, &m.id, &m)?;
        Ok(true)
    }

    /// Expunges the partner's expunged UIDs into this side's delayed-expunge area (restorable
    /// for the retention, as on the primary). UIDs not here are ignored. `highestmodseq` is left
    /// for [`UserStore::apply_counters`]. Returns how many were expunged.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], LMDB errors.
    pub fn apply_expunge(&self, mailbox_unique_id: &str, uids: &[u32]) -> Result<usize, Error> {
        self.write_unlogged(|txn| self.apply_expunge_in(txn, mailbox_unique_id, uids))
    }

    fn apply_expunge_in(&self, txn: &mut RwTxn<'_>, mailbox_unique_id: &str, uids: &[u32]) -> Result<usize, Error> {
        let mut m = self.applied_mailbox(txn, mailbox_unique_id)?;
        let mut here = Vec::new();
        for &uid in uids {
            if self.msgs.get(txn, &msg_key(m.id, uid))?.is_some() {
                here.push(uid);
            }
        }
        if here.is_empty() {
            return Ok(0);
        }
        let highestmodseq = m.highestmodseq;
        self.expunge_uids_in(txn, &mut m, &here)?;
        m.highestmodseq = highestmodseq;
        self.mboxes.put(txn, &m.id, &m)?;
        Ok(here.len())
    }

    /// Deletes the mailbox `unique_id` as DELETE does: messages to the delayed-expunge area; a
    /// mailbox that still has children here stays as `\Noselect` (its counters are left for
    /// [`UserStore::apply_counters`]). Returns false if it is not here.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn apply_delete_mailbox(&self, unique_id: &str) -> Result<bool, Error> {
        self.write_unlogged(|txn| self.apply_delete_mailbox_in(txn, unique_id))
    }

    fn apply_delete_mailbox_in(&self, txn: &mut RwTxn<'_>, unique_id: &str) -> Result<bool, Error> {
        let Some(mut m) = self.by_unique_id_in(txn, unique_id)? else {
            return Ok(false);
        };
        let uids = self.uids_in(txn, m.id)?;
        let highestmodseq = m.highestmodseq;
        self.expunge_uids_in(txn, &mut m, &uids)?;
        m.highestmodseq = highestmodseq;
        let name = MailboxName::new(&m.name)?;
        if self.children_in(txn, &name)?.is_empty() {
            self.mboxes.delete(txn, &m.id)?;
            self.names.delete(txn, &m.name)?;
        } else {
            m.noselect = true;
            self.mboxes.put(txn, &m.id, &m)?;
        }
        Ok(true)
    }

    /// Replaces the subscriptions with the partner's.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn apply_subscriptions(&self, names: &[String]) -> Result<(), Error> {
        self.write_unlogged(|txn| self.apply_subscriptions_in(txn, names))
    }

    fn apply_subscriptions_in(&self, txn: &mut RwTxn<'_>, names: &[String]) -> Result<(), Error> {
        self.subs.clear(txn)?;
        for n in names {
            self.subs.put(txn, n, &())?;
        }
        Ok(())
    }

    /// The UID-conflict rule of DESIGN.md principle 6: moves the message at `uid` to a fresh UID
    /// above `above` and above every UID given here (with a new MODSEQ, so the partner sees it
    /// as a new message) and returns that UID. Both survive.
    ///
    /// After a split, both partners may hold a different message under the same UID. A UID must
    /// never name two contents under one UIDVALIDITY (clients cache by UID), so the sync renumbers
    /// *both*: the side it syncs from first (`above` = the other side's last UID), then the other
    /// (`above` = the first one's new UID); each side then learns the other's message at its new
    /// UID and `uid` is gone on both. This is a local change, so it is marked in the change log.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`]; [`Error::NotAllowed`] when `uid` holds no message; LMDB errors.
    pub fn renumber_conflict(&self, mailbox_unique_id: &str, uid: u32, above: u32) -> Result<u32, Error> {
        self.write(|txn| {
            let mut m = self.applied_mailbox(txn, mailbox_unique_id)?;
            let key = msg_key(m.id, uid);
            let Some(mut rec) = self.msgs.get(txn, &key)? else {
                return Err(Error::NotAllowed(format!("{} has no UID {uid} to renumber", m.name)));
            };
            let cache = self.cache.get(txn, &key)?;
            let new_uid = m.uidnext.max(uid.saturating_add(1)).max(above.saturating_add(1));
            m.uidnext = new_uid + 1;
            m.highestmodseq += 1;
            rec.modseq = m.highestmodseq;
            let new_key = msg_key(m.id, new_uid);
            self.msgs.delete(txn, &key)?;
            self.cache.delete(txn, &key)?;
            self.msgs.put(txn, &new_key, &rec)?;
            if let Some(c) = cache {
                self.cache.put(txn, &new_key, &c)?;
            }
            self.copy_sort_record(txn, &key, &new_key)?;
            self.drop_sort_record(txn, &key)?;
            self.mboxes.put(txn, &m.id, &m)?;
            Ok(new_uid)
        })
    }
}

impl UserStore {
    /// The GUIDs this side knows in mailbox `unique_id`: live there, or expunged from it and
    /// still within the retention. A partner's message outside this set was never seen here —
    /// it was written on the partner while this side was cut off — and must be rescued, not
    /// expunged.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn known_guids(&self, unique_id: &str) -> Result<std::collections::HashSet<Guid>, Error> {
        let txn = self.rtxn()?;
        let mut out = std::collections::HashSet::new();
        if let Some(m) = self.by_unique_id_in(&txn, unique_id)? {
            for item in self.msgs.prefix_iter(&txn, &m.id.to_be_bytes())? {
                out.insert(item?.1.guid);
            }
        }
        for item in self.expunged.iter(&txn)? {
            let (_, e) = item?;
            if e.mailbox_unique_id == unique_id {
                out.insert(e.message.guid);
            }
        }
        Ok(out)
    }

    /// Takes in a message only the partner holds (written there during a split): a new message
    /// with a fresh UID above `above` (the partner's last UID, so the UID is new on both sides),
    /// its flags and INTERNALDATE kept, in the mailbox `unique_id` — or, when that mailbox is
    /// not here, in the one named `name`, created with the partner's unique id if missing. A
    /// local change, so it is logged and replicated back. Returns the new UID.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when `raw` does not hash to the record's GUID or is missing while the
    /// file is; I/O and LMDB errors.
    pub fn rescue_message(
        &self,
        unique_id: &str,
        name: &MailboxName,
        above: u32,
        rec: &MessageRecord,
        raw: Option<&[u8]>,
    ) -> Result<u32, Error> {
        let cache = self.message_cache(rec, raw)?;
        self.write(|txn| {
            let mut m = match self.by_unique_id_in(txn, unique_id)? {
                Some(m) => m,
                None => match self.mailbox_in(txn, name)? {
                    Some(m) => m,
                    None => {
                        let mut m = self.create_in(txn, name, None)?;
                        m.unique_id = unique_id.to_string();
                        m
                    }
                },
            };
            let uid = m.uidnext.max(above.saturating_add(1));
            m.uidnext = uid + 1;
            m.exists += 1;
            m.noselect = false;
            let modseq = Self::bump(&mut m);
            Self::remember_keywords(&mut m, &rec.flags);
            let key = msg_key(m.id, uid);
            let new = MessageRecord { modseq, ..rec.clone() };
            self.msgs.put(txn, &key, &new)?;
            self.cache.put(txn, &key, &cache)?;
            self.add_ref(txn, &rec.guid)?;
            self.add_usage(txn, u64::from(rec.size))?;
            self.mboxes.put(txn, &m.id, &m)?;
            if self.names.get(txn, &m.name)?.is_none() {
                self.names.put(txn, &m.name, &m.id)?;
            }
            Ok(uid)
        })
    }

    /// Raises mailbox `unique_id`'s counters to at least the partner's (after a split the
    /// partner may have given higher UIDs and MODSEQs), as a logged local change.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], LMDB errors.
    pub fn raise_counters(&self, unique_id: &str, last_uid: u32, highestmodseq: u64) -> Result<(), Error> {
        self.write(|txn| self.apply_counters_in(txn, unique_id, last_uid, highestmodseq))
    }
}
