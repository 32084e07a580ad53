use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, s)
}

fn mb(s: &str) -> MailboxName {
    MailboxName::new(s).unwrap()
}

const MSG: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

#[test]
fn new_user_has_special_use_folders() {
    let (_d, s) = store();
    let u = s.user(&Username::new("demo1").unwrap()).unwrap();
    let names: Vec<_> = u.list_mailboxes().unwrap().into_iter().map(|m| (m.name, m.special_use)).collect();
    assert!(names.contains(&("INBOX".into(), None)));
    assert!(names.contains(&("Trash".into(), Some("\\Trash".into()))));
    assert_eq!(u.subscriptions().unwrap().len(), 5);
}

#[test]
fn append_survives_reopen_and_files_are_content_addressed() {
    let dir = tempfile::tempdir().unwrap();
    let user = Username::new("u").unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let u = s.user(&user).unwrap();
        let a = u.append(&MailboxName::inbox(), MSG, Flags::default(), None).unwrap();
        assert_eq!(a.uid, 1);
    }
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let u = s.user(&user).unwrap();
    let inbox = u.mailbox(&MailboxName::inbox()).unwrap().unwrap();
    assert_eq!((inbox.exists, inbox.uidnext), (1, 2));
    let msgs = u.messages(inbox.id).unwrap();
    assert_eq!(msgs[0].1.guid, Guid::of(MSG));
    assert_eq!(u.read_message(&msgs[0].1.guid).unwrap(), MSG);
    let fetched = u.fetch(inbox.id, &[1, 7], true).unwrap();
    assert!(fetched[0].1.as_ref().unwrap().envelope.contains("\"hi\""));
    assert!(fetched[1].0.is_none());
}

#[test]
fn flags_copy_move_expunge_purge() {
    let (_d, s) = store();
    let u = s.user(&Username::new("u").unwrap()).unwrap();
    let inbox = MailboxName::inbox();
    for _ in 0..3 {
        u.append(&inbox, MSG, Flags::default(), None).unwrap();
    }
    let id = u.mailbox(&inbox).unwrap().unwrap().id;
    let before = u.mailbox(&inbox).unwrap().unwrap().highestmodseq;
    let del = Flags { system: flag::DELETED, keywords: vec!["$Junk".into()] };
    let st = u.store_flags(id, &[1, 2], StoreMode::Add, &del, None).unwrap();
    assert_eq!(st.changed.len(), 2);
    let m = u.mailbox(&inbox).unwrap().unwrap();
    assert!(m.highestmodseq > before);
    assert_eq!(m.keywords, vec!["$Junk".to_string()]);
    // UNCHANGEDSINCE older than the change refuses.
    let st = u.store_flags(id, &[1], StoreMode::Remove, &del, Some(before)).unwrap();
    assert_eq!(st.modified, vec![1]);

    let c = u.copy(id, &[1, 3], &mb("Trash")).unwrap();
    assert_eq!((c.src, c.dst), (vec![1, 3], vec![1, 2]));
    let mv = u.move_messages(id, &[3], &mb("Sent")).unwrap();
    assert_eq!(mv.dst, vec![1]);
    assert_eq!(u.expunge(id, Some(&[2])).unwrap(), vec![2]);
    assert_eq!(u.expunge(id, None).unwrap(), vec![1]);
    assert_eq!(u.mailbox(&inbox).unwrap().unwrap().exists, 0);
    assert_eq!(u.expunged().unwrap().len(), 2);
    // Retention not over: nothing purged; then everything older than "now+1" goes.
    assert_eq!(u.purge_expunged(0).unwrap(), 0);
    assert_eq!(u.purge_expunged(i64::MAX).unwrap(), 2);
    // The file is still referenced by Trash and Sent copies.
    let trash = u.mailbox(&mb("Trash")).unwrap().unwrap();
    let t = u.messages(trash.id).unwrap();
    assert_eq!(u.read_message(&t[0].1.guid).unwrap(), MSG);
}

#[test]
fn rename_subtree_and_inbox() {
    let (_d, s) = store();
    let u = s.user(&Username::new("u").unwrap()).unwrap();
    u.create_mailbox(&mb("a/b/c"), None).unwrap();
    assert!(u.mailbox(&mb("a/b")).unwrap().is_some());
    let uv = u.mailbox(&mb("a/b/c")).unwrap().unwrap().uidvalidity;
    u.rename_mailbox(&mb("a"), &mb("x/y")).unwrap();
    assert!(u.mailbox(&mb("a")).unwrap().is_none());
    assert_eq!(u.mailbox(&mb("x/y/b/c")).unwrap().unwrap().uidvalidity, uv);
    assert!(u.mailbox(&mb("x")).unwrap().is_some());
    assert!(matches!(u.rename_mailbox(&mb("x"), &mb("x/z")), Err(Error::NotAllowed(_))));

    u.append(&MailboxName::inbox(), MSG, Flags::default(), None).unwrap();
    u.create_mailbox(&mb("INBOX/keep"), None).unwrap();
    u.rename_mailbox(&MailboxName::inbox(), &mb("old")).unwrap();
    assert_eq!(u.mailbox(&MailboxName::inbox()).unwrap().unwrap().exists, 0);
    assert_eq!(u.mailbox(&mb("old")).unwrap().unwrap().exists, 1);
    assert!(u.mailbox(&mb("INBOX/keep")).unwrap().is_some());
}

#[test]
fn delete_with_children_keeps_noselect_parent() {
    let (_d, s) = store();
    let u = s.user(&Username::new("u").unwrap()).unwrap();
    u.create_mailbox(&mb("p/c"), None).unwrap();
    u.append(&mb("p"), MSG, Flags::default(), None).unwrap();
    u.delete_mailbox(&mb("p")).unwrap();
    let p = u.mailbox(&mb("p")).unwrap().unwrap();
    assert!(p.noselect && p.exists == 0);
    assert!(matches!(u.delete_mailbox(&mb("p")), Err(Error::NotAllowed(_))));
    u.delete_mailbox(&mb("p/c")).unwrap();
    u.delete_mailbox(&mb("p")).unwrap();
    assert!(u.mailbox(&mb("p")).unwrap().is_none());
    assert!(matches!(u.delete_mailbox(&MailboxName::inbox()), Err(Error::NotAllowed(_))));
    assert_eq!(u.expunged().unwrap().len(), 1);
}

#[test]
fn lru_keeps_users_in_use_and_evicts_idle_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions { open_index_cache: 2, ..Default::default() }).unwrap();
    let held = s.user(&Username::new("a").unwrap()).unwrap();
    for n in ["b", "c", "d"] {
        s.user(&Username::new(n).unwrap()).unwrap();
    }
    held.append(&MailboxName::inbox(), MSG, Flags::default(), None).unwrap();
    assert_eq!(s.users().unwrap().len(), 4);
    // A damaged index of one user does not affect another.
    std::fs::write(dir.path().join("metadata/d/data.mdb"), b"garbage").ok();
    assert!(s.user(&Username::new("a").unwrap()).is_ok());
}

#[test]
fn seen_and_expunge_is_one_step() {
    let (_d, s) = store();
    let u = s.user(&Username::new("u").unwrap()).unwrap();
    for _ in 0..3 {
        u.append(&MailboxName::inbox(), MSG, Flags::default(), None).unwrap();
    }
    let id = u.mailbox(&MailboxName::inbox()).unwrap().unwrap().id;
    assert_eq!(u.seen_and_expunge(id, &[1, 3], &[2, 3, 9]).unwrap(), vec![2, 3]);
    let left = u.messages(id).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].1.flags.has(flag::SEEN));
    assert_eq!(u.mailbox(&MailboxName::inbox()).unwrap().unwrap().exists, 1);
    assert_eq!(u.expunged().unwrap().len(), 2);
}

#[test]
fn purge_all_respects_retention() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Store::open(dir.path(), StoreOptions { expunge_retention_secs: 3600, ..Default::default() }).unwrap();
    let u = keep.user(&Username::new("u").unwrap()).unwrap();
    u.append(&MailboxName::inbox(), MSG, Flags::default(), None).unwrap();
    let id = u.mailbox(&MailboxName::inbox()).unwrap().unwrap().id;
    u.seen_and_expunge(id, &[], &[1]).unwrap();
    assert_eq!(keep.purge_all(), 0);
    assert!(u.read_message(&Guid::of(MSG)).is_ok(), "file kept during retention");
    drop(u);
    drop(keep);
    let now = Store::open(dir.path(), StoreOptions { expunge_retention_secs: -1, ..Default::default() }).unwrap();
    assert_eq!(now.purge_all(), 1);
    let u = now.user(&Username::new("u").unwrap()).unwrap();
    assert!(u.read_message(&Guid::of(MSG)).is_err(), "file removed with its last reference");
    assert!(u.expunged().unwrap().is_empty());
}
