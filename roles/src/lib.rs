//! The roles database: which backend holds each mailbox (the "Cyrusroles" of DESIGN.md), where
//! each backend listens, its partner and its state.
//!
//! One LMDB environment (a directory holding `data.mdb` + `lock.mdb`) with three databases:
//!
//! | db          | key                     | value        |
//! |-------------|-------------------------|--------------|
//! | `users`     | username (lower-case)   | [`UserRole`] |
//! | `backends`  | backend name            | [`Backend`]  |
//! | `changelog` | sequence, u64 big-endian| [`Change`]   |
//! | `meta`      | `last_seq`, `oldest_seq`| u64          |
//!
//! Every change is appended to `changelog` in the same write transaction that makes it, with a
//! strictly increasing sequence number, so a follower that replays the log from its last sequence
//! reaches exactly the primary's state.
//!
//! A follower replays the primary's entries under the same numbers ([`Roles::apply`]), or starts
//! from a [`Snapshot`] when it is further behind than the primary's retained changelog
//! ([`Roles::trim_changelog`], [`Roles::oldest_seq`]).
//!
//! Readers ([`Roles::open_read_only`], e.g. nginx workers) see a consistent snapshot per lookup and
//! every committed change at their next lookup, without reopening.
#![deny(unsafe_code)]

mod db;
mod replica;
#[cfg(test)]
mod test_support;
mod types;

pub use db::{Roles, Writer};
pub use replica::Snapshot;
pub use types::{validate_backend_name, validate_username, Backend, BackendState, Change, Route, UserRole, UserState};

/// What can go wrong with the roles database. Messages name the user, backend or directory.
#[derive(thiserror::Error, Debug)]
pub enum RolesError {
    #[error("invalid user name {0:?}: want 1-255 characters of [A-Za-z0-9._@+-], not starting with '.'")]
    InvalidUsername(String),
    #[error("invalid backend name {0:?}: want 1-64 characters of [A-Za-z0-9._-], not starting with '.'")]
    InvalidBackendName(String),
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("unknown backend {0:?} (add it first: mailctl roles backend add)")]
    UnknownBackend(String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("backend {name:?} is still in use by {users} user(s) or as a partner")]
    BackendInUse { name: String, users: usize },
    #[error("the roles database is open read-only")]
    ReadOnly,
    #[error("roles database {0} is not initialised (no such databases; create it with mailctl roles)")]
    NotInitialised(String),
    #[error("roles database {dir}: {source}")]
    Open { dir: String, source: heed::Error },
    #[error("roles database: {0}")]
    Lmdb(#[from] heed::Error),
}

pub type Result<T, E = RolesError> = std::result::Result<T, E>;
