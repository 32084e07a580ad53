//! Errors: [`ParseError`] when a script is rejected (at upload or compile
//! time), [`RuntimeError`] when a run must be abandoned (the caller then
//! files the message into INBOX, RFC 5228 section 2.10.6).

use std::fmt;

/// A position in a script: 1-based line and 1-based column, counted in
/// characters (not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a script was rejected, and where. `Display` gives
/// `line 3, column 5: unknown command 'fileint'`, which is what
/// ManageSieve's PUTSCRIPT/CHECKSCRIPT should report to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    /// Where the offending token starts.
    pub pos: Pos,
    /// What is wrong, in words meant for the script's author.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        ParseError { pos, message: message.into() }
    }

    /// 1-based line of the error.
    pub fn line(&self) -> u32 {
        self.pos.line
    }

    /// 1-based column (in characters) of the error.
    pub fn column(&self) -> u32 {
        self.pos.column
    }
}

/// Why a run was abandoned. No action of an abandoned run may be executed;
/// the caller falls back to keeping the message (RFC 5228 section 2.10.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// More distinct `redirect` targets than [`crate::Limits::max_redirects`].
    #[error("too many redirects (limit {limit})")]
    TooManyRedirects { limit: usize },
    /// More actions than [`crate::Limits::max_actions`].
    #[error("too many actions (limit {limit})")]
    TooManyActions { limit: usize },
    /// `vacation` executed twice in one run (RFC 5230 section 4.7).
    #[error("vacation executed more than once")]
    DuplicateVacation,
    /// A string built at run time (variable expansion, `set`) exceeded
    /// [`crate::Limits::max_string_len`].
    #[error("string of {len} bytes exceeds the limit of {limit}")]
    StringTooLong { len: usize, limit: usize },
    /// More variables than [`crate::Limits::max_variables`].
    #[error("too many variables (limit {limit})")]
    TooManyVariables { limit: usize },
    /// A `:matches` pattern needed more backtracking steps than the budget.
    #[error("match pattern too complex")]
    MatchTooComplex,
    /// A `redirect` address (after variable expansion) is not an addr-spec.
    #[error("invalid redirect address '{0}'")]
    InvalidAddress(String),
    /// A `fileinto` mailbox (after variable expansion) is empty.
    #[error("invalid mailbox name '{0}'")]
    InvalidMailbox(String),
}
