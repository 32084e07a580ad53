//! What the IMAP extensions need from the index beyond RFC 3501's data:
//!
//! - QRESYNC (RFC 7162 3.2.5/3.2.6): the MODSEQ at which each UID was expunged, so `VANISHED
//!   (EARLIER)` can name exactly the UIDs removed since the client's MODSEQ. Kept in the named
//!   database `vanished` of the user's environment — key `mailbox id ‖ uid` (big-endian), value
//!   the MODSEQ — so the bincode records of older indexes stay as they are. Key `mailbox id ‖ 0`
//!   (UID 0 is never assigned) holds the mailbox's MODSEQ just before its first recorded expunge:
//!   what was expunged earlier (before this database existed) is unknown, so a client whose
//!   MODSEQ is below that floor gets every missing UID instead (RFC 7162 3.2.5.1 lets a server
//!   name UIDs the client never saw).
//! - SORT / THREAD (RFC 5256): a message's header block, read from the front of its file when
//!   its keys are not in the index yet (`sortcache.rs`).

use std::io::Read;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, U64};
use heed::{Database, RwTxn};

use crate::blob::Guid;
use crate::schema::msg_key;
use crate::user::UserStore;
use crate::Error;

type VanishedDb = Database<Bytes, U64<BigEndian>>;

const VANISHED: &str = "vanished";

/// Header blocks longer than this are cut (SORT and THREAD read a handful of fields).
const MAX_HEADER: u64 = 256 * 1024;

/// UIDs expunged from a mailbox after a given MODSEQ (see [`UserStore::vanished_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vanished {
    /// Exactly these UIDs (ascending) were expunged after the MODSEQ.
    Exact(Vec<u32>),
    /// The MODSEQ predates what the index recorded: any UID below UIDNEXT that is not in the
    /// mailbox may have been expunged after it.
    Unknown,
}

impl UserStore {
    fn vanished_db(&self, txn: &mut RwTxn<'_>) -> Result<VanishedDb, Error> {
        Ok(self.env.create_database(txn, Some(VANISHED))?)
    }

    /// Records that `uids` left mailbox `mbox` at `modseq` (expunge or move), in the caller's
    /// transaction.
    pub(crate) fn record_vanished(
        &self,
        txn: &mut RwTxn<'_>,
        mbox: u32,
        uids: &[u32],
        modseq: u64,
    ) -> Result<(), Error> {
        if uids.is_empty() {
            return Ok(());
        }
        let db = self.vanished_db(txn)?;
        let floor = msg_key(mbox, 0);
        if db.get(txn, &floor)?.is_none() {
            db.put(txn, &floor, &modseq.saturating_sub(1))?;
        }
        for &uid in uids {
            db.put(txn, &msg_key(mbox, uid), &modseq)?;
        }
        Ok(())
    }

    /// The UIDs expunged from mailbox `mbox` at a MODSEQ above `modseq` (RFC 7162 VANISHED).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn vanished_since(&self, mbox: u32, modseq: u64) -> Result<Vanished, Error> {
        let txn = self.rtxn()?;
        let Some(db) = self.env.open_database::<Bytes, U64<BigEndian>>(&txn, Some(VANISHED))? else {
            return Ok(Vanished::Unknown);
        };
        let mut out = Vec::new();
        let mut floor = None;
        for item in db.prefix_iter(&txn, &mbox.to_be_bytes())? {
            let (k, m) = item?;
            let uid = crate::schema::key_uid(k);
            if uid == 0 {
                floor = Some(m);
            } else if m > modseq {
                out.push(uid);
            }
        }
        match floor {
            Some(f) if modseq >= f => Ok(Vanished::Exact(out)),
            _ => Ok(Vanished::Unknown),
        }
    }

    /// The header block (up to the empty line) of a message, read from the front of its file.
    /// `header_len` comes from the cache record when known.
    ///
    /// # Errors
    /// I/O errors.
    pub fn read_header(&self, guid: &Guid, header_len: Option<u32>) -> Result<Vec<u8>, Error> {
        let limit = header_len.map_or(MAX_HEADER, |n| u64::from(n).min(MAX_HEADER));
        let f = std::fs::File::open(self.blobs.path(guid))?;
        let mut out = Vec::new();
        f.take(limit).read_to_end(&mut out)?;
        Ok(out)
    }
}
