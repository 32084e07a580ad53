//! The order of the checks for one login, as a state machine that never blocks by itself.
//!
//! ```text
//!  start (event loop) ──► answer now (bad name, locked out locally, worker-cache hit → Verified)
//!        │
//!        ├─► [cache pool]     check: failure counters + cached credential in Redis
//!        │       └─► resume: locked → refuse; cached → Verified; else ↓
//!        ├─► [users pool]     verify: users file (argon2)
//!        │       └─► resume: valid/invalid/error ↓, unknown → next directory
//!        ├─► [directory pool] verify: LDAP (network, may stall up to its timeout)
//!        │       └─► resume: valid/invalid/error ↓
//!        └─► [cache pool]     record: store the credential, or count the failure
//!                └─► resume: Verified (→ roles + ticket) or refuse
//! ```
//!
//! [`Login::start`] and [`Login::resume`] run on nginx's event loop and only touch memory
//! ([`Worker`]); [`Login::run`] runs on a thread-pool thread and does the one blocking step
//! the previous call asked for. A `Login` owns plain Rust data only (the parsed request, an
//! `Arc` of the settings): it moves to the pool thread and back without any pointer into nginx.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{fail_key_ip, fail_key_user, CacheSecret, LockoutPolicy, WorkerCache};
use crate::decision::{refuse, Answer, AuthRequest, Policy, INVALID_LOGIN, LOCKED_OUT, TEMP_FAILURE};
use crate::directory::{Directory, Lookup};
use crate::escape::check_login_name;
use crate::store::{CredStore, StoreView};

/// How long a worker leaves Redis alone after it failed (logins go straight to the directory).
pub const REDIS_BACKOFF: Duration = Duration::from_secs(2);
/// At most one "Redis down" log line per worker in this interval.
pub const REDIS_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Everything a login needs that the directives configured. Shared (`Arc`) by the requests of
/// a location and sent to pool threads.
pub struct Settings {
    /// Answers and waits.
    pub policy: Policy,
    /// `mailauth_lockout`, if set.
    pub lockout: Option<LockoutPolicy>,
    /// `mailauth_cache_ttl`; zero disables both cache tiers.
    pub cache_ttl: Duration,
    /// `mailauth_cache_secret` (or a random per-process key when only the worker tier is used).
    pub secret: CacheSecret,
    /// `mailauth_cache`, if set.
    pub store: Option<Arc<dyn CredStore>>,
    /// `mailauth_users`, then `mailauth_ldap`, in that order.
    pub directories: Vec<Arc<dyn Directory>>,
}

/// Per-worker state on the event loop.
#[derive(Debug, Default)]
pub struct Worker {
    /// Credentials and lockouts.
    pub cache: WorkerCache,
    redis_down_until: Option<Instant>,
    redis_logged_at: Option<Instant>,
}

/// Which thread pool a step runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Redis: short operations with a short timeout.
    Cache,
    /// LDAP, which may stall up to its timeout.
    Directory,
    /// The users file: argon2, CPU only, never waits on the network.
    Users,
}

/// What to do next with a login.
#[derive(Debug)]
pub enum Step {
    /// Send this answer.
    Answer(Answer),
    /// The password is verified: look the user up in the roles database and answer.
    Verified,
    /// Run [`Login::run`] on this pool, then [`Login::resume`] on the event loop.
    Run(Pool),
}

/// A log line for the module to write (never containing a password or ticket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Warning (something is broken) rather than info (a refused login).
    pub warn: bool,
    /// The text.
    pub text: String,
}

#[derive(Debug)]
enum Stage {
    Check,
    Checked(Result<StoreView, String>),
    /// Ask directory number n.
    Verify(usize),
    Verified(usize, Result<Lookup, String>),
    Store,
    CountFailure,
    Recorded(Result<Vec<u64>, String>),
    Done,
}

/// One login in progress.
pub struct Login {
    /// The parsed request.
    pub request: AuthRequest,
    settings: Arc<Settings>,
    stage: Stage,
    /// The lockout counters' keys; built by [`Login::start`] only when needed (a worker-cache
    /// hit with no lockout mirrored needs none).
    fail_keys: Vec<String>,
    redis_ok: bool,
    /// The directory refused the password (the record step counts a failure).
    refused: bool,
    notes: Vec<Note>,
}

impl Login {
    /// A login for a parsed request.
    pub fn new(request: AuthRequest, settings: Arc<Settings>) -> Self {
        Self {
            request,
            settings,
            stage: Stage::Done,
            fail_keys: Vec::new(),
            redis_ok: false,
            refused: false,
            notes: Vec::new(),
        }
    }

    /// Builds the lockout keys (user, then client address), once.
    fn build_fail_keys(&mut self) {
        if self.settings.lockout.is_some() && self.fail_keys.is_empty() {
            self.fail_keys.push(fail_key_user(self.request.user.as_str()));
            if let Some(ip) = self.request.client_ip {
                self.fail_keys.push(fail_key_ip(ip));
            }
        }
    }

    /// Log lines gathered since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// The client address, for logs.
    pub fn client(&self) -> String {
        self.request.client_ip.map_or_else(|| "?".to_owned(), |ip: IpAddr| ip.to_string())
    }

    fn refuse(&self, message: &'static str) -> Step {
        Step::Answer(refuse(message, self.request.attempt, &self.settings.policy))
    }

    fn note(&mut self, warn: bool, text: String) {
        self.notes.push(Note { warn, text });
    }

    fn redis_usable(&self, worker: &Worker, now: Instant) -> bool {
        self.settings.store.is_some() && worker.redis_down_until.is_none_or(|t| t <= now)
    }

    fn credential(&self) -> [u8; 32] {
        self.settings.secret.credential(self.request.user.as_str(), &self.request.pass)
    }

    /// First step, on the event loop.
    pub fn start(&mut self, worker: &mut Worker, now: Instant) -> Step {
        let user = self.request.user.as_str();
        if !check_login_name(user) {
            self.note(false, "user name outside [A-Za-z0-9._@+-]".into());
            return self.refuse(INVALID_LOGIN);
        }
        if !matches!(self.request.method.as_str(), "plain" | "login") {
            self.note(false, format!("auth method {:?} needs the plain password; refused", self.request.method));
            return self.refuse(INVALID_LOGIN);
        }
        if self.request.pass.expose().is_empty() {
            return self.refuse(INVALID_LOGIN);
        }
        let locked = worker.cache.has_locks() && {
            self.build_fail_keys();
            worker.cache.is_locked(&self.fail_keys, now)
        };
        if locked && !self.redis_usable(worker, now) {
            return self.refuse(LOCKED_OUT);
        }
        // A locked user or address never gets a worker-cache hit: Redis has the last word.
        if !locked && !self.settings.cache_ttl.is_zero() && worker.cache.has_credential(&self.credential(), now) {
            return Step::Verified;
        }
        // Every later step (Redis, the directory, counting a failure) uses the keys.
        self.build_fail_keys();
        if self.redis_usable(worker, now) {
            self.stage = Stage::Check;
            Step::Run(Pool::Cache)
        } else {
            self.verify(0)
        }
    }

    /// Asks directory `n`, or refuses as an unknown user when there is none left (a directory
    /// that can't answer is not skipped, so that a stopped LDAP server can't make a users-file
    /// entry of the same name win).
    fn verify(&mut self, n: usize) -> Step {
        match self.settings.directories.get(n) {
            Some(dir) => {
                self.stage = Stage::Verify(n);
                Step::Run(dir.pool())
            }
            // `mailauth` refuses a configuration without a directory; this is defensive only.
            None => self.refuse(INVALID_LOGIN),
        }
    }

    /// The blocking step asked for by the last [`Step::Run`]. Runs on a pool thread.
    pub fn run(&mut self) {
        let settings = self.settings.clone();
        let user = self.request.user.as_str();
        self.stage = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Check => {
                let store = settings.store.as_ref().expect("Check only with a store");
                let key = settings.secret.redis_key(user);
                Stage::Checked(store.check(&self.fail_keys, &key).map_err(|e| e.to_string()))
            }
            Stage::Verify(n) => {
                Stage::Verified(n, settings.directories[n].verify(user, &self.request.pass).map_err(|e| e.0))
            }
            Stage::Store => {
                let store = settings.store.as_ref().expect("Store only with a store");
                let key = settings.secret.redis_key(user);
                let value = settings.secret.redis_value(user, &self.request.pass);
                Stage::Recorded(
                    store
                        .store_credential(&key, &value, settings.cache_ttl)
                        .map(|()| Vec::new())
                        .map_err(|e| e.to_string()),
                )
            }
            Stage::CountFailure => {
                let store = settings.store.as_ref().expect("CountFailure only with a store");
                let window = settings.lockout.map_or(Duration::from_secs(1), |l| l.window);
                Stage::Recorded(store.count_failure(&self.fail_keys, window).map_err(|e| e.to_string()))
            }
            other => other,
        };
    }

    fn redis_failed(&mut self, worker: &mut Worker, error: String, now: Instant) {
        self.redis_ok = false;
        worker.redis_down_until = Some(now + REDIS_BACKOFF);
        if worker.redis_logged_at.is_none_or(|t| now.duration_since(t) >= REDIS_LOG_INTERVAL) {
            worker.redis_logged_at = Some(now);
            self.note(true, format!("{error}; using the directory and per-worker counters meanwhile"));
        }
    }

    fn count_locally(&mut self, worker: &mut Worker, now: Instant) {
        if let Some(lockout) = self.settings.lockout {
            for key in &self.fail_keys {
                worker.cache.count_failure_locally(key, &lockout, now);
            }
        }
    }

    /// Continues after [`Login::run`], on the event loop.
    pub fn resume(&mut self, worker: &mut Worker, now: Instant) -> Step {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Checked(Ok(view)) => {
                self.redis_ok = true;
                let mut locked = false;
                if let Some(lockout) = self.settings.lockout {
                    for (key, count) in self.fail_keys.iter().zip(&view.failures) {
                        worker.cache.note_count(key, *count, &lockout, now);
                        locked |= lockout.is_locked(*count);
                    }
                }
                if locked {
                    self.note(false, "locked out".into());
                    return self.refuse(LOCKED_OUT);
                }
                let user = self.request.user.as_str();
                if !self.settings.cache_ttl.is_zero()
                    && view.credential.as_deref() == Some(&self.settings.secret.redis_value(user, &self.request.pass))
                {
                    worker.cache.put_credential(self.credential(), self.settings.cache_ttl, now);
                    return Step::Verified;
                }
                self.verify(0)
            }
            Stage::Checked(Err(error)) => {
                self.redis_failed(worker, error, now);
                if self
                    .fail_keys
                    .iter()
                    .any(|k| self.settings.lockout.is_some_and(|l| l.is_locked(worker.cache.local_count(k, now))))
                {
                    return self.refuse(LOCKED_OUT);
                }
                self.verify(0)
            }
            Stage::Verified(n, Ok(Lookup::Unknown)) if n + 1 < self.settings.directories.len() => self.verify(n + 1),
            Stage::Verified(_, Ok(Lookup::Valid)) => {
                if !self.settings.cache_ttl.is_zero() {
                    worker.cache.put_credential(self.credential(), self.settings.cache_ttl, now);
                    if self.redis_ok {
                        self.stage = Stage::Store;
                        return Step::Run(Pool::Cache);
                    }
                }
                Step::Verified
            }
            Stage::Verified(_, Ok(lookup)) => {
                worker.cache.forget_credential(&self.credential());
                self.note(false, if lookup == Lookup::Unknown { "unknown user" } else { "wrong password" }.into());
                self.refused = true;
                if self.settings.lockout.is_some() && !self.fail_keys.is_empty() {
                    if self.redis_ok {
                        self.stage = Stage::CountFailure;
                        return Step::Run(Pool::Cache);
                    }
                    self.count_locally(worker, now);
                }
                self.refuse(INVALID_LOGIN)
            }
            Stage::Verified(_, Err(error)) => {
                self.note(true, format!("directory: {error}"));
                self.refuse(TEMP_FAILURE)
            }
            Stage::Recorded(result) => {
                let failed = self.refused;
                match result {
                    Ok(counts) => {
                        if let Some(lockout) = self.settings.lockout {
                            for (key, count) in self.fail_keys.iter().zip(&counts) {
                                worker.cache.note_count(key, *count, &lockout, now);
                            }
                        }
                    }
                    Err(error) => {
                        self.redis_failed(worker, error, now);
                        if failed {
                            self.count_locally(worker, now);
                        }
                    }
                }
                if failed {
                    self.refuse(INVALID_LOGIN)
                } else {
                    Step::Verified
                }
            }
            other => {
                self.note(true, format!("internal: resume in stage {other:?}"));
                self.refuse(TEMP_FAILURE)
            }
        }
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
