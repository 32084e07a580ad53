//! What the per-user LMDB index holds. Everything replication compares lives here: mailbox
//! unique id, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, per-message GUID and MODSEQ.

use serde::{Deserialize, Serialize};

use crate::blob::Guid;

/// System flag bits of [`Flags::system`] (RFC 3501 2.3.2). `\Recent` is per session, not stored.
pub mod flag {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    /// IMAP names of the bits, in bit order.
    pub const NAMES: [(u8, &str); 5] = [
        (SEEN, "\\Seen"),
        (ANSWERED, "\\Answered"),
        (FLAGGED, "\\Flagged"),
        (DELETED, "\\Deleted"),
        (DRAFT, "\\Draft"),
    ];
}

/// A message's flags: system bits plus keywords (atoms, as the client spelled them).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

impl Flags {
    pub fn has(&self, bit: u8) -> bool {
        self.system & bit != 0
    }

    pub fn has_keyword(&self, kw: &str) -> bool {
        self.keywords.iter().any(|k| k.eq_ignore_ascii_case(kw))
    }

    /// Apply a STORE (RFC 3501 6.4.6); returns whether anything changed.
    pub fn apply(&mut self, mode: StoreMode, other: &Flags) -> bool {
        let before = self.clone();
        match mode {
            StoreMode::Replace => {
                self.system = other.system;
                self.keywords.clear();
                for k in &other.keywords {
                    if !self.has_keyword(k) {
                        self.keywords.push(k.clone());
                    }
                }
            }
            StoreMode::Add => {
                self.system |= other.system;
                for k in &other.keywords {
                    if !self.has_keyword(k) {
                        self.keywords.push(k.clone());
                    }
                }
            }
            StoreMode::Remove => {
                self.system &= !other.system;
                self.keywords.retain(|k| !other.has_keyword(k));
            }
        }
        *self != before
    }
}

/// How STORE combines flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// One mailbox. `id` is the local key (never reused within a user); `unique_id` survives
/// renames and identifies the mailbox between replication partners.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MailboxRecord {
    pub id: u32,
    pub unique_id: String,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Messages with `uid >= recent_uid` are `\Recent` for the next session that SELECTs.
    pub recent_uid: u32,
    pub special_use: Option<String>,
    /// Keywords used in this mailbox, for the FLAGS / PERMANENTFLAGS responses.
    pub keywords: Vec<String>,
    pub exists: u32,
    /// A name kept only as a parent of other mailboxes (RFC 3501 6.3.4 DELETE with inferiors).
    pub noselect: bool,
}

/// Index entry of one message in one mailbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub guid: Guid,
    pub size: u32,
    /// INTERNALDATE as unix seconds and the client's offset in minutes.
    pub internaldate: i64,
    pub tz_minutes: i16,
    pub modseq: u64,
    pub flags: Flags,
}

/// Parsed-once facts about a message, served by FETCH without opening the file (as Cyrus's
/// cache file). Strings are already in IMAP syntax.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CacheRecord {
    pub envelope: String,
    pub bodystructure: String,
    pub body: String,
    pub header_len: u32,
    pub sent_date: Option<i64>,
}

/// A message expunged within the retention window (delayed expunge); the purge task removes it
/// and, with its last reference, the file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ExpungedRecord {
    pub mailbox_unique_id: String,
    pub mailbox_name: String,
    pub uid: u32,
    pub expunged_at: i64,
    pub message: MessageRecord,
}

/// Per-user counters.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct UserMeta {
    pub next_mailbox_id: u32,
    pub last_uidvalidity: u32,
    pub expunge_seq: u64,
}

/// Key of a message: mailbox id and UID, big-endian so LMDB orders by UID within a mailbox.
pub fn msg_key(mailbox: u32, uid: u32) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&mailbox.to_be_bytes());
    k[4..].copy_from_slice(&uid.to_be_bytes());
    k
}

pub fn key_uid(key: &[u8]) -> u32 {
    u32::from_be_bytes([key[4], key[5], key[6], key[7]])
}
