//! rolesd: the roles database's replication agent (primary and follower) and the frontend's
//! Postfix socketmap server. See README.md for the protocol and the failure behaviour.
//!
//! - [`wire`]: the protocol's messages as bytes (no sockets);
//! - [`primary`]: serves the changelog; [`follower`]: applies it;
//! - [`status`]: the follower's state over HTTP (JSON, Prometheus) and the Nagios-style check;
//! - [`socketmap`]: Postfix transport lookups from the local copy.
#![forbid(unsafe_code)]

pub mod follower;
pub mod primary;
pub mod socketmap;
pub mod status;
pub mod tls;
pub mod token;
pub mod wire;

use sha2::{Digest, Sha256};

/// A checksum over the whole content (users and backends, in key order) of a snapshot, with the
/// counts: two databases with the same line hold the same data at the same sequence.
pub fn checksum(snapshot: &mailscale_roles::Snapshot) -> String {
    let mut h = Sha256::new();
    for (user, role) in &snapshot.users {
        h.update(bincode::serialize(&(user, role)).expect("bincode into a Vec"));
    }
    h.update(b"\0backends\0");
    for backend in &snapshot.backends {
        h.update(bincode::serialize(backend).expect("bincode into a Vec"));
    }
    format!(
        "{} users={} backends={} seq={}",
        hex::encode(h.finalize()),
        snapshot.users.len(),
        snapshot.backends.len(),
        snapshot.seq
    )
}
