//! Groundwork for application-level replication (DESIGN.md principle 6), split the way Cyrus
//! splits it: [`log`] records *which users changed* (its `sync_log`), [`state`] says what a sync
//! compares (its MAILBOX / RECORD), [`apply`] is what a replica does with the differences (its
//! `sync_server`). The sync worker and the wire protocol build on these; nothing here touches a
//! socket.

pub mod apply;
pub mod log;
pub mod settings;
pub mod state;

#[cfg(test)]
mod tests;

pub use apply::ReplOp;
pub use log::ChangeLog;
pub use settings::UserSettings;
pub use state::MailboxState;
