//! A primary and a replica store in two directories, kept in sync by a tiny in-test sync loop
//! that uses only the state / records / apply API, as the issue-5 sync worker will.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::*;

const MSG: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

fn msg(n: usize) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: m{n}\r\n\r\nbody {n}\r\n").into_bytes()
}

fn mb(s: &str) -> MailboxName {
    MailboxName::new(s).unwrap()
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn user() -> Username {
    Username::new("u").unwrap()
}

/// What one sync sent, to check that only differences travel.
#[derive(Debug, Default, PartialEq)]
struct Sent {
    mailboxes: usize,
    messages: usize,
    contents: usize,
    flags: usize,
    expunged: usize,
    deleted: usize,
    subscriptions: usize,
    renumbered: usize,
}

impl std::ops::AddAssign for Sent {
    fn add_assign(&mut self, o: Sent) {
        self.mailboxes += o.mailboxes;
        self.messages += o.messages;
        self.contents += o.contents;
        self.flags += o.flags;
        self.expunged += o.expunged;
        self.deleted += o.deleted;
        self.subscriptions += o.subscriptions;
        self.renumbered += o.renumbered;
    }
}

/// One user's sync from `p` to `r`: the incremental pass (records above the replica's
/// HIGHESTMODSEQ), then, if the digests still differ (MODSEQs that collided during a split,
/// damage), the full pass.
fn sync(p: &UserStore, r: &UserStore) -> Sent {
    let mut sent = sync_pass(p, r, false);
    if p.user_state_digest().unwrap() != r.user_state_digest().unwrap() {
        sent += sync_pass(p, r, true);
    }
    sent
}

/// One pass: compare mailbox states, send what differs. `full` ignores the replica's
/// HIGHESTMODSEQ and compares every record (the repair pass).
fn sync_pass(p: &UserStore, r: &UserStore, full: bool) -> Sent {
    let mut sent = Sent::default();
    let ps = p.mailbox_states().unwrap();
    let rs = r.mailbox_states().unwrap();
    for s in &ps {
        let here = rs.iter().find(|x| x.unique_id == s.unique_id);
        if here.is_some_and(|h| h.same_as(s)) && !full {
            continue;
        }
        if here.is_none_or(|h| h.name != s.name || h.uidvalidity != s.uidvalidity || h.special_use != s.special_use) {
            r.apply_mailbox(&s.unique_id, &mb(&s.name), s.uidvalidity, s.special_use.clone()).unwrap();
            sent.mailboxes += 1;
        }
        let rm = r.mailbox_by_unique_id(&s.unique_id).unwrap().unwrap();
        let since = match here {
            Some(h) if h.uidvalidity == s.uidvalidity && !full => h.highestmodseq,
            _ => 0,
        };
        // UID conflicts (a split): renumber both sides' messages, then compare afresh.
        let mut since = since;
        let mut s = s.clone();
        for (uid, rec) in p.records_since(s.id, since).unwrap() {
            let mine = r.fetch(rm.id, &[uid], false).unwrap().remove(0).0;
            if mine.is_some_and(|m| m.guid != rec.guid) {
                let theirs = r.mailbox_by_unique_id(&s.unique_id).unwrap().unwrap().uidnext - 1;
                let moved = p.renumber_conflict(&s.unique_id, uid, theirs.max(s.last_uid)).unwrap();
                r.renumber_conflict(&s.unique_id, uid, moved).unwrap();
                sent.renumbered += 1;
                since = 0;
            }
        }
        if sent.renumbered > 0 {
            s = p.mailbox_states().unwrap().into_iter().find(|x| x.unique_id == s.unique_id).unwrap();
        }
        for (uid, rec) in p.records_since(s.id, since).unwrap() {
            let mine = r.fetch(rm.id, &[uid], false).unwrap().remove(0).0;
            if let Some(m) = mine {
                assert_eq!(m.guid, rec.guid, "conflicts were renumbered");
                if m.modseq != rec.modseq || m.flags != rec.flags {
                    r.apply_flags(&s.unique_id, uid, &rec.flags, rec.modseq).unwrap();
                    sent.flags += 1;
                }
                continue;
            }
            let raw = (!r.has_guid(&rec.guid)).then(|| p.read_message(&rec.guid).unwrap());
            sent.contents += usize::from(raw.is_some());
            r.apply_message(&s.unique_id, uid, &rec, raw.as_deref()).unwrap();
            sent.messages += 1;
        }
        let keep: BTreeSet<u32> = p.messages(s.id).unwrap().into_iter().map(|(u, _)| u).collect();
        // A UID above the primary's last one was never given there: a replica-only message (a
        // split), to send back, not an expunge.
        let gone: Vec<u32> = r
            .messages(rm.id)
            .unwrap()
            .into_iter()
            .map(|(u, _)| u)
            .filter(|u| !keep.contains(u) && *u <= s.last_uid)
            .collect();
        if !gone.is_empty() {
            sent.expunged += r.apply_expunge(&s.unique_id, &gone).unwrap();
        }
        r.apply_counters(&s.unique_id, s.last_uid, s.highestmodseq).unwrap();
    }
    for h in &rs {
        if !ps.iter().any(|s| s.unique_id == h.unique_id) && r.apply_delete_mailbox(&h.unique_id).unwrap() {
            sent.deleted += 1;
        }
    }
    // A `\Noselect` parent (DELETE of a mailbox with children) once its children are here.
    for s in ps.iter().filter(|s| s.noselect) {
        let here = r.mailbox_by_unique_id(&s.unique_id).unwrap().unwrap();
        if !here.noselect {
            r.apply_delete_mailbox(&s.unique_id).unwrap();
            sent.deleted += 1;
        }
    }
    let subs = p.subscriptions().unwrap();
    if subs != r.subscriptions().unwrap() {
        r.apply_subscriptions(&subs).unwrap();
        sent.subscriptions += 1;
    }
    sent
}

/// Syncs incrementally, then checks (as a sync worker would) that the digests match.
fn sync_and_compare(p: &UserStore, r: &UserStore) -> Sent {
    let sent = sync(p, r);
    assert_eq!(p.user_state_digest().unwrap(), r.user_state_digest().unwrap(), "after {sent:?}");
    assert_eq!(sync(p, r), Sent::default(), "a second sync has nothing to send");
    sent
}

fn guids(u: &UserStore, name: &str) -> Vec<Guid> {
    let m = u.mailbox(&mb(name)).unwrap().unwrap();
    u.messages(m.id).unwrap().into_iter().map(|(_, r)| r.guid).collect()
}

#[test]
fn replica_converges_through_state_and_apply_only() {
    let (pd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ps, rs) = (open(pd.path()), open(rd.path()));
    let (p, r) = (ps.user(&user()).unwrap(), rs.user(&user()).unwrap());
    assert_ne!(p.user_state_digest().unwrap(), r.user_state_digest().unwrap(), "fresh users differ by unique id");

    // First sync: the replica's own default folders give way to the primary's.
    let first = sync_and_compare(&p, &r);
    assert_eq!(first.mailboxes, 5);
    assert_eq!(r.list_mailboxes().unwrap().len(), 5);

    let inbox = mb("INBOX");
    for n in 0..4 {
        p.append(&inbox, &msg(n), Flags::default(), Some((1_700_000_000 + n as i64, 60))).unwrap();
    }
    let kw = Flags { system: flag::FLAGGED, keywords: vec!["$Label1".into()] };
    p.append(&mb("Sent"), MSG, kw.clone(), None).unwrap();
    let id = p.mailbox(&inbox).unwrap().unwrap().id;
    p.store_flags(id, &[1, 2], StoreMode::Add, &Flags { system: flag::SEEN, keywords: vec![] }, None).unwrap();
    p.copy(id, &[1, 2], &mb("Trash")).unwrap();
    let sent = sync_and_compare(&p, &r);
    assert_eq!((sent.messages, sent.contents), (7, 5), "copies travel as records, not content: {sent:?}");
    let rin = r.mailbox(&inbox).unwrap().unwrap();
    let fetched = r.fetch(rin.id, &[3], true).unwrap().remove(0);
    assert_eq!(fetched.0.unwrap().internaldate, 1_700_000_002);
    assert!(fetched.1.unwrap().envelope.contains("\"m2\""), "the replica caches ENVELOPE too");
    assert_eq!(r.read_message(&Guid::of(&msg(3))).unwrap(), msg(3));

    // Flags, expunge, move, mailbox create/rename/delete, subscriptions.
    p.store_flags(id, &[3], StoreMode::Add, &Flags { system: flag::DELETED, keywords: vec!["Work".into()] }, None)
        .unwrap();
    assert_eq!(p.expunge(id, None).unwrap(), vec![3]);
    p.append(&inbox, &msg(9), Flags::default(), None).unwrap();
    p.store_flags(id, &[5], StoreMode::Add, &Flags { system: flag::DELETED, keywords: vec![] }, None).unwrap();
    p.expunge(id, None).unwrap(); // the highest UID is gone: the replica must still not reuse it
    p.create_mailbox(&mb("Work/2026"), None).unwrap();
    p.move_messages(id, &[4], &mb("Work/2026")).unwrap();
    p.rename_mailbox(&mb("Work"), &mb("Projects")).unwrap();
    p.delete_mailbox(&mb("Junk")).unwrap();
    p.subscribe(&mb("Projects/2026")).unwrap();
    p.unsubscribe(&mb("Drafts")).unwrap();
    let sent = sync_and_compare(&p, &r);
    // UID 3 expunged, UID 4 moved away (UID 5 came and went between syncs: never sent).
    assert_eq!(sent.expunged, 2, "{sent:?}");
    assert_eq!(sent.deleted, 1);
    assert_eq!(sent.contents, 0, "moved messages need no content");
    let rin = r.mailbox(&inbox).unwrap().unwrap();
    assert_eq!(rin.uidnext, 6);
    assert_eq!(guids(&r, "Projects/2026"), vec![Guid::of(&msg(3))]);
    assert!(r.mailbox(&mb("Junk")).unwrap().is_none());
    assert_eq!(r.expunged().unwrap().len(), 2, "the replica keeps expunged mail restorable too");

    // A swap of names and a DELETE that leaves a \Noselect parent converge too.
    p.rename_mailbox(&mb("Sent"), &mb("tmp")).unwrap();
    p.rename_mailbox(&mb("Drafts"), &mb("Sent")).unwrap();
    p.rename_mailbox(&mb("tmp"), &mb("Drafts")).unwrap();
    p.delete_mailbox(&mb("Projects")).unwrap();
    let sent = sync_and_compare(&p, &r);
    assert_eq!(sent.mailboxes, 2, "{sent:?}");
    assert_eq!(guids(&r, "Drafts"), vec![Guid::of(MSG)]);
    assert!(r.mailbox(&mb("Projects")).unwrap().unwrap().noselect);
    assert!(!r.list_mailboxes().unwrap().iter().any(|m| m.name.contains(".repl-")), "parked names are gone");

    // The replica's applies are not logged there; the primary's writes are.
    assert!(rs.changed_users(10).unwrap().is_empty());
    assert_eq!(ps.changed_users(10).unwrap()[0].0, user());
}

#[test]
fn a_full_pass_repairs_what_an_incremental_one_misses() {
    let (pd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ps, rs) = (open(pd.path()), open(rd.path()));
    let (p, r) = (ps.user(&user()).unwrap(), rs.user(&user()).unwrap());
    p.append(&mb("INBOX"), MSG, Flags::default(), None).unwrap();
    sync_and_compare(&p, &r);
    // Damage on the replica that its counters do not show: a flag changed behind the sync's back.
    let rid = r.mailbox(&mb("INBOX")).unwrap().unwrap();
    let uid = p.mailbox_by_unique_id(&rid.unique_id).unwrap().unwrap().uidnext - 1;
    let modseq = r.messages(rid.id).unwrap()[0].1.modseq;
    r.apply_flags(&rid.unique_id, uid, &Flags { system: flag::SEEN, keywords: vec![] }, modseq).unwrap();
    assert_ne!(p.user_state_digest().unwrap(), r.user_state_digest().unwrap(), "the checksum sees it");
    assert_eq!(sync_pass(&p, &r, false).flags, 0, "same HIGHESTMODSEQ: the incremental pass cannot");
    assert_eq!(sync(&p, &r).flags, 1, "the full pass after it does");
    assert_eq!(p.user_state_digest().unwrap(), r.user_state_digest().unwrap());
}

#[test]
fn uid_conflict_after_failover_keeps_both_messages() {
    let (pd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ps, rs) = (open(pd.path()), open(rd.path()));
    let (p, r) = (ps.user(&user()).unwrap(), rs.user(&user()).unwrap());
    let inbox = mb("INBOX");
    p.append(&inbox, &msg(1), Flags::default(), None).unwrap();
    sync_and_compare(&p, &r);
    // Split: the old primary accepted msg 2 (never replicated), the promoted replica msg 3,
    // both as UID 2.
    assert_eq!(p.append(&inbox, &msg(2), Flags::default(), None).unwrap().uid, 2);
    assert_eq!(r.append(&inbox, &msg(3), Flags::default(), None).unwrap().uid, 2);
    let unique = p.mailbox(&inbox).unwrap().unwrap().unique_id;
    let rec = p.messages(p.mailbox(&inbox).unwrap().unwrap().id).unwrap()[1].1.clone();
    assert!(matches!(r.apply_message(&unique, 2, &rec, Some(&msg(2))), Err(Error::UidConflict { uid: 2, .. })));

    // Fail-back: sync the survivor (r) to the old primary (p), then back.
    let sent = sync(&r, &p);
    assert_eq!(sent.renumbered, 1, "{sent:?}");
    let sent = sync(&p, &r);
    assert_eq!((sent.messages, sent.renumbered), (1, 0), "{sent:?}");
    assert_eq!(p.user_state_digest().unwrap(), r.user_state_digest().unwrap());
    let want = [Guid::of(&msg(1)), Guid::of(&msg(3)), Guid::of(&msg(2))];
    for side in [&p, &r] {
        let m = side.mailbox(&inbox).unwrap().unwrap();
        let uids: Vec<(u32, Guid)> = side.messages(m.id).unwrap().into_iter().map(|(u, r)| (u, r.guid)).collect();
        assert_eq!(uids, vec![(1, want[0]), (3, want[1]), (4, want[2])], "UID 2 names neither message any more");
        assert_eq!((m.exists, m.uidnext), (3, 5));
    }
    assert_eq!(rs.changed_users(10).unwrap()[0].0, user(), "renumbering is a change for the partner to learn");
    assert_eq!(sync(&r, &p), Sent::default());
}

#[test]
fn a_batch_applies_all_or_nothing() {
    let (pd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ps, rs) = (open(pd.path()), open(rd.path()));
    let (p, r) = (ps.user(&user()).unwrap(), rs.user(&user()).unwrap());
    sync_and_compare(&p, &r);
    let inbox = p.mailbox(&mb("INBOX")).unwrap().unwrap();
    for n in 0..3 {
        p.append(&mb("INBOX"), &msg(n), Flags::default(), None).unwrap();
    }
    p.store_flags(inbox.id, &[2], StoreMode::Add, &Flags { system: flag::SEEN, keywords: vec![] }, None).unwrap();
    let state = p.mailbox_states().unwrap().into_iter().find(|s| s.id == inbox.id).unwrap();
    let mut ops: Vec<ReplOp> = p
        .records_since(inbox.id, 0)
        .unwrap()
        .into_iter()
        .map(|(uid, record)| ReplOp::Message {
            mailbox: inbox.unique_id.clone(),
            uid,
            raw: Some(p.read_message(&record.guid).unwrap()),
            record,
        })
        .collect();
    ops.push(ReplOp::Counters {
        mailbox: inbox.unique_id.clone(),
        last_uid: state.last_uid,
        highestmodseq: state.highestmodseq,
    });
    let before = r.user_state_digest().unwrap();
    let mut broken = ops.clone();
    broken.push(ReplOp::Flags { mailbox: "no such unique id".into(), uid: 1, flags: Flags::default(), modseq: 9 });
    assert!(matches!(r.apply_batch(&broken), Err(Error::NoSuchMailbox(_))));
    assert_eq!(r.user_state_digest().unwrap(), before, "a failed batch applies nothing");
    r.apply_batch(&ops).unwrap();
    assert_eq!(r.user_state_digest().unwrap(), p.user_state_digest().unwrap());
    r.apply_batch(&ops).unwrap();
    assert_eq!(r.user_state_digest().unwrap(), p.user_state_digest().unwrap(), "replaying a batch is harmless");
}

#[test]
fn change_log_coalesces_acks_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Username::new("a").unwrap(), Username::new("b").unwrap());
    {
        let s = open(dir.path());
        assert!(s.changed_users(10).unwrap().is_empty());
        let ua = s.user(&a).unwrap();
        for _ in 0..3 {
            ua.append(&mb("INBOX"), MSG, Flags::default(), None).unwrap();
        }
        s.user(&b).unwrap().subscribe(&mb("x")).unwrap();
        let changed = s.changed_users(10).unwrap();
        assert_eq!(changed.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>(), vec![a.clone(), b.clone()]);
        assert_eq!(s.changed_users(1).unwrap().len(), 1);
        let mark_a = changed[0].1;
        let first = s.pending_since_ms(&a).unwrap().unwrap();
        assert_eq!(s.oldest_pending_ms().unwrap(), Some(first));
        assert_eq!(s.mark_of(&a).unwrap(), Some(mark_a));
        ua.append(&mb("INBOX"), MSG, Flags::default(), None).unwrap(); // changed again during the sync
        assert!(s.mark_of(&a).unwrap().unwrap() > mark_a);
        assert!(!s.ack_user(&a, mark_a, first + 5_000).unwrap());
        // Still pending, but only since the state that sync read.
        assert_eq!(s.pending_since_ms(&a).unwrap(), Some(first + 5_000));
        let mark_a = s.changed_users(10).unwrap().into_iter().find(|(u, _)| u == &a).unwrap().1;
        assert!(s.ack_user(&a, mark_a, first).unwrap());
        assert_eq!(s.pending_since_ms(&a).unwrap(), None);
        assert_eq!(s.mark_of(&a).unwrap(), None);
        assert_eq!(s.pending_users().unwrap(), 1);
        // Reading does not mark; neither does claiming \Recent (server-local state).
        let inbox = ua.mailbox(&mb("INBOX")).unwrap().unwrap();
        ua.messages(inbox.id).unwrap();
        ua.claim_recent(inbox.id).unwrap();
        assert_eq!(s.pending_users().unwrap(), 1);
    }
    {
        let s = open(dir.path());
        let changed = s.changed_users(10).unwrap();
        assert_eq!(changed.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>(), vec![b.clone()], "survives reopen");
        assert!(s.ack_user(&b, changed[0].1, 0).unwrap());
        assert_eq!(s.oldest_pending_ms().unwrap(), None);
    }
    // An operating-system crash (no clean close, another boot id): every user is marked again.
    std::fs::remove_file(dir.path().join("repl/clean")).unwrap();
    std::fs::write(dir.path().join("repl/boot_id"), "another boot").unwrap();
    let s = open(dir.path());
    assert_eq!(s.changed_users(10).unwrap().len(), 2);
}

#[test]
fn a_killed_process_keeps_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.user(&user()).unwrap().subscribe(&mb("x")).unwrap();
    assert!(!dir.path().join("repl/clean").exists(), "no clean marker while running");
    drop(s);
    // A kill -9: no clean marker (the page cache still holds the log); same boot, so the log is
    // trusted as it stands rather than rebuilt.
    std::fs::remove_file(dir.path().join("repl/clean")).unwrap();
    let s = open(dir.path());
    if std::path::Path::new("/proc/sys/kernel/random/boot_id").exists() {
        assert_eq!(s.changed_users(10).unwrap().len(), 1);
    }
}

/// Costs quoted in `repl/log.rs`: `cargo test --release -p mailstore -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_mark_cost() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let u = user();
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        s.mark_user(&u).unwrap();
    }
    let mark = t.elapsed() / n;
    let us = s.user(&u).unwrap();
    let n = 300;
    let t = Instant::now();
    for i in 0..n {
        us.append(&mb("INBOX"), &msg(i as usize), Flags::default(), None).unwrap();
    }
    let append = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        us.subscribe(&mb("x")).unwrap();
    }
    let sub = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        us.apply_subscriptions(&["x".into()]).unwrap();
    }
    let sub_unlogged = t.elapsed() / n;
    println!(
        "mark {mark:?}; append {append:?}; subscribe (logged) {sub:?}; apply_subscriptions (unlogged) {sub_unlogged:?}"
    );
}
