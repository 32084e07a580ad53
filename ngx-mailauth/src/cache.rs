//! Credential cache keys and the per-worker tiers that live on nginx's event loop.
//!
//! Nothing here stores a password: a cached credential is `HMAC-SHA256(secret, user NUL pass)`
//! with the frontend's secret (`mailauth_cache_secret`), so a dump of Redis or of a worker's
//! memory does not reveal passwords, and without the secret a candidate password can't be
//! tested against it offline.
//!
//! - Redis: key `mailauth:cred:<hex HMAC(secret, user)>`, value `<hex HMAC(secret, user NUL
//!   pass)>`, with `EX <mailauth_cache_ttl>`. Shared by every worker and frontend.
//! - [`WorkerCache`]: the same credential HMAC → expiry, per nginx worker, consulted without any
//!   I/O. It also mirrors lockouts learned from Redis (or counted locally when Redis is absent
//!   or down), so a locked-out user or address never gets an in-memory hit.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::decision::Secret;

/// Most entries a worker keeps per map before it drops expired ones (and, if still full, all).
pub const WORKER_CACHE_MAX_ENTRIES: usize = 100_000;

/// The HMAC key of the credential cache, kept as an HMAC state with the key already absorbed:
/// each use clones it instead of hashing the key again (two SHA-256 blocks saved per MAC).
#[derive(Clone)]
pub struct CacheSecret(Hmac<Sha256>);

impl std::fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheSecret(***)")
    }
}

/// Why a secret file's content can't be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the secret must be at least 16 bytes (got {0}); generate one with `head -c 32 /dev/urandom > FILE`")]
pub struct ShortSecret(pub usize);

impl CacheSecret {
    /// The key from a secret file's bytes (a trailing newline is ignored).
    ///
    /// # Errors
    ///
    /// [`ShortSecret`] when fewer than 16 bytes remain.
    pub fn new(mut bytes: Vec<u8>) -> Result<Self, ShortSecret> {
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.len() < 16 {
            return Err(ShortSecret(bytes.len()));
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("HMAC takes any key length");
        Ok(Self(keyed))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(&[0]);
            }
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// `HMAC(secret, user NUL pass)`: the credential, as the worker tier keys it.
    pub fn credential(&self, user: &str, pass: &Secret<String>) -> [u8; 32] {
        self.mac(&[user.as_bytes(), pass.expose().as_bytes()])
    }

    /// The Redis key of a user's cached credential: `mailauth:cred:<hex HMAC(secret, user)>`
    /// (the user name itself is not readable in Redis either).
    pub fn redis_key(&self, user: &str) -> String {
        format!("mailauth:cred:{}", hex::encode(self.mac(&[user.as_bytes()])))
    }

    /// The Redis value of a cached credential: hex of [`CacheSecret::credential`].
    pub fn redis_value(&self, user: &str, pass: &Secret<String>) -> String {
        hex::encode(self.credential(user, pass))
    }
}

/// What the lockout counts: failed logins of one user name and failed logins from one client
/// address, each in a window that starts at the first failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures in the window after which further logins are refused.
    pub failures: u32,
    /// The window (Redis `EXPIRE` of the counter, set at the first failure).
    pub window: Duration,
}

impl LockoutPolicy {
    /// Whether a counter value means "locked": `failures` failed logins were already seen.
    pub fn is_locked(&self, count: u64) -> bool {
        count >= u64::from(self.failures)
    }
}

/// The Redis key of a user's failure counter.
pub fn fail_key_user(user: &str) -> String {
    format!("mailauth:fail:user:{user}")
}

/// The Redis key of a client address's failure counter.
pub fn fail_key_ip(ip: std::net::IpAddr) -> String {
    format!("mailauth:fail:ip:{ip}")
}

/// A fixed-window counter kept in a worker (used when Redis is not configured or is down).
#[derive(Clone, Copy, Debug)]
struct Counter {
    count: u64,
    until: Instant,
}

/// Hashes the credentials map's keys by folding their bytes. The keys are HMAC outputs under the
/// frontend's secret, already uniform and not choosable by a client, so SipHash's protection
/// against crafted collisions buys nothing there and costs a pass over 32 bytes per lookup.
#[derive(Clone, Copy, Debug, Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

/// The per-worker tier: verified credentials and lockout state. Lives on the event loop thread
/// only (no locking).
#[derive(Debug, Default)]
pub struct WorkerCache {
    creds: HashMap<[u8; 32], Instant, BuildHasherDefault<FoldHasher>>,
    /// Lockout keys (`fail_key_*`) known to be locked, until when.
    locked: HashMap<String, Instant>,
    /// Local failure counters (Redis absent or down).
    counters: HashMap<String, Counter>,
}

fn bound<V, S>(map: &mut HashMap<impl std::hash::Hash + Eq, V, S>, alive: impl Fn(&V) -> bool) {
    if map.len() >= WORKER_CACHE_MAX_ENTRIES {
        map.retain(|_, v| alive(v));
        if map.len() >= WORKER_CACHE_MAX_ENTRIES {
            map.clear();
        }
    }
}

impl WorkerCache {
    /// Whether this credential was verified and has not expired.
    pub fn has_credential(&mut self, cred: &[u8; 32], now: Instant) -> bool {
        match self.creds.get(cred) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.creds.remove(cred);
                false
            }
            None => false,
        }
    }

    /// Remembers a verified credential until `now + ttl`.
    pub fn put_credential(&mut self, cred: [u8; 32], ttl: Duration, now: Instant) {
        bound(&mut self.creds, |until| *until > now);
        self.creds.insert(cred, now + ttl);
    }

    /// Forgets a credential (it failed against the directory or Redis disagrees).
    pub fn forget_credential(&mut self, cred: &[u8; 32]) {
        self.creds.remove(cred);
    }

    /// Whether any lockout is mirrored at all (when not, [`WorkerCache::is_locked`] is false for
    /// any keys, and they need not be built).
    pub fn has_locks(&self) -> bool {
        !self.locked.is_empty()
    }

    /// Whether any of `keys` is known to be locked at `now`.
    pub fn is_locked(&self, keys: &[String], now: Instant) -> bool {
        keys.iter().any(|k| self.locked.get(k).is_some_and(|until| *until > now))
    }

    /// Records what an authoritative count (Redis, or the local counter) says about `key`.
    pub fn note_count(&mut self, key: &str, count: u64, policy: &LockoutPolicy, now: Instant) {
        if policy.is_locked(count) {
            bound(&mut self.locked, |until| *until > now);
            self.locked.insert(key.to_owned(), now + policy.window);
        } else {
            self.locked.remove(key);
        }
    }

    /// The local failure count of `key` (0 when none or expired).
    pub fn local_count(&self, key: &str, now: Instant) -> u64 {
        self.counters.get(key).filter(|c| c.until > now).map_or(0, |c| c.count)
    }

    /// Counts a failure locally; returns the new count. The window starts at the first failure.
    pub fn count_failure_locally(&mut self, key: &str, policy: &LockoutPolicy, now: Instant) -> u64 {
        bound(&mut self.counters, |c| c.until > now);
        let c = self.counters.entry(key.to_owned()).or_insert(Counter { count: 0, until: now + policy.window });
        if c.until <= now {
            *c = Counter { count: 0, until: now + policy.window };
        }
        c.count += 1;
        let count = c.count;
        self.note_count(key, count, policy, now);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> CacheSecret {
        CacheSecret::new(b"0123456789abcdef0123456789abcdef\n".to_vec()).unwrap()
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(CacheSecret::new(b"short\n".to_vec()).unwrap_err(), ShortSecret(5));
    }

    #[test]
    fn keys_are_keyed_hashes_not_passwords() {
        let s = secret();
        let pass = Secret::new("hunter2".to_owned());
        let key = s.redis_key("alice");
        assert!(key.starts_with("mailauth:cred:"));
        assert_eq!(key.len(), "mailauth:cred:".len() + 64);
        assert!(!key.contains("alice"));
        let value = s.redis_value("alice", &pass);
        assert_eq!(value.len(), 64);
        assert_eq!(value, hex::encode(s.credential("alice", &pass)));
        // Known answer: HMAC-SHA256(key, "alice\0hunter2").
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        mac.update(b"alice\0hunter2");
        assert_eq!(value, hex::encode(mac.finalize().into_bytes()));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(s.credential("ab", &Secret::new("c".into())), s.credential("a", &Secret::new("bc".into())));
        // Another secret, another value.
        let other = CacheSecret::new(b"fedcba9876543210fedcba9876543210".to_vec()).unwrap();
        assert_ne!(other.redis_value("alice", &pass), value);
        assert!(!format!("{s:?}").contains("0123"));
    }

    #[test]
    fn worker_credentials_expire() {
        let mut c = WorkerCache::default();
        let now = Instant::now();
        let cred = secret().credential("a", &Secret::new("p".into()));
        assert!(!c.has_credential(&cred, now));
        c.put_credential(cred, Duration::from_secs(10), now);
        assert!(c.has_credential(&cred, now + Duration::from_secs(9)));
        assert!(!c.has_credential(&cred, now + Duration::from_secs(10)));
        c.put_credential(cred, Duration::from_secs(10), now);
        c.forget_credential(&cred);
        assert!(!c.has_credential(&cred, now));
    }

    #[test]
    fn lockout_arithmetic() {
        let policy = LockoutPolicy { failures: 3, window: Duration::from_secs(60) };
        assert!(!policy.is_locked(2));
        assert!(policy.is_locked(3));
        let mut c = WorkerCache::default();
        let t0 = Instant::now();
        let key = fail_key_user("bob");
        assert_eq!(key, "mailauth:fail:user:bob");
        assert_eq!(fail_key_ip("192.0.2.1".parse().unwrap()), "mailauth:fail:ip:192.0.2.1");
        assert_eq!(c.count_failure_locally(&key, &policy, t0), 1);
        assert_eq!(c.count_failure_locally(&key, &policy, t0 + Duration::from_secs(1)), 2);
        assert!(!c.is_locked(std::slice::from_ref(&key), t0 + Duration::from_secs(1)));
        assert_eq!(c.count_failure_locally(&key, &policy, t0 + Duration::from_secs(2)), 3);
        assert!(c.is_locked(std::slice::from_ref(&key), t0 + Duration::from_secs(2)));
        // The counter's window started at the first failure; the lock lasts a window.
        assert_eq!(c.local_count(&key, t0 + Duration::from_secs(60)), 0);
        assert!(c.is_locked(std::slice::from_ref(&key), t0 + Duration::from_secs(61)));
        assert!(!c.is_locked(std::slice::from_ref(&key), t0 + Duration::from_secs(62)));
        assert_eq!(c.count_failure_locally(&key, &policy, t0 + Duration::from_secs(62)), 1);
        // A count below the limit from Redis releases a mirrored lock.
        c.note_count(&key, 5, &policy, t0);
        assert!(c.is_locked(std::slice::from_ref(&key), t0));
        c.note_count(&key, 0, &policy, t0);
        assert!(!c.is_locked(&[key], t0));
    }
}
