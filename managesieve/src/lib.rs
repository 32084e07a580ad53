//! ManageSieve (RFC 5804) for `mailstored`: the wire codec and the session state machine,
//! without sockets. The daemon's connection shell owns the socket, TLS and timeouts; it feeds
//! what it reads into [`Session::feed`], writes [`Output::bytes`] back and obeys
//! [`Output::action`] ([`Action::StartTls`], [`Action::Close`]).
//!
//! Three places, as for LMTP:
//! - [`framing`]: bytes into complete commands (lines and `{n+}` literals) with size caps;
//! - [`codec`]: commands parsed after RFC 5804 section 4's grammar, responses encoded;
//! - [`session`]: which command may come when, SASL PLAIN, and the [`ScriptStore`] calls.
//!
//! Credentials are checked by the shell's [`Authenticator`] (directory, user file or a frontend
//! login ticket); scripts are kept by the [`ScriptStore`] it returns for the user.
//! [`MemoryStore`] is an in-memory store for tests and examples.
//!
//! ```
//! use mailscale_managesieve::{Action, AuthError, Authenticator, Config, Login, MemoryStore, PlainCredentials, Session};
//!
//! struct OneUser(MemoryStore);
//! impl Authenticator for OneUser {
//!     type Store = MemoryStore;
//!     fn authenticate(&mut self, c: &PlainCredentials) -> Result<Login<MemoryStore>, AuthError> {
//!         if c.authcid == "tim" && c.password.expose() == "tanstaaftanstaaf" && c.authzid.is_none() {
//!             Ok(Login { owner: "tim".into(), store: self.0.clone() })
//!         } else {
//!             Err(AuthError::Rejected)
//!         }
//!     }
//! }
//!
//! let config = Config { tls_available: true, ..Config::default() };
//! let mut session = Session::new(config, OneUser(MemoryStore::new()), true);
//! let greeting = session.greeting();
//! assert!(greeting.ends_with(b"OK \"ManageSieve ready\"\r\n"));
//! let out = session.feed(b"AUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n");
//! assert_eq!(out.bytes, b"OK\r\n");
//! let out = session.feed(b"LOGOUT\r\n");
//! assert_eq!(out.action, Some(Action::Close));
//! ```

#![forbid(unsafe_code)]

pub mod codec;
pub mod framing;
pub mod session;
pub mod store;

use std::fmt;

pub use codec::{parse_command, Code, Command, CommandError, NameError, Response, ScriptName, Status};
pub use framing::{Fragment, Frame, FrameEvent, FrameLimits, Framer, FramingError, Refusal};
pub use session::{Action, Output, Session};
pub use store::{AuthError, Authenticator, Login, MemoryStore, PlainCredentials, ScriptStore, StoreError};

/// What a session allows and announces. Validated by construction: every field has a usable
/// value; the shell fills it from its own config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `IMPLEMENTATION` capability (RFC 5804 section 1.7).
    pub implementation: String,
    /// The shell can run STARTTLS on this connection: `STARTTLS` is advertised until TLS is
    /// active (RFC 5804 section 2.2).
    pub tls_available: bool,
    /// Offer and accept SASL PLAIN on a connection without TLS. Off by default: PLAIN sends
    /// the password in the clear, and the answer without TLS is `NO (ENCRYPT-NEEDED)`.
    pub allow_plaintext_auth: bool,
    /// Accept synchronising literals `{n}` from the client and answer them with a `+`
    /// continuation line. RFC 5804 section 4 allows clients only `{n+}` (`literal-c2s`;
    /// `literal-s2c` is server to client), so by default `{n}` ends the connection with
    /// `BYE`: the client may or may not send the data, and either guess could run script
    /// text as commands.
    pub allow_sync_literals: bool,
    /// Longest command line in bytes (all the lines of one command, literals excluded), and
    /// the largest literal accepted before authentication.
    pub max_line: usize,
    /// Largest script (and literal) accepted after authentication; larger gets
    /// `NO (QUOTA/MAXSIZE)`.
    pub max_script_size: usize,
    /// Failed AUTHENTICATE attempts before `BYE` (RFC 5804 section 2.1 example 2 uses 3).
    pub max_auth_failures: u32,
    /// The `MAXREDIRECTS` capability.
    pub max_redirects: usize,
}

impl Default for Config {
    fn default() -> Self {
        let sieve = mailscale_sieve::Limits::default();
        Config {
            implementation: "mailscale ManageSieve".into(),
            tls_available: false,
            allow_plaintext_auth: false,
            allow_sync_literals: false,
            max_line: 8 * 1024,
            max_script_size: sieve.max_script_size,
            max_auth_failures: 3,
            max_redirects: sieve.max_redirects,
        }
    }
}

/// A password or SASL response: `Debug` prints `***`, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
