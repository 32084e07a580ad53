use super::*;

fn drop3() -> Maildrop {
    Maildrop {
        mailbox: 1,
        uidvalidity: 0x65f0_0000,
        messages: [(1, 100), (2, 200), (5, 300)]
            .into_iter()
            .map(|(uid, size)| Message { uid, size, guid: Guid([uid as u8; 32]), deleted: false, retrieved: false })
            .collect(),
    }
}

fn text(a: Action) -> String {
    match a {
        Action::Reply(r) | Action::Close(r) => String::from_utf8(r).unwrap(),
        other => format!("{other:?}"),
    }
}

fn logged_in() -> Session {
    let mut s = Session::new("pop.test", true, false);
    assert!(matches!(s.handle(b"USER demo1"), Action::Reply(_)));
    match s.handle(b"PASS demo") {
        Action::Login { user, pass } => {
            assert_eq!((user.as_str(), pass.expose()), ("demo1", "demo"));
        }
        other => panic!("{other:?}"),
    }
    let r = s.logged_in(Username::new("demo1").unwrap(), drop3());
    assert_eq!(r, b"+OK Logged in, maildrop has 3 messages (600 octets)\r\n");
    s
}

#[test]
fn authorization_state() {
    let mut s = Session::new("pop.test", true, false);
    assert_eq!(s.greeting(), b"+OK pop.test mailstored POP3 ready\r\n");
    let capa = text(s.handle(b"CAPA"));
    for c in ["\r\nUSER\r\n", "\r\nSASL PLAIN\r\n", "\r\nSTLS\r\n", "\r\nUIDL\r\n", "\r\nTOP\r\n"] {
        assert!(capa.contains(c), "{capa}");
    }
    assert!(capa.ends_with("\r\n.\r\n"));
    assert_eq!(text(s.handle(b"PASS x")), "-ERR Send USER first\r\n");
    let stat = text(s.handle(b"STAT"));
    assert!(stat.starts_with("-ERR Not logged in") && stat.contains("got STAT"), "{stat}");
    assert!(text(s.handle(b"FOO")).starts_with("-ERR Unknown command: FOO"));
    assert!(matches!(s.handle(b"STLS"), Action::StartTls));
    s.tls_started();
    assert!(!text(s.handle(b"CAPA")).contains("STLS"));
    assert_eq!(text(s.handle(b"STLS")), "-ERR TLS is already active\r\n");
    let mut plain = Session::new("h", false, false);
    assert!(text(plain.handle(b"STLS")).starts_with("-ERR STLS is not available"));
    assert!(text(plain.handle(b"QUIT")).starts_with("+OK"));
}

#[test]
fn auth_plain_both_forms() {
    let mut s = Session::new("h", false, false);
    assert!(matches!(
        s.handle(b"AUTH PLAIN AGRlbW8xAGRlbW8="),
        Action::Login { user, .. } if user == "demo1"
    ));
    assert_eq!(text(s.handle(b"AUTH PLAIN")), "+ \r\n");
    assert!(matches!(s.state(), State::SaslPlain));
    assert!(matches!(
        s.handle(b"AGRlbW8xAGRlbW8="),
        Action::Login { user, .. } if user == "demo1"
    ));
    assert_eq!(text(s.handle(b"AUTH PLAIN")), "+ \r\n");
    assert_eq!(text(s.handle(b"*")), "-ERR Authentication cancelled\r\n");
    assert!(text(s.handle(b"AUTH PLAIN !!!")).starts_with("-ERR invalid base64"));
    assert!(text(s.handle(b"AUTH CRAM-MD5")).starts_with("-ERR Unsupported"));
    assert_eq!(text(s.handle(b"AUTH")), "+OK Supported SASL mechanisms\r\nPLAIN\r\n.\r\n");
}

#[test]
fn login_failures_close_after_the_limit() {
    let mut s = Session::new("h", false, false);
    for i in 1..=MAX_AUTH_FAILURES {
        let (r, close) = s.login_failed();
        assert_eq!(r, b"-ERR [AUTH] Authentication failed\r\n");
        assert_eq!(close, i == MAX_AUTH_FAILURES);
    }
}

#[test]
fn listings() {
    let mut s = logged_in();
    assert_eq!(text(s.handle(b"STAT")), "+OK 3 600\r\n");
    assert_eq!(text(s.handle(b"LIST")), "+OK 3 messages (600 octets)\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n");
    assert_eq!(text(s.handle(b"LIST 2")), "+OK 2 200\r\n");
    assert_eq!(text(s.handle(b"LIST 4")), "-ERR No such message 4\r\n");
    assert_eq!(
        text(s.handle(b"UIDL")),
        "+OK Unique-ID listing follows\r\n1 65f0000000000001\r\n2 65f0000000000002\r\n\
         3 65f0000000000005\r\n.\r\n"
    );
    assert_eq!(text(s.handle(b"UIDL 3")), "+OK 3 65f0000000000005\r\n");
    let capa = text(s.handle(b"CAPA"));
    assert!(!capa.contains("USER") && capa.contains("UIDL"), "{capa}");
    assert!(text(s.handle(b"USER x")).starts_with("-ERR Already logged in"));
    assert_eq!(text(s.handle(b"NOOP")), "+OK OK\r\n");
}

#[test]
fn dele_rset_and_quit() {
    let mut s = logged_in();
    assert_eq!(text(s.handle(b"DELE 2")), "+OK Message 2 deleted\r\n");
    assert_eq!(text(s.handle(b"DELE 2")), "-ERR Message 2 is deleted\r\n");
    assert_eq!(text(s.handle(b"RETR 2")), "-ERR Message 2 is deleted\r\n");
    assert_eq!(text(s.handle(b"STAT")), "+OK 2 400\r\n");
    assert_eq!(text(s.handle(b"LIST")), "+OK 2 messages (400 octets)\r\n1 100\r\n3 300\r\n.\r\n");
    assert_eq!(text(s.handle(b"RSET")), "+OK Maildrop has 3 messages (600 octets)\r\n");
    match s.handle(b"RETR 3") {
        Action::Retrieve { header, guid, body_lines: None } => {
            assert_eq!(header, b"+OK 300 octets\r\n");
            assert_eq!(guid, Guid([5; 32]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.handle(b"TOP 1 0"), Action::Retrieve { body_lines: Some(0), .. }));
    s.handle(b"DELE 3");
    s.handle(b"DELE 1");
    match s.handle(b"QUIT") {
        Action::Update { user, mailbox, seen, deleted } => {
            assert_eq!(user.as_str(), "demo1");
            assert_eq!(mailbox, 1);
            assert!(seen.is_empty(), "a deleted message needs no \\Seen");
            assert_eq!(deleted, [1, 5]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.state(), State::Update));
}

#[test]
fn retr_marks_seen_at_quit() {
    let mut s = logged_in();
    s.handle(b"RETR 2");
    s.handle(b"TOP 3 5");
    match s.handle(b"QUIT") {
        Action::Update { seen, deleted, .. } => {
            assert_eq!(seen, [2]);
            assert!(deleted.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_long_line_abandons_sasl() {
    let mut s = Session::new("h", false, false);
    s.handle(b"AUTH PLAIN");
    assert_eq!(s.line_too_long(), b"-ERR Line too long\r\n");
    assert!(matches!(s.state(), State::Authorization { user: None }));
}
