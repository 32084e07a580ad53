//! SORT and THREAD keys (RFC 5256) kept in the index, so that sorting a folder of 50,000
//! messages reads LMDB instead of opening 50,000 files.
//!
//! Named database `sortkeys` of the user's environment, keyed like the message records
//! (`mailbox id ‖ uid`, big-endian). A record holds what [`SortItem`] needs from the header —
//! the raw (unfolded, not yet decoded) Subject, From, To, Cc, Message-ID, In-Reply-To and
//! References, and the parsed Date — plus the message's GUID, and the text sort keys derived
//! from them ([`DerivedKeys`]: base subject, address and display keys), so that a repeated
//! SORT compares stored keys instead of parsing 50,000 subjects and addresses again.
//!
//! Filled at append (APPEND, LMTP), copied with the message record by COPY/MOVE, dropped with
//! it by EXPUNGE and MOVE. Every other way a message record appears (replication apply,
//! undelete, indexes older than this database) leaves the record missing, and the first SORT or
//! THREAD that needs it reads the header from the file and stores it. A record is used only when
//! its GUID is the message record's GUID: a record left behind at a key that now holds another
//! message (a UID renumbered after a replication conflict) is never believed, only replaced.
//!
//! Records are bincode. The first layout ([`SortRecordV1`], no derived keys) is a prefix of the
//! current one, so a V1 record fails to decode as the current layout (it ends early) and is read
//! as V1; its keys are then derived from its raw fields, without opening the message file, and
//! the record is rewritten. A current record whose `keys_version` is not
//! [`DerivedKeys::VERSION`] (made by an older derivation) is re-derived and rewritten the same
//! way.

use heed::types::{Bytes, SerdeBincode};
use heed::{BytesDecode, BytesEncode, Database, RoTxn, RwTxn};
use mailscale_imapsort::{DerivedKeys, SortField, SortItem};
use serde::{Deserialize, Serialize};

use crate::blob::Guid;
use crate::schema::{key_uid, msg_key, MessageRecord};
use crate::user::UserStore;
use crate::Error;

pub(crate) const SORTKEYS: &str = "sortkeys";

/// Values are [`SortRecord`] or [`SortRecordV1`] (see the module documentation), decoded by
/// [`SortRecord::decode`].
pub(crate) type SortDb = Database<Bytes, Bytes>;

/// One message's header-derived SORT/THREAD facts (see the module documentation). The fields up
/// to `references` are [`SortRecordV1`]'s, in its order; do not reorder them.
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
    /// The [`DerivedKeys::VERSION`] the keys below were derived with.
    pub keys_version: u32,
    pub key_subject: String,
    pub key_from: String,
    pub key_to: String,
    pub key_cc: String,
    pub key_display_from: String,
    pub key_display_to: String,
}

/// The layout of the first version of this database, read to upgrade its records.
#[derive(Serialize, Deserialize)]
struct SortRecordV1 {
    guid: Guid,
    sent: Option<i64>,
    subject: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cc: Option<String>,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references: Option<String>,
}

/// Bincode writes a record's leading [`Guid`] (`[u8; 32]`, fixed length) as its 32 bytes, so a
/// stored record of either layout starts with them: they are compared in place, and only a
/// record of the right message is decoded (decoding the array goes octet by octet through
/// serde, which was a tenth of a repeated SORT).
const GUID_LEN: usize = 32;

/// A current-layout record after its GUID, borrowed from the LMDB page: what a SORT or THREAD
/// takes from it is copied, nothing else is allocated or even checked as UTF-8. Field for field
/// [`SortRecord`] without `guid`.
#[derive(Deserialize)]
struct SortRecordRef<'a> {
    sent: Option<i64>,
    #[serde(borrow)]
    subject: Option<RawStr<'a>>,
    #[serde(borrow)]
    from: Option<RawStr<'a>>,
    #[serde(borrow)]
    to: Option<RawStr<'a>>,
    #[serde(borrow)]
    cc: Option<RawStr<'a>>,
    #[serde(borrow)]
    message_id: Option<RawStr<'a>>,
    #[serde(borrow)]
    in_reply_to: Option<RawStr<'a>>,
    #[serde(borrow)]
    references: Option<RawStr<'a>>,
    keys_version: u32,
    #[serde(borrow)]
    key_subject: RawStr<'a>,
    #[serde(borrow)]
    key_from: RawStr<'a>,
    #[serde(borrow)]
    key_to: RawStr<'a>,
    #[serde(borrow)]
    key_cc: RawStr<'a>,
    #[serde(borrow)]
    key_display_from: RawStr<'a>,
    #[serde(borrow)]
    key_display_to: RawStr<'a>,
}

/// A `String` field of a stored record, borrowed as its bytes (bincode writes a string and a
/// byte string alike): the UTF-8 check is left to the fields that are used.
#[derive(Clone, Copy)]
struct RawStr<'a>(&'a [u8]);

impl RawStr<'_> {
    /// The field as a `String` (written from one, so valid UTF-8; replaced if not).
    fn owned(self) -> String {
        match std::str::from_utf8(self.0) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(self.0).into_owned(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(v)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(v.as_bytes())
            }
        }
        d.deserialize_bytes(V).map(RawStr)
    }
}

/// What [`UserStore::sort_items_with_keys`] takes from each record.
#[derive(Clone, Copy)]
enum Take<'f> {
    /// The raw header fields (THREAD), no derived keys.
    Raw,
    /// The derived keys of these fields (SORT), no raw header fields.
    Keys(&'f [SortField]),
}

impl SortRecordRef<'_> {
    fn item(&self, id: u32, arrival: i64, size: u64, take: Take<'_>) -> SortItem {
        let own = |v: Option<RawStr<'_>>| match take {
            Take::Raw => v.map(RawStr::owned),
            Take::Keys(_) => None,
        };
        SortItem {
            id,
            arrival,
            size,
            sent: self.sent,
            subject: own(self.subject),
            from: own(self.from),
            to: own(self.to),
            cc: own(self.cc),
            message_id: own(self.message_id),
            in_reply_to: own(self.in_reply_to),
            references: own(self.references),
        }
    }

    fn keys(&self, take: Take<'_>) -> DerivedKeys {
        let mut k = DerivedKeys::default();
        let Take::Keys(fields) = take else {
            return k;
        };
        for f in fields {
            let (slot, v) = match f {
                SortField::Subject => (&mut k.subject, self.key_subject),
                SortField::From => (&mut k.from, self.key_from),
                SortField::To => (&mut k.to, self.key_to),
                SortField::Cc => (&mut k.cc, self.key_cc),
                SortField::DisplayFrom => (&mut k.display_from, self.key_display_from),
                SortField::DisplayTo => (&mut k.display_to, self.key_display_to),
                SortField::Arrival | SortField::Date | SortField::Size => continue,
            };
            if slot.is_empty() {
                *slot = v.owned();
            }
        }
        k
    }
}

impl SortRecord {
    fn as_ref(&self) -> SortRecordRef<'_> {
        SortRecordRef {
            sent: self.sent,
            subject: self.subject.as_deref().map(|v| RawStr(v.as_bytes())),
            from: self.from.as_deref().map(|v| RawStr(v.as_bytes())),
            to: self.to.as_deref().map(|v| RawStr(v.as_bytes())),
            cc: self.cc.as_deref().map(|v| RawStr(v.as_bytes())),
            message_id: self.message_id.as_deref().map(|v| RawStr(v.as_bytes())),
            in_reply_to: self.in_reply_to.as_deref().map(|v| RawStr(v.as_bytes())),
            references: self.references.as_deref().map(|v| RawStr(v.as_bytes())),
            keys_version: self.keys_version,
            key_subject: RawStr(self.key_subject.as_bytes()),
            key_from: RawStr(self.key_from.as_bytes()),
            key_to: RawStr(self.key_to.as_bytes()),
            key_cc: RawStr(self.key_cc.as_bytes()),
            key_display_from: RawStr(self.key_display_from.as_bytes()),
            key_display_to: RawStr(self.key_display_to.as_bytes()),
        }
    }

    /// The record of a message from its header block (the whole message works too).
    pub(crate) fn from_header(guid: Guid, header: &[u8]) -> Self {
        Self::from_item(guid, SortItem::from_header(0, 0, 0, header))
    }

    fn from_item(guid: Guid, i: SortItem) -> Self {
        let k = DerivedKeys::of(&i);
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
            keys_version: DerivedKeys::VERSION,
            key_subject: k.subject,
            key_from: k.from,
            key_to: k.to,
            key_cc: k.cc,
            key_display_from: k.display_from,
            key_display_to: k.display_to,
        }
    }

    /// Decodes a stored record of any layout, brought up to date: a record of the first layout
    /// or of an older derivation gets its keys derived again from its raw fields.
    fn decode(bytes: &[u8]) -> Result<SortRecord, heed::BoxedError> {
        match SerdeBincode::<SortRecord>::bytes_decode(bytes) {
            Ok(r) if r.keys_version == DerivedKeys::VERSION => Ok(r),
            Ok(r) => {
                let guid = r.guid;
                Ok(Self::from_item(guid, r.as_ref().item(0, 0, 0, Take::Raw)))
            }
            Err(_) => {
                let v1 = SerdeBincode::<SortRecordV1>::bytes_decode(bytes)?;
                let item = SortItem {
                    sent: v1.sent,
                    subject: v1.subject,
                    from: v1.from,
                    to: v1.to,
                    cc: v1.cc,
                    message_id: v1.message_id,
                    in_reply_to: v1.in_reply_to,
                    references: v1.references,
                    ..SortItem::default()
                };
                Ok(Self::from_item(v1.guid, item))
            }
        }
    }
}

/// A message's SORT/THREAD record as [`UserStore::scan_sort_records`] found it.
enum Found<'t> {
    /// Current, borrowed from the transaction.
    Current(SortRecordRef<'t>),
    /// Of an older layout or derivation, brought up to date (to be stored again).
    Upgraded(SortRecord),
    /// Missing, or the record of another message.
    None,
}

impl UserStore {
    /// Stores the SORT/THREAD record of the message at `key`, in the caller's transaction.
    pub(crate) fn put_sort_record(&self, txn: &mut RwTxn<'_>, key: &[u8; 8], rec: &SortRecord) -> Result<(), Error> {
        let bytes =
            SerdeBincode::<SortRecord>::bytes_encode(rec).map_err(|e| Error::Index(heed::Error::Encoding(e)))?;
        self.sortkeys.put(txn, key, &bytes)?;
        Ok(())
    }

    /// The SORT/THREAD record at `key`, of any layout, brought up to date (tests, checks).
    #[cfg(test)]
    pub(crate) fn get_sort_record(&self, txn: &RoTxn<'_>, key: &[u8; 8]) -> Result<Option<SortRecord>, Error> {
        let decode = |e: heed::BoxedError| Error::Index(heed::Error::Decoding(e));
        Ok(match self.sortkeys.get(txn, key)? {
            Some(b) => Some(SortRecord::decode(b).map_err(decode)?),
            None => None,
        })
    }

    /// Copies the SORT/THREAD record of `from` to `to` (COPY, MOVE, a renumbered UID), as it is
    /// stored; nothing when `from` has none.
    pub(crate) fn copy_sort_record(&self, txn: &mut RwTxn<'_>, from: &[u8; 8], to: &[u8; 8]) -> Result<(), Error> {
        if let Some(r) = self.sortkeys.get(txn, from)? {
            let r = r.to_vec();
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
    /// with `id` = its UID and its raw header fields (what THREAD needs). UIDs no longer present
    /// are left out. Records missing from the index are made from the message files, records of
    /// an older layout or derivation are brought up to date, and both are stored for the next
    /// call (a failure to store them is logged, not returned: the answer does not depend on it).
    ///
    /// # Errors
    /// LMDB errors; I/O errors reading a message file whose record is missing.
    pub fn sort_items(&self, mbox: u32, uids: &[u32]) -> Result<Vec<SortItem>, Error> {
        Ok(self.collect_sort_records(mbox, uids, Take::Raw)?.0)
    }

    /// As [`Self::sort_items`] for SORT by `fields`: the items carry no raw header fields (only
    /// id, arrival, sent date and size), and beside each item are its stored [`DerivedKeys`]
    /// with the keys of `fields` filled (the others empty), for
    /// `mailscale_imapsort::sort_derived` with those fields.
    ///
    /// # Errors
    /// As [`Self::sort_items`].
    pub fn sort_items_with_keys(
        &self,
        mbox: u32,
        uids: &[u32],
        fields: &[SortField],
    ) -> Result<(Vec<SortItem>, Vec<DerivedKeys>), Error> {
        self.collect_sort_records(mbox, uids, Take::Keys(fields))
    }

    fn collect_sort_records(
        &self,
        mbox: u32,
        uids: &[u32],
        take: Take<'_>,
    ) -> Result<(Vec<SortItem>, Vec<DerivedKeys>), Error> {
        let mut want = uids.to_vec();
        want.sort_unstable();
        want.dedup();
        let mut out = Vec::with_capacity(want.len());
        let mut keys = Vec::with_capacity(want.len());
        let mut missing = Vec::new();
        let mut made = Vec::new();
        {
            let txn = self.rtxn()?;
            self.scan_sort_records(&txn, mbox, &want, |uid, rec, found| {
                let (arrival, size) = (rec.internaldate, u64::from(rec.size));
                match found {
                    Found::Current(r) => {
                        out.push(r.item(uid, arrival, size, take));
                        keys.push(r.keys(take));
                    }
                    Found::Upgraded(r) => {
                        out.push(r.as_ref().item(uid, arrival, size, take));
                        keys.push(r.as_ref().keys(take));
                        made.push((msg_key(mbox, uid), r));
                    }
                    Found::None => {
                        let len = self.cache.get(&txn, &msg_key(mbox, uid))?.map(|c| c.header_len);
                        missing.push((out.len(), rec.guid, len));
                        out.push(SortItem::new(uid, arrival, size));
                        keys.push(DerivedKeys::default());
                    }
                }
                Ok(())
            })?;
        }
        if missing.is_empty() && made.is_empty() {
            return Ok((out, keys));
        }
        for (at, guid, len) in missing {
            let header = self.read_header(&guid, len)?;
            let r = SortRecord::from_header(guid, &header);
            let item = &mut out[at];
            (*item, keys[at]) = (r.as_ref().item(item.id, item.arrival, item.size, take), r.as_ref().keys(take));
            made.push((msg_key(mbox, item.id), r));
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
        Ok((out, keys))
    }

    /// Calls `f` for each UID of `want` (ascending) that holds a message in mailbox `mbox`, with
    /// the message record and its SORT/THREAD record when there is a valid one (borrowed when
    /// it is current, brought up to date when it is not). The message
    /// records and the SORT/THREAD records are each walked once with a cursor in key order (one
    /// pass over the mailbox instead of two B-tree lookups per message), and only the wanted
    /// ones are decoded.
    fn scan_sort_records(
        &self,
        txn: &RoTxn<'_>,
        mbox: u32,
        want: &[u32],
        mut f: impl FnMut(u32, MessageRecord, Found<'_>) -> Result<(), Error>,
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
                Some((sk, r)) if key_uid(sk) == uid => {
                    let bytes = r.decode().map_err(decode)?;
                    match bytes.split_at_checked(GUID_LEN) {
                        Some((guid, _)) if guid != rec.guid.0 => Found::None,
                        Some((_, rest)) => match SerdeBincode::<SortRecordRef<'_>>::bytes_decode(rest) {
                            Ok(r) if r.keys_version == DerivedKeys::VERSION => Found::Current(r),
                            _ => Found::Upgraded(SortRecord::decode(bytes).map_err(decode)?),
                        },
                        None => Found::Upgraded(SortRecord::decode(bytes).map_err(decode)?),
                    }
                }
                _ => Found::None,
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
        let fixed = u.get_sort_record(&txn, &msg_key(id, 1)).unwrap().unwrap();
        assert_eq!(fixed.guid, crate::Guid::of(&msg(1)), "the stale record was replaced");
    }

    #[test]
    fn stored_keys_are_the_derived_ones() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        for n in 1..=3 {
            u.append(&inbox, &msg(n), Flags::default(), None).unwrap();
        }
        let id = u.mailbox(&inbox).unwrap().unwrap().id;
        let all = [
            SortField::Subject,
            SortField::From,
            SortField::To,
            SortField::Cc,
            SortField::DisplayFrom,
            SortField::DisplayTo,
        ];
        let (items, keys) = u.sort_items_with_keys(id, &[1, 2, 3], &all).unwrap();
        let raw = u.sort_items(id, &[1, 2, 3]).unwrap();
        assert_eq!(keys, raw.iter().map(DerivedKeys::of).collect::<Vec<_>>());
        assert_eq!(
            items.iter().map(|i| (i.id, i.sent, i.size)).collect::<Vec<_>>(),
            raw.iter().map(|i| (i.id, i.sent, i.size)).collect::<Vec<_>>()
        );
        assert_eq!(items[0].subject, None, "SORT gets no raw fields");
        let (_, only) = u.sort_items_with_keys(id, &[2], &[SortField::From]).unwrap();
        assert_eq!(only[0], DerivedKeys { from: "s2".into(), ..DerivedKeys::default() }, "only the keys asked for");
        assert_eq!((keys[1].subject.as_str(), keys[1].from.as_str()), ("topic 2", "s2"));
        assert_eq!(keys[1].display_from, "sender 2");
    }

    #[test]
    fn older_records_are_upgraded_without_the_files() {
        let (_d, _s, u) = user();
        let inbox = MailboxName::inbox();
        for n in 1..=2 {
            u.append(&inbox, &msg(n), Flags::default(), None).unwrap();
        }
        let id = u.mailbox(&inbox).unwrap().unwrap().id;
        let want = from_file(&u, id, &[1, 2]);
        // UID 1: a record of the first layout, whose raw fields say something the file does not,
        // so that a re-read of the file would show. UID 2: current layout, older derivation.
        let v1 = SortRecordV1 {
            guid: crate::Guid::of(&msg(1)),
            sent: Some(5),
            subject: Some("Fwd: Cached".into()),
            from: Some("Cached <Cached@x>".into()),
            to: None,
            cc: None,
            message_id: None,
            in_reply_to: None,
            references: None,
        };
        let mut old = SortRecord::from_header(crate::Guid::of(&msg(2)), &msg(2));
        old.keys_version = 0;
        old.key_subject = "stale".into();
        let mut txn = u.env.write_txn().unwrap();
        let bytes = SerdeBincode::<SortRecordV1>::bytes_encode(&v1).unwrap();
        u.sortkeys.put(&mut txn, &msg_key(id, 1), &bytes).unwrap();
        u.put_sort_record(&mut txn, &msg_key(id, 2), &old).unwrap();
        txn.commit().unwrap();
        let items = u.sort_items(id, &[1, 2]).unwrap();
        assert_eq!(items[0].subject.as_deref(), Some("Fwd: Cached"), "the V1 record was used, not the file");
        assert_eq!(items[1], want[1]);
        let (_, keys) = u.sort_items_with_keys(id, &[1, 2], &[SortField::Subject, SortField::From]).unwrap();
        assert_eq!((keys[0].subject.as_str(), keys[0].from.as_str()), ("cached", "cached"));
        assert_eq!(keys[1].subject, "topic 2", "the older derivation was redone");
        let txn = u.rtxn().unwrap();
        for uid in [1, 2] {
            let raw = u.sortkeys.get(&txn, &msg_key(id, uid)).unwrap().unwrap();
            let r = SerdeBincode::<SortRecord>::bytes_decode(raw).expect("rewritten in the current layout");
            assert_eq!(r.keys_version, DerivedKeys::VERSION);
        }
    }

    #[test]
    fn a_stored_record_starts_with_its_guid() {
        let r = SortRecord::from_header(crate::Guid::of(b"m"), &msg(1));
        let bytes = SerdeBincode::<SortRecord>::bytes_encode(&r).unwrap();
        assert_eq!(bytes[..GUID_LEN], r.guid.0, "the scan compares GUIDs in place");
        let rest = SerdeBincode::<SortRecordRef<'_>>::bytes_decode(&bytes[GUID_LEN..]).unwrap();
        assert_eq!(rest.key_subject.owned(), r.key_subject);
        assert_eq!(rest.references.map(RawStr::owned), r.references);
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
