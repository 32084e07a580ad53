//! The mailstored mailbox store (DESIGN.md principle 5): message bodies are immutable files named
//! by their SHA-256 under `mail/<user>/`, written temp + fsync + rename; the index (mailboxes,
//! UIDs, flags, MODSEQ, cached ENVELOPE/BODYSTRUCTURE, subscriptions, delayed expunges) is one
//! LMDB environment per user under `metadata/<user>/`. A call that returns `Ok` is durable.
//! `repl/` holds the replication change log and [`repl`] the state and apply side a sync uses.
#![deny(unsafe_code)]

pub mod blob;
mod imapext;
mod messages;
pub mod names;
mod quota;
pub mod repl;
pub mod schema;
mod sieve;
mod sortcache;
mod store;
mod undelete;
mod user;

pub use blob::Guid;
pub use imapext::Vanished;
pub use messages::{Appended, Copied, Stored};
pub use names::{MailboxName, Username, SEPARATOR};
pub use quota::QuotaOverride;
pub use repl::{ChangeLog, MailboxState, ReplOp, UserSettings};
pub use schema::{flag, CacheRecord, ExpungedRecord, Flags, MailboxRecord, MessageRecord, StoreMode};
pub use sieve::ScriptError;
pub use store::{Store, StoreOptions};
pub use undelete::{RestoreReport, Restored, Undeletable, UndeleteFilter};
pub use user::{UserStore, DEFAULT_FOLDERS};

/// Errors of the store. Each concerns one user and one operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid user name")]
    InvalidUsername,
    #[error("invalid mailbox name: {0}")]
    InvalidMailboxName(String),
    #[error("mailbox does not exist: {0}")]
    NoSuchMailbox(String),
    #[error("mailbox already exists: {0}")]
    MailboxExists(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("index error: {0}")]
    Index(#[from] heed::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Replication: the UID holds a different message here (resolve with
    /// [`UserStore::renumber_conflict`]).
    #[error("UID {uid} of {mailbox} holds a different message")]
    UidConflict { mailbox: String, uid: u32 },
    /// The message would take the user over their storage quota (RFC 9208 OVERQUOTA; LMTP
    /// 452 4.2.2 / 552 5.2.2).
    #[error("over quota: {usage} of {limit} bytes used, {needed} more refused")]
    OverQuota { usage: u64, limit: u64, needed: u64 },
    #[error("index damaged: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;
