//! Quota and undelete: usage stays equal to the live messages' sizes through every path.

use super::*;
use crate::undelete::UndeleteFilter;

fn store(quota: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions { quota_bytes: quota, ..Default::default() }).unwrap();
    (dir, s)
}

fn mb(s: &str) -> MailboxName {
    MailboxName::new(s).unwrap()
}

fn msg(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!("From: a@example.org\r\nSubject: note {n}\r\nMessage-ID: <{n}@x>\r\n\r\n").into_bytes();
    m.resize(size, b'x');
    m
}

/// Usage as the counter holds it, after checking it against a recount.
fn usage(u: &UserStore) -> u64 {
    let (counter, counted) = u.usage_check().unwrap();
    assert_eq!(counter, counted, "usage counter differs from the messages");
    counter
}

fn deleted() -> Flags {
    Flags { system: flag::DELETED, keywords: vec![] }
}

#[test]
fn usage_follows_append_copy_move_expunge_pop3_and_delete() {
    let (_d, s) = store(0);
    let u = s.user(&Username::new("q").unwrap()).unwrap();
    let inbox = u.mailbox(&MailboxName::inbox()).unwrap().unwrap();
    for n in 0..3 {
        u.append(&MailboxName::inbox(), &msg(n, 1000), Flags::default(), None).unwrap();
    }
    assert_eq!(usage(&u), 3000);
    u.create_mailbox(&mb("Archive"), None).unwrap();
    u.copy(inbox.id, &[1, 2], &mb("Archive")).unwrap();
    assert_eq!(usage(&u), 5000);
    u.move_messages(inbox.id, &[3], &mb("Archive")).unwrap();
    assert_eq!(usage(&u), 5000);
    u.store_flags(inbox.id, &[1], StoreMode::Add, &deleted(), None).unwrap();
    assert_eq!(u.expunge(inbox.id, None).unwrap(), vec![1]);
    assert_eq!(usage(&u), 4000);
    u.seen_and_expunge(inbox.id, &[], &[2]).unwrap();
    assert_eq!(usage(&u), 3000);
    u.delete_mailbox(&mb("Archive")).unwrap();
    assert_eq!(usage(&u), 0);
    assert_eq!(u.quota().unwrap(), (0, 0));
}

#[test]
fn over_quota_refuses_append_and_copy_but_not_move() {
    let (_d, s) = store(2500);
    let u = s.user(&Username::new("q").unwrap()).unwrap();
    let inbox = u.mailbox(&MailboxName::inbox()).unwrap().unwrap();
    u.append(&MailboxName::inbox(), &msg(1, 1000), Flags::default(), None).unwrap();
    u.append(&MailboxName::inbox(), &msg(2, 1000), Flags::default(), None).unwrap();
    let big = msg(3, 1000);
    let e = u.append(&MailboxName::inbox(), &big, Flags::default(), None).unwrap_err();
    assert!(matches!(e, Error::OverQuota { usage: 2000, limit: 2500, needed: 1000 }), "{e:?}");
    assert!(!u.has_guid(&Guid::of(&big)), "a refused message leaves no file");
    let e = u.copy(inbox.id, &[1], &mb("Trash")).unwrap_err();
    assert!(matches!(e, Error::OverQuota { .. }), "{e:?}");
    u.move_messages(inbox.id, &[1], &mb("Trash")).unwrap();
    assert_eq!(u.quota().unwrap(), (2000, 2500));
    u.set_quota_override(QuotaOverride::Unlimited).unwrap();
    u.append(&MailboxName::inbox(), &big, Flags::default(), None).unwrap();
    u.set_quota_override(QuotaOverride::Bytes(10)).unwrap();
    assert_eq!(u.quota().unwrap(), (3000, 10));
    assert_eq!(u.quota_override().unwrap(), Some(10));
    u.set_quota_override(QuotaOverride::Default).unwrap();
    assert_eq!(u.quota().unwrap(), (3000, 2500));
    assert_eq!(usage(&u), 3000);
}

#[test]
fn undelete_restores_with_new_uids_and_recreates_deleted_folders() {
    let (_d, s) = store(0);
    let u = s.user(&Username::new("q").unwrap()).unwrap();
    let inbox = u.mailbox(&MailboxName::inbox()).unwrap().unwrap();
    let kw = Flags { system: flag::SEEN | flag::FLAGGED, keywords: vec!["$Work".into()] };
    u.append(&MailboxName::inbox(), &msg(1, 500), kw, None).unwrap();
    u.append(&MailboxName::inbox(), &msg(2, 700), Flags::default(), None).unwrap();
    u.store_flags(inbox.id, &[1], StoreMode::Add, &deleted(), None).unwrap();
    u.expunge(inbox.id, None).unwrap();
    u.create_mailbox(&mb("Projects/Old"), None).unwrap();
    let old = u.mailbox(&mb("Projects/Old")).unwrap().unwrap();
    u.append(&mb("Projects/Old"), &msg(3, 300), Flags::default(), None).unwrap();
    u.delete_mailbox(&mb("Projects/Old")).unwrap();
    assert_eq!(usage(&u), 700);

    let all = u.undeletable(&UndeleteFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].mailbox.as_str(), all[0].uid, all[0].size), ("INBOX", 1, 500));
    assert_eq!(all[0].subject.as_deref(), Some("note 1"));
    let only = UndeleteFilter { mailbox: Some("INBOX".into()), since: None };
    assert_eq!(u.undeletable(&only).unwrap().len(), 1);
    let future = UndeleteFilter { mailbox: None, since: Some(chrono::Utc::now().timestamp() + 60) };
    assert!(u.undeletable(&future).unwrap().is_empty());

    let r = u.restore_expunged(&only).unwrap();
    assert_eq!(r.restored.len(), 1);
    assert_eq!((r.restored[0].old_uid, r.restored[0].uid), (1, 3));
    let back = u.messages(inbox.id).unwrap();
    assert_eq!(back.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(back[1].1.flags, Flags { system: flag::SEEN | flag::FLAGGED, keywords: vec!["$Work".into()] });
    assert_eq!(u.read_message(&back[1].1.guid).unwrap(), msg(1, 500));
    assert_eq!(usage(&u), 1200);

    let r = u.restore_expunged(&UndeleteFilter::default()).unwrap();
    assert_eq!(r.restored.len(), 1);
    assert!(r.restored[0].recreated);
    let again = u.mailbox(&mb("Projects/Old")).unwrap().unwrap();
    assert_eq!(again.unique_id, old.unique_id);
    assert!(r.restored[0].uid > 1, "UIDs of the deleted folder are not reused");
    assert_eq!(again.exists, 1);
    assert_eq!(usage(&u), 1500);
    assert!(u.undeletable(&UndeleteFilter::default()).unwrap().is_empty());
    // The restored messages' files outlive a purge of everything expunged.
    u.purge_expunged(i64::MAX).unwrap();
    assert_eq!(u.read_message(&Guid::of(&msg(3, 300))).unwrap(), msg(3, 300));
}

#[test]
fn usage_is_counted_for_an_index_without_a_counter_and_kept_by_replica_applies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let p = s.user(&Username::new("p").unwrap()).unwrap();
    let r = s.user(&Username::new("r").unwrap()).unwrap();
    p.append(&MailboxName::inbox(), &msg(1, 400), Flags::default(), None).unwrap();
    p.append(&MailboxName::inbox(), &msg(2, 600), Flags::default(), None).unwrap();
    let pin = p.mailbox(&MailboxName::inbox()).unwrap().unwrap();
    r.apply_mailbox(&pin.unique_id, &MailboxName::inbox(), pin.uidvalidity, None).unwrap();
    for (uid, rec) in p.messages(pin.id).unwrap() {
        let raw = p.read_message(&rec.guid).unwrap();
        r.apply_message(&pin.unique_id, uid, &rec, Some(&raw)).unwrap();
        r.apply_message(&pin.unique_id, uid, &rec, None).unwrap(); // replayed: no double count
    }
    assert_eq!(usage(&r), 1000);
    r.apply_expunge(&pin.unique_id, &[1]).unwrap();
    assert_eq!(usage(&r), 600);
    r.apply_mailbox("box-2", &mb("Lists"), 7, None).unwrap();
    r.apply_message("box-2", 1, &p.messages(pin.id).unwrap()[0].1, None).unwrap();
    assert_eq!(usage(&r), 1000);
    r.apply_delete_mailbox("box-2").unwrap();
    assert_eq!(usage(&r), 600);
    drop((p, r));
    drop(s);

    // An index from before quotas: no counter; the next open counts it.
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let p = s.user(&Username::new("p").unwrap()).unwrap();
    p.write_unlogged(|txn| Ok(p.quota.clear(txn)?)).unwrap();
    drop(p);
    drop(s);
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let p = s.user(&Username::new("p").unwrap()).unwrap();
    assert_eq!(p.quota().unwrap(), (1000, 0));
}
