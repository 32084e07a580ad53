//! Sieve mail filtering for `mailstored`'s LMTP delivery and ManageSieve:
//! a parser and interpreter with no I/O.
//!
//! Language: RFC 5228 (require, if/elsif/else, stop, keep, discard,
//! redirect, fileinto; address, header, envelope, exists, size, allof,
//! anyof, not, true, false; `:is`/`:contains`/`:matches`;
//! `i;ascii-casemap` and `i;octet`; `:all`/`:localpart`/`:domain`) with
//! the extensions imap4flags (RFC 5232), copy (RFC 3894), vacation
//! (RFC 5230), body (RFC 5173), variables (RFC 5229) and
//! encoded-character (RFC 5228 section 2.4.2.4).
//!
//! ```
//! use mailscale_sieve::{parse, Action, Envelope, Limits, MessageContext};
//!
//! let script = parse(r#"require "fileinto";
//! if header :contains "subject" "[list]" { fileinto "Lists"; }"#).unwrap();
//! let msg = MessageContext::new(b"Subject: [list] hello\r\n\r\nbody\r\n");
//! let out = script.run(&msg, &Envelope::default(), &Limits::default()).unwrap();
//! assert_eq!(out.actions, [Action::FileInto { mailbox: "Lists".into(), flags: vec![], copy: false }]);
//! ```
//!
//! The caller executes [`Outcome::actions`] in order. If [`Script::run`]
//! fails, no action may be executed and the message is filed into INBOX
//! (RFC 5228 section 2.10.6). Vacation de-duplication ("answered this
//! sender within `:days`?") is the caller's, keyed by
//! [`VacationReply::dedup_key`].

#![forbid(unsafe_code)]

mod ast;
mod compile;
mod error;
mod interp;
mod lexer;
mod matching;
mod message;
mod parser;
mod vacation;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

pub use error::{ParseError, Pos, RuntimeError};
pub use message::{Envelope, MessageContext};
pub use vacation::{VacationReply, VacationSkip};

/// Resource limits for parsing and running scripts. Every limit turns into
/// a [`ParseError`] or [`RuntimeError`], never into a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest script accepted, in bytes.
    pub max_script_size: usize,
    /// Deepest nesting of blocks and tests (`if` in `if`, `not` in `allof`, ...).
    pub max_nesting: usize,
    /// Most distinct redirect targets in one run.
    pub max_redirects: usize,
    /// Most actions (after merging duplicates) in one run.
    pub max_actions: usize,
    /// Longest string built at run time (variable expansion, `set`), in bytes.
    pub max_string_len: usize,
    /// Most variables a run may create.
    pub max_variables: usize,
    /// Smallest vacation `:days` honoured; smaller values are raised to it.
    pub min_vacation_days: u32,
    /// Largest vacation `:days` honoured; larger values are lowered to it.
    pub max_vacation_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_size: 1 << 20,
            max_nesting: 32,
            max_redirects: 4,
            max_actions: 32,
            max_string_len: 64 * 1024,
            max_variables: 256,
            min_vacation_days: 1,
            max_vacation_days: 365,
        }
    }
}

/// The extensions this implementation supports, in the form ManageSieve's
/// `SIEVE` capability lists them (RFC 5804 section 1.7): space-separated.
pub fn capabilities() -> String {
    parser::EXTENSIONS.join(" ")
}

/// A parsed, validated script, ready to run against any number of messages.
#[derive(Debug, Clone)]
pub struct Script {
    commands: ast::Block,
    required: BTreeSet<&'static str>,
}

/// One thing to do with the message, after duplicates have been merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store into the user's INBOX with these IMAP flags. Also the
    /// implicit keep (see [`Outcome::implicit_keep`]).
    Keep { flags: Vec<String> },
    /// Store into `mailbox` (as written in the script, variables expanded)
    /// with these flags. `copy` is `:copy` (RFC 3894): it did not cancel
    /// the implicit keep.
    FileInto { mailbox: String, flags: Vec<String>, copy: bool },
    /// Forward the message unchanged to `address` (RFC 5228 section 4.2).
    Redirect { address: String, copy: bool },
    /// The message is not stored anywhere. Present only when a `discard`
    /// ran and no keep or fileinto remains; purely informational.
    Discard,
    /// Send this auto-reply, unless the caller already answered
    /// [`VacationReply::dedup_key`] within [`VacationReply::days`].
    Vacation(VacationReply),
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What to do, in execution order; the implicit keep, when it applies,
    /// is a [`Action::Keep`] with the imap4flags internal variable's flags.
    pub actions: Vec<Action>,
    /// No fileinto, redirect (without `:copy`), keep or discard cancelled
    /// the implicit keep (RFC 5228 section 2.10.2).
    pub implicit_keep: bool,
    /// Why a vacation command that ran produced no reply, for the log.
    pub vacation_skipped: Option<VacationSkip>,
}

/// Parses a script with the default [`Limits`].
///
/// # Errors
///
/// A [`ParseError`] with the 1-based line and column of the first problem:
/// syntax (missing `;`, unterminated string, ...), unknown commands, tests
/// or tags, arguments of the wrong type, an extension used without
/// `require`, or an unsupported `require`.
pub fn parse(script: &str) -> Result<Script, ParseError> {
    parse_with_limits(script, &Limits::default())
}

/// Parses a script, enforcing `limits.max_script_size` and
/// `limits.max_nesting`.
///
/// # Errors
///
/// As [`parse`], and when a limit is exceeded.
pub fn parse_with_limits(script: &str, limits: &Limits) -> Result<Script, ParseError> {
    let (commands, required) = parser::parse(script, limits)?;
    Ok(Script { commands, required })
}

impl Script {
    /// The extensions the script requires, lower-cased.
    pub fn required(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.required.iter().copied()
    }

    /// Runs the script against one message.
    ///
    /// # Errors
    ///
    /// A [`RuntimeError`] when a limit is exceeded, `vacation` runs twice,
    /// or a redirect address or mailbox built from variables is invalid.
    /// The caller must then ignore every action and keep the message.
    pub fn run(&self, msg: &MessageContext<'_>, env: &Envelope, limits: &Limits) -> Result<Outcome, RuntimeError> {
        interp::Run::new(msg, env, limits, self.required.contains("variables")).run(&self.commands)
    }
}
