//! The LMTP transaction state machine (RFC 2033 4, RFC 5321 3.3): which command may come
//! when, and what the answer is. Recipient lookup is passed in, delivery is left to the shell
//! ([`Action::Data`]), so this is plain logic with unit tests.

use mailstore::Username;

use super::codec::{parse_command, Command, Reply};

/// An accepted recipient: the address as the client wrote it and the mailbox it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub user: Username,
}

/// Where the session is; each state carries what the transaction has collected so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connected, no LHLO yet.
    Greeted,
    /// After LHLO, no transaction.
    Ready,
    /// After MAIL FROM.
    Mail { from: String },
    /// After at least one accepted RCPT TO.
    Rcpt { from: String, rcpts: Vec<Recipient> },
}

/// What the shell does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Reply(Reply),
    /// Send `354`, read the message, then deliver it and answer once per recipient, in order.
    Data {
        from: String,
        rcpts: Vec<Recipient>,
    },
    /// Send the reply and close.
    Quit(Reply),
}

/// More recipients than this in one transaction get `452 4.5.3` (RFC 5321 4.5.3.1.8 asks
/// for at least 100).
pub const MAX_RECIPIENTS: usize = 1000;

/// One LMTP session.
#[derive(Debug)]
pub struct Session {
    state: State,
    hostname: String,
    max_size: usize,
}

impl Session {
    pub fn new(hostname: &str, max_size: usize) -> Session {
        Session { state: State::Greeted, hostname: hostname.to_string(), max_size }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn greeting(&self) -> Reply {
        Reply::plain(220, vec![format!("{} LMTP mailstored ready", self.hostname)])
    }

    /// Answers one command line. `lookup` maps an address (or its local part) to a user that
    /// has a mailbox here.
    pub fn handle(&mut self, line: &[u8], lookup: impl Fn(&str) -> Option<Username>) -> Action {
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(e) => return Action::Reply(e.reply()),
        };
        let ok = |enh: &'static str, text: &str| Action::Reply(Reply::new(250, enh, text));
        let bad_sequence = |text: &str| Action::Reply(Reply::new(503, "5.5.1", text));
        match cmd {
            Command::Lhlo(_) => {
                self.state = State::Ready;
                Action::Reply(Reply::plain(
                    250,
                    vec![
                        self.hostname.clone(),
                        "PIPELINING".into(),
                        "ENHANCEDSTATUSCODES".into(),
                        "8BITMIME".into(),
                        format!("SIZE {}", self.max_size),
                    ],
                ))
            }
            Command::Helo => Action::Reply(Reply::new(500, "5.5.1", "This is an LMTP server: use LHLO")),
            Command::Noop => ok("2.0.0", "OK"),
            Command::Vrfy => Action::Reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY; send the message and the recipient will be checked",
            )),
            Command::Quit => Action::Quit(Reply::new(221, "2.0.0", format!("{} closing connection", self.hostname))),
            Command::Rset => {
                if self.state != State::Greeted {
                    self.state = State::Ready;
                }
                ok("2.0.0", "OK")
            }
            Command::Mail { from, size } => match &self.state {
                State::Greeted => bad_sequence("Send LHLO first"),
                State::Mail { .. } | State::Rcpt { .. } => {
                    bad_sequence("Nested MAIL command: a transaction is already open (RSET first)")
                }
                State::Ready => {
                    if size.is_some_and(|s| s > self.max_size as u64) {
                        return Action::Reply(Reply::new(
                            552,
                            "5.3.4",
                            format!("Message too big: the limit is {} bytes", self.max_size),
                        ));
                    }
                    self.state = State::Mail { from };
                    ok("2.1.0", "Sender OK")
                }
            },
            Command::Rcpt { to } => {
                let count = match &self.state {
                    State::Greeted | State::Ready => return bad_sequence("Send MAIL FROM first"),
                    State::Mail { .. } => 0,
                    State::Rcpt { rcpts, .. } => rcpts.len(),
                };
                if count >= MAX_RECIPIENTS {
                    return Action::Reply(Reply::new(452, "4.5.3", "Too many recipients"));
                }
                let Some(user) = resolve(&to, lookup) else {
                    return Action::Reply(Reply::new(550, "5.1.1", format!("<{to}>: no such user")));
                };
                let rcpt = Recipient { address: to, user };
                self.state = match std::mem::replace(&mut self.state, State::Ready) {
                    State::Mail { from } => State::Rcpt { from, rcpts: vec![rcpt] },
                    State::Rcpt { from, mut rcpts } => {
                        rcpts.push(rcpt);
                        State::Rcpt { from, rcpts }
                    }
                    other => other,
                };
                ok("2.1.5", "Recipient OK")
            }
            Command::Data => match std::mem::replace(&mut self.state, State::Ready) {
                State::Rcpt { from, rcpts } => Action::Data { from, rcpts },
                State::Greeted => {
                    self.state = State::Greeted;
                    bad_sequence("Send LHLO first")
                }
                State::Ready => bad_sequence("Send MAIL FROM first"),
                s @ State::Mail { .. } => {
                    self.state = s;
                    bad_sequence("No valid recipients: send RCPT TO first")
                }
            },
        }
    }
}

/// The user an address delivers to: the whole address if it names a user (user names may
/// contain `@`), else its local part, else the local part without a `+detail`.
pub fn resolve(address: &str, lookup: impl Fn(&str) -> Option<Username>) -> Option<Username> {
    if let Some(u) = lookup(address) {
        return Some(u);
    }
    let (local, _) = address.rsplit_once('@')?;
    if let Some(u) = lookup(local) {
        return Some(u);
    }
    let (base, _) = local.split_once('+')?;
    lookup(base)
}

/// The two trace headers a delivery adds (RFC 5321 4.4 Return-Path; Delivered-To as Postfix
/// and Dovecot write it), followed by the message.
pub fn with_trace_headers(from: &str, rcpt: &str, message: &[u8]) -> Vec<u8> {
    let head = format!("Return-Path: <{from}>\r\nDelivered-To: {rcpt}\r\n");
    let mut out = Vec::with_capacity(head.len() + message.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(s: &str) -> Option<Username> {
        ["alice", "bob", "team@lists"].contains(&s.to_ascii_lowercase().as_str()).then(|| Username::new(s).unwrap())
    }

    fn reply(s: &mut Session, line: &str) -> String {
        match s.handle(line.as_bytes(), users) {
            Action::Reply(r) | Action::Quit(r) => r.to_string(),
            Action::Data { .. } => "DATA".into(),
        }
    }

    #[test]
    fn full_transaction() {
        let mut s = Session::new("mx.test", 1000);
        assert_eq!(s.greeting().to_string(), "220 mx.test LMTP mailstored ready\r\n");
        let lhlo = reply(&mut s, "LHLO client");
        assert!(lhlo.starts_with("250-mx.test\r\n"), "{lhlo}");
        assert!(lhlo.ends_with("250 SIZE 1000\r\n"), "{lhlo}");
        assert!(reply(&mut s, "MAIL FROM:<x@y>").starts_with("250 2.1.0"));
        assert!(reply(&mut s, "RCPT TO:<Alice@example.org>").starts_with("250 2.1.5"));
        assert_eq!(reply(&mut s, "RCPT TO:<ghost@example.org>"), "550 5.1.1 <ghost@example.org>: no such user\r\n");
        assert!(reply(&mut s, "RCPT TO:<bob+lists@x>").starts_with("250"));
        match s.handle(b"DATA", users) {
            Action::Data { from, rcpts } => {
                assert_eq!(from, "x@y");
                let names: Vec<_> = rcpts.iter().map(|r| r.user.as_str()).collect();
                assert_eq!(names, ["alice", "bob"]);
                assert_eq!(rcpts[0].address, "Alice@example.org");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.state(), &State::Ready);
        assert!(reply(&mut s, "QUIT").starts_with("221 2.0.0"));
    }

    #[test]
    fn wrong_order_gets_503() {
        let mut s = Session::new("h", 1000);
        assert!(reply(&mut s, "MAIL FROM:<a@b>").starts_with("503 5.5.1 Send LHLO"));
        assert!(reply(&mut s, "EHLO x").starts_with("500 5.5.1"));
        reply(&mut s, "LHLO x");
        assert!(reply(&mut s, "RCPT TO:<alice@x>").starts_with("503 5.5.1"));
        assert!(reply(&mut s, "DATA").starts_with("503 5.5.1"));
        reply(&mut s, "MAIL FROM:<>");
        assert!(reply(&mut s, "MAIL FROM:<>").starts_with("503 5.5.1 Nested"));
        assert!(reply(&mut s, "RCPT TO:<ghost@x>").starts_with("550"));
        assert!(reply(&mut s, "DATA").starts_with("503 5.5.1 No valid recipients"));
        assert!(reply(&mut s, "RCPT TO:<alice@x>").starts_with("250"));
        assert!(reply(&mut s, "RSET").starts_with("250"));
        assert_eq!(s.state(), &State::Ready);
        assert!(reply(&mut s, "DATA").starts_with("503"));
    }

    #[test]
    fn size_limit_and_whole_address_users() {
        let mut s = Session::new("h", 1000);
        reply(&mut s, "LHLO x");
        assert!(reply(&mut s, "MAIL FROM:<a@b> SIZE=1001").starts_with("552 5.3.4"));
        assert!(reply(&mut s, "MAIL FROM:<a@b> SIZE=1000").starts_with("250"));
        assert!(reply(&mut s, "RCPT TO:<team@lists>").starts_with("250"));
        assert!(reply(&mut s, "VRFY alice").starts_with("252"));
    }

    #[test]
    fn trace_headers() {
        assert_eq!(
            with_trace_headers("", "bob@x", b"Subject: s\r\n\r\nhi\r\n"),
            b"Return-Path: <>\r\nDelivered-To: bob@x\r\nSubject: s\r\n\r\nhi\r\n"
        );
    }
}
