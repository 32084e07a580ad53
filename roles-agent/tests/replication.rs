//! Replication end to end: real `rolesd` primary and follower processes on 127.0.0.1, TLS with a
//! certificate made by the openssl CLI, the changes written by this test process straight into
//! the primary's LMDB directory through the roles API (LMDB serialises writers across processes;
//! only a second open of the same directory *within one process* is refused).

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailscale_roles::{Backend, BackendState, Roles, UserRole, UserState};
use mailscale_rolesd::status::Report;

const TOKEN: &str = "test-token-0123456789abcdef";

struct Proc {
    child: Child,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no chance to clean up
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl CLI")
            .success();
        assert!(ok, "openssl could not make a certificate");
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("bad-token"), "not-the-right-token-at-all\n").unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rolesd(&self, log: &str, args: &[&str]) -> Proc {
        let log = std::fs::File::options().create(true).append(true).open(self.path(log)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rolesd"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc { child }
    }

    fn primary(&self, port: u16, retain: Option<u64>) -> Proc {
        let (db, cert, key, token) = (self.path("p"), self.path("cert.pem"), self.path("key.pem"), self.path("token"));
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["primary", "--db", s(&db), "--listen", &listen, "--cert", s(&cert), "--key", s(&key)];
        args.extend(["--token-file", s(&token)]);
        let retain = retain.map(|n| n.to_string());
        if let Some(n) = &retain {
            args.extend(["--retain", n]);
        }
        self.rolesd("primary.log", &args)
    }

    fn follower(&self, name: &str, primary: u16, status: u16, token: &str) -> Proc {
        self.follower_with(name, primary, status, token, &[])
    }

    fn follower_with(&self, name: &str, primary: u16, status: u16, token: &str, extra: &[&str]) -> Proc {
        let (db, ca, token) = (self.path(name), self.path("cert.pem"), self.path(token));
        let (primary, status) = (format!("127.0.0.1:{primary}"), format!("127.0.0.1:{status}"));
        let mut args = vec!["follower", "--db", s(&db), "--primary", &primary, "--ca", s(&ca)];
        args.extend(["--token-file", s(&token), "--server-name", "localhost", "--status", &status]);
        args.extend(extra);
        self.rolesd(&format!("{name}.log"), &args)
    }

    /// The checksum, or None while the database isn't there or initialised yet (a follower
    /// creates its environment before its first transaction).
    fn try_checksum(&self, name: &str) -> Option<String> {
        let out =
            Command::new(env!("CARGO_BIN_EXE_rolesd")).args(["checksum", "--db", s(&self.path(name))]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn checksum(&self, name: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_rolesd"))
            .args(["checksum", "--db", s(&self.path(name))])
            .output()
            .unwrap();
        assert!(out.status.success(), "checksum {name}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A port nothing listens on now, never the same twice in this process: the two tests run in
/// parallel, and a port handed to one test's rolesd but not yet bound must not go to the other.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn status(port: u16) -> Option<Report> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(mailscale_rolesd::status::fetch(&format!("127.0.0.1:{port}"))).ok()
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// [`wait_for`] with a failure message built only when it times out.
fn wait_for_or(secs: u64, mut f: impl FnMut() -> bool, why: impl FnOnce() -> String) -> Duration {
    let start = Instant::now();
    while !f() {
        if start.elapsed() >= Duration::from_secs(secs) {
            panic!("timed out after {secs} s waiting for {}", why());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Polls `f` every 20 ms until it is true or `secs` have passed.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn backend(name: &str) -> Backend {
    Backend {
        name: name.into(),
        ip: "127.0.0.1".parse::<IpAddr>().unwrap(),
        imap: 1143,
        pop3: 1110,
        lmtp: 1024,
        partner: None,
        state: BackendState::Up,
    }
}

fn active(b: &str) -> UserRole {
    UserRole { backend: b.into(), state: UserState::Active }
}

/// `n` changes in transactions of `per_txn`, pausing `pause` between transactions.
fn burst(roles: &Roles, tag: &str, n: usize, per_txn: usize, pause: Duration, mut each_txn: impl FnMut(usize)) {
    let mut done = 0;
    let mut txn = 0;
    while done < n {
        let k = per_txn.min(n - done);
        roles
            .write(|w| {
                for i in done..done + k {
                    let user = format!("{tag}{}", i % 7000);
                    if i % 10 == 9 {
                        assert!(w.delete_user(&format!("{tag}{}", (i - 1) % 7000))?);
                    } else {
                        w.set_user(&user, active(if i % 3 == 0 { "a1" } else { "b1" }))?;
                    }
                }
                Ok(())
            })
            .unwrap();
        done += k;
        txn += 1;
        each_txn(txn);
        std::thread::sleep(pause);
    }
}

#[test]
fn two_followers_converge_after_kill_and_keep_serving_without_primary() {
    let env = Env::new();
    let writer = Roles::open(&env.path("p")).unwrap();
    writer.set_backend(backend("a1")).unwrap();
    writer.set_backend(backend("b1")).unwrap();
    writer.set_user("alice", active("a1")).unwrap();

    let (pport, s1, s2) = (free_port(), free_port(), free_port());
    let mut primary = env.primary(pport, None);
    let mut f1 = env.follower("f1", pport, s1, "token");
    let mut f2 = env.follower("f2", pport, s2, "token");
    let same = |names: &[&str]| {
        let p = env.checksum("p");
        names.iter().all(|n| env.try_checksum(n).as_deref() == Some(p.as_str()))
    };
    wait_for(10, "initial sync", || same(&["f1", "f2"]));

    // A burst of 10,000 changes in 40 transactions; f1 is killed -9 a quarter of the way in and
    // restarted after the burst.
    let mut killed = false;
    burst(&writer, "u", 10_000, 250, Duration::from_millis(10), |txn| {
        if txn == 10 {
            f1.kill();
            killed = true;
        }
    });
    assert!(killed);
    assert_eq!(writer.last_seq().unwrap(), 3 + 10_000);
    let behind = status(s2).map(|r| r.applied_seq);
    f1 = env.follower("f1", pport, s1, "token");
    let took = wait_for_or(
        20,
        || same(&["f1", "f2"]),
        || {
            format!(
            "convergence after the kill: p {} / f1 {} / f2 {}\nf1 status {:?}\nf2 status {:?}\nf1.log:\n{}\nf2.log:\n{}\nprimary.log:\n{}",
            env.checksum("p"),
            env.checksum("f1"),
            env.checksum("f2"),
            status(s1),
            status(s2),
            tail(&env.log("f1")),
            tail(&env.log("f2")),
            tail(&env.log("primary"))
        )
        },
    );
    eprintln!("converged {took:?} after the burst (f2 was at {behind:?} when it ended)");
    let r1 = status(s1).unwrap();
    assert_eq!(r1.applied_seq, 10_003);
    assert_eq!(r1.snapshots_applied, 0, "a restarted follower resumes from its sequence: {r1:?}");
    assert!(r1.changes_applied > 0 && r1.changes_applied < 10_000, "{r1:?}");

    // Apply rate: f2 down while 10,000 changes are committed, then timed until it has them all.
    f2.kill();
    burst(&writer, "v", 10_000, 10_000, Duration::ZERO, |_| {});
    let last = writer.last_seq().unwrap();
    let start = Instant::now();
    f2 = env.follower("f2", pport, s2, "token");
    wait_for(20, "f2 catching up", || status(s2).is_some_and(|r| r.applied_seq == last));
    let took = start.elapsed();
    eprintln!(
        "apply rate: 10,000 changes in {took:?} including process start and TLS connect: {:.0} changes/s",
        10_000.0 / took.as_secs_f64()
    );
    assert!(same(&["f1", "f2"]));
    let r2 = status(s2).unwrap();
    assert!(r2.connected && r2.lag_changes == 0 && r2.lag_seconds < 1.0, "{r2:?}");

    // The primary goes away: the followers keep their data and say they are disconnected.
    let before = env.checksum("f1");
    primary.kill();
    wait_for(10, "followers noticing the primary is gone", || {
        [s1, s2].iter().all(|&p| status(p).is_some_and(|r| !r.connected))
    });
    let lag1 = status(s1).unwrap().lag_seconds;
    std::thread::sleep(Duration::from_millis(1200));
    let r = status(s1).unwrap();
    assert!(r.lag_seconds > lag1 + 1.0, "lag grows while the primary is away: {lag1} then {r:?}");
    assert!(r.last_error.is_some(), "{r:?}");
    assert_eq!(env.checksum("f1"), before);
    assert_eq!(env.checksum("f2"), before);
    let copy = Roles::open_read_only(&env.path("f1")).unwrap();
    assert_eq!(copy.lookup("alice").unwrap().unwrap().backend.name, "a1");
    let out = Command::new(env!("CARGO_BIN_EXE_rolesd"))
        .args(["status", "--status", &format!("127.0.0.1:{s1}"), "--warn", "0.5", "--crit", "600"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "warning: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ROLES WARNING: "));

    // It comes back: the followers reconnect by themselves and pick up what was written meanwhile.
    writer.set_user("bob", active("b1")).unwrap();
    primary = env.primary(pport, None);
    wait_for(15, "reconnection after the primary's restart", || same(&["f1", "f2"]));
    assert_eq!(copy.lookup("bob").unwrap().unwrap().backend.name, "b1");
    drop((f1, f2, primary));
    assert!(!env.log("f1").contains("panicked"), "{}", env.log("f1"));
}

#[test]
fn follower_behind_retention_gets_a_snapshot_and_bad_token_is_refused() {
    let env = Env::new();
    let writer = Roles::open(&env.path("p")).unwrap();
    writer.set_backend(backend("a1")).unwrap();
    writer.set_backend(backend("b1")).unwrap();

    let (pport, s1, s3) = (free_port(), free_port(), free_port());
    let _primary = env.primary(pport, Some(100));
    let mut f1 = env.follower("f1", pport, s1, "token");
    wait_for(10, "initial sync", || status(s1).is_some_and(|r| r.connected && r.applied_seq == 2));
    assert_eq!(status(s1).unwrap().snapshots_applied, 1, "a new follower starts from a snapshot");

    f1.kill();
    burst(&writer, "w", 1000, 100, Duration::ZERO, |_| {});
    wait_for(10, "the primary trimming its changelog", || writer.oldest_seq().unwrap() > 3);
    assert_eq!(writer.last_seq().unwrap(), 1002);
    assert!(writer.changes_since(0, 10_000).unwrap().len() <= 100);

    let _f1 = env.follower_with("f1", pport, s1, "token", &["--retain", "10"]);
    wait_for(10, "catch-up by snapshot", || status(s1).is_some_and(|r| r.applied_seq == 1002));
    assert_eq!(status(s1).unwrap().snapshots_applied, 1, "behind the retention: a snapshot");
    assert_eq!(env.checksum("f1"), env.checksum("p"));

    // The follower keeps the primary's numbering and trims its own copy of the changelog.
    burst(&writer, "x", 50, 50, Duration::ZERO, |_| {});
    let copy = Roles::open_read_only(&env.path("f1")).unwrap();
    wait_for(10, "the follower trimming its changelog", || copy.oldest_seq().unwrap() == 1043);
    assert_eq!(copy.last_seq().unwrap(), 1052);
    assert_eq!(copy.changes_since(0, 100).unwrap(), writer.changes_since(1042, 100).unwrap());
    assert_eq!(env.checksum("f1"), env.checksum("p"));

    // A follower with the wrong token gets nothing and says why.
    let _f3 = env.follower("f3", pport, s3, "bad-token");
    wait_for(10, "the refusal", || {
        status(s3).is_some_and(|r| r.last_error.as_deref().is_some_and(|e| e.contains("bad token")))
    });
    let r3 = status(s3).unwrap();
    assert!(!r3.connected && r3.applied_seq == 0, "{r3:?}");
    assert!(env.log("primary").contains("refused: bad token"));
    assert!(!env.log("primary").contains("not-the-right-token"), "the token never reaches a log");
}
