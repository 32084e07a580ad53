//! Undelete: messages expunged (or deleted with their folder) within the retention wait in the
//! expunged area (`messages.rs`, delayed expunge) until the purge task removes them; an operator
//! lists them and restores them into their folder as new messages (new UIDs, RFC 3501 2.3.1.1:
//! a UID is never reused), recreating the folder when it was deleted.
//!
//! A restore is one logged write transaction, so replication carries the restored messages like
//! any new ones; the message files are not copied (the expunged record's file reference becomes
//! the live message's).

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::blob::Guid;
use crate::names::MailboxName;
use crate::schema::{flag, msg_key, CacheRecord, ExpungedRecord, Flags, MailboxRecord, MessageRecord};
use crate::user::UserStore;
use crate::Error;

/// How much of a file [`UserStore::undeletable`] reads to find its Subject.
const SUBJECT_PEEK: u64 = 64 * 1024;

/// Which expunged messages a list or restore concerns.
#[derive(Debug, Clone, Default)]
pub struct UndeleteFilter {
    /// Only those expunged from the mailbox of this name (the name it had then).
    pub mailbox: Option<String>,
    /// Only those expunged at or after this unix time.
    pub since: Option<i64>,
}

impl UndeleteFilter {
    fn matches(&self, e: &ExpungedRecord) -> bool {
        self.mailbox.as_deref().is_none_or(|m| m == e.mailbox_name) && self.since.is_none_or(|t| e.expunged_at >= t)
    }
}

/// One restorable message.
#[derive(Debug, Clone)]
pub struct Undeletable {
    pub mailbox: String,
    pub mailbox_unique_id: String,
    /// Its UID in that mailbox before the expunge.
    pub uid: u32,
    pub expunged_at: i64,
    pub size: u32,
    pub flags: Flags,
    pub guid: Guid,
    /// The decoded Subject (RFC 2047), when the file has one.
    pub subject: Option<String>,
}

/// One restored message: where it is now.
#[derive(Debug, Clone)]
pub struct Restored {
    pub mailbox: String,
    pub old_uid: u32,
    pub uidvalidity: u32,
    pub uid: u32,
    pub size: u32,
    /// The folder had been deleted and was created again for it.
    pub recreated: bool,
}

/// What a restore did: the messages restored and, for those that could not be, why.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub restored: Vec<Restored>,
    pub failed: Vec<(String, u32, String)>,
    /// Expunged messages whose content is already live in their folder (restored before, e.g.
    /// on the partner before a failover): dropped from the expunged area, not restored twice.
    pub present: Vec<(String, u32)>,
}

impl UserStore {
    fn expunged_matching(&self, f: &UndeleteFilter) -> Result<Vec<(Vec<u8>, ExpungedRecord)>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.expunged.iter(&txn)? {
            let (k, e) = item?;
            if f.matches(&e) {
                out.push((k.to_vec(), e));
            }
        }
        Ok(out)
    }

    fn peek_subject(&self, guid: &Guid) -> Option<String> {
        let mut head = Vec::new();
        std::fs::File::open(self.blobs.path(guid)).ok()?.take(SUBJECT_PEEK).read_to_end(&mut head).ok()?;
        mailscale_mime::header_values(&head, "Subject").into_iter().next()
    }

    /// The expunged messages the filter selects, oldest expunge first. The caller applies the
    /// retention (`since`): records older than it may still be here until the next purge.
    ///
    /// # Errors
    /// LMDB errors. An unreadable file only leaves `subject` empty.
    pub fn undeletable(&self, f: &UndeleteFilter) -> Result<Vec<Undeletable>, Error> {
        Ok(self
            .expunged_matching(f)?
            .into_iter()
            .map(|(_, e)| Undeletable {
                subject: self.peek_subject(&e.message.guid),
                mailbox: e.mailbox_name,
                mailbox_unique_id: e.mailbox_unique_id,
                uid: e.uid,
                expunged_at: e.expunged_at,
                size: e.message.size,
                flags: e.message.flags.clone(),
                guid: e.message.guid,
            })
            .collect())
    }

    /// Brings the selected expunged messages back as new messages (new UIDs, flags kept without
    /// `\Deleted`, INTERNALDATE kept) into the mailbox they were expunged from: found by unique
    /// id (it may have been renamed), else by name; a deleted mailbox is created again under its
    /// old name and unique id, with UIDs above every UID it gave before. Quota is not enforced
    /// (an operator's decision) but usage counts the restored messages.
    ///
    /// # Errors
    /// LMDB errors (then nothing is restored). A message whose file is missing is reported in
    /// [`RestoreReport::failed`] and stays in the expunged area.
    pub fn restore_expunged(&self, f: &UndeleteFilter) -> Result<RestoreReport, Error> {
        let picked = self.expunged_matching(f)?;
        let mut report = RestoreReport::default();
        // Files are read and parsed before the write transaction, which stays short.
        let mut todo: Vec<(Vec<u8>, ExpungedRecord, CacheRecord)> = Vec::new();
        let mut max_old_uid: HashMap<String, u32> = HashMap::new();
        for (k, e) in picked {
            let top = max_old_uid.entry(e.mailbox_unique_id.clone()).or_default();
            *top = (*top).max(e.uid);
            match self.blobs.get(&e.message.guid) {
                Ok(raw) => {
                    let a = mailscale_mime::analyze(&raw);
                    let cache = CacheRecord {
                        envelope: a.envelope,
                        bodystructure: a.bodystructure,
                        body: a.body,
                        header_len: a.header_len as u32,
                        sent_date: a.sent_date,
                    };
                    todo.push((k, e, cache));
                }
                Err(err) => {
                    tracing::error!(user = %self.user, mailbox = %e.mailbox_name, uid = e.uid, error = %err,
                        "undelete: message file unreadable; left in the expunged area");
                    report.failed.push((e.mailbox_name, e.uid, format!("message file unreadable: {err}")));
                }
            }
        }
        if todo.is_empty() {
            return Ok(report);
        }
        let mut present = Vec::new();
        let restored = self.write(|txn| {
            // Per target folder: its record, the MODSEQ of this restore, whether it was
            // recreated, and the GUIDs live in it.
            let mut touched: HashMap<u32, (MailboxRecord, u64, bool, HashSet<Guid>)> = HashMap::new();
            let mut out = Vec::new();
            for (k, e, cache) in &todo {
                if self.expunged.get(txn, k)?.is_none() {
                    continue; // purged meanwhile
                }
                let id = match touched.values().find(|(m, ..)| m.unique_id == e.mailbox_unique_id) {
                    Some((m, ..)) => m.id,
                    None => {
                        let (m, recreated) = self.restore_target(txn, e, max_old_uid[&e.mailbox_unique_id])?;
                        let mut m = m;
                        let modseq = Self::bump(&mut m);
                        let id = m.id;
                        let mut live = HashSet::new();
                        for item in self.msgs.prefix_iter(txn, &id.to_be_bytes())? {
                            live.insert(item?.1.guid);
                        }
                        touched.insert(id, (m, modseq, recreated, live));
                        id
                    }
                };
                let (m, modseq, recreated, live) = touched.get_mut(&id).expect("inserted above");
                if !live.insert(e.message.guid) {
                    self.expunged.delete(txn, k)?;
                    present.push((m.name.clone(), e.uid));
                    continue;
                }
                let uid = m.uidnext;
                m.uidnext += 1;
                m.exists += 1;
                let mut flags = e.message.flags.clone();
                flags.system &= !flag::DELETED;
                Self::remember_keywords(m, &flags);
                let rec = MessageRecord { modseq: *modseq, flags, ..e.message.clone() };
                let key = msg_key(m.id, uid);
                self.msgs.put(txn, &key, &rec)?;
                self.cache.put(txn, &key, cache)?;
                self.expunged.delete(txn, k)?;
                self.add_usage(txn, u64::from(rec.size))?;
                out.push(Restored {
                    mailbox: m.name.clone(),
                    old_uid: e.uid,
                    uidvalidity: m.uidvalidity,
                    uid,
                    size: rec.size,
                    recreated: *recreated,
                });
            }
            for (id, (m, ..)) in &touched {
                self.mboxes.put(txn, id, m)?;
            }
            Ok(out)
        })?;
        for (mailbox, old_uid) in &present {
            tracing::info!(user = %self.user, %mailbox, old_uid, "undelete: already live in its folder; not restored twice");
        }
        report.present = present;
        for r in &restored {
            tracing::info!(user = %self.user, mailbox = %r.mailbox, old_uid = r.old_uid, uid = r.uid,
                recreated = r.recreated, "undelete: message restored");
        }
        report.restored = restored;
        Ok(report)
    }

    /// The mailbox a restored message goes to (see [`UserStore::restore_expunged`]) and whether
    /// it was created (or made selectable) for it.
    fn restore_target(
        &self,
        txn: &mut heed::RwTxn<'_>,
        e: &ExpungedRecord,
        max_old_uid: u32,
    ) -> Result<(MailboxRecord, bool), Error> {
        if let Some(mut m) = self.by_unique_id_in(txn, &e.mailbox_unique_id)? {
            if !m.noselect {
                return Ok((m, false));
            }
            // Deleted while it had children: kept as \Noselect under its (current) name.
            m.noselect = false;
            m.uidvalidity = self.next_uidvalidity(txn)?;
            m.uidnext = m.uidnext.max(max_old_uid.saturating_add(1));
            return Ok((m, true));
        }
        let name = MailboxName::new(&e.mailbox_name)?;
        let occupant = self.mailbox_in(txn, &name)?;
        if let Some(m) = occupant.clone().filter(|m| !m.noselect) {
            // A new folder of the same name took the deleted one's place.
            return Ok((m, false));
        }
        let mut m = self.create_in(txn, &name, None)?;
        if occupant.is_none() {
            m.unique_id = e.mailbox_unique_id.clone();
        }
        m.uidnext = m.uidnext.max(max_old_uid.saturating_add(1));
        Ok((m, true))
    }
}
