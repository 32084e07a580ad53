//! Logins from the frontends with a signed ticket instead of the user's password (DESIGN
//! principle 4): nginx-mailauth authenticates the user, then nginx logs in here with a
//! short-lived `MST1.` ticket (crate `mailscale-ticket`) as the password. mailstored checks the
//! signature, expiry, user and nonce; it needs no directory access and never sees the password.
//!
//! A ticket is accepted only from a `[frontend] trusted` address, and only once (the nonce is
//! remembered until the ticket expires). Any refusal is an ordinary failed login for the client;
//! the log says why, without the ticket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use mailscale_ticket::{looks_like_ticket, verify, TicketError, TicketKey};
use mailstore::Username;

use crate::auth::Secret;
use crate::server::Ctx;

/// The outcome of [`Frontends::check`].
#[derive(Debug, PartialEq, Eq)]
pub enum TicketCheck {
    /// The password is not a ticket: check it against the users file.
    NotATicket,
    /// A valid, fresh ticket for this user from a trusted frontend.
    Ok(Username),
    /// A ticket that must not log in; the reason is for the log only.
    Refused(&'static str),
}

/// Nonces of accepted tickets, kept until their expiry.
struct Seen {
    nonces: HashMap<[u8; 16], u64>,
    last_prune: u64,
}

/// The ticket verifier: key, trusted frontend addresses and the replay memory.
pub struct Frontends {
    key: TicketKey,
    trusted: Vec<IpAddr>,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for Frontends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontends").field("key", &self.key).field("trusted", &self.trusted).finish()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Frontends {
    pub fn new(key: TicketKey, trusted: Vec<IpAddr>) -> Frontends {
        let trusted = trusted.into_iter().map(|ip| ip.to_canonical()).collect();
        Frontends { key, trusted, seen: Mutex::new(Seen { nonces: HashMap::new(), last_prune: 0 }) }
    }

    /// Decides a login whose password may be a ticket. Cheap (one HMAC): no blocking.
    ///
    /// Refused, in this order: a ticket from an untrusted peer (IPv4-mapped IPv6 peers count as
    /// their IPv4 address), a malformed or wrongly signed ticket, an expired one, one issued for
    /// another user (compared case-insensitively), a nonce already used.
    pub fn check(&self, peer: IpAddr, user: &str, password: &str, now: u64) -> TicketCheck {
        if !looks_like_ticket(password) {
            return TicketCheck::NotATicket;
        }
        if !self.trusted.contains(&peer.to_canonical()) {
            return TicketCheck::Refused("ticket from an address not in [frontend] trusted");
        }
        let v = match verify(&self.key, password, now) {
            Ok(v) => v,
            Err(TicketError::Expired) => return TicketCheck::Refused("expired ticket"),
            Err(TicketError::BadSignature) => return TicketCheck::Refused("ticket signature does not match"),
            Err(_) => return TicketCheck::Refused("malformed ticket"),
        };
        if !v.user.eq_ignore_ascii_case(user) {
            return TicketCheck::Refused("ticket issued for another user");
        }
        let Ok(username) = Username::new(user) else {
            return TicketCheck::Refused("invalid user name");
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now > seen.last_prune {
            seen.nonces.retain(|_, &mut expires| expires > now);
            seen.last_prune = now;
        }
        if seen.nonces.insert(v.nonce, v.expires).is_some() {
            return TicketCheck::Refused("ticket already used (replay)");
        }
        TicketCheck::Ok(username)
    }
}

/// Checks a login: a ticket when `[frontend]` is configured and the password is one, otherwise
/// the users file (argon2, off the async workers). `None` is a failed login, logged here when a
/// ticket was refused.
pub async fn authenticate(ctx: &Ctx, peer: IpAddr, user: String, pass: Secret) -> Option<Username> {
    if let Some(fe) = &ctx.frontends {
        match fe.check(peer, &user, pass.expose(), now_unix()) {
            TicketCheck::NotATicket => {}
            TicketCheck::Ok(u) => {
                tracing::debug!(user = %u, "login ticket accepted");
                return Some(u);
            }
            TicketCheck::Refused(why) => {
                tracing::warn!(user = %user.escape_debug(), reason = why, "login ticket refused");
                return None;
            }
        }
    }
    ctx.users.verify_async(user, pass).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn fe() -> (Frontends, TicketKey) {
        let key = TicketKey::generate();
        let trusted = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        (Frontends::new(key.clone(), trusted), key)
    }

    fn local() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn accepts_a_fresh_ticket_from_a_trusted_frontend() {
        let (fe, key) = fe();
        let t = mailscale_ticket::issue(&key, "alice", 60, NOW);
        assert_eq!(fe.check(local(), "Alice", &t, NOW), TicketCheck::Ok(Username::new("alice").unwrap()));
        let t = mailscale_ticket::issue(&key, "alice", 60, NOW);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(matches!(fe.check(mapped, "alice", &t, NOW), TicketCheck::Ok(_)));
        let t = mailscale_ticket::issue(&key, "alice", 60, NOW);
        assert!(matches!(fe.check("::1".parse().unwrap(), "alice", &t, NOW), TicketCheck::Ok(_)));
        assert_eq!(fe.check(local(), "alice", "hunter2", NOW), TicketCheck::NotATicket);
    }

    #[test]
    fn refusals() {
        let (fe, key) = fe();
        let t = mailscale_ticket::issue(&key, "alice", 60, NOW);
        let untrusted: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(matches!(fe.check(untrusted, "alice", &t, NOW), TicketCheck::Refused(r) if r.contains("trusted")));
        // refused from an untrusted peer does not burn the nonce
        assert!(matches!(fe.check(local(), "alice", &t, NOW), TicketCheck::Ok(_)));
        assert!(matches!(fe.check(local(), "alice", &t, NOW), TicketCheck::Refused(r) if r.contains("replay")));

        let t = mailscale_ticket::issue(&key, "alice", 60, NOW);
        assert!(matches!(fe.check(local(), "bob", &t, NOW), TicketCheck::Refused(r) if r.contains("another user")));
        assert!(matches!(fe.check(local(), "alice", &t, NOW + 60), TicketCheck::Refused("expired ticket")));

        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 10; // inside the MAC, not its padding bits
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(
            matches!(fe.check(local(), "alice", &tampered, NOW), TicketCheck::Refused(r) if r.contains("signature"))
        );
        assert!(matches!(fe.check(local(), "alice", "MST1.garbage", NOW), TicketCheck::Refused("malformed ticket")));

        let other_key = mailscale_ticket::issue(&TicketKey::generate(), "alice", 60, NOW);
        assert!(matches!(fe.check(local(), "alice", &other_key, NOW), TicketCheck::Refused(_)));
    }

    #[test]
    fn nonces_are_pruned_after_expiry() {
        let (fe, key) = fe();
        for i in 0..10 {
            let t = mailscale_ticket::issue(&key, "alice", 50, NOW + i);
            assert!(matches!(fe.check(local(), "alice", &t, NOW + i), TicketCheck::Ok(_)));
        }
        assert_eq!(fe.seen.lock().unwrap().nonces.len(), 10);
        let t = mailscale_ticket::issue(&key, "alice", 5, NOW + 100);
        assert!(matches!(fe.check(local(), "alice", &t, NOW + 100), TicketCheck::Ok(_)));
        assert_eq!(fe.seen.lock().unwrap().nonces.len(), 1);
    }
}
