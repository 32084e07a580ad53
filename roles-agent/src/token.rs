//! The shared secret a follower presents in its HELLO.

use std::path::Path;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A replication token: the content of `--token-file`, surrounding whitespace removed. Its Debug
/// prints `***`; it never reaches a log line.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Reads `--token-file`.
    ///
    /// # Errors
    /// Unreadable file; a token that is empty, shorter than 16 characters or not one word of
    /// printable ASCII.
    pub fn from_file(path: &Path) -> anyhow::Result<Token> {
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("--token-file: cannot read {}", path.display()))?;
        Token::new(raw.trim()).with_context(|| format!("--token-file {}", path.display()))
    }

    /// # Errors
    /// As [`Token::from_file`].
    pub fn new(token: &str) -> anyhow::Result<Token> {
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the token must be one word of at least 16 printable ASCII characters");
        }
        Ok(Token(token.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison (of SHA-256 digests, so neither the content nor the length of
    /// the expected token leaks through timing).
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        a.as_slice().ct_eq(b.as_slice()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_validate() {
        let t = Token::new("0123456789abcdef").unwrap();
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches(""));
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, long").is_err());
        assert_eq!(format!("{t:?}"), "Token(***)");
    }
}
