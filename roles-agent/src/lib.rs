//! rolesd: the roles database's replication agent (primary and follower) and the frontend's
//! Postfix socketmap server. See README.md for the protocol.
#![forbid(unsafe_code)]

pub mod socketmap;
