//! The POP3 state machine (RFC 1939 3: AUTHORIZATION, TRANSACTION, UPDATE). It answers what
//! it can from the maildrop snapshot taken at login and hands everything that needs the
//! directory, the store or the socket back to the shell as an [`Action`]. No I/O here.

use mailstore::{Guid, Username};

use super::codec::{err, multi, ok, parse_command, Command};
use crate::auth::{decode_sasl_plain, Secret};

/// One message of the maildrop as the session sees it.
#[derive(Debug, Clone)]
pub struct Message {
    pub uid: u32,
    pub size: u32,
    pub guid: Guid,
    /// Marked by DELE; removed only at QUIT (RFC 1939 6).
    pub deleted: bool,
    /// Sent whole by RETR; gets `\Seen` at QUIT.
    pub retrieved: bool,
}

/// The user's INBOX as it was at login: message numbers stay fixed for the session.
#[derive(Debug, Clone)]
pub struct Maildrop {
    pub mailbox: u32,
    pub uidvalidity: u32,
    pub messages: Vec<Message>,
}

impl Maildrop {
    fn live(&self) -> impl Iterator<Item = (usize, &Message)> {
        self.messages.iter().enumerate().filter(|(_, m)| !m.deleted).map(|(i, m)| (i + 1, m))
    }

    fn stat(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(n, s), (_, m)| (n + 1, s + u64::from(m.size)))
    }

    fn get(&mut self, n: u32) -> Result<&mut Message, Vec<u8>> {
        match self.messages.get_mut(n as usize - 1) {
            None => Err(err(&format!("No such message {n}"))),
            Some(m) if m.deleted => Err(err(&format!("Message {n} is deleted"))),
            Some(m) => Ok(m),
        }
    }

    /// UIDL id (RFC 1939 7): unique and stable as long as INBOX keeps its UIDVALIDITY.
    pub fn unique_id(&self, m: &Message) -> String {
        format!("{:08x}{:08x}", self.uidvalidity, m.uid)
    }
}

/// The RFC 1939 states; TRANSACTION carries the user and the maildrop snapshot.
#[derive(Debug)]
pub enum State {
    Authorization {
        user: Option<String>,
    },
    /// `AUTH PLAIN` without an initial response: the next line is the SASL response.
    SaslPlain,
    Transaction {
        user: Username,
        drop: Maildrop,
    },
    /// After QUIT.
    Update,
}

/// What the shell does next.
#[derive(Debug)]
pub enum Action {
    Reply(Vec<u8>),
    /// Check the password, then call [`Session::logged_in`] or [`Session::login_failed`].
    Login {
        user: String,
        pass: Secret,
    },
    /// Send `+OK`, upgrade the connection, then call [`Session::tls_started`].
    StartTls,
    /// Read the message file and send `header`, the stuffed message (only the header and
    /// `body_lines` lines for TOP) and the final `.`.
    Retrieve {
        header: Vec<u8>,
        guid: Guid,
        body_lines: Option<u32>,
    },
    /// QUIT in TRANSACTION: apply `\Seen` to `seen`, delete `deleted` (both sorted UIDs of
    /// `mailbox`), answer, close.
    Update {
        user: Username,
        mailbox: u32,
        seen: Vec<u32>,
        deleted: Vec<u32>,
    },
    /// Send the reply and close.
    Close(Vec<u8>),
}

/// Failed logins allowed on one connection before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

pub const AUTH_FAILED: &str = "[AUTH] Authentication failed";

/// One POP3 session.
#[derive(Debug)]
pub struct Session {
    state: State,
    hostname: String,
    tls_available: bool,
    tls_active: bool,
    auth_failures: u32,
}

impl Session {
    pub fn new(hostname: &str, tls_available: bool, tls_active: bool) -> Session {
        Session {
            state: State::Authorization { user: None },
            hostname: hostname.to_string(),
            tls_available,
            tls_active,
            auth_failures: 0,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn greeting(&self) -> Vec<u8> {
        ok(&format!("{} mailstored POP3 ready", self.hostname))
    }

    /// Answer for a line over the length limit; an AUTH exchange in progress is abandoned.
    pub fn line_too_long(&mut self) -> Vec<u8> {
        if matches!(self.state, State::SaslPlain) {
            self.state = State::Authorization { user: None };
        }
        err("Line too long")
    }

    /// RFC 2449 5: capabilities depend on the state (and on TLS for STLS).
    fn capa(&self) -> Vec<u8> {
        let mut caps: Vec<String> =
            ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"].map(String::from).to_vec();
        if matches!(self.state, State::Authorization { .. }) {
            caps.push("USER".into());
            caps.push("SASL PLAIN".into());
            if self.tls_available && !self.tls_active {
                caps.push("STLS".into());
            }
        }
        caps.push("IMPLEMENTATION mailstored".into());
        multi("Capability list follows", &caps)
    }

    /// Handles one input line.
    pub fn handle(&mut self, line: &[u8]) -> Action {
        if matches!(self.state, State::SaslPlain) {
            self.state = State::Authorization { user: None };
            if line == b"*" {
                return Action::Reply(err("Authentication cancelled"));
            }
            return self.sasl_plain(line);
        }
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(e) => return Action::Reply(err(&e.text())),
        };
        match cmd {
            Command::Capa => return Action::Reply(self.capa()),
            Command::Noop if matches!(self.state, State::Transaction { .. }) => return Action::Reply(ok("OK")),
            _ => {}
        }
        match &mut self.state {
            State::Authorization { user } => match cmd {
                Command::User(u) => {
                    *user = Some(u);
                    Action::Reply(ok("Send your password"))
                }
                Command::Pass(pass) => match user.take() {
                    Some(user) => Action::Login { user, pass },
                    None => Action::Reply(err("Send USER first")),
                },
                Command::Auth { mechanism, initial } => match (mechanism.as_deref(), initial) {
                    (None, _) => Action::Reply(multi("Supported SASL mechanisms", &["PLAIN".into()])),
                    (Some("PLAIN"), Some(ir)) => self.sasl_plain(ir.as_bytes()),
                    (Some("PLAIN"), None) => {
                        self.state = State::SaslPlain;
                        Action::Reply(b"+ \r\n".to_vec())
                    }
                    (Some(_), _) => Action::Reply(err("Unsupported SASL mechanism: only PLAIN")),
                },
                Command::Stls if !self.tls_available => Action::Reply(err("STLS is not available: no TLS configured")),
                Command::Stls if self.tls_active => Action::Reply(err("TLS is already active")),
                Command::Stls => Action::StartTls,
                Command::Quit => Action::Close(ok(&format!("{} signing off", self.hostname))),
                other => Action::Reply(err(&format!(
                    "Not logged in: expected USER, PASS, AUTH, CAPA, STLS or QUIT, got {}",
                    name(&other)
                ))),
            },
            State::Transaction { user, drop } => {
                let action = transaction(cmd, user, drop);
                if matches!(action, Action::Update { .. }) {
                    self.state = State::Update;
                }
                action
            }
            State::SaslPlain | State::Update => Action::Close(err("Session is over")),
        }
    }

    fn sasl_plain(&mut self, response: &[u8]) -> Action {
        match decode_sasl_plain(response) {
            Ok((user, pass)) => Action::Login { user, pass },
            Err(why) => Action::Reply(err(why)),
        }
    }

    /// The password was right and the maildrop is loaded.
    pub fn logged_in(&mut self, user: Username, drop: Maildrop) -> Vec<u8> {
        let (n, size) = drop.stat();
        self.state = State::Transaction { user, drop };
        ok(&format!("Logged in, maildrop has {n} messages ({size} octets)"))
    }

    /// The login failed. Returns the reply and whether to close the connection (too many
    /// failures). The shell waits before sending it.
    pub fn login_failed(&mut self) -> (Vec<u8>, bool) {
        self.state = State::Authorization { user: None };
        self.auth_failures += 1;
        (err(AUTH_FAILED), self.auth_failures >= MAX_AUTH_FAILURES)
    }

    /// TLS is up: forget everything learnt in plaintext (RFC 2595 4).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.state = State::Authorization { user: None };
    }
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::User(_) => "USER",
        Command::Pass(_) => "PASS",
        Command::Auth { .. } => "AUTH",
        Command::Capa => "CAPA",
        Command::Stls => "STLS",
        Command::Stat => "STAT",
        Command::List(_) => "LIST",
        Command::Retr(_) => "RETR",
        Command::Top(..) => "TOP",
        Command::Dele(_) => "DELE",
        Command::Noop => "NOOP",
        Command::Rset => "RSET",
        Command::Uidl(_) => "UIDL",
        Command::Quit => "QUIT",
    }
}

/// TRANSACTION state commands (RFC 1939 5); QUIT yields [`Action::Update`].
fn transaction(cmd: Command, user: &Username, drop: &mut Maildrop) -> Action {
    let reply = Action::Reply;
    let fail = Action::Reply;
    match cmd {
        Command::Stat => {
            let (n, size) = drop.stat();
            reply(ok(&format!("{n} {size}")))
        }
        Command::List(None) => {
            let (n, size) = drop.stat();
            let lines: Vec<String> = drop.live().map(|(i, m)| format!("{i} {}", m.size)).collect();
            reply(multi(&format!("{n} messages ({size} octets)"), &lines))
        }
        Command::List(Some(n)) => match drop.get(n) {
            Ok(m) => reply(ok(&format!("{n} {}", m.size))),
            Err(e) => fail(e),
        },
        Command::Uidl(None) => {
            let lines: Vec<String> = drop.live().map(|(i, m)| format!("{i} {}", drop.unique_id(m))).collect();
            reply(multi("Unique-ID listing follows", &lines))
        }
        Command::Uidl(Some(n)) => match drop.get(n) {
            Ok(m) => {
                let m = m.clone();
                reply(ok(&format!("{n} {}", drop.unique_id(&m))))
            }
            Err(e) => fail(e),
        },
        Command::Retr(n) => match drop.get(n) {
            Ok(m) => {
                m.retrieved = true;
                Action::Retrieve { header: ok(&format!("{} octets", m.size)), guid: m.guid, body_lines: None }
            }
            Err(e) => fail(e),
        },
        Command::Top(n, lines) => match drop.get(n) {
            Ok(m) => Action::Retrieve { header: ok("Top of message follows"), guid: m.guid, body_lines: Some(lines) },
            Err(e) => fail(e),
        },
        Command::Dele(n) => match drop.get(n) {
            Ok(m) => {
                m.deleted = true;
                reply(ok(&format!("Message {n} deleted")))
            }
            Err(e) => fail(e),
        },
        Command::Rset => {
            for m in &mut drop.messages {
                m.deleted = false;
            }
            let (n, size) = drop.stat();
            reply(ok(&format!("Maildrop has {n} messages ({size} octets)")))
        }
        Command::Noop => reply(ok("OK")),
        Command::Quit => {
            let pick = |f: fn(&Message) -> bool| -> Vec<u32> {
                let mut v: Vec<u32> = drop.messages.iter().filter(|m| f(m)).map(|m| m.uid).collect();
                v.sort_unstable();
                v
            };
            Action::Update {
                user: user.clone(),
                mailbox: drop.mailbox,
                seen: pick(|m| m.retrieved && !m.deleted),
                deleted: pick(|m| m.deleted),
            }
        }
        other => reply(err(&format!("Already logged in: {} is not allowed in the TRANSACTION state", name(&other)))),
    }
}

#[cfg(test)]
mod tests;
