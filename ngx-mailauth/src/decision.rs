//! The auth_http decision: request headers in, answer headers out. No nginx, no I/O.
//!
//! nginx mail (`ngx_mail_auth_http_module`) asks with a `GET` whose headers carry the login:
//! `Auth-Method`, `Auth-User`, `Auth-Pass` (both URL-escaped by nginx), `Auth-Protocol`,
//! `Auth-Login-Attempt`, `Client-IP`, `Client-Host`. It reads only the answer's headers (the
//! HTTP status is ignored): `Auth-Status: OK` with `Auth-Server` (an IP literal: nginx does not
//! resolve names here), `Auth-Port` and, for IMAP/POP3, always `Auth-Pass` (the password nginx
//! sends to the backend, taken verbatim, not unescaped); or `Auth-Status: <message for the
//! client>` with an optional `Auth-Wait: <seconds>` after which nginx lets the client try again
//! (without it nginx closes the connection).
//!
//! This file holds the request parser and the answers; [`crate::flow`] orders the checks
//! (lockout, cache tiers, directory) and [`route`] turns the roles database's verdict into the
//! answer.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Longest user name accepted, in bytes after unescaping.
pub const MAX_USERNAME_BYTES: usize = 255;
/// Longest password accepted, in bytes after unescaping.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Message nginx shows the client for a refused login (nginx wraps it in the protocol's reply:
/// `a1 NO ...` for IMAP, `-ERR ...` for POP3).
pub const INVALID_LOGIN: &str = "Invalid login or password";
/// Message for a request that is not a well-formed nginx auth_http request, or when the
/// directory or the roles database can't answer.
pub const TEMP_FAILURE: &str = "Temporary server problem, try again later";
/// Message while a user name or client address is locked out.
pub const LOCKED_OUT: &str = "Too many failed logins, try again later";
/// Message for a verified user without a role (no mailbox on this platform).
pub const NO_MAILBOX: &str = "No mailbox for this user";
/// Message when the user's backend is down or the mailbox is being moved.
pub const MAILBOX_UNAVAILABLE: &str = "Mailbox temporarily unavailable, try again later";
/// Message for a protocol without a backend port (SMTP).
pub const NO_SUCH_SERVICE: &str = "Service not available for this protocol";

/// A value that must never be printed: its `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the few places that must use it (verification, the answer).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A user name as nginx passed it, unescaped and validated: UTF-8, 1 to
/// [`MAX_USERNAME_BYTES`] bytes, no control characters (so no CR, LF or NUL can reach a header,
/// a log line or, later, an LDAP filter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates an unescaped user name.
    ///
    /// # Errors
    ///
    /// [`RequestError::Invalid`] for an empty, too long, non-UTF-8 name or one with control
    /// characters.
    pub fn new(raw: Vec<u8>) -> Result<Self, RequestError> {
        let name = String::from_utf8(raw).map_err(|_| RequestError::Invalid("Auth-User"))?;
        if name.is_empty() || name.len() > MAX_USERNAME_BYTES || name.chars().any(char::is_control) {
            return Err(RequestError::Invalid("Auth-User"));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The mail protocol a login is for (`Auth-Protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// IMAP4rev1.
    Imap,
    /// POP3.
    Pop3,
    /// SMTP (nginx's SMTP proxy; no backend port for it yet).
    Smtp,
}

impl Protocol {
    /// The name as in `Auth-Protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imap => "imap",
            Self::Pop3 => "pop3",
            Self::Smtp => "smtp",
        }
    }

    fn parse(value: &[u8]) -> Result<Self, RequestError> {
        match value {
            b"imap" => Ok(Self::Imap),
            b"pop3" => Ok(Self::Pop3),
            b"smtp" => Ok(Self::Smtp),
            _ => Err(RequestError::Invalid("Auth-Protocol")),
        }
    }
}

/// A parsed, validated auth_http request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    /// `Auth-Method` as nginx sends it (`plain`, `login`, `apop`, `cram-md5`, `external`, `none`).
    pub method: String,
    /// `Auth-User`, unescaped.
    pub user: Username,
    /// `Auth-Pass`, unescaped. Empty for methods without a password.
    pub pass: Secret<String>,
    /// `Auth-Protocol`.
    pub protocol: Protocol,
    /// `Auth-Login-Attempt`: 1 for the first attempt on a connection.
    pub attempt: u32,
    /// `Client-IP`, when present and well-formed.
    pub client_ip: Option<IpAddr>,
}

/// Why a request could not be parsed. The request came from nginx, so any of these means a
/// misconfiguration (the location is reachable by something else) or a client sending control
/// characters through nginx's escaping.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// A required header is absent.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A header appears twice.
    #[error("duplicate header {0}")]
    Duplicate(&'static str),
    /// A header's value is malformed (bad escape, control characters, too long, unknown value).
    #[error("invalid header {0}")]
    Invalid(&'static str),
}

impl RequestError {
    /// True when the client (not nginx or its configuration) caused the error, e.g. a user name
    /// with CR/LF: it is answered like a wrong password, not like a server problem.
    pub fn is_client_input(&self) -> bool {
        matches!(self, Self::Invalid("Auth-User" | "Auth-Pass"))
    }
}

const HEADERS: [&str; 6] =
    ["Auth-Method", "Auth-User", "Auth-Pass", "Auth-Protocol", "Auth-Login-Attempt", "Client-IP"];

/// Parses the request headers (name, value) of an auth_http request. Header names match case-
/// insensitively; unknown headers (`Host`, `Client-Host`, `Auth-SMTP-*`, ...) are ignored.
///
/// # Errors
///
/// [`RequestError`] when a required header (`Auth-Method`, `Auth-User`, `Auth-Protocol`) is
/// missing, a known header appears twice, or a value is malformed.
pub fn parse_request<'a, I>(headers: I) -> Result<AuthRequest, RequestError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut found: [Option<&[u8]>; HEADERS.len()] = [None; HEADERS.len()];
    for (name, value) in headers {
        if let Some(i) = HEADERS.iter().position(|h| h.as_bytes().eq_ignore_ascii_case(name)) {
            if found[i].replace(value).is_some() {
                return Err(RequestError::Duplicate(HEADERS[i]));
            }
        }
    }
    let [method, user, pass, protocol, attempt, client_ip] = found;

    let method = method.ok_or(RequestError::Missing("Auth-Method"))?;
    if method.is_empty() || !method.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return Err(RequestError::Invalid("Auth-Method"));
    }
    let user = Username::new(unescape(user.ok_or(RequestError::Missing("Auth-User"))?, "Auth-User")?)?;
    let pass = unescape(pass.unwrap_or_default(), "Auth-Pass")?;
    if pass.len() > MAX_PASSWORD_BYTES || pass.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(RequestError::Invalid("Auth-Pass"));
    }
    let pass = String::from_utf8(pass).map_err(|_| RequestError::Invalid("Auth-Pass"))?;
    let protocol = Protocol::parse(protocol.ok_or(RequestError::Missing("Auth-Protocol"))?)?;
    let attempt = match attempt {
        None => 1,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .ok_or(RequestError::Invalid("Auth-Login-Attempt"))?,
    };
    let client_ip = client_ip.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());

    Ok(AuthRequest {
        method: String::from_utf8_lossy(method).into_owned(),
        user,
        pass: Secret::new(pass),
        protocol,
        attempt,
        client_ip,
    })
}

/// Undoes nginx's `ngx_escape_uri(.., NGX_ESCAPE_MAIL_AUTH)`: `%XX` becomes the byte XX, all
/// other bytes stay. A `%` not followed by two hex digits is an error (nginx never sends one).
fn unescape(value: &[u8], header: &'static str) -> Result<Vec<u8>, RequestError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            let (hi, lo) = value
                .get(i + 1)
                .zip(value.get(i + 2))
                .and_then(|(h, l)| Some((hex(*h)?, hex(*l)?)))
                .ok_or(RequestError::Invalid(header))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A mail backend as nginx needs it: an IP literal and one port per protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Address (nginx mail does not resolve host names in `Auth-Server`).
    pub ip: IpAddr,
    /// IMAP port.
    pub imap_port: u16,
    /// POP3 port.
    pub pop3_port: u16,
}

impl Backend {
    fn port(&self, protocol: Protocol) -> Option<u16> {
        match protocol {
            Protocol::Imap => Some(self.imap_port),
            Protocol::Pop3 => Some(self.pop3_port),
            Protocol::Smtp => None,
        }
    }
}

/// Where the roles database sends a verified user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    /// To this backend.
    Backend(Backend),
    /// The user has no role (no mailbox on this platform): a clear, final refusal.
    NoRole,
    /// The mailbox can't be served right now (backend down, user being moved): a temporary
    /// failure, with the reason for the log.
    Unavailable(String),
}

/// The knobs of a decision, from the location's directives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `mailauth_fail_delay`: how long nginx makes the client wait after a refused login
    /// (`Auth-Wait`, whole seconds).
    pub fail_delay: Duration,
    /// `mailauth_max_attempts`: from this attempt on a connection, a refusal carries no
    /// `Auth-Wait`, so nginx closes the connection instead of offering another try.
    pub max_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { fail_delay: Duration::from_secs(3), max_attempts: 3 }
    }
}

/// The answer to nginx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Log in: proxy to `server:port` and send `pass` (a login ticket) as the password.
    Ok {
        /// Backend address.
        server: IpAddr,
        /// Backend port for the request's protocol.
        port: u16,
        /// The password nginx presents to the backend: a login ticket, never the user's own.
        pass: Secret<String>,
    },
    /// Refuse with `message`; with `wait`, nginx lets the client retry after that many seconds.
    Refuse {
        /// Text for the client (no CR/LF).
        message: &'static str,
        /// `Auth-Wait` in seconds, `None` to make nginx close the connection.
        wait: Option<u64>,
    },
}

impl Answer {
    /// The response headers, in order. Values never contain CR, LF or NUL: the ticket is
    /// base64url-like text and the messages are constants.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        self.each_header(|name, value| {
            h.push((name, value.to_owned()));
            true
        });
        h
    }

    /// Calls `add` with each response header of [`Answer::headers`], in order, without
    /// allocating; stops and returns false as soon as `add` does.
    pub fn each_header(&self, mut add: impl FnMut(&'static str, &str) -> bool) -> bool {
        let mut buf = ShortText::default();
        match self {
            Answer::Ok { server, port, pass } => {
                add("Auth-Status", "OK")
                    && add("Auth-Server", buf.format(format_args!("{server}")))
                    && add("Auth-Port", buf.format(format_args!("{port}")))
                    && add("Auth-Pass", pass.expose())
            }
            Answer::Refuse { message, wait } => {
                add("Auth-Status", message)
                    && wait.is_none_or(|wait| add("Auth-Wait", buf.format(format_args!("{wait}"))))
            }
        }
    }

    /// Whether this is a login.
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Ok { .. })
    }
}

/// A stack buffer for one short header value (an IP address, a port, a number of seconds).
struct ShortText {
    buf: [u8; 64],
    len: usize,
}

impl Default for ShortText {
    fn default() -> Self {
        Self { buf: [0; 64], len: 0 }
    }
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl ShortText {
    /// Formats `args` (at most 64 bytes: an IPv6 address with scope takes at most 47) in place of
    /// the previous text.
    fn format(&mut self, args: fmt::Arguments<'_>) -> &str {
        self.len = 0;
        fmt::Write::write_fmt(self, args).expect("short header values fit in 64 bytes");
        std::str::from_utf8(&self.buf[..self.len]).expect("formatted from str")
    }
}

/// The answer for a verified user, once the roles database has said where the mailbox is.
/// `ticket` is called only when the login goes through.
pub fn route(request: &AuthRequest, routing: &Routing, policy: &Policy, ticket: impl FnOnce() -> String) -> Answer {
    match routing {
        Routing::Backend(backend) => match backend.port(request.protocol) {
            Some(port) => Answer::Ok { server: backend.ip, port, pass: Secret::new(ticket()) },
            None => refuse(NO_SUCH_SERVICE, request.attempt, policy),
        },
        Routing::NoRole => Answer::Refuse { message: NO_MAILBOX, wait: None },
        Routing::Unavailable(_) => refuse(MAILBOX_UNAVAILABLE, request.attempt, policy),
    }
}

/// Answers a request that did not parse: client-caused errors look like a wrong password,
/// anything else like a temporary server problem.
pub fn decide_unparsable(error: &RequestError, attempt: u32, policy: &Policy) -> Answer {
    let message = if error.is_client_input() { INVALID_LOGIN } else { TEMP_FAILURE };
    refuse(message, attempt, policy)
}

/// A refusal with `message`, with `Auth-Wait` unless this was the last allowed attempt.
pub fn refuse(message: &'static str, attempt: u32, policy: &Policy) -> Answer {
    let wait = (attempt < policy.max_attempts).then_some(policy.fail_delay.as_secs());
    Answer::Refuse { message, wait }
}

/// `Auth-Login-Attempt` read leniently, for answering a request that failed to parse.
pub fn attempt_of<'a, I>(headers: I) -> u32
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    headers
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"Auth-Login-Attempt"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Result<AuthRequest, RequestError> {
        parse_request(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn login(user: &str, protocol: &str, attempt: &str) -> AuthRequest {
        req(&[
            ("Host", "localhost"),
            ("Auth-Method", "plain"),
            ("Auth-User", user),
            ("Auth-Pass", "secret"),
            ("Auth-Protocol", protocol),
            ("Auth-Login-Attempt", attempt),
            ("Client-IP", "192.0.2.7"),
        ])
        .unwrap()
    }

    fn h(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    const B: Backend = Backend { ip: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 5)), imap_port: 143, pop3_port: 110 };

    #[test]
    fn routed_user_gets_backend_port_and_ticket() {
        let p = Policy::default();
        let a = route(&login("demo1", "imap", "1"), &Routing::Backend(B), &p, || "MST1.t".into());
        assert_eq!(
            a.headers(),
            h(&[("Auth-Status", "OK"), ("Auth-Server", "10.0.0.5"), ("Auth-Port", "143"), ("Auth-Pass", "MST1.t")])
        );
        let a = route(&login("demo1", "pop3", "1"), &Routing::Backend(B), &p, || "MST1.t".into());
        assert_eq!(a.headers()[2], ("Auth-Port", "110".to_owned()));
        // The user's own password is never the answer's Auth-Pass.
        assert!(!a.headers().iter().any(|(_, v)| v == "secret"));
    }

    #[test]
    fn no_role_is_a_clear_final_refusal() {
        let a = route(&login("x", "imap", "1"), &Routing::NoRole, &Policy::default(), || unreachable!());
        assert_eq!(a.headers(), h(&[("Auth-Status", NO_MAILBOX)]));
    }

    #[test]
    fn unavailable_backend_is_temporary_not_wrong_password() {
        let a = route(
            &login("x", "imap", "1"),
            &Routing::Unavailable("down".into()),
            &Policy::default(),
            || unreachable!(),
        );
        assert_eq!(a.headers(), h(&[("Auth-Status", MAILBOX_UNAVAILABLE), ("Auth-Wait", "3")]));
        let a = route(
            &login("x", "imap", "3"),
            &Routing::Unavailable("down".into()),
            &Policy::default(),
            || unreachable!(),
        );
        assert_eq!(a.headers(), h(&[("Auth-Status", MAILBOX_UNAVAILABLE)]));
    }

    #[test]
    fn smtp_has_no_backend_port_and_is_refused() {
        let a = route(&login("x", "smtp", "1"), &Routing::Backend(B), &Policy::default(), || unreachable!());
        assert_eq!(a.headers()[0].1, NO_SUCH_SERVICE);
    }

    #[test]
    fn refusals_wait_until_the_last_attempt() {
        let p = Policy { fail_delay: Duration::from_secs(10), max_attempts: 2 };
        assert_eq!(refuse(INVALID_LOGIN, 1, &p).headers(), h(&[("Auth-Status", INVALID_LOGIN), ("Auth-Wait", "10")]));
        assert_eq!(refuse(INVALID_LOGIN, 2, &p).headers(), h(&[("Auth-Status", INVALID_LOGIN)]));
        assert_eq!(refuse(LOCKED_OUT, 5, &p).headers(), h(&[("Auth-Status", LOCKED_OUT)]));
    }

    #[test]
    fn escaped_user_and_password_are_unescaped() {
        let r = req(&[
            ("auth-method", "plain"),
            ("AUTH-USER", "d%65mo2"),
            ("Auth-Pass", "p%25%20w"),
            ("Auth-Protocol", "imap"),
        ])
        .unwrap();
        assert_eq!(r.user.as_str(), "demo2");
        assert_eq!(r.pass.expose(), "p% w");
        assert_eq!(r.attempt, 1);
        assert_eq!(r.client_ip, None);
        assert_eq!(login("a", "imap", "2").client_ip, Some("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn control_characters_are_refused_not_injected() {
        for user in ["a%0D%0AAuth-Status: OK", "a%00b", "%0A", "a\tb", "a%0Db"] {
            let e = req(&[("Auth-Method", "plain"), ("Auth-User", user), ("Auth-Protocol", "imap")]).unwrap_err();
            assert_eq!(e, RequestError::Invalid("Auth-User"), "{user:?}");
            assert!(e.is_client_input());
        }
        for pass in ["demo%0D%0AAuth-Server: 6.6.6.6", "a%00", "%0A"] {
            let e = req(&[
                ("Auth-Method", "plain"),
                ("Auth-User", "demo1"),
                ("Auth-Pass", pass),
                ("Auth-Protocol", "imap"),
            ])
            .unwrap_err();
            assert_eq!(e, RequestError::Invalid("Auth-Pass"));
            assert_eq!(
                decide_unparsable(&e, 1, &Policy::default()).headers(),
                h(&[("Auth-Status", INVALID_LOGIN), ("Auth-Wait", "3")])
            );
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        let base = [("Auth-Method", "plain"), ("Auth-User", "demo1"), ("Auth-Protocol", "imap")];
        assert_eq!(req(&base[1..]).unwrap_err(), RequestError::Missing("Auth-Method"));
        assert_eq!(req(&[base[0], base[2]]).unwrap_err(), RequestError::Missing("Auth-User"));
        assert_eq!(req(&base[..2]).unwrap_err(), RequestError::Missing("Auth-Protocol"));
        let mut dup = base.to_vec();
        dup.push(("auth-user", "demo2"));
        assert_eq!(req(&dup).unwrap_err(), RequestError::Duplicate("Auth-User"));
        let mut bad = base.to_vec();
        bad[1] = ("Auth-User", "demo%4");
        assert_eq!(req(&bad).unwrap_err(), RequestError::Invalid("Auth-User"));
        bad[1] = ("Auth-User", "");
        assert_eq!(req(&bad).unwrap_err(), RequestError::Invalid("Auth-User"));
        let mut proto = base.to_vec();
        proto[2] = ("Auth-Protocol", "nntp");
        assert_eq!(req(&proto).unwrap_err(), RequestError::Invalid("Auth-Protocol"));
        let mut attempt = base.to_vec();
        attempt.push(("Auth-Login-Attempt", "0"));
        assert_eq!(req(&attempt).unwrap_err(), RequestError::Invalid("Auth-Login-Attempt"));
        let e = RequestError::Missing("Auth-Method");
        assert!(!e.is_client_input());
        assert_eq!(decide_unparsable(&e, 1, &Policy::default()).headers()[0].1, TEMP_FAILURE);
    }

    #[test]
    fn long_values_are_refused() {
        let long = "a".repeat(MAX_USERNAME_BYTES + 1);
        let e = req(&[("Auth-Method", "plain"), ("Auth-User", &long), ("Auth-Protocol", "imap")]);
        assert_eq!(e.unwrap_err(), RequestError::Invalid("Auth-User"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let r = req(&[
            ("Auth-Method", "plain"),
            ("Auth-User", "demo1"),
            ("Auth-Pass", "hunter2"),
            ("Auth-Protocol", "imap"),
        ])
        .unwrap();
        let a = route(&r, &Routing::Backend(B), &Policy::default(), || "MST1.ticket".into());
        let printed = format!("{r:?} {a:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("MST1"), "{printed}");
    }

    #[test]
    fn attempt_is_read_leniently_for_unparsable_requests() {
        let hs: [(&[u8], &[u8]); 2] = [(b"Auth-User", b"%"), (b"auth-login-attempt", b"2")];
        assert_eq!(attempt_of(hs), 2);
        assert_eq!(attempt_of([(&b"x"[..], &b"y"[..])]), 1);
    }
}
