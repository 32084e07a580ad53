//! Known-answer tests for the public API.

mod e2e;
mod fuzz;
mod sections;
mod structure;
mod text;

/// Turns `\n` into `\r\n` so test messages can be written readably.
pub(crate) fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}
