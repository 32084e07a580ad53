//! SORT and THREAD keys (RFC 5256) kept in the index, so that sorting a folder of 50,000
//! messages reads LMDB instead of opening 50,000 files.
//!
//! Named database `sortkeys` of the user's environment, keyed like the message records
//! (`mailbox id ‖ uid`, big-endian). A record holds what [`SortItem`] needs from the header —
//! the raw (unfolded, not yet decoded) Subject, From, To, Cc, Message-ID, In-Reply-To and
//! References, and the parsed Date — plus the message's GUID. Display names, base subjects and
//! address keys are derived from these by `mailscale-imapsort` when a command runs.
//!
//! Filled at append (APPEND, LMTP), copied with the message record by COPY/MOVE, dropped with
//! it by EXPUNGE and MOVE. Every other way a message record appears (replication apply,
//! undelete, indexes older than this database) leaves the record missing, and the first SORT or
//! THREAD that needs it reads the header from the file and stores it. A record is used only when
//! its GUID is the message record's GUID: a record left behind at a key that now holds another
//! message (a UID renumbered after a replication conflict) is never believed, only replaced.

use heed::types::{Bytes, SerdeBincode};
use heed::{Database, RoTxn, RwTxn};
use mailscale_imapsort::SortItem;
use serde::{Deserialize, Serialize};

use crate::blob::Guid;
use crate::schema::{key_uid, msg_key, MessageRecord};
use crate::user::UserStore;
use crate::Error;

pub(crate) const SORTKEYS: &str = "sortkeys";

pub(crate) type SortDb = Database<Bytes, SerdeBincode<SortRecord>>;

/// One message's header-derived SORT/THREAD facts (see the module documentation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortRecord {
    /// The message this record was made from; a record whose GUID differs is stale.
    pub guid: Guid,
    pub sent: Option<i64>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
}

impl SortRecord {
    /// The record of a message from its header block (the whole message works too).
    pub(crate) fn from_header(guid: Guid, header: &[u8]) -> Self {
        let i = SortItem::from_header(0, 0, 0, header);
        SortRecord {
            guid,
            sent: i.sent,
            subject: i.subject,
            from: i.from,
            to: i.to,
            cc: i.cc,
            message_id: i.message_id,
            in_reply_to: i.in_reply_to,
            references: i.references,
        }
    }

    fn into_item(self, id: u32, arrival: i64, size: u64) -> SortItem {
        SortItem {
            id,
            arrival,
            size,
            sent: self.sent,
            subject: self.subject,
            from: self.from,
            to: self.to,
            cc: self.cc,
            message_id: self.message_id,
            in_reply_to: self.in_reply_to,
            references: self.references,
        }
    }
}

impl UserStore {
    /// Stores the SORT/THREAD record of the message at `key`, in the caller's transaction.
    pub(crate) fn put_sort_record(&self, txn: &mut RwTxn<'_>, key: &[u8; 8], rec: &SortRecord) -> Result<(), Error> {
        self.sortkeys.put(txn, key, rec)?;
        Ok(())
    }

    /// Copies the SORT/THREAD record of `from` to `to` (COPY, MOVE, a renumbered UID); nothing
    /// when `from` has none.
    pub(crate) fn copy_sort_record(&self, txn: &mut RwTxn<'_>, from: &[u8; 8], to: &[u8; 8]) -> Result<(), Error> {
        if let Some(r) = self.sortkeys.get(txn, from)? {
            self.sortkeys.put(txn, to, &r)?;
        }
        Ok(())
    }

    /// Drops the SORT/THREAD record at `key` (the message record left that key).
    pub(crate) fn drop_sort_record(&self, txn: &mut RwTxn<'_>, key: &[u8; 8]) -> Result<(), Error> {
        self.sortkeys.delete(txn, key)?;
        Ok(())
    }

    /// The SORT/THREAD items of the given UIDs of mailbox `mbox`, in ascending UID order, each
    /// with `id` = its UID. UIDs no longer present are left out. Records missing from the index
    /// are made from the message files and stored for the next call (a failure to store them is
    /// logged, not returned: the answer does not depend on it).
    ///
    /// # Errors
    /// LMDB errors; I/O errors reading a message file whose record is missing.
    pub fn sort_items(&self, mbox: u32, uids: &[u32]) -> Result<Vec<SortItem>, Error> {
        let mut want = uids.to_vec();
        want.sort_unstable();
        want.dedup();
        let mut out = Vec::with_capacity(want.len());
        let mut missing = Vec::new();
        {
            let txn = self.rtxn()?;
            self.scan_sort_records(&txn, mbox, &want, |uid, rec, found| {
                let (arrival, size) = (rec.internaldate, u64::from(rec.size));
                match found {
                    Some(r) => out.push(r.into_item(uid, arrival, size)),
                    None => {
                        let len = self.cache.get(&txn, &msg_key(mbox, uid))?.map(|c| c.header_len);
                        missing.push((out.len(), rec.guid, len));
                        out.push(SortItem::new(uid, arrival, size));
                    }
                }
                Ok(())
            })?;
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut made = Vec::with_capacity(missing.len());
        for (at, guid, len) in missing {
            let header = self.read_header(&guid, len)?;
            let r = SortRecord::from_header(guid, &header);
            let item = &mut out[at];
            made.push((msg_key(mbox, item.id), r.clone()));
            *item = r.into_item(item.id, item.arrival, item.size);
        }
        // A cache fill, not a change of the mailbox: neither logged for replication nor
        // announced to IDLE sessions.
        let stored = (|| -> Result<(), Error> {
            let mut txn = self.env.write_txn()?;
            for (key, r) in &made {
                // Only where the message is still the one read: no record for an expunged key.
                if self.msgs.get(&txn, key)?.is_some_and(|m| m.guid == r.guid) {
                    self.put_sort_record(&mut txn, key, r)?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = stored {
            tracing::warn!(user = %self.user, mailbox = mbox, error = %e, "sort keys: cannot store the records made for SORT/THREAD");
        }
        Ok(out)
    }

    /// Calls `f` for each UID of `want` (ascending) that holds a message in mailbox `mbox`, with
    /// the message record and its SORT/THREAD record when there is a valid one. The message
    /// records and the SORT/THREAD records are each walked once with a cursor in key order (one
    /// pass over the mailbox instead of two B-tree lookups per message), and only the wanted
    /// ones are decoded.
    fn scan_sort_records(
        &self,
        txn: &RoTxn<'_>,
        mbox: u32,
        want: &[u32],
        mut f: impl FnMut(u32, MessageRecord, Option<SortRecord>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let decode = |e: heed::BoxedError| Error::Index(heed::Error::Decoding(e));
        let prefix = mbox.to_be_bytes();
        let mut sorts = self.sortkeys.lazily_decode_data().prefix_iter(txn, &prefix)?;
        let mut sort_at = sorts.next().transpose()?;
        let mut w = want.iter().copied().peekable();
        for item in self.msgs.lazily_decode_data().prefix_iter(txn, &prefix)? {
            let (k, lazy) = item?;
            let uid = key_uid(k);
            while w.next_if(|&x| x < uid).is_some() {}
            match w.peek() {
                None => break,
                Some(&x) if x > uid => continue,
                Some(_) => {}
            }
            let rec = lazy.decode().map_err(decode)?;
            while sort_at.as_ref().is_some_and(|(sk, _)| key_uid(sk) < uid) {
                sort_at = sorts.next().transpose()?;
            }
            let found = match &sort_at {
                Some((sk, r)) if key_uid(sk) == uid => Some(r.decode().map_err(decode)?).filter(|r| r.guid == rec.guid),
                _ => None,
            };
            f(uid, rec, found)?;
        }
        Ok(())
    }

    /// How many SORT/THREAD records mailbox `mbox` holds (tests, index checks).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn sort_record_count(&self, mbox: u32) -> Result<usize, Error> {
        let txn = self.rtxn()?;
        let mut n = 0;
        for item in self.sortkeys.prefix_iter(&txn, &mbox.to_be_bytes())? {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{flag, Flags, MailboxName, Store, StoreMode, StoreOptions, Username};

    fn msg(n: u32) -> Vec<u8> {
        format!(
            "From: \"Sender {n}\" <s{n}@example.org>\r\nTo: r@example.org\r\nSubject: Re: topic {n}\r\n\
             Date: Mon, 7 Feb 1994 21:52:{:02} -0800\r\nMessage-ID: <{n}@x>\r\nReferences: <0@x>\r\n\r\nbody {n}\r\n",
            n % 60
        )
        .into_bytes()
    }

    fn user() -> (tempfile::TempDir, Store, std::sync::Arc<UserStore>) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let u = s.user(&Username::new("u").unwrap()).unwrap();
        (dir, s, u)
    }

    /// What SORT/THREAD would get without the index: the header read from the message itself.
    fn from_file(u: &UserStore, mbox: u32, uids: &[u32]) -> Vec<SortItem> {
        let recs = u.messages(mbox).unwrap();
        uids.iter()
            .filter_map(|&uid| recs.iter().find(|(k, _)| *k == uid))
            .map(|(uid, r)| {
                let raw = u.read_message(&r.guid).unwrap();
                SortItem::from_header(*uid, r.internaldate, u64::from(r.size), &raw)
            })
            .collect()
    }

    #[test]
    fn append_fills_and_items_match_the_files() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        for n in 1..=5 {
            u.append(&inbox, &msg(n), Flags::default(), None).unwrap();
        }
        let id = u.mailbox(&inbox).unwrap().unwrap().id;
        assert_eq!(u.sort_record_count(id).unwrap(), 5, "every append stores its record");
        let items = u.sort_items(id, &[1, 3, 9, 5]).unwrap();
        assert_eq!(items, from_file(&u, id, &[1, 3, 5]), "UID 9 does not exist and is left out");
        assert_eq!(items[1].subject.as_deref(), Some("Re: topic 3"));
        assert_eq!(items[1].from.as_deref(), Some("\"Sender 3\" <s3@example.org>"));
        assert!(items[1].sent.is_some());
    }

    #[test]
    fn copy_move_expunge_keep_records_exact() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        let trash = MailboxName::new("Trash").unwrap();
        for n in 1..=4 {
            u.append(&inbox, &msg(n), Flags::default(), None).unwrap();
        }
        let i = u.mailbox(&inbox).unwrap().unwrap().id;
        let t = u.mailbox(&trash).unwrap().unwrap().id;
        let c = u.copy(i, &[1, 2], &trash).unwrap();
        let m = u.move_messages(i, &[3], &trash).unwrap();
        assert_eq!(u.sort_record_count(i).unwrap(), 3, "MOVE drops the source's record");
        assert_eq!(u.sort_record_count(t).unwrap(), 3, "COPY and MOVE bring the records along");
        let uids: Vec<u32> = c.dst.iter().chain(&m.dst).copied().collect();
        assert_eq!(u.sort_items(t, &uids).unwrap(), from_file(&u, t, &uids));
        let del = Flags { system: flag::DELETED, keywords: vec![] };
        u.store_flags(i, &[1, 4], StoreMode::Add, &del, None).unwrap();
        assert_eq!(u.expunge(i, None).unwrap(), [1, 4]);
        assert_eq!(u.sort_record_count(i).unwrap(), 1, "EXPUNGE drops the records");
        assert_eq!(u.sort_items(i, &[1, 2, 3, 4]).unwrap(), from_file(&u, i, &[2]));
    }

    #[test]
    fn missing_records_are_made_from_files_and_stored() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        for n in 1..=3 {
            u.append(&inbox, &msg(n), Flags::default(), None).unwrap();
        }
        let id = u.mailbox(&inbox).unwrap().unwrap().id;
        // An index from before this database: no records at all.
        let mut txn = u.env.write_txn().unwrap();
        u.sortkeys.clear(&mut txn).unwrap();
        txn.commit().unwrap();
        assert_eq!(u.sort_record_count(id).unwrap(), 0);
        assert_eq!(u.sort_items(id, &[1, 2, 3]).unwrap(), from_file(&u, id, &[1, 2, 3]));
        assert_eq!(u.sort_record_count(id).unwrap(), 3, "the first SORT stores what it made");
        assert_eq!(u.sort_items(id, &[1, 2, 3]).unwrap(), from_file(&u, id, &[1, 2, 3]));
    }

    #[test]
    fn a_record_of_another_message_is_never_used() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        u.append(&inbox, &msg(1), Flags::default(), None).unwrap();
        u.append(&inbox, &msg(2), Flags::default(), None).unwrap();
        let id = u.mailbox(&inbox).unwrap().unwrap().id;
        // A record left at UID 1 by some path that changed the message but not the record.
        let stale = SortRecord::from_header(crate::Guid::of(b"other"), b"Subject: wrong\r\n\r\n");
        let mut txn = u.env.write_txn().unwrap();
        u.put_sort_record(&mut txn, &msg_key(id, 1), &stale).unwrap();
        txn.commit().unwrap();
        let items = u.sort_items(id, &[1, 2]).unwrap();
        assert_eq!(items, from_file(&u, id, &[1, 2]));
        assert_eq!(items[0].subject.as_deref(), Some("Re: topic 1"));
        let txn = u.rtxn().unwrap();
        let fixed = u.sortkeys.get(&txn, &msg_key(id, 1)).unwrap().unwrap();
        assert_eq!(fixed.guid, crate::Guid::of(&msg(1)), "the stale record was replaced");
    }

    #[test]
    fn renumbered_conflict_moves_the_record() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        u.append(&inbox, &msg(1), Flags::default(), None).unwrap();
        let m = u.mailbox(&inbox).unwrap().unwrap();
        let new_uid = u.renumber_conflict(&m.unique_id, 1, 10).unwrap();
        assert_eq!(new_uid, 11);
        let txn = u.rtxn().unwrap();
        assert!(u.sortkeys.get(&txn, &msg_key(m.id, 1)).unwrap().is_none());
        assert!(u.sortkeys.get(&txn, &msg_key(m.id, 11)).unwrap().is_some());
        drop(txn);
        assert_eq!(u.sort_items(m.id, &[11]).unwrap(), from_file(&u, m.id, &[11]));
    }
}
