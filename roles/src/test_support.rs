//! Fixtures shared by this crate's unit tests.

use std::net::IpAddr;

use crate::{Backend, BackendState, UserRole, UserState};

/// A backend on loopback, up, with the demo ports.
pub fn backend(name: &str, partner: Option<&str>) -> Backend {
    Backend {
        name: name.into(),
        ip: "127.0.0.1".parse::<IpAddr>().unwrap(),
        imap: 1143,
        pop3: 1110,
        lmtp: 1024,
        partner: partner.map(Into::into),
        state: BackendState::Up,
    }
}

/// An active user on backend `b`.
pub fn active(b: &str) -> UserRole {
    UserRole { backend: b.into(), state: UserState::Active }
}
