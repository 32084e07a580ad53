//! mailstored: IMAP4rev1, POP3 and LMTP over the [`mailstore`]. Each protocol is a pure codec +
//! session pair with a thin connection shell ([`net::Conn`]).
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod frontend;
pub mod imap;
pub mod lmtp;
pub mod mailadmin;
pub mod managesieve;
pub mod net;
pub mod outbox;
pub mod pop3;
pub mod repl;
pub mod server;
pub mod smtp;
pub mod tls;

/// Runs a store call (LMDB commit, fsync, file read) without stalling the other connections
/// served by this runtime worker.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
