//! The shared store in Redis: cached credentials and lockout counters (see [`crate::cache`] for
//! the keys). Blocking (`redis`'s synchronous connection, with timeouts): called only inside
//! nginx thread-pool tasks.

use std::sync::Mutex;
use std::time::Duration;

/// A Redis failure: the login goes on to the directory, and the failure is logged.
#[derive(Debug, thiserror::Error)]
#[error("redis {url}: {message}")]
pub struct StoreError {
    /// Which server (no credentials: they are stripped from the URL for display).
    pub url: String,
    /// What went wrong.
    pub message: String,
}

/// What Redis knows before the directory is asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreView {
    /// The failure counters, in the order of the keys asked for (0 when absent).
    pub failures: Vec<u64>,
    /// The cached credential value, when present.
    pub credential: Option<String>,
}

/// The operations the login flow needs from the shared store. Blocking.
pub trait CredStore: Send + Sync {
    /// Reads the failure counters `fail_keys` and the credential at `cred_key` in one round
    /// trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Redis can't be reached or answers with an error.
    fn check(&self, fail_keys: &[String], cred_key: &str) -> Result<StoreView, StoreError>;

    /// Counts one failure on each of `fail_keys` (a new counter expires after `window`);
    /// returns the new counts.
    ///
    /// # Errors
    ///
    /// As [`CredStore::check`].
    fn count_failure(&self, fail_keys: &[String], window: Duration) -> Result<Vec<u64>, StoreError>;

    /// Caches a verified credential for `ttl`.
    ///
    /// # Errors
    ///
    /// As [`CredStore::check`].
    fn store_credential(&self, cred_key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
}

/// Redis through the `redis` crate's synchronous API, with a small pool of connections shared
/// by the thread pool's threads.
pub struct Redis {
    client: redis::Client,
    display_url: String,
    timeout: Duration,
    idle: Mutex<Vec<redis::Connection>>,
}

/// Idle connections kept per worker process.
const MAX_IDLE: usize = 16;

/// The URL without a password, for logs and messages.
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl Redis {
    /// A client for `url` (`redis://[user:pass@]host[:port][/db]`); connects lazily.
    ///
    /// # Errors
    ///
    /// A message when the URL is not a Redis URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        if !url.starts_with("redis://") {
            return Err(format!("expected redis://host[:port][/db], got {:?}", display_url(url)));
        }
        let client = redis::Client::open(url).map_err(|e| format!("{:?}: {e}", display_url(url)))?;
        Ok(Self { client, display_url: display_url(url), timeout, idle: Mutex::new(Vec::new()) })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { url: self.display_url.clone(), message: e.to_string() }
    }

    fn connect(&self) -> Result<redis::Connection, StoreError> {
        let c = self.client.get_connection_with_timeout(self.timeout).map_err(|e| self.err(e))?;
        c.set_read_timeout(Some(self.timeout)).map_err(|e| self.err(e))?;
        c.set_write_timeout(Some(self.timeout)).map_err(|e| self.err(e))?;
        Ok(c)
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not pooled. A
    /// pooled connection that fails (Redis restarted, idle timeout) is retried once on a fresh
    /// one, so a Redis restart costs no login its cache.
    fn with_conn<T>(&self, f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (conn, out) = match pooled {
            Some(mut c) => match f(&mut c) {
                Ok(out) => (c, out),
                Err(_) => {
                    let mut c = self.connect()?;
                    let out = f(&mut c).map_err(|e| self.err(e))?;
                    (c, out)
                }
            },
            None => {
                let mut c = self.connect()?;
                let out = f(&mut c).map_err(|e| self.err(e))?;
                (c, out)
            }
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        Ok(out)
    }
}

impl CredStore for Redis {
    fn check(&self, fail_keys: &[String], cred_key: &str) -> Result<StoreView, StoreError> {
        let mut keys: Vec<&str> = fail_keys.iter().map(String::as_str).collect();
        keys.push(cred_key);
        let mut values: Vec<Option<String>> = self.with_conn(|c| redis::cmd("MGET").arg(&keys).query(c))?;
        if values.len() != keys.len() {
            return Err(self.err(format!("MGET answered {} values for {} keys", values.len(), keys.len())));
        }
        let credential = values.pop().flatten();
        let failures = values.into_iter().map(|v| v.and_then(|s| s.parse().ok()).unwrap_or(0)).collect();
        Ok(StoreView { failures, credential })
    }

    fn count_failure(&self, fail_keys: &[String], window: Duration) -> Result<Vec<u64>, StoreError> {
        if fail_keys.is_empty() {
            return Ok(Vec::new());
        }
        // SET NX EX then INCR, in one MULTI: a counter never exists without its expiry, and the
        // window starts at the first failure (INCR keeps the TTL).
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in fail_keys {
            pipe.cmd("SET").arg(key).arg(0).arg("EX").arg(window.as_secs().max(1)).arg("NX").ignore();
            pipe.cmd("INCR").arg(key);
        }
        self.with_conn(|c| pipe.query(c))
    }

    fn store_credential(&self, cred_key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with_conn(|c| redis::cmd("SET").arg(cred_key).arg(value).arg("EX").arg(ttl.as_secs().max(1)).query(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(display_url("redis://u:secret@h:6379/2"), "redis://***@h:6379/2");
        assert_eq!(display_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(Redis::new("http://x", Duration::from_secs(1)).is_err());
        assert!(Redis::new("redis://127.0.0.1:6379/0", Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn unreachable_redis_is_an_error_not_a_hang() {
        let r = Redis::new("redis://127.0.0.1:1", Duration::from_millis(200)).unwrap();
        let t = std::time::Instant::now();
        let e = r.check(&["k".into()], "c").unwrap_err();
        assert!(e.to_string().starts_with("redis redis://127.0.0.1:1: "), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
