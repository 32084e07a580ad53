//! Message operations of a [`UserStore`]: append, flags, copy/move, expunge (delayed) and purge.
//! Every public call is one LMDB write transaction, committed before it returns.

use heed::{RoTxn, RwTxn};

use crate::blob::Guid;
use crate::names::MailboxName;
use crate::schema::{
    flag, key_uid, msg_key, CacheRecord, ExpungedRecord, Flags, MailboxRecord, MessageRecord, StoreMode,
};
use crate::user::UserStore;
use crate::Error;

/// Result of an APPEND or a delivery: what UIDPLUS's APPENDUID reports.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Result of COPY/MOVE: what UIDPLUS's COPYUID reports.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    pub uidvalidity: u32,
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
}

/// Result of STORE.
#[derive(Debug, Default)]
pub struct Stored {
    /// Messages whose flags changed (with their new record), in UID order.
    pub changed: Vec<(u32, MessageRecord)>,
    /// Messages left alone because of UNCHANGEDSINCE (RFC 7162).
    pub modified: Vec<u32>,
}

impl UserStore {
    pub(crate) fn bump(m: &mut MailboxRecord) -> u64 {
        m.highestmodseq += 1;
        m.highestmodseq
    }

    pub(crate) fn add_ref(&self, txn: &mut RwTxn<'_>, guid: &Guid) -> Result<(), Error> {
        let n = self.guids.get(txn, &guid.0)?.unwrap_or(0);
        self.guids.put(txn, &guid.0, &(n + 1))?;
        Ok(())
    }

    /// Drops one reference; returns true when it was the last.
    fn drop_ref(&self, txn: &mut RwTxn<'_>, guid: &Guid) -> Result<bool, Error> {
        let n = self.guids.get(txn, &guid.0)?.unwrap_or(0);
        if n <= 1 {
            self.guids.delete(txn, &guid.0)?;
            Ok(true)
        } else {
            self.guids.put(txn, &guid.0, &(n - 1))?;
            Ok(false)
        }
    }

    pub(crate) fn remember_keywords(m: &mut MailboxRecord, flags: &Flags) {
        for k in &flags.keywords {
            if !m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                m.keywords.push(k.clone());
            }
        }
    }

    /// Stores a message in a mailbox (APPEND, LMTP delivery). The file is durable before the
    /// index transaction starts; the index is durable when this returns.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`], I/O and LMDB errors. Nothing is acknowledged on error.
    pub fn append(
        &self,
        mailbox: &MailboxName,
        raw: &[u8],
        flags: Flags,
        internaldate: Option<(i64, i16)>,
    ) -> Result<Appended, Error> {
        let size = raw.len() as u64;
        // Checked before the file is written too, so that refused mail leaves no file behind.
        let txn = self.rtxn()?;
        self.admit_in(&txn, size)?;
        drop(txn);
        let guid = self.blobs.put(raw)?;
        let a = mailscale_mime::analyze(raw);
        let sort = crate::sortcache::SortRecord::from_header(guid, raw);
        let cache = CacheRecord {
            envelope: a.envelope,
            bodystructure: a.bodystructure,
            body: a.body,
            header_len: a.header_len as u32,
            sent_date: a.sent_date,
        };
        let (date, tz) = internaldate.unwrap_or_else(|| (chrono::Utc::now().timestamp(), 0));
        self.write(|txn| {
            let mut m = self.existing(txn, mailbox)?;
            self.admit_in(txn, size)?;
            let uid = m.uidnext;
            m.uidnext += 1;
            m.exists += 1;
            let modseq = Self::bump(&mut m);
            Self::remember_keywords(&mut m, &flags);
            let rec = MessageRecord { guid, size: raw.len() as u32, internaldate: date, tz_minutes: tz, modseq, flags };
            let key = msg_key(m.id, uid);
            self.msgs.put(txn, &key, &rec)?;
            self.cache.put(txn, &key, &cache)?;
            self.put_sort_record(txn, &key, &sort)?;
            self.add_ref(txn, &guid)?;
            self.add_usage(txn, size)?;
            self.mboxes.put(txn, &m.id, &m)?;
            Ok(Appended { uidvalidity: m.uidvalidity, uid })
        })
    }

    pub(crate) fn uids_in(&self, txn: &RoTxn<'_>, mbox: u32) -> Result<Vec<u32>, Error> {
        let mut out = Vec::new();
        for item in self.msgs.prefix_iter(txn, &mbox.to_be_bytes())? {
            out.push(key_uid(item?.0));
        }
        Ok(out)
    }

    /// All messages of a mailbox in UID order.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn messages(&self, mbox: u32) -> Result<Vec<(u32, MessageRecord)>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.msgs.prefix_iter(&txn, &mbox.to_be_bytes())? {
            let (k, v) = item?;
            out.push((key_uid(k), v));
        }
        Ok(out)
    }

    /// Index entries (and, when asked, cached ENVELOPE/BODYSTRUCTURE) of the given UIDs, in one
    /// read transaction. Missing (expunged meanwhile) UIDs come back as `None`.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn fetch(
        &self,
        mbox: u32,
        uids: &[u32],
        with_cache: bool,
    ) -> Result<Vec<(Option<MessageRecord>, Option<CacheRecord>)>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::with_capacity(uids.len());
        for &uid in uids {
            let key = msg_key(mbox, uid);
            let rec = self.msgs.get(&txn, &key)?;
            let cache = if with_cache && rec.is_some() { self.cache.get(&txn, &key)? } else { None };
            out.push((rec, cache));
        }
        Ok(out)
    }

    /// The message's bytes, from its immutable file.
    ///
    /// # Errors
    /// I/O errors (a missing file means a damaged store).
    pub fn read_message(&self, guid: &Guid) -> Result<Vec<u8>, Error> {
        self.blobs.get(guid)
    }

    /// STORE (RFC 3501 6.4.6) with optional UNCHANGEDSINCE (RFC 7162 3.1.3).
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`] if the mailbox vanished, LMDB errors.
    pub fn store_flags(
        &self,
        mbox: u32,
        uids: &[u32],
        mode: StoreMode,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<Stored, Error> {
        self.write(|txn| {
            let mut m = self.mboxes.get(txn, &mbox)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{mbox}")))?;
            let modseq = m.highestmodseq + 1;
            let mut out = Stored::default();
            for &uid in uids {
                let key = msg_key(mbox, uid);
                let Some(mut rec) = self.msgs.get(txn, &key)? else {
                    continue;
                };
                if unchanged_since.is_some_and(|u| rec.modseq > u) {
                    out.modified.push(uid);
                    continue;
                }
                if rec.flags.apply(mode, flags) {
                    rec.modseq = modseq;
                    self.msgs.put(txn, &key, &rec)?;
                    out.changed.push((uid, rec));
                }
            }
            if !out.changed.is_empty() {
                Self::bump(&mut m);
                Self::remember_keywords(&mut m, flags);
                self.mboxes.put(txn, &mbox, &m)?;
            }
            Ok(out)
        })
    }

    pub(crate) fn copy_in(
        &self,
        txn: &mut RwTxn<'_>,
        src: &MailboxRecord,
        uids: &[u32],
        dst: &mut MailboxRecord,
    ) -> Result<Copied, Error> {
        let modseq = Self::bump(dst);
        let mut out = Copied { uidvalidity: dst.uidvalidity, ..Default::default() };
        for &uid in uids {
            let key = msg_key(src.id, uid);
            let Some(mut rec) = self.msgs.get(txn, &key)? else {
                continue;
            };
            let cache = self.cache.get(txn, &key)?;
            let new_uid = dst.uidnext;
            dst.uidnext += 1;
            dst.exists += 1;
            rec.modseq = modseq;
            Self::remember_keywords(dst, &rec.flags);
            let new_key = msg_key(dst.id, new_uid);
            self.msgs.put(txn, &new_key, &rec)?;
            if let Some(c) = cache {
                self.cache.put(txn, &new_key, &c)?;
            }
            self.copy_sort_record(txn, &key, &new_key)?;
            self.add_ref(txn, &rec.guid)?;
            self.add_usage(txn, u64::from(rec.size))?;
            out.src.push(uid);
            out.dst.push(new_uid);
        }
        self.mboxes.put(txn, &dst.id, dst)?;
        Ok(out)
    }

    /// COPY (RFC 3501 6.4.7, COPYUID of RFC 4315). Files are shared, not duplicated.
    ///
    /// # Errors
    /// [`Error::NoSuchMailbox`] for the destination (the caller answers `[TRYCREATE]`).
    pub fn copy(&self, src: u32, uids: &[u32], dst: &MailboxName) -> Result<Copied, Error> {
        self.write(|txn| {
            let s = self.mboxes.get(txn, &src)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{src}")))?;
            let mut d = self.existing(txn, dst)?;
            let mut more = 0u64;
            for &uid in uids {
                if let Some(rec) = self.msgs.get(txn, &msg_key(src, uid))? {
                    more += u64::from(rec.size);
                }
            }
            self.admit_in(txn, more)?;
            self.copy_in(txn, &s, uids, &mut d)
        })
    }

    /// MOVE (RFC 6851): copy and remove from the source in one transaction.
    ///
    /// # Errors
    /// As [`UserStore::copy`].
    pub fn move_messages(&self, src: u32, uids: &[u32], dst: &MailboxName) -> Result<Copied, Error> {
        self.write(|txn| {
            let mut s = self.mboxes.get(txn, &src)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{src}")))?;
            let mut d = self.existing(txn, dst)?;
            if d.id == s.id {
                return Err(Error::NotAllowed("source and destination are the same mailbox".into()));
            }
            let copied = self.copy_in(txn, &s, uids, &mut d)?;
            self.remove_uids_in(txn, &mut s, &copied.src)?;
            Ok(copied)
        })
    }

    /// Removes messages that live on elsewhere (MOVE, RENAME INBOX): no undelete copy.
    pub(crate) fn remove_uids_in(&self, txn: &mut RwTxn<'_>, m: &mut MailboxRecord, uids: &[u32]) -> Result<(), Error> {
        Self::bump(m);
        for &uid in uids {
            let key = msg_key(m.id, uid);
            if let Some(rec) = self.msgs.get(txn, &key)? {
                self.msgs.delete(txn, &key)?;
                self.cache.delete(txn, &key)?;
                self.drop_sort_record(txn, &key)?;
                m.exists -= 1;
                self.record_vanished(txn, m.id, &[uid], m.highestmodseq)?;
                self.sub_usage(txn, u64::from(rec.size))?;
                if self.drop_ref(txn, &rec.guid)? {
                    // Cannot happen for a move (the copy holds a reference); keep the file anyway
                    // until the purge task sees no reference, so nothing is lost here.
                    self.guids.put(txn, &rec.guid.0, &0)?;
                }
            }
        }
        self.mboxes.put(txn, &m.id, m)?;
        Ok(())
    }

    /// Moves messages into the expunged area (delayed expunge; undelete restores from there).
    pub(crate) fn expunge_uids_in(
        &self,
        txn: &mut RwTxn<'_>,
        m: &mut MailboxRecord,
        uids: &[u32],
    ) -> Result<(), Error> {
        let now = chrono::Utc::now().timestamp();
        let mut meta = self.get_meta(txn)?;
        Self::bump(m);
        for &uid in uids {
            let key = msg_key(m.id, uid);
            let Some(rec) = self.msgs.get(txn, &key)? else {
                continue;
            };
            self.msgs.delete(txn, &key)?;
            self.cache.delete(txn, &key)?;
            self.drop_sort_record(txn, &key)?;
            m.exists -= 1;
            self.sub_usage(txn, u64::from(rec.size))?;
            meta.expunge_seq += 1;
            let ekey = meta.expunge_seq.to_be_bytes();
            let e = ExpungedRecord {
                mailbox_unique_id: m.unique_id.clone(),
                mailbox_name: m.name.clone(),
                uid,
                expunged_at: now,
                message: rec,
            };
            self.expunged.put(txn, &ekey, &e)?;
            self.record_vanished(txn, m.id, &[uid], m.highestmodseq)?;
        }
        self.meta.put(txn, "meta", &meta)?;
        self.mboxes.put(txn, &m.id, m)?;
        Ok(())
    }

    /// EXPUNGE / UID EXPUNGE (RFC 3501 6.4.3, RFC 4315 2.1): removes the `\Deleted` messages
    /// (restricted to `only` when given) and returns their UIDs.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn expunge(&self, mbox: u32, only: Option<&[u32]>) -> Result<Vec<u32>, Error> {
        let txn = self.rtxn()?;
        let mut doomed = Vec::new();
        for item in self.msgs.prefix_iter(&txn, &mbox.to_be_bytes())? {
            let (k, rec) = item?;
            let uid = key_uid(k);
            if rec.flags.has(flag::DELETED) && only.is_none_or(|o| o.binary_search(&uid).is_ok()) {
                doomed.push(uid);
            }
        }
        drop(txn);
        if doomed.is_empty() {
            return Ok(doomed);
        }
        self.write(|txn| {
            let mut m = self.mboxes.get(txn, &mbox)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{mbox}")))?;
            self.expunge_uids_in(txn, &mut m, &doomed)
        })?;
        Ok(doomed)
    }

    /// POP3's UPDATE state (RFC 1939 6) in one transaction: `seen` get `\Seen`, `expunge` are
    /// expunged whatever their flags. A crash leaves all of it done or none of it. Returns the
    /// UIDs expunged (those that still existed).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn seen_and_expunge(&self, mbox: u32, seen: &[u32], expunge: &[u32]) -> Result<Vec<u32>, Error> {
        self.write(|txn| {
            let mut m = self.mboxes.get(txn, &mbox)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{mbox}")))?;
            let modseq = Self::bump(&mut m);
            for &uid in seen {
                let key = msg_key(mbox, uid);
                if let Some(mut rec) = self.msgs.get(txn, &key)? {
                    if !rec.flags.has(flag::SEEN) {
                        rec.flags.system |= flag::SEEN;
                        rec.modseq = modseq;
                        self.msgs.put(txn, &key, &rec)?;
                    }
                }
            }
            let mut gone = Vec::new();
            for &uid in expunge {
                if self.msgs.get(txn, &msg_key(mbox, uid))?.is_some() {
                    gone.push(uid);
                }
            }
            self.mboxes.put(txn, &mbox, &m)?;
            self.expunge_uids_in(txn, &mut m, &gone)?;
            Ok(gone)
        })
    }

    /// Marks the messages that arrived since the last SELECT as seen-by-a-session and returns the
    /// first UID that is `\Recent` for this session (RFC 3501 2.3.2).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn claim_recent(&self, mbox: u32) -> Result<u32, Error> {
        // `\Recent` is this server's session state, not replicated: no change-log mark.
        self.write_unlogged(|txn| {
            let mut m = self.mboxes.get(txn, &mbox)?.ok_or_else(|| Error::NoSuchMailbox(format!("#{mbox}")))?;
            let first = m.recent_uid;
            if m.recent_uid != m.uidnext {
                m.recent_uid = m.uidnext;
                self.mboxes.put(txn, &mbox, &m)?;
            }
            Ok(first)
        })
    }

    /// Messages in the expunged area, oldest first (for undelete and operators).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn expunged(&self) -> Result<Vec<ExpungedRecord>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.expunged.iter(&txn)? {
            out.push(item?.1);
        }
        Ok(out)
    }

    /// Drops expunged messages older than `cutoff` (unix seconds) and the files no longer
    /// referenced. Returns how many messages were purged.
    ///
    /// # Errors
    /// LMDB or I/O errors.
    pub fn purge_expunged(&self, cutoff: i64) -> Result<usize, Error> {
        let txn = self.rtxn()?;
        let mut doomed = Vec::new();
        for item in self.expunged.iter(&txn)? {
            let (k, e) = item?;
            if e.expunged_at >= cutoff {
                break;
            }
            doomed.push((k.to_vec(), e.message.guid));
        }
        drop(txn);
        if doomed.is_empty() {
            return Ok(0);
        }
        let files = self.write(|txn| {
            let mut files = Vec::new();
            for (k, guid) in &doomed {
                // A restore may have taken the record back meanwhile; its reference is live then.
                if !self.expunged.delete(txn, k)? {
                    continue;
                }
                if self.drop_ref(txn, guid)? {
                    files.push(*guid);
                }
            }
            Ok(files)
        })?;
        for guid in files {
            self.blobs.remove(&guid)?;
        }
        Ok(doomed.len())
    }
}
