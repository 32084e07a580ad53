//! Rolling replication between partner backends (DESIGN.md principle 6, issue 5), split like
//! Cyrus: the change log lives in the store ([`mailstore::repl`]); [`wire`] is the framed
//! messages, [`conn`] the TLS link with mutual authentication, [`server`] the replica side that
//! applies, [`client`] the primary's sync worker that compares and pushes.

pub mod client;
pub mod conn;
pub mod server;
pub mod state;
pub mod wire;
