//! Runs the real `mailctl` binary on a temporary roles database.

use std::path::Path;
use std::process::{Command, Output};

fn mailctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailctl")).args(args).env_remove("MAILCTL_ROLES_DB").output().unwrap()
}

fn roles(db: &Path, args: &[&str]) -> Output {
    let mut all = vec!["roles", "--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    mailctl(&all)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts exit code 1 with exactly one line on stderr containing `needle`.
fn fails(out: Output, needle: &str) {
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

fn setup(db: &Path) {
    ok(roles(db, &["backend", "add", "a2", "10.0.0.2", "--imap", "143", "--pop3", "110", "--lmtp", "24"]));
    ok(roles(
        db,
        &["backend", "add", "a1", "10.0.0.1", "--imap", "1143", "--pop3", "1110", "--lmtp", "1024", "--partner", "a2"],
    ));
}

#[test]
fn users_and_backends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roles");
    fails(roles(&db, &["list"]), "no roles database");
    setup(&db);
    let list = ok(roles(&db, &["backend", "list"]));
    assert!(list.contains("a1 10.0.0.1 imap=1143 pop3=1110 lmtp=1024 partner=a2 state=up"), "{list}");

    ok(roles(&db, &["set", "Alice", "a1"]));
    ok(roles(&db, &["set", "bob", "A2", "--state", "moving"]));
    let got = ok(roles(&db, &["get", "ALICE"]));
    assert!(got.starts_with("alice a1 active 10.0.0.1 imap=1143"), "{got}");
    assert_eq!(ok(roles(&db, &["list"])), "alice a1 active\nbob a2 moving\n");

    fails(roles(&db, &["set", "carol", "nowhere"]), "unknown backend \"nowhere\"");
    fails(roles(&db, &["get", "carol"]), "unknown user \"carol\"");
    fails(roles(&db, &["delete", "carol"]), "unknown user \"carol\"");
    fails(roles(&db, &["set", "a b", "a1"]), "invalid user name");
    fails(roles(&db, &["backend", "add", "b1", "10.0.0.300", "--imap", "1", "--pop3", "1", "--lmtp", "1"]), "bad IP");
    fails(roles(&db, &["backend", "add", "b1", "10.0.0.3", "--pop3", "1", "--lmtp", "1"]), "--imap is required");
    fails(roles(&db, &["backend", "add", "a1", "10.0.0.3", "--imap", "1", "--pop3", "1", "--lmtp", "1"]), "exists");
    fails(roles(&db, &["backend", "set", "zz", "--state", "down"]), "unknown backend \"zz\"");
    fails(roles(&db, &["backend", "set", "a1", "--state", "sideways"]), "want up, down or failover");
    fails(roles(&db, &["backend", "set", "a1", "--bogus", "1"]), "unknown option --bogus");
    fails(roles(&db, &["backend", "delete", "a1"]), "still in use");

    ok(roles(&db, &["backend", "set", "a1", "--state", "failover", "--ip", "::1", "--imap", "993"]));
    let list = ok(roles(&db, &["backend", "list"]));
    assert!(list.contains("a1 ::1 imap=993 pop3=1110 lmtp=1024 partner=a2 state=failover"), "{list}");

    ok(roles(&db, &["delete", "bob"]));
    assert_eq!(ok(roles(&db, &["list"])), "alice a1 active\n");
    // 2 backends + 2 users + 1 backend change + 1 delete
    assert_eq!(ok(roles(&db, &["seq"])), "6\n");
}

#[test]
fn import_is_all_or_nothing_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roles");
    setup(&db);
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "# user,backend\nu1,a1\n\nU2 , a2\nu3,a1,legacy:old.example.org:143\n").unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "x1,a1\nx2,a1\nx3,nowhere\nx4,a1\n").unwrap();
    let bad2 = dir.path().join("bad2.csv");
    std::fs::write(&bad2, "y1,a1\ny2;a1\n").unwrap();

    fails(roles(&db, &["import", bad.to_str().unwrap()]), "bad.csv:3: unknown backend \"nowhere\"");
    fails(roles(&db, &["import", bad2.to_str().unwrap()]), "bad2.csv:2");
    fails(roles(&db, &["import", dir.path().join("missing.csv").to_str().unwrap()]), "missing.csv");
    assert_eq!(ok(roles(&db, &["list"])), "", "a failed import changes nothing");
    assert_eq!(ok(roles(&db, &["seq"])), "2\n");

    ok(roles(&db, &["import", good.to_str().unwrap()]));
    let export = ok(roles(&db, &["export"]));
    assert_eq!(export, "u1,a1\nu2,a2\nu3,a1,legacy:old.example.org:143\n");

    let db2 = dir.path().join("roles2");
    setup(&db2);
    let exported = dir.path().join("export.csv");
    std::fs::write(&exported, &export).unwrap();
    ok(roles(&db2, &["import", exported.to_str().unwrap()]));
    assert_eq!(ok(roles(&db2, &["export"])), export);
}

#[test]
fn tickets() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ticket.key");
    let hex = ok(mailctl(&["ticket-key", "generate"]));
    assert_eq!(hex.trim().len(), 64);
    std::fs::write(&key, &hex).unwrap();
    let k = key.to_str().unwrap();

    let t = ok(mailctl(&["ticket", "issue", "--key", k, "--user", "alice", "--ttl", "60"]));
    let t = t.trim();
    assert!(t.starts_with("MST1."));
    let v = ok(mailctl(&["ticket", "verify", "--key", k, t]));
    assert!(v.starts_with("user=alice "), "{v}");

    let expired = ok(mailctl(&["ticket", "issue", "--key", k, "--user", "alice", "--ttl", "-5"]));
    fails(mailctl(&["ticket", "verify", "--key", k, expired.trim()]), "expired");
    let zero = ok(mailctl(&["ticket", "issue", "--key", k, "--user", "alice", "--ttl", "0"]));
    fails(mailctl(&["ticket", "verify", "--key", k, zero.trim()]), "expired");

    let short = dir.path().join("short.key");
    std::fs::write(&short, "abc\n").unwrap();
    fails(mailctl(&["ticket", "issue", "--key", short.to_str().unwrap(), "--user", "a"]), "short.key");
    fails(mailctl(&["frobnicate"]), "unknown command");
}
