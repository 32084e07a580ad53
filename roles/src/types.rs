//! The values stored in the roles database, and the validation of names.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Result, RolesError};

/// Where a user's mailbox lives, and whether it is settled there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRole {
    /// Name of the backend (a key of the `backends` db) that holds the mailbox.
    pub backend: String,
    pub state: UserState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserState {
    /// Served by its backend.
    Active,
    /// Being moved to `backend`; logins may be refused or delayed by policy.
    Moving,
    /// Not yet migrated: still on the old platform at `address` (host:port or host).
    Legacy { address: String },
}

impl fmt::Display for UserState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserState::Active => f.write_str("active"),
            UserState::Moving => f.write_str("moving"),
            UserState::Legacy { address } => write!(f, "legacy:{address}"),
        }
    }
}

/// A backend instance (one mailstored) and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub name: String,
    pub ip: IpAddr,
    pub imap: u16,
    pub pop3: u16,
    pub lmtp: u16,
    /// The replica on the other site, which takes over the users when this one is in failover.
    pub partner: Option<String>,
    pub state: BackendState,
}

impl Backend {
    /// Port for a protocol name as nginx's `Auth-Protocol` spells it (`imap`, `pop3`), or `lmtp`.
    pub fn port(&self, protocol: &str) -> Option<u16> {
        match protocol {
            p if p.eq_ignore_ascii_case("imap") => Some(self.imap),
            p if p.eq_ignore_ascii_case("pop3") => Some(self.pop3),
            p if p.eq_ignore_ascii_case("lmtp") => Some(self.lmtp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendState {
    Up,
    /// Unreachable or in maintenance: logins get a temporary failure.
    Down,
    /// Its users are served by its partner.
    Failover,
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
            BackendState::Failover => "failover",
        })
    }
}

impl FromStr for BackendState {
    type Err = RolesError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "up" => Ok(BackendState::Up),
            "down" => Ok(BackendState::Down),
            "failover" => Ok(BackendState::Failover),
            _ => Err(RolesError::Invalid(format!("backend state {s:?}: want up, down or failover"))),
        }
    }
}

/// One entry of the changelog: the new value after a change, enough for a follower to apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    SetUser { user: String, role: UserRole },
    DeleteUser { user: String },
    SetBackend(Backend),
    DeleteBackend { name: String },
}

/// The answer to a login's question "where does this user live?", read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub user: UserRole,
    /// The user's own backend.
    pub backend: Backend,
    /// The backend's partner, when it has one (read in the same snapshot).
    pub partner: Option<Backend>,
}

impl Route {
    /// The backend that serves the user now: its own when up, the partner when the own one is in
    /// failover and the partner is up; `None` when nobody can (a temporary failure, not a wrong
    /// password).
    pub fn serving(&self) -> Option<&Backend> {
        match self.backend.state {
            BackendState::Up => Some(&self.backend),
            BackendState::Failover => self.partner.as_ref().filter(|p| p.state == BackendState::Up),
            BackendState::Down => None,
        }
    }
}

/// Validates and lower-cases a user name the way mailstored's `Username` does:
/// 1–255 characters of `[A-Za-z0-9._@+-]`, not starting with `.`.
///
/// # Errors
/// [`RolesError::InvalidUsername`].
pub fn validate_username(user: &str) -> Result<String> {
    let ok = !user.is_empty()
        && user.len() <= 255
        && !user.starts_with('.')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(user.to_ascii_lowercase())
    } else {
        Err(RolesError::InvalidUsername(user.to_string()))
    }
}

/// Validates and lower-cases a backend name: 1–64 characters of `[A-Za-z0-9._-]`, not starting
/// with `.`.
///
/// # Errors
/// [`RolesError::InvalidBackendName`].
pub fn validate_backend_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(RolesError::InvalidBackendName(name.to_string()))
    }
}

pub(crate) fn validate_legacy_address(address: &str) -> Result<()> {
    if address.is_empty() || address.len() > 255 || address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(RolesError::Invalid(format!("legacy address {address:?}: want host or host:port")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_username("Alice@Example.org").unwrap(), "alice@example.org");
        for bad in ["", ".x", "a b", "a\r\n", "*)(uid=*", "a/b", &"x".repeat(256)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert_eq!(validate_backend_name("A1").unwrap(), "a1");
        assert!(validate_backend_name("a@b").is_err());
        assert!(validate_legacy_address("old.example.org:143").is_ok());
        assert!(validate_legacy_address("a b").is_err());
    }

    #[test]
    fn state_parse() {
        assert_eq!("FailOver".parse::<BackendState>().unwrap(), BackendState::Failover);
        assert!("sideways".parse::<BackendState>().is_err());
    }
}
