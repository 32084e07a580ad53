//! What a sync compares: per mailbox, the counters and a checksum over its messages (Cyrus's
//! MAILBOX line with `SYNC_CRC`); per message, its record (Cyrus's RECORD); per user, one digest
//! over everything for a quick "identical?".

use heed::RoTxn;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::schema::{key_uid, MailboxRecord, MessageRecord};
use crate::user::UserStore;
use crate::Error;

/// A mailbox as replication partners compare it. Two mailboxes are in sync when
/// [`MailboxState::same_as`] holds; `id` is the local key and is not compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MailboxState {
    pub id: u32,
    pub unique_id: String,
    pub name: String,
    pub uidvalidity: u32,
    /// `uidnext - 1`: the highest UID ever given, expunged or not.
    pub last_uid: u32,
    pub highestmodseq: u64,
    pub exists: u32,
    pub special_use: Option<String>,
    pub noselect: bool,
    /// XOR of [`record_crc`] over the mailbox's messages: independent of order, so a replica can
    /// also maintain it incrementally.
    pub sync_crc: u64,
}

impl MailboxState {
    /// Whether both sides hold the same mailbox with the same messages, flags and counters.
    pub fn same_as(&self, other: &MailboxState) -> bool {
        self.unique_id == other.unique_id
            && self.name == other.name
            && self.uidvalidity == other.uidvalidity
            && self.last_uid == other.last_uid
            && self.highestmodseq == other.highestmodseq
            && self.exists == other.exists
            && self.special_use == other.special_use
            && self.noselect == other.noselect
            && self.sync_crc == other.sync_crc
    }

    fn digest_into(&self, h: &mut Sha256) {
        h.update(self.unique_id.as_bytes());
        h.update([0]);
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(self.uidvalidity.to_be_bytes());
        h.update(self.last_uid.to_be_bytes());
        h.update(self.highestmodseq.to_be_bytes());
        h.update(self.exists.to_be_bytes());
        h.update(self.special_use.as_deref().unwrap_or("").as_bytes());
        h.update([0, u8::from(self.noselect)]);
        h.update(self.sync_crc.to_be_bytes());
    }
}

/// Checksum of one message as replication sees it: UID, MODSEQ, system flags, keywords (compared
/// case-insensitively, RFC 3501 2.3.2, so lower-cased and sorted) and GUID.
pub fn record_crc(uid: u32, rec: &MessageRecord) -> u64 {
    let mut h = Sha256::new();
    h.update(uid.to_be_bytes());
    h.update(rec.modseq.to_be_bytes());
    h.update([rec.flags.system]);
    let mut kws: Vec<String> = rec.flags.keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
    kws.sort();
    kws.dedup();
    for k in kws {
        h.update(k.as_bytes());
        h.update([0]);
    }
    h.update(rec.guid.0);
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("sha256 is 32 bytes"))
}

impl UserStore {
    fn mailbox_state_in(&self, txn: &RoTxn<'_>, m: &MailboxRecord) -> Result<MailboxState, Error> {
        let mut crc = 0u64;
        for item in self.msgs.prefix_iter(txn, &m.id.to_be_bytes())? {
            let (k, rec) = item?;
            crc ^= record_crc(key_uid(k), &rec);
        }
        Ok(MailboxState {
            id: m.id,
            unique_id: m.unique_id.clone(),
            name: m.name.clone(),
            uidvalidity: m.uidvalidity,
            last_uid: m.uidnext.saturating_sub(1),
            highestmodseq: m.highestmodseq,
            exists: m.exists,
            special_use: m.special_use.clone(),
            noselect: m.noselect,
            sync_crc: crc,
        })
    }

    /// Every mailbox's state, sorted by name, from one read transaction.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn mailbox_states(&self) -> Result<Vec<MailboxState>, Error> {
        let txn = self.rtxn()?;
        self.mailbox_states_in(&txn)
    }

    fn mailbox_states_in(&self, txn: &RoTxn<'_>) -> Result<Vec<MailboxState>, Error> {
        let mut out = Vec::new();
        for item in self.names.iter(txn)? {
            let (_, id) = item?;
            if let Some(m) = self.mboxes.get(txn, &id)? {
                out.push(self.mailbox_state_in(txn, &m)?);
            }
        }
        Ok(out)
    }

    /// The mailbox with this unique id (which survives renames), if any.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn mailbox_by_unique_id(&self, unique_id: &str) -> Result<Option<MailboxRecord>, Error> {
        let txn = self.rtxn()?;
        self.by_unique_id_in(&txn, unique_id)
    }

    pub(crate) fn by_unique_id_in(&self, txn: &RoTxn<'_>, unique_id: &str) -> Result<Option<MailboxRecord>, Error> {
        for item in self.mboxes.iter(txn)? {
            let (_, m) = item?;
            if m.unique_id == unique_id {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Messages of mailbox `mailbox_id` (local id) whose MODSEQ is above `modseq`, in UID order:
    /// what changed since a replica last saw `modseq` (new messages and flag changes; expunges
    /// show as UIDs the replica has and this side lacks).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn records_since(&self, mailbox_id: u32, modseq: u64) -> Result<Vec<(u32, MessageRecord)>, Error> {
        let txn = self.rtxn()?;
        let mut out = Vec::new();
        for item in self.msgs.prefix_iter(&txn, &mailbox_id.to_be_bytes())? {
            let (k, rec) = item?;
            if rec.modseq > modseq {
                out.push((key_uid(k), rec));
            }
        }
        Ok(out)
    }

    /// One SHA-256 (hex) over every mailbox's state (by unique id), the subscriptions and the user's
    /// settings (Sieve scripts, quota limit), from one
    /// read transaction: equal on both partners exactly when a sync has nothing to send.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn user_state_digest(&self) -> Result<String, Error> {
        let txn = self.rtxn()?;
        let mut states = self.mailbox_states_in(&txn)?;
        states.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
        let mut h = Sha256::new();
        for s in &states {
            s.digest_into(&mut h);
        }
        h.update(b"\0subscriptions\0");
        for item in self.subs.iter(&txn)? {
            h.update(item?.0.as_bytes());
            h.update([0]);
        }
        self.settings_in(&txn)?.digest_into(&mut h);
        Ok(hex::encode(h.finalize()))
    }
}
