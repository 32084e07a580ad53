//! IMAP session state (RFC 3501 3) and the commands of the not-authenticated and authenticated
//! states. Selected-state commands are in `selected.rs`, FETCH in `fetch.rs`, SEARCH in
//! `search.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::status::StatusDataItemName;
use mailstore::{flag, Flags, MailboxName, UserStore};

use imap_codec::imap_types::command::SelectParameter;

use super::condstore::SelectOpts;
use super::ext::{ListExt, Saved, SearchReturn};
use super::resp::{self, Kind, Rc};
use super::selected::View;
use crate::auth::Secret;
use crate::net::Conn;
use crate::server::Ctx;

/// What the connection loop does after a command.
pub enum Next {
    Continue,
    Logout,
    StartTls,
    /// IDLE accepted: wait for DONE while pushing updates.
    Idle(String),
    /// AUTHENTICATE PLAIN without initial response: ask for it with `+ `.
    AuthPlain(String),
    /// COMPRESS DEFLATE accepted: flush the OK uncompressed, then compress both ways.
    Compress,
}

/// RFC 3501 3: the connection's state, carrying what each state needs.
pub enum State {
    NotAuthenticated,
    Authenticated { user: Arc<UserStore> },
    Selected { user: Arc<UserStore>, view: View },
}

/// A tagged result: `NO`/`BAD` with response code and text.
pub struct Refusal {
    pub kind: Kind,
    pub code: Option<Rc>,
    pub text: String,
}

impl Refusal {
    pub fn no(text: impl Into<String>) -> Self {
        Refusal { kind: Kind::No, code: None, text: text.into() }
    }
    pub fn bad(text: impl Into<String>) -> Self {
        Refusal { kind: Kind::Bad, code: None, text: text.into() }
    }
    pub fn with(mut self, code: Rc) -> Self {
        self.code = Some(code);
        self
    }
    pub fn to_bytes(&self, tag: &str) -> Vec<u8> {
        resp::status(Some(tag), self.kind, self.code.as_ref(), &self.text)
    }
}

/// A tagged OK: optional response code and text.
pub struct Done {
    pub code: Option<Rc>,
    pub text: String,
}

impl Done {
    pub fn with(code: Rc, text: impl Into<String>) -> Self {
        Done { code: Some(code), text: text.into() }
    }
    pub fn to_bytes(&self, tag: &str) -> Vec<u8> {
        resp::status(Some(tag), Kind::Ok, self.code.as_ref(), &self.text)
    }
}

impl From<String> for Done {
    fn from(text: String) -> Self {
        Done { code: None, text }
    }
}

impl From<&str> for Done {
    fn from(text: &str) -> Self {
        Done { code: None, text: text.to_string() }
    }
}

impl From<mailstore::Error> for Refusal {
    fn from(e: mailstore::Error) -> Self {
        use mailstore::Error as E;
        match e {
            E::NoSuchMailbox(m) => Refusal::no(format!("Mailbox does not exist: {m}")).with(Rc::Nonexistent),
            E::MailboxExists(m) => Refusal::no(format!("Mailbox already exists: {m}")).with(Rc::AlreadyExists),
            E::InvalidMailboxName(why) => Refusal::no(format!("Invalid mailbox name: {why}")).with(Rc::Cannot),
            E::NotAllowed(why) => Refusal::no(why).with(Rc::Cannot),
            E::InvalidUsername => Refusal::no("Invalid user name").with(Rc::Cannot),
            E::OverQuota { usage, limit, .. } => {
                Refusal::no(format!("Over quota: {usage} of {limit} bytes used")).with(Rc::OverQuota)
            }
            other => {
                tracing::error!(error = %other, "store error");
                Refusal::no("Internal error, the failure has been logged").with(Rc::ServerBug)
            }
        }
    }
}

pub type CmdResult = Result<Done, Refusal>;

/// What is advertised is exactly what is implemented (issue 6): every name here has its
/// command and response syntax in this module.
const CAPS_COMMON: [&str; 25] = [
    "IMAP4rev1",
    "LITERAL+",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "SPECIAL-USE",
    "CHILDREN",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "ESEARCH",
    "SEARCHRES",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "COMPRESS=DEFLATE",
];

pub struct Session {
    pub ctx: Arc<Ctx>,
    pub state: State,
    pub tls: bool,
    /// The client's address: ticket logins are accepted from `[frontend] trusted` peers only.
    peer: IpAddr,
    failures: u32,
    /// ENABLE CONDSTORE / QRESYNC (RFC 5161, RFC 7162 3.1.1, 3.2.3): for the rest of the session.
    condstore: bool,
    qresync: bool,
}

/// Bytes of an astring as UTF-8 (lossy: user input ends up in a message, never trusted).
pub fn astr(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

/// A mailbox argument, decoded from modified UTF-7 and validated.
pub fn mailbox_name(m: &Mailbox<'_>) -> Result<MailboxName, Refusal> {
    let raw: &[u8] = match m {
        Mailbox::Inbox => b"INBOX",
        Mailbox::Other(o) => o.as_ref(),
    };
    let decoded = super::utf7::decode(raw).map_err(|e| Refusal::no(e).with(Rc::Cannot))?;
    MailboxName::new(&decoded).map_err(Refusal::from)
}

/// Flags of STORE/APPEND; `\Recent` and `\*` are refused.
pub fn to_flags(list: &[Flag<'_>]) -> Result<Flags, Refusal> {
    let mut f = Flags::default();
    for fl in list {
        match fl {
            Flag::Seen => f.system |= flag::SEEN,
            Flag::Answered => f.system |= flag::ANSWERED,
            Flag::Flagged => f.system |= flag::FLAGGED,
            Flag::Deleted => f.system |= flag::DELETED,
            Flag::Draft => f.system |= flag::DRAFT,
            Flag::Keyword(k) => {
                if !f.has_keyword(k.as_ref()) {
                    f.keywords.push(k.as_ref().to_string())
                }
            }
            Flag::Extension(e) => {
                return Err(Refusal::bad(format!(
                "Unknown system flag {e:?}: only \\Seen \\Answered \\Flagged \\Deleted \\Draft and keywords can be set"
            )))
            }
        }
    }
    Ok(f)
}

fn command_name(body: &CommandBody<'_>) -> &'static str {
    body.name()
}

/// Commands that change the store, refused on a replica (its store follows the primary's).
fn writes(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
            | CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Append { .. }
            | CommandBody::Create { .. }
            | CommandBody::Delete { .. }
            | CommandBody::Rename { .. }
            | CommandBody::Subscribe { .. }
            | CommandBody::Unsubscribe { .. }
    )
}

impl Session {
    pub fn new(ctx: Arc<Ctx>, tls: bool, peer: IpAddr) -> Self {
        Session { ctx, state: State::NotAuthenticated, tls, peer, failures: 0, condstore: false, qresync: false }
    }

    pub fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = CAPS_COMMON.to_vec();
        if matches!(self.state, State::NotAuthenticated) {
            if !self.tls && self.ctx.tls.is_some() {
                caps.push("STARTTLS");
            }
            caps.push("AUTH=PLAIN");
        }
        caps
    }

    pub fn user(&self) -> Option<&Arc<UserStore>> {
        match &self.state {
            State::NotAuthenticated => None,
            State::Authenticated { user } | State::Selected { user, .. } => Some(user),
        }
    }

    /// Runs one command; responses are queued on `conn`, flushed by the caller.
    pub async fn handle(
        &mut self,
        cmd: Command<'static>,
        search_return: Option<SearchReturn>,
        conn: &mut Conn,
    ) -> std::io::Result<Next> {
        let tag = cmd.tag.inner().to_string();
        let name = command_name(&cmd.body);
        let span = tracing::debug_span!("cmd", name);
        let _g = span.enter();
        let mut next = Next::Continue;
        // RFC 3501 7.4.1: no EXPUNGE responses during FETCH, STORE and SEARCH (UID forms are
        // fine, since UIDs don't shift).
        let allow_expunge = !matches!(
            cmd.body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Sort { uid: false, .. }
                | CommandBody::Thread { uid: false, .. }
        );
        let result: CmdResult = match cmd.body {
            CommandBody::Capability => {
                conn.queue(&resp::capability(&self.capabilities()));
                Ok("CAPABILITY completed".into())
            }
            CommandBody::Noop | CommandBody::Check => Ok(format!("{name} completed").into()),
            CommandBody::Logout => {
                conn.queue(&resp::bye(None, "Logging out"));
                next = Next::Logout;
                Ok("LOGOUT completed".into())
            }
            CommandBody::Id { .. } => {
                conn.queue(&resp::id());
                Ok("ID completed".into())
            }
            CommandBody::StartTLS => self.starttls(&mut next),
            CommandBody::Login { username, password } => {
                let user = astr(&username);
                let pass = Secret::new(String::from_utf8_lossy(password.declassify().as_ref()).into_owned());
                self.login(user, pass, conn).await
            }
            CommandBody::Authenticate { mechanism, initial_response } => match mechanism {
                AuthMechanism::Plain => match initial_response {
                    Some(ir) => self.auth_plain(ir.declassify().as_ref(), conn).await,
                    None if matches!(self.state, State::NotAuthenticated) => {
                        next = Next::AuthPlain(tag.clone());
                        return Ok(next);
                    }
                    None => Err(Refusal::bad("Already authenticated")),
                },
                other => Err(Refusal::no(format!("Unsupported authentication mechanism {other}; use PLAIN"))),
            },
            body => self.authenticated(body, &tag, search_return, conn, &mut next).await,
        };
        if let State::Selected { user, view } = &mut self.state {
            if let Err(e) = view.refresh(user, allow_expunge, conn) {
                tracing::error!(error = %e, command = name, "mailbox refresh failed");
            }
        }
        if let Next::Idle(_) = next {
            return Ok(next);
        }
        match result {
            Ok(done) => conn.queue(&done.to_bytes(&tag)),
            Err(r) => conn.queue(&r.to_bytes(&tag)),
        }
        Ok(next)
    }

    /// LIST-EXTENDED / LIST-STATUS (parsed in `ext.rs`, not by the codec).
    pub fn list_extended(&mut self, tag: &str, l: &ListExt, conn: &mut Conn) {
        let result: CmdResult = match self.user().cloned() {
            None => Err(Refusal::bad("LIST needs authentication first (LOGIN or AUTHENTICATE)")),
            Some(user) => super::list::list_extended(self, &user, l, conn).map(|_| "LIST completed".into()),
        };
        if let State::Selected { user, view } = &mut self.state {
            if let Err(e) = view.refresh(user, true, conn) {
                tracing::error!(error = %e, command = "LIST", "mailbox refresh failed");
            }
        }
        match result {
            Ok(done) => conn.queue(&done.to_bytes(tag)),
            Err(r) => conn.queue(&r.to_bytes(tag)),
        }
    }

    fn starttls(&mut self, next: &mut Next) -> CmdResult {
        if self.tls {
            return Err(Refusal::bad("TLS is already active"));
        }
        if self.ctx.tls.is_none() {
            return Err(Refusal::no("TLS is not configured on this server"));
        }
        if !matches!(self.state, State::NotAuthenticated) {
            return Err(Refusal::bad("STARTTLS is only allowed before authentication"));
        }
        *next = Next::StartTls;
        Ok("Begin TLS negotiation now".into())
    }

    pub async fn auth_plain(&mut self, raw: &[u8], conn: &mut Conn) -> CmdResult {
        match crate::auth::decode_plain_raw(raw) {
            Ok((user, pass)) => self.login(user, pass, conn).await,
            Err(why) => Err(Refusal::bad(why)),
        }
    }

    async fn login(&mut self, user: String, pass: Secret, conn: &mut Conn) -> CmdResult {
        if !matches!(self.state, State::NotAuthenticated) {
            return Err(Refusal::bad("Already authenticated"));
        }
        let Some(username) = crate::frontend::authenticate(&self.ctx, self.peer, user.clone(), pass).await else {
            self.failures += 1;
            tracing::info!(user = %user.escape_debug(), failures = self.failures, "authentication failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.failures >= 5 {
                conn.queue(&resp::bye(None, "Too many authentication failures"));
            }
            return Err(Refusal::no("Authentication failed").with(Rc::AuthenticationFailed));
        };
        let store = self.ctx.store.clone();
        let u = crate::blocking(|| store.user(&username)).map_err(|e| {
            tracing::error!(user = %username, error = %e, "cannot open mailbox store");
            Refusal::no("Mailbox store temporarily unavailable").with(Rc::Unavailable)
        })?;
        tracing::Span::current().record("user", username.as_str());
        tracing::info!(user = %username, "logged in");
        self.state = State::Authenticated { user: u };
        Ok(Done::with(Rc::Capability(self.capabilities()), "Logged in"))
    }

    async fn authenticated(
        &mut self,
        body: CommandBody<'static>,
        tag: &str,
        search_return: Option<SearchReturn>,
        conn: &mut Conn,
        next: &mut Next,
    ) -> CmdResult {
        let name = body.name();
        let user = match &self.state {
            State::NotAuthenticated => {
                return Err(Refusal::bad(format!("{name} needs authentication first (LOGIN or AUTHENTICATE)")))
            }
            State::Authenticated { user } | State::Selected { user, .. } => user.clone(),
        };
        let replica = self.ctx.repl.is_replica();
        if replica && writes(&body) {
            return Err(
                Refusal::no(format!("{name}: this backend is a replica; write on the primary")).with(Rc::ReadOnly)
            );
        }
        match body {
            // A replica's mailboxes change only through replication: SELECT is EXAMINE there.
            CommandBody::Select { mailbox, parameters } => self.select(&user, &mailbox, replica, &parameters, conn),
            CommandBody::Examine { mailbox, parameters } => self.select(&user, &mailbox, true, &parameters, conn),
            CommandBody::Create { mailbox } => {
                let n = mailbox_name(&mailbox)?;
                crate::blocking(|| user.create_mailbox(&n, None))?;
                Ok("CREATE completed".into())
            }
            CommandBody::Delete { mailbox } => {
                let n = mailbox_name(&mailbox)?;
                if let State::Selected { view, .. } = &self.state {
                    if view.name == n {
                        self.state = State::Authenticated { user: user.clone() };
                    }
                }
                crate::blocking(|| user.delete_mailbox(&n))?;
                Ok("DELETE completed".into())
            }
            CommandBody::Rename { from, to } => {
                let (f, t) = (mailbox_name(&from)?, mailbox_name(&to)?);
                crate::blocking(|| user.rename_mailbox(&f, &t))?;
                Ok("RENAME completed".into())
            }
            CommandBody::Subscribe { mailbox } => {
                let n = mailbox_name(&mailbox)?;
                crate::blocking(|| user.subscribe(&n))?;
                Ok("SUBSCRIBE completed".into())
            }
            CommandBody::Unsubscribe { mailbox } => {
                let n = mailbox_name(&mailbox)?;
                crate::blocking(|| user.unsubscribe(&n))?;
                Ok("UNSUBSCRIBE completed".into())
            }
            CommandBody::List { reference, mailbox_wildcard } => {
                super::list::list(&user, &reference, &mailbox_wildcard, false, conn)?;
                Ok("LIST completed".into())
            }
            CommandBody::Lsub { reference, mailbox_wildcard } => {
                super::list::list(&user, &reference, &mailbox_wildcard, true, conn)?;
                Ok("LSUB completed".into())
            }
            CommandBody::Status { mailbox, item_names } => {
                let n = mailbox_name(&mailbox)?;
                self.status(&user, &n, &item_names, conn)?;
                Ok("STATUS completed".into())
            }
            CommandBody::Append { mailbox, flags, date, message } => {
                let n = mailbox_name(&mailbox)?;
                let f = to_flags(&flags)?;
                let date = date.map(|d| {
                    let dt = d.as_ref();
                    (dt.timestamp(), (dt.offset().local_minus_utc() / 60) as i16)
                });
                let bytes: &[u8] = match &message {
                    LiteralOrLiteral8::Literal(l) => l.data(),
                    LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
                };
                if bytes.is_empty() {
                    return Err(Refusal::no("Empty message refused"));
                }
                if self.ctx.repl.admit_write().is_err() {
                    return Err(Refusal::no(
                        "APPEND: the replica is unreachable (synchronous replication); try again later",
                    )
                    .with(Rc::Unavailable));
                }
                let a = crate::blocking(|| user.append(&n, bytes, f, date)).map_err(|e| match e {
                    mailstore::Error::NoSuchMailbox(m) => {
                        Refusal::no(format!("Mailbox does not exist: {m}")).with(Rc::TryCreate)
                    }
                    e => e.into(),
                })?;
                if let Err(why) = self.ctx.repl.wait_replicated(&self.ctx.store, user.user()).await {
                    tracing::error!(reason = ?why, uid = a.uid, "APPEND stored here but not confirmed by the replica");
                    return Err(Refusal::no(
                        "APPEND: stored, but the replica did not confirm it (synchronous replication); it may appear twice if you retry",
                    )
                    .with(Rc::Unavailable));
                }
                Ok(Done::with(Rc::AppendUid(a.uidvalidity, a.uid), "APPEND completed"))
            }
            CommandBody::Namespace => {
                conn.queue(&resp::namespace());
                Ok("NAMESPACE completed".into())
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for c in capabilities.as_ref() {
                    let name = c.to_string().to_ascii_uppercase();
                    match name.as_str() {
                        "CONDSTORE" if !self.condstore => {
                            self.condstore = true;
                            enabled.push(c.clone());
                        }
                        // QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
                        "QRESYNC" if !self.qresync => {
                            self.qresync = true;
                            self.condstore = true;
                            enabled.push(c.clone());
                        }
                        _ => {}
                    }
                }
                if let State::Selected { view, .. } = &mut self.state {
                    view.condstore |= self.condstore;
                    view.qresync |= self.qresync;
                }
                conn.queue(&resp::data(imap_codec::imap_types::response::Data::Enabled { capabilities: enabled }));
                Ok("ENABLE completed".into())
            }
            CommandBody::GetQuotaRoot { mailbox } => {
                let n = mailbox_name(&mailbox)?;
                super::quota::get_quota_root(&user, &n, conn)?;
                Ok("GETQUOTAROOT completed".into())
            }
            CommandBody::GetQuota { root } => {
                super::quota::get_quota(&user, &astr(&root), conn)?;
                Ok("GETQUOTA completed".into())
            }
            CommandBody::SetQuota { .. } => {
                Err(Refusal::no("SETQUOTA: limits are set by the administrator (mailctl quota set)"))
            }
            CommandBody::Idle => {
                *next = Next::Idle(tag.to_string());
                Ok("IDLE".into())
            }
            // RFC 4978 3: DEFLATE is the only algorithm (anything else fails to parse: BAD).
            CommandBody::Compress { .. } => {
                if conn.is_compressed() {
                    return Err(Refusal::no("DEFLATE is already active").with(Rc::CompressionActive));
                }
                *next = Next::Compress;
                Ok("DEFLATE active".into())
            }
            body => match &mut self.state {
                State::Selected { user, view } => {
                    let user = user.clone();
                    let extra = super::selected::Extra { tag, search_return };
                    let r = super::selected::command(&user, view, body, extra, conn).await;
                    if matches!(r, Ok(ref d) if d.text.starts_with("CLOSE") || d.text.starts_with("UNSELECT")) {
                        self.state = State::Authenticated { user };
                    }
                    r
                }
                _ => Err(Refusal::bad(format!("{name} needs a selected mailbox (SELECT or EXAMINE first)"))),
            },
        }
    }

    fn select(
        &mut self,
        user: &Arc<UserStore>,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        params: &[SelectParameter],
        conn: &mut Conn,
    ) -> CmdResult {
        let opts = SelectOpts::new(params, self.condstore, self.qresync)?;
        // RFC 7162 3.2.11: the end of the previous mailbox's responses.
        if matches!(self.state, State::Selected { .. }) {
            conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::Closed), "Previous mailbox closed"));
        }
        // A failed SELECT leaves the authenticated state (RFC 3501 6.3.1).
        self.state = State::Authenticated { user: user.clone() };
        let name = mailbox_name(mailbox)?;
        let view = View::open(user, name, read_only, &opts, conn)?;
        self.state = State::Selected { user: user.clone(), view };
        Ok(if read_only {
            Done::with(Rc::ReadOnly, "EXAMINE completed")
        } else {
            Done::with(Rc::ReadWrite, "SELECT completed")
        })
    }

    pub fn status(
        &self,
        user: &UserStore,
        name: &MailboxName,
        items: &[StatusDataItemName],
        conn: &mut Conn,
    ) -> Result<(), Refusal> {
        let m = crate::blocking(|| user.mailbox(name))?
            .filter(|m| !m.noselect)
            .ok_or_else(|| Refusal::no(format!("Mailbox does not exist: {name}")).with(Rc::Nonexistent))?;
        let needs_scan = items.iter().any(|i| {
            matches!(i, StatusDataItemName::Unseen | StatusDataItemName::Deleted | StatusDataItemName::Recent)
        });
        let msgs = if needs_scan { crate::blocking(|| user.messages(m.id))? } else { Vec::new() };
        use imap_codec::imap_types::status::StatusDataItem as I;
        let count = |f: &dyn Fn(u32, &mailstore::MessageRecord) -> bool| {
            msgs.iter().filter(|(uid, r)| f(*uid, r)).count() as u32
        };
        let mut parts = Vec::new();
        for item in items {
            parts.push(match item {
                StatusDataItemName::Messages => I::Messages(m.exists),
                StatusDataItemName::Recent => I::Recent(count(&|uid, _| uid >= m.recent_uid)),
                StatusDataItemName::UidNext => I::UidNext(resp::nonzero(m.uidnext)),
                StatusDataItemName::UidValidity => I::UidValidity(resp::nonzero(m.uidvalidity)),
                StatusDataItemName::Unseen => I::Unseen(count(&|_, r| !r.flags.has(flag::SEEN))),
                StatusDataItemName::Deleted => I::Deleted(count(&|_, r| r.flags.has(flag::DELETED))),
                StatusDataItemName::HighestModSeq => I::HighestModSeq(m.highestmodseq),
                other => return Err(Refusal::bad(format!("STATUS item {other:?} is not supported"))),
            });
        }
        conn.queue(&resp::status_data(name.as_str(), parts));
        Ok(())
    }
}

/// The wildcard argument of LIST/LSUB as UTF-8.
pub fn list_pattern(p: &ListMailbox<'_>) -> Result<String, Refusal> {
    let raw: &[u8] = match p {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(s) => s.as_ref(),
    };
    super::utf7::decode(raw).map_err(|e| Refusal::bad(e.to_string()))
}

/// The saved search result of the selected mailbox for `$` (RFC 5182).
impl Saved for Session {
    fn set(&self, uid: bool) -> Option<Option<String>> {
        let State::Selected { view, .. } = &self.state else {
            return None;
        };
        let mut ids: Vec<u32> = if uid {
            view.saved.iter().copied().filter(|u| view.seq_of(*u).is_some()).collect()
        } else {
            view.saved.iter().filter_map(|u| view.seq_of(*u).map(|i| i as u32 + 1)).collect()
        };
        ids.sort_unstable();
        Some((!ids.is_empty()).then(|| resp::compact_set(&ids)))
    }
}
