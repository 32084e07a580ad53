//! Tokens of a Sieve script (RFC 5228 section 8.1, "Lexical Tokens").
//!
//! The whole script is tokenized up front; every token carries the 1-based
//! line and column (in characters) where it starts, so that parse errors
//! can point at it.

use crate::error::{ParseError, Pos};

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// `identifier`, lower-cased (identifiers are case-insensitive).
    Ident(String),
    /// `tag` (`":" identifier`), lower-cased, without the colon.
    Tag(String),
    /// `number` with its `QUANTIFIER` (K, M, G) already applied.
    Number(u64),
    /// `quoted-string` or `multi-line`, escapes and dot-stuffing undone.
    Str(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semicolon,
    Eof,
}

impl Tok {
    /// How the token is named in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier '{s}'"),
            Tok::Tag(s) => format!("tag ':{s}'"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(_) => "string".to_owned(),
            Tok::LBracket => "'['".to_owned(),
            Tok::RBracket => "']'".to_owned(),
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::LBrace => "'{'".to_owned(),
            Tok::RBrace => "'}'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Semicolon => "';'".to_owned(),
            Tok::Eof => "end of script".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Tokenizes a whole script. The last token is always [`Tok::Eof`].
pub(crate) fn tokenize(script: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer { chars: script.chars().collect(), i: 0, line: 1, col: 1 };
    let mut out = Vec::new();
    loop {
        lx.skip_blanks()?;
        let pos = lx.pos();
        let Some(c) = lx.peek(0) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            '[' | ']' | '(' | ')' | '{' | '}' | ',' | ';' => {
                lx.bump();
                match c {
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    ',' => Tok::Comma,
                    _ => Tok::Semicolon,
                }
            }
            '"' => lx.quoted(pos)?,
            ':' => {
                lx.bump();
                match lx.peek(0) {
                    Some(c) if is_ident_start(c) => Tok::Tag(lx.ident()),
                    _ => return Err(ParseError::new(pos, "expected a tag name after ':'")),
                }
            }
            c if c.is_ascii_digit() => lx.number(pos)?,
            c if is_ident_start(c) => {
                let word = lx.ident();
                if word == "text" && lx.peek(0) == Some(':') {
                    lx.bump();
                    lx.multiline(pos)?
                } else {
                    Tok::Ident(word)
                }
            }
            other => return Err(ParseError::new(pos, format!("unexpected character '{}'", other.escape_default()))),
        };
        out.push(Token { tok, pos });
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

impl Lexer {
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.col }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// White space, `hash-comment` and `bracket-comment`.
    fn skip_blanks(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek(0) {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('#') => {
                    while !matches!(self.peek(0), None | Some('\n')) {
                        self.bump();
                    }
                }
                Some('/') if self.peek(1) == Some('*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(ParseError::new(start, "unterminated comment ('/*' without '*/')")),
                            Some('*') if self.peek(0) == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0).filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            s.push(c.to_ascii_lowercase());
            self.bump();
        }
        s
    }

    /// `number = 1*DIGIT [ QUANTIFIER ]`, QUANTIFIER = "K" / "M" / "G".
    fn number(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        let mut n: u64 = 0;
        let too_big = || ParseError::new(pos, "number too large");
        while let Some(d) = self.peek(0).and_then(|c| c.to_digit(10)) {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d))).ok_or_else(too_big)?;
            self.bump();
        }
        let shift = match self.peek(0).map(|c| c.to_ascii_uppercase()) {
            Some('K') => 10,
            Some('M') => 20,
            Some('G') => 30,
            _ => 0,
        };
        if shift > 0 {
            self.bump();
            n = n.checked_mul(1 << shift).ok_or_else(too_big)?;
        }
        Ok(Tok::Number(n))
    }

    /// `quoted-string`: `\\` and `\"` are escapes; any other backslash is
    /// dropped (RFC 5228 section 2.4.2). Line breaks may occur inside.
    fn quoted(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(ParseError::new(pos, "unterminated string (missing closing '\"')")),
                Some('"') => return Ok(Tok::Str(s)),
                Some('\\') => match self.bump() {
                    None => return Err(ParseError::new(pos, "unterminated string (missing closing '\"')")),
                    Some(c) => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// `multi-line = "text:" *(SP / HTAB) (hash-comment / CRLF)
    /// *(multiline-literal / multiline-dotstart) "." CRLF`. Line endings
    /// are kept as written; a leading "." of a content line is removed.
    fn multiline(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.bump();
        }
        match self.peek(0) {
            Some('#') => {
                while !matches!(self.peek(0), None | Some('\n')) {
                    self.bump();
                }
            }
            Some('\r') if self.peek(1) == Some('\n') => {}
            Some('\n') => {}
            _ => return Err(ParseError::new(self.pos(), "'text:' must be followed by a line break")),
        }
        if self.peek(0) == Some('\r') {
            self.bump();
        }
        self.bump();
        let mut s = String::new();
        loop {
            if self.peek(0).is_none() {
                return Err(ParseError::new(pos, "unterminated multi-line string (missing a line with a single '.')"));
            }
            let mut line = String::new();
            while let Some(c) = self.peek(0) {
                self.bump();
                line.push(c);
                if c == '\n' {
                    break;
                }
            }
            let content = line.trim_end_matches(['\r', '\n']);
            if content == "." {
                return Ok(Tok::Str(s));
            }
            s.push_str(line.strip_prefix('.').unwrap_or(&line));
        }
    }
}
