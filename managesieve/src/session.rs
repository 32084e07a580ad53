//! The ManageSieve session (RFC 5804 section 2): which command may come in which state, SASL
//! PLAIN, STARTTLS, and the script commands run against the user's [`ScriptStore`]. Bytes in,
//! bytes and [`Action`]s out; the shell owns the socket.

use base64::Engine as _;

use crate::codec::{encode_string, parse_command, parse_sasl_response, Code, Command, Response, ScriptName};
use crate::framing::{FrameEvent, FrameLimits, Framer, Refusal};
use crate::store::{AuthError, Authenticator, Login, PlainCredentials, ScriptStore, StoreError};
use crate::{Config, Secret};

/// What the shell must do after writing [`Output::bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the TLS handshake on the connection, then write [`Session::tls_established`]'s
    /// bytes. Any bytes the shell read after the STARTTLS command are dropped by the session.
    StartTls,
    /// Close the connection.
    Close,
}

/// The answer to some input: bytes to write (possibly none), and at most one action. When
/// there is an action, the session has stopped reading at it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub action: Option<Action>,
}

/// Where the session is.
enum State<S> {
    NotAuthenticated,
    /// AUTHENTICATE "PLAIN" without an initial response: the empty challenge was sent and the
    /// client's response (`string CRLF`) comes next.
    SaslPlain,
    Authenticated {
        owner: String,
        store: S,
    },
    /// STARTTLS was answered OK; nothing is read until the handshake is done.
    StartingTls,
    Closed,
}

/// The continuation for an accepted synchronising literal (only with
/// [`Config::allow_sync_literals`]). ManageSieve defines none; this is the IMAP form that
/// clients sending `{n}` wait for.
const CONTINUATION: &[u8] = b"+ \"Ready for literal data\"\r\n";

/// One ManageSieve connection.
pub struct Session<A: Authenticator> {
    config: Config,
    auth: A,
    state: State<A::Store>,
    tls: bool,
    failures: u32,
    framer: Framer,
}

impl<A: Authenticator> Session<A> {
    /// A new session; `tls` is true on a connection that is TLS from the start.
    pub fn new(config: Config, auth: A, tls: bool) -> Self {
        Session { config, auth, state: State::NotAuthenticated, tls, failures: 0, framer: Framer::new() }
    }

    /// The greeting: the capabilities and `OK` (RFC 5804 section 1.7).
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = self.capabilities();
        Response::ok().with_text("ManageSieve ready").encode(&mut out);
        out
    }

    /// The authenticated user, if any.
    pub fn owner(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated { owner, .. } => Some(owner),
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Handles received bytes: runs every complete command and buffers the rest. Input after
    /// an [`Action`], or while STARTTLS is pending, or after close, is discarded. The shell
    /// writes [`Output::bytes`] before it waits for more input: they may hold the `""` PLAIN
    /// challenge or, with [`Config::allow_sync_literals`], the `+` continuation a client
    /// waits for after `{n}`.
    pub fn feed(&mut self, input: &[u8]) -> Output {
        let mut out = Output::default();
        if matches!(self.state, State::StartingTls | State::Closed) {
            return out;
        }
        self.framer.push(input);
        while out.action.is_none() {
            let limits = self.frame_limits();
            match self.framer.next_event(&limits) {
                Ok(None) => break,
                Ok(Some(FrameEvent::Continue)) => out.bytes.extend_from_slice(CONTINUATION),
                Ok(Some(FrameEvent::RefusedSync(refusal))) => self.refuse(&refusal, &mut out),
                Ok(Some(FrameEvent::Frame(frame))) => {
                    if let Some(refusal) = &frame.refused {
                        self.refuse(refusal, &mut out);
                    } else if matches!(self.state, State::SaslPlain) {
                        self.sasl_response(parse_sasl_response(&frame), &mut out);
                    } else {
                        match parse_command(&frame) {
                            Ok(command) => self.command(command, &mut out),
                            Err(e) => Response::no(None, e.to_string()).encode(&mut out.bytes),
                        }
                    }
                }
                Err(e) => self.close(Response::bye(format!("Protocol error: {e}")), &mut out),
            }
        }
        if out.action.is_some() {
            self.framer.clear();
        }
        out
    }

    /// Call once the TLS handshake after [`Action::StartTls`] is done: returns the
    /// capabilities and `OK` to send over TLS (RFC 5804 section 2.2).
    pub fn tls_established(&mut self) -> Vec<u8> {
        self.tls = true;
        self.framer.clear();
        if matches!(self.state, State::StartingTls) {
            self.state = State::NotAuthenticated;
        }
        let mut out = self.capabilities();
        Response::ok().encode(&mut out);
        out
    }

    fn frame_limits(&self) -> FrameLimits {
        let max_literal = match self.state {
            State::Authenticated { .. } => self.config.max_script_size,
            _ => self.config.max_line,
        };
        FrameLimits {
            max_line: self.config.max_line,
            max_literal,
            allow_sync_literals: self.config.allow_sync_literals,
        }
    }

    fn plain_allowed(&self) -> bool {
        self.tls || self.config.allow_plaintext_auth
    }

    /// The capability lines (RFC 5804 section 1.7), without the final OK.
    fn capabilities(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cap = |name: &str, value: Option<&str>| {
            encode_string(&mut out, name.as_bytes());
            if let Some(v) = value {
                out.push(b' ');
                encode_string(&mut out, v.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        };
        cap("IMPLEMENTATION", Some(&self.config.implementation));
        // The list may be empty only while STARTTLS is advertised (section 1.7).
        cap("SASL", Some(if self.plain_allowed() { "PLAIN" } else { "" }));
        cap("SIEVE", Some(&mailscale_sieve::capabilities()));
        let authenticated = matches!(self.state, State::Authenticated { .. });
        if self.config.tls_available && !self.tls && !authenticated {
            cap("STARTTLS", None);
        }
        cap("MAXREDIRECTS", Some(&self.config.max_redirects.to_string()));
        if let State::Authenticated { owner, .. } = &self.state {
            cap("OWNER", Some(owner));
        }
        cap("UNAUTHENTICATE", None);
        cap("VERSION", Some("1.0"));
        out
    }

    fn close(&mut self, response: Response, out: &mut Output) {
        response.encode(&mut out.bytes);
        out.action = Some(Action::Close);
        self.state = State::Closed;
    }

    fn refuse(&mut self, refusal: &Refusal, out: &mut Output) {
        if matches!(self.state, State::SaslPlain) {
            self.state = State::NotAuthenticated;
        }
        let response = match refusal {
            Refusal::LiteralTooLarge { size, limit } if matches!(self.state, State::Authenticated { .. }) => {
                Response::no(Some(Code::QuotaMaxSize), format!("{size} bytes is over the limit of {limit} bytes"))
            }
            Refusal::LiteralTooLarge { size, limit } => {
                Response::no(None, format!("Literal of {size} bytes is over the limit of {limit} before login"))
            }
            Refusal::TooManyLiterals => Response::no(None, "Too many literals in one command"),
        };
        response.encode(&mut out.bytes);
    }

    fn command(&mut self, command: Command, out: &mut Output) {
        let response = match command {
            Command::Capability => {
                out.bytes.extend_from_slice(&self.capabilities());
                Response::ok()
            }
            Command::Logout => return self.close(Response::ok().with_text("Logout completed"), out),
            Command::Noop { tag: Some(tag) } => Response::ok().with_code(Code::Tag(tag)).with_text("Done"),
            Command::Noop { tag: None } => Response::ok().with_text("NOOP completed"),
            Command::StartTls => self.starttls(out),
            Command::Authenticate { mechanism, initial } => match self.authenticate(&mechanism, initial, out) {
                Some(response) => response,
                None => return,
            },
            Command::Unauthenticate => match self.state {
                State::Authenticated { .. } => {
                    self.state = State::NotAuthenticated;
                    Response::ok()
                }
                _ => Response::no(None, "UNAUTHENTICATE: not authenticated"),
            },
            other => {
                let State::Authenticated { store, .. } = &mut self.state else {
                    let why = format!("{} needs authentication: expected AUTHENTICATE first", other.name());
                    return Response::no(None, why).encode(&mut out.bytes);
                };
                script_command(&self.config, store, other, &mut out.bytes)
            }
        };
        if !matches!(self.state, State::Closed) {
            response.encode(&mut out.bytes);
        }
    }

    fn starttls(&mut self, out: &mut Output) -> Response {
        if !matches!(self.state, State::NotAuthenticated) {
            return Response::no(None, "STARTTLS is only allowed before AUTHENTICATE");
        }
        if self.tls {
            return Response::no(None, "TLS is already active");
        }
        if !self.config.tls_available {
            return Response::no(None, "STARTTLS is not available");
        }
        self.state = State::StartingTls;
        out.action = Some(Action::StartTls);
        Response::ok().with_text("Begin TLS negotiation now")
    }

    /// AUTHENTICATE; `None` when a challenge was sent and the status comes later.
    fn authenticate(
        &mut self,
        mechanism: &str,
        initial: Option<Secret<Vec<u8>>>,
        out: &mut Output,
    ) -> Option<Response> {
        if matches!(self.state, State::Authenticated { .. }) {
            return Some(Response::no(None, "Already authenticated"));
        }
        if mechanism != "PLAIN" {
            return Some(Response::no(None, format!("Unsupported SASL mechanism {mechanism}: use PLAIN")));
        }
        if !self.plain_allowed() {
            return Some(Response::no(Some(Code::EncryptNeeded), "PLAIN needs TLS: use STARTTLS first"));
        }
        match initial {
            Some(response) => Some(self.login(&response, out)),
            None => {
                // The empty server challenge of PLAIN (RFC 4616), as a string line.
                out.bytes.extend_from_slice(b"\"\"\r\n");
                self.state = State::SaslPlain;
                None
            }
        }
    }

    /// The client's response to the PLAIN challenge.
    fn sasl_response(&mut self, parsed: Result<Option<Secret<Vec<u8>>>, String>, out: &mut Output) {
        self.state = State::NotAuthenticated;
        let response = match parsed {
            Ok(None) => Response::no(None, "Authentication cancelled"),
            Ok(Some(response)) => self.login(&response, out),
            Err(why) => Response::no(None, format!("Bad SASL response: {why}")),
        };
        if !matches!(self.state, State::Closed) {
            response.encode(&mut out.bytes);
        }
    }

    /// Decodes a PLAIN response and asks the authenticator.
    fn login(&mut self, response: &Secret<Vec<u8>>, out: &mut Output) -> Response {
        let result = match decode_plain(response.expose()) {
            Some(credentials) => self.auth.authenticate(&credentials),
            None => Err(AuthError::Rejected),
        };
        match result {
            Ok(Login { owner, store }) => {
                self.state = State::Authenticated { owner, store };
                self.failures = 0;
                Response::ok()
            }
            Err(AuthError::Rejected) => {
                self.failures += 1;
                if self.failures >= self.config.max_auth_failures {
                    self.close(Response::bye("Too many failed authentication attempts"), out);
                }
                Response::no(None, "Authentication failed")
            }
            Err(AuthError::TryLater(_)) => {
                Response::no(Some(Code::TryLater), "Authentication is temporarily unavailable")
            }
            Err(AuthError::Referral(url)) => Response::no(Some(Code::Referral(url)), "Try another server"),
        }
    }
}

/// SASL PLAIN (RFC 4616): base64 of `[authzid] NUL authcid NUL passwd`, all UTF-8.
fn decode_plain(response: &[u8]) -> Option<PlainCredentials> {
    let raw = base64::engine::general_purpose::STANDARD.decode(response).ok()?;
    let mut parts = raw.split(|&b| b == 0);
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Some(PlainCredentials {
        authzid: Some(text(authzid)?).filter(|z| !z.is_empty()),
        authcid: text(authcid)?,
        password: Secret::new(text(password)?),
    })
}

/// Runs a command that needs authentication; writes any data before the status response.
fn script_command<S: ScriptStore>(config: &Config, store: &mut S, command: Command, out: &mut Vec<u8>) -> Response {
    let result = match command {
        Command::ListScripts => store.list().map(|scripts| {
            for (name, active) in scripts {
                encode_string(out, name.as_str().as_bytes());
                if active {
                    out.extend_from_slice(b" ACTIVE");
                }
                out.extend_from_slice(b"\r\n");
            }
            Response::ok()
        }),
        Command::GetScript(name) => store.get(&name).map(|script| {
            // Always a literal: scripts are multi-line (section 2.9).
            out.extend_from_slice(format!("{{{}}}\r\n", script.len()).as_bytes());
            out.extend_from_slice(script.as_bytes());
            out.extend_from_slice(b"\r\n");
            Response::ok()
        }),
        Command::PutScript { name, script } => match check_script(config, &script) {
            Ok(script) => store.put(&name, script).map(|()| Response::ok()),
            Err(refused) => return refused,
        },
        Command::CheckScript(script) => match check_script(config, &script) {
            Ok(_) => Ok(Response::ok()),
            Err(refused) => return refused,
        },
        Command::SetActive(name) => store.set_active(name.as_ref()).map(|()| Response::ok()),
        Command::DeleteScript(name) => store.delete(&name).map(|()| Response::ok()),
        Command::RenameScript { from, to } => store.rename(&from, &to).map(|()| Response::ok()),
        Command::HaveSpace { name, size } => have_space(config, store, &name, size),
        other => return Response::no(None, format!("{} is not allowed here", other.name())),
    };
    result.unwrap_or_else(|e| store_error(&e))
}

fn have_space<S: ScriptStore>(
    config: &Config,
    store: &mut S,
    name: &ScriptName,
    size: u32,
) -> Result<Response, StoreError> {
    if size as usize > config.max_script_size {
        return Ok(Response::no(
            Some(Code::QuotaMaxSize),
            format!("Scripts are limited to {} bytes", config.max_script_size),
        ));
    }
    store.have_space(name, u64::from(size)).map(|()| Response::ok())
}

/// Size, UTF-8 and Sieve syntax of an uploaded script (RFC 5804 sections 2.6, 2.12).
fn check_script<'a>(config: &Config, script: &'a [u8]) -> Result<&'a str, Response> {
    if script.len() > config.max_script_size {
        return Err(Response::no(
            Some(Code::QuotaMaxSize),
            format!("Scripts are limited to {} bytes", config.max_script_size),
        ));
    }
    let text = std::str::from_utf8(script).map_err(|e| {
        Response::no(None, format!("Script is not valid UTF-8 (first bad byte at offset {})", e.valid_up_to()))
    })?;
    let limits = mailscale_sieve::Limits { max_script_size: config.max_script_size, ..Default::default() };
    mailscale_sieve::parse_with_limits(text, &limits).map_err(|e| Response::no(None, e.to_string()))?;
    Ok(text)
}

fn store_error(e: &StoreError) -> Response {
    let code = match e {
        StoreError::NonExistent => Some(Code::NonExistent),
        StoreError::AlreadyExists => Some(Code::AlreadyExists),
        StoreError::Active => Some(Code::Active),
        StoreError::QuotaMaxScripts => Some(Code::QuotaMaxScripts),
        StoreError::QuotaMaxSize => Some(Code::QuotaMaxSize),
        StoreError::Quota => Some(Code::Quota),
        StoreError::TryLater => Some(Code::TryLater),
        StoreError::Failed(_) => None,
    };
    Response::no(code, e.to_string())
}
