//! The login flow against an in-memory store and directory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::decision::{parse_request, Secret};
use crate::directory::DirectoryError;
use crate::store::StoreError;

#[derive(Default)]
struct FakeStore {
    data: Mutex<HashMap<String, String>>,
    down: AtomicBool,
}

impl FakeStore {
    fn fail(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError { url: "redis://fake".into(), message: "connection refused".into() });
        }
        Ok(())
    }
}

impl CredStore for FakeStore {
    fn check(&self, fail_keys: &[String], cred_key: &str) -> Result<StoreView, StoreError> {
        self.fail()?;
        let d = self.data.lock().unwrap();
        Ok(StoreView {
            failures: fail_keys.iter().map(|k| d.get(k).map_or(0, |v| v.parse().unwrap())).collect(),
            credential: d.get(cred_key).cloned(),
        })
    }
    fn count_failure(&self, fail_keys: &[String], _window: Duration) -> Result<Vec<u64>, StoreError> {
        self.fail()?;
        let mut d = self.data.lock().unwrap();
        Ok(fail_keys
            .iter()
            .map(|k| {
                let n = d.get(k).map_or(0, |v| v.parse::<u64>().unwrap()) + 1;
                d.insert(k.clone(), n.to_string());
                n
            })
            .collect())
    }
    fn store_credential(&self, cred_key: &str, value: &str, _ttl: Duration) -> Result<(), StoreError> {
        self.fail()?;
        self.data.lock().unwrap().insert(cred_key.into(), value.into());
        Ok(())
    }
}

#[derive(Default)]
struct FakeDir {
    users: HashMap<&'static str, &'static str>,
    calls: AtomicUsize,
    broken: AtomicBool,
    /// Plays the users file (its own pool) rather than LDAP.
    local: bool,
}

impl Directory for FakeDir {
    fn verify(&self, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(DirectoryError("LDAP ldap://x: cannot connect: timed out".into()));
        }
        Ok(match self.users.get(user) {
            None => Lookup::Unknown,
            Some(p) if *p == pass.expose() => Lookup::Valid,
            Some(_) => Lookup::Invalid,
        })
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    fn pool(&self) -> Pool {
        if self.local {
            Pool::Users
        } else {
            Pool::Directory
        }
    }
}

struct Env {
    settings: Arc<Settings>,
    store: Arc<FakeStore>,
    dir: Arc<FakeDir>,
    worker: Worker,
    now: Instant,
}

fn env(with_store: bool, lockout: Option<(u32, u64)>) -> Env {
    let store = Arc::new(FakeStore::default());
    let dir = Arc::new(FakeDir { users: HashMap::from([("alice", "right"), ("bob", "pw")]), ..FakeDir::default() });
    let settings = Arc::new(Settings {
        policy: Policy::default(),
        lockout: lockout.map(|(failures, w)| LockoutPolicy { failures, window: Duration::from_secs(w) }),
        cache_ttl: Duration::from_secs(300),
        secret: CacheSecret::new(vec![7; 32]).unwrap(),
        store: with_store.then(|| store.clone() as Arc<dyn CredStore>),
        directories: vec![dir.clone() as Arc<dyn Directory>],
    });
    Env { settings, store, dir, worker: Worker::default(), now: Instant::now() }
}

impl Env {
    /// Runs a login to its end; returns the final step and the pools it went through.
    fn login(&mut self, user: &str, pass: &str, ip: &str, attempt: u32) -> (Step, Vec<Pool>) {
        let attempt = attempt.to_string();
        let headers = [
            ("Auth-Method", "plain"),
            ("Auth-User", user),
            ("Auth-Pass", pass),
            ("Auth-Protocol", "imap"),
            ("Auth-Login-Attempt", attempt.as_str()),
            ("Client-IP", ip),
        ];
        let request = parse_request(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
        let mut login = Login::new(request, self.settings.clone());
        let mut pools = Vec::new();
        let mut step = login.start(&mut self.worker, self.now);
        while let Step::Run(pool) = step {
            pools.push(pool);
            login.run();
            step = login.resume(&mut self.worker, self.now);
        }
        for note in login.take_notes() {
            assert!(!note.text.contains(pass) || pass.len() < 3, "password in a log line: {note:?}");
        }
        (step, pools)
    }

    fn status(&mut self, user: &str, pass: &str, ip: &str) -> String {
        match self.login(user, pass, ip, 1).0 {
            Step::Verified => "verified".into(),
            Step::Answer(a) => a.headers()[0].1.clone(),
            Step::Run(_) => unreachable!(),
        }
    }
}

use Pool::{Cache as C, Directory as D};

#[test]
fn first_login_goes_through_redis_and_directory_then_is_cached() {
    let mut e = env(true, Some((3, 60)));
    let (step, pools) = e.login("alice", "right", "192.0.2.1", 1);
    assert!(matches!(step, Step::Verified));
    assert_eq!(pools, [C, D, C]);
    // The cached value is the HMAC, under the HMAC key; the password is nowhere in Redis.
    let data = e.store.data.lock().unwrap().clone();
    let key = e.settings.secret.redis_key("alice");
    assert_eq!(data[&key], e.settings.secret.redis_value("alice", &Secret::new("right".into())));
    assert!(data.iter().all(|(k, v)| !k.contains("right") && !v.contains("right")));
    // Second login: the worker tier answers with no task at all.
    let (step, pools) = e.login("alice", "right", "192.0.2.1", 1);
    assert!(matches!(step, Step::Verified));
    assert!(pools.is_empty());
    assert_eq!(e.dir.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn redis_hit_from_another_worker_skips_the_directory() {
    let mut e = env(true, None);
    e.login("alice", "right", "192.0.2.1", 1);
    e.worker = Worker::default(); // another worker (or frontend) sharing the Redis
    let (step, pools) = e.login("alice", "right", "192.0.2.1", 1);
    assert!(matches!(step, Step::Verified));
    assert_eq!(pools, [C]);
    assert_eq!(e.dir.calls.load(Ordering::SeqCst), 1);
    // A different password does not match the cached HMAC.
    let (step, pools) = e.login("alice", "Wr0ng", "192.0.2.1", 1);
    assert!(matches!(step, Step::Answer(ref a) if a.headers()[0].1 == INVALID_LOGIN));
    assert_eq!(pools, [C, D]);
}

#[test]
fn wrong_password_waits_and_last_attempt_closes() {
    let mut e = env(false, None);
    let (step, _) = e.login("alice", "nope", "192.0.2.1", 1);
    let Step::Answer(a) = step else { panic!() };
    assert_eq!(a.headers(), [("Auth-Status", INVALID_LOGIN.to_owned()), ("Auth-Wait", "3".to_owned())]);
    let (step, _) = e.login("alice", "nope", "192.0.2.1", 3);
    let Step::Answer(a) = step else { panic!() };
    assert_eq!(a.headers(), [("Auth-Status", INVALID_LOGIN.to_owned())]);
    assert_eq!(e.status("nobody", "x1", "192.0.2.1"), INVALID_LOGIN);
}

#[test]
fn lockout_per_user_then_release_after_the_window() {
    let mut e = env(true, Some((3, 60)));
    for _ in 0..3 {
        assert_eq!(e.status("alice", "bad", "192.0.2.1"), INVALID_LOGIN);
    }
    // Locked: even the right password, from another address, is refused.
    assert_eq!(e.status("alice", "right", "198.51.100.9"), LOCKED_OUT);
    assert_eq!(e.dir.calls.load(Ordering::SeqCst), 3, "a locked login never reaches the directory");
    // Other users are not affected.
    assert_eq!(e.status("bob", "pw", "198.51.100.9"), "verified");
    // The window passes: Redis expired the counter.
    e.store.data.lock().unwrap().retain(|k, _| !k.starts_with("mailauth:fail:"));
    e.now += Duration::from_secs(61);
    assert_eq!(e.status("alice", "right", "198.51.100.9"), "verified");
}

#[test]
fn lockout_per_client_address() {
    let mut e = env(true, Some((3, 60)));
    for user in ["u1", "u2", "u3"] {
        assert_eq!(e.status(user, "guess", "203.0.113.5"), INVALID_LOGIN);
    }
    assert_eq!(e.status("bob", "pw", "203.0.113.5"), LOCKED_OUT);
    assert_eq!(e.status("bob", "pw", "203.0.113.6"), "verified");
}

#[test]
fn a_lock_seen_by_a_worker_beats_its_own_cache() {
    let mut e = env(true, Some((2, 60)));
    assert_eq!(e.status("alice", "right", "192.0.2.1"), "verified"); // now in the worker tier
                                                                     // Failures counted elsewhere (another worker/frontend) lock alice in Redis...
    e.store.data.lock().unwrap().insert(fail_key_user("alice"), "2".into());
    // ...the worker tier still hits (it can't know)...
    assert_eq!(e.status("alice", "right", "192.0.2.1"), "verified");
    // ...until one request on this worker goes to Redis and learns it.
    assert_eq!(e.status("alice", "Wr0ng", "192.0.2.1"), LOCKED_OUT);
    assert_eq!(e.status("alice", "right", "192.0.2.1"), LOCKED_OUT);
}

#[test]
fn redis_down_falls_back_to_the_directory_and_local_counters() {
    let mut e = env(true, Some((2, 60)));
    e.store.down.store(true, Ordering::SeqCst);
    let (step, pools) = e.login("alice", "right", "192.0.2.1", 1);
    assert!(matches!(step, Step::Verified));
    assert_eq!(pools, [C, D]);
    // Within the backoff, Redis is not even tried.
    e.worker.cache = WorkerCache::default();
    let (_, pools) = e.login("alice", "right", "192.0.2.1", 1);
    assert_eq!(pools, [D]);
    // Failures are counted per worker meanwhile.
    assert_eq!(e.status("bob", "x1", "192.0.2.2"), INVALID_LOGIN);
    assert_eq!(e.status("bob", "x2", "192.0.2.2"), INVALID_LOGIN);
    assert_eq!(e.status("bob", "pw", "192.0.2.3"), LOCKED_OUT);
}

#[test]
fn redis_down_is_logged_once_per_interval() {
    let mut e = env(true, None);
    e.store.down.store(true, Ordering::SeqCst);
    let request = |u: &str| {
        let h = [("Auth-Method", "plain"), ("Auth-User", u), ("Auth-Pass", "pw"), ("Auth-Protocol", "imap")];
        parse_request(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap()
    };
    let mut warnings = 0;
    for i in 0..3 {
        e.now += REDIS_BACKOFF; // Redis is retried each time, and fails each time
        let mut login = Login::new(request("bob"), e.settings.clone());
        let mut step = login.start(&mut e.worker, e.now);
        while let Step::Run(_) = step {
            login.run();
            step = login.resume(&mut e.worker, e.now);
        }
        warnings += login.take_notes().iter().filter(|n| n.warn).count();
        assert_eq!(warnings, 1, "after login {i}");
    }
}

#[test]
fn directory_failure_is_temporary_not_wrong_password() {
    let mut e = env(true, Some((2, 60)));
    e.dir.broken.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(e.status("alice", "right", "192.0.2.1"), TEMP_FAILURE);
    }
    // No failure was counted against the user.
    e.dir.broken.store(false, Ordering::SeqCst);
    assert_eq!(e.status("alice", "right", "192.0.2.1"), "verified");
}

#[test]
fn cached_user_logs_in_while_the_directory_is_down() {
    let mut e = env(true, None);
    assert_eq!(e.status("alice", "right", "192.0.2.1"), "verified");
    e.dir.broken.store(true, Ordering::SeqCst);
    e.worker = Worker::default();
    assert_eq!(e.status("alice", "right", "192.0.2.1"), "verified");
}

#[test]
fn names_outside_the_alphabet_never_reach_a_lookup() {
    let mut e = env(true, Some((3, 60)));
    for user in ["*)(uid=*", "a%20b", "%C3%A9"] {
        let (step, pools) = e.login(user, "x1", "192.0.2.1", 1);
        assert!(matches!(step, Step::Answer(ref a) if a.headers()[0].1 == INVALID_LOGIN), "{user}");
        assert!(pools.is_empty());
    }
    assert_eq!(e.dir.calls.load(Ordering::SeqCst), 0);
    assert!(e.store.data.lock().unwrap().is_empty());
}

#[test]
fn empty_passwords_and_non_plain_methods_are_refused() {
    let mut e = env(false, None);
    assert_eq!(e.status("alice", "", "192.0.2.1"), INVALID_LOGIN);
    let h = [("Auth-Method", "cram-md5"), ("Auth-User", "alice"), ("Auth-Pass", "right"), ("Auth-Protocol", "imap")];
    let request = parse_request(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
    let mut login = Login::new(request, e.settings.clone());
    assert!(matches!(login.start(&mut e.worker, e.now), Step::Answer(_)));
    assert_eq!(e.dir.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn users_file_first_on_its_own_pool_then_ldap() {
    let mut e = env(false, None);
    let file = Arc::new(FakeDir { users: HashMap::from([("carol", "local")]), local: true, ..FakeDir::default() });
    let ldap = e.dir.clone();
    let mut settings = Settings { directories: vec![file.clone(), ldap.clone()], ..clone_settings(&e.settings) };
    settings.cache_ttl = Duration::ZERO;
    e.settings = Arc::new(settings);
    // A users-file user is answered on the users pool; LDAP is never asked, so a stalled
    // LDAP server can't delay them.
    ldap.broken.store(true, Ordering::SeqCst);
    let (step, pools) = e.login("carol", "local", "192.0.2.9", 1);
    assert!(matches!(step, Step::Verified));
    assert_eq!(pools, [Pool::Users]);
    assert_eq!(ldap.calls.load(Ordering::SeqCst), 0);
    // Unknown to the file: LDAP next, on the directory pool.
    ldap.broken.store(false, Ordering::SeqCst);
    let (step, pools) = e.login("alice", "right", "192.0.2.9", 1);
    assert!(matches!(step, Step::Verified));
    assert_eq!(pools, [Pool::Users, Pool::Directory]);
    // Unknown everywhere: refused as a wrong login.
    assert_eq!(e.status("nobody", "x", "192.0.2.9"), "Invalid login or password");
}

fn clone_settings(s: &Settings) -> Settings {
    Settings {
        policy: s.policy.clone(),
        lockout: s.lockout,
        cache_ttl: s.cache_ttl,
        secret: s.secret.clone(),
        store: s.store.clone(),
        directories: s.directories.clone(),
    }
}
