//! The ManageSieve grammar (RFC 5804 section 4): framed commands into [`Command`], and
//! [`Response`]s, capability lines and strings out. No state here.

use std::fmt;

use crate::framing::{Fragment, Frame};
use crate::Secret;

/// A validated script name (RFC 5804 section 1.6): non-empty UTF-8 in Net-Unicode form (no
/// control characters U+0000-001F, U+007F-009F, no U+2028/U+2029), at most
/// [`ScriptName::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptName(String);

/// Why a script name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("script name is empty")]
    Empty,
    #[error("script name is not valid UTF-8")]
    NotUtf8,
    #[error("script name contains a control character")]
    Control,
    #[error("script name is longer than {} characters", ScriptName::MAX_CHARS)]
    TooLong,
}

impl ScriptName {
    /// Longest name accepted, in characters. RFC 5804 section 1.6 asks servers to allow
    /// names of at least 128 characters.
    pub const MAX_CHARS: usize = 128;

    /// # Errors
    ///
    /// [`NameError`] when `name` breaks a rule of RFC 5804 section 1.6.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
            return Err(NameError::Control);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(NameError::TooLong);
        }
        Ok(ScriptName(name.to_string()))
    }

    fn from_bytes(name: &[u8]) -> Result<Self, NameError> {
        ScriptName::new(std::str::from_utf8(name).map_err(|_| NameError::NotUtf8)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScriptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One client command (RFC 5804 section 2; `command` in section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `AUTHENTICATE auth-type [SP string]`; `initial` is the still base64-encoded initial
    /// response.
    Authenticate {
        mechanism: String,
        initial: Option<Secret<Vec<u8>>>,
    },
    StartTls,
    Logout,
    Capability,
    HaveSpace {
        name: ScriptName,
        size: u32,
    },
    PutScript {
        name: ScriptName,
        script: Vec<u8>,
    },
    ListScripts,
    /// `SETACTIVE ""` (`None`) deactivates every script.
    SetActive(Option<ScriptName>),
    GetScript(ScriptName),
    DeleteScript(ScriptName),
    RenameScript {
        from: ScriptName,
        to: ScriptName,
    },
    CheckScript(Vec<u8>),
    /// `NOOP [SP string]`: the string comes back in a `TAG` response code.
    Noop {
        tag: Option<Vec<u8>>,
    },
    Unauthenticate,
}

impl Command {
    /// The command's name, as the RFC spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::StartTls => "STARTTLS",
            Command::Logout => "LOGOUT",
            Command::Capability => "CAPABILITY",
            Command::HaveSpace { .. } => "HAVESPACE",
            Command::PutScript { .. } => "PUTSCRIPT",
            Command::ListScripts => "LISTSCRIPTS",
            Command::SetActive(_) => "SETACTIVE",
            Command::GetScript(_) => "GETSCRIPT",
            Command::DeleteScript(_) => "DELETESCRIPT",
            Command::RenameScript { .. } => "RENAMESCRIPT",
            Command::CheckScript(_) => "CHECKSCRIPT",
            Command::Noop { .. } => "NOOP",
            Command::Unauthenticate => "UNAUTHENTICATE",
        }
    }
}

/// Why a command was refused; the session answers `NO` with the message and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Empty command line")]
    Empty,
    #[error("Unknown command {0}")]
    Unknown(String),
    #[error("Syntax error in {command}: {why}")]
    Syntax { command: &'static str, why: String },
    #[error("Invalid script name: {0}")]
    Name(#[from] NameError),
}

/// Every command of RFC 5804 section 2, as [`Command::name`] spells it.
const VERBS: [&str; 14] = [
    "AUTHENTICATE",
    "STARTTLS",
    "LOGOUT",
    "CAPABILITY",
    "HAVESPACE",
    "PUTSCRIPT",
    "LISTSCRIPTS",
    "SETACTIVE",
    "GETSCRIPT",
    "DELETESCRIPT",
    "RENAMESCRIPT",
    "CHECKSCRIPT",
    "NOOP",
    "UNAUTHENTICATE",
];

/// A token of a command: an atom (command names, numbers) or a string (quoted or literal).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Atom(String),
    Str(Vec<u8>),
}

/// Longest quoted string content (RFC 5804 section 4, `quoted`).
const MAX_QUOTED: usize = 1024;

/// Splits a frame into tokens: SP-separated atoms and quoted strings on lines, each literal
/// one string.
fn tokenize(frame: &Frame) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for fragment in &frame.fragments {
        let line = match fragment {
            Fragment::Literal(data) => {
                tokens.push(Token::Str(data.clone()));
                continue;
            }
            Fragment::Line(line) => line,
        };
        let mut i = 0;
        while i < line.len() {
            match line[i] {
                b' ' => {
                    i += 1;
                    continue;
                }
                b'"' => {
                    let (s, next) = quoted(line, i + 1)?;
                    tokens.push(Token::Str(s));
                    i = next;
                }
                _ => {
                    let end = line[i..].iter().position(|&b| b == b' ').map_or(line.len(), |p| i + p);
                    let atom = &line[i..end];
                    if let Some(&bad) = atom.iter().find(|&&b| !is_atom_char(b)) {
                        return Err(format!("unexpected character {} (strings must be quoted)", show_byte(bad)));
                    }
                    tokens.push(Token::Atom(String::from_utf8_lossy(atom).into_owned()));
                    i = end;
                }
            }
            if i < line.len() && line[i] != b' ' {
                return Err(format!("expected a space, got {}", show_byte(line[i])));
            }
        }
    }
    Ok(tokens)
}

/// `quoted` content from `start` (just after the opening `"`): returns the unescaped string
/// and the index after the closing `"`. `QUOTED-CHAR` is any character but NUL, CR, LF, `"`
/// and `\`, or `\"` / `\\`.
fn quoted(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut i = start;
    loop {
        match line.get(i) {
            None => return Err("unterminated quoted string".into()),
            Some(b'"') => break,
            Some(b'\\') => match line.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    i += 2;
                }
                _ => return Err("only \\\" and \\\\ may be escaped in a quoted string".into()),
            },
            Some(0) => return Err("NUL in quoted string".into()),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
        if out.len() > MAX_QUOTED {
            return Err(format!("quoted string longer than {MAX_QUOTED} bytes: use a literal"));
        }
    }
    Ok((out, i + 1))
}

fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'{' | b'}' | b'(' | b')' | b'\\' | b'%' | b'*')
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// Parses one framed command.
///
/// # Errors
///
/// [`CommandError`]: unknown command, wrong arguments, or an invalid script name.
pub fn parse_command(frame: &Frame) -> Result<Command, CommandError> {
    let tokens = tokenize(frame);
    let verb = match tokens.as_deref() {
        Ok([Token::Atom(verb), ..]) => verb.to_ascii_uppercase(),
        Ok([]) => return Err(CommandError::Empty),
        Ok([Token::Str(_), ..]) => return Err(CommandError::Unknown("(a string)".into())),
        Err(why) => return Err(CommandError::Syntax { command: "command", why: why.clone() }),
    };
    let tokens = tokens.unwrap_or_default();
    let args = &tokens[1..];
    let name: &'static str =
        VERBS.iter().find(|v| **v == verb).ok_or_else(|| CommandError::Unknown(verb.chars().take(32).collect()))?;
    let syntax = |why: &str| CommandError::Syntax { command: name, why: why.to_string() };
    let string = |t: &Token, what: &str| match t {
        Token::Str(s) => Ok(s.clone()),
        Token::Atom(a) => Err(syntax(&format!("{what} must be a quoted string or a literal, got {a}"))),
    };
    let arity = |min: usize, max: usize, usage: &str| {
        if args.len() < min || args.len() > max {
            Err(syntax(&format!("usage: {usage}")))
        } else {
            Ok(())
        }
    };
    Ok(match name {
        "AUTHENTICATE" => {
            arity(1, 2, "AUTHENTICATE \"PLAIN\" [\"initial-response\"]")?;
            let mechanism = string(&args[0], "the mechanism")?;
            let mechanism = String::from_utf8(mechanism).map_err(|_| syntax("mechanism is not UTF-8"))?;
            let initial = args.get(1).map(|t| string(t, "the initial response")).transpose()?.map(Secret::new);
            Command::Authenticate { mechanism: mechanism.to_ascii_uppercase(), initial }
        }
        "HAVESPACE" => {
            arity(2, 2, "HAVESPACE \"name\" size")?;
            let name = ScriptName::from_bytes(&string(&args[0], "the script name")?)?;
            let size = match &args[1] {
                Token::Atom(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse::<u32>().map_err(|_| syntax("size is not a 32-bit number"))?
                }
                _ => return Err(syntax("size must be a number")),
            };
            Command::HaveSpace { name, size }
        }
        "PUTSCRIPT" => {
            arity(2, 2, "PUTSCRIPT \"name\" {size+} script")?;
            let name = ScriptName::from_bytes(&string(&args[0], "the script name")?)?;
            Command::PutScript { name, script: string(&args[1], "the script")? }
        }
        "SETACTIVE" => {
            arity(1, 1, "SETACTIVE \"name\" (or \"\" to deactivate)")?;
            let name = string(&args[0], "the script name")?;
            Command::SetActive(if name.is_empty() { None } else { Some(ScriptName::from_bytes(&name)?) })
        }
        "GETSCRIPT" | "DELETESCRIPT" => {
            arity(1, 1, &format!("{name} \"name\""))?;
            let script = ScriptName::from_bytes(&string(&args[0], "the script name")?)?;
            if name == "GETSCRIPT" {
                Command::GetScript(script)
            } else {
                Command::DeleteScript(script)
            }
        }
        "RENAMESCRIPT" => {
            arity(2, 2, "RENAMESCRIPT \"old\" \"new\"")?;
            let from = ScriptName::from_bytes(&string(&args[0], "the old name")?)?;
            let to = ScriptName::from_bytes(&string(&args[1], "the new name")?)?;
            Command::RenameScript { from, to }
        }
        "CHECKSCRIPT" => {
            arity(1, 1, "CHECKSCRIPT {size+} script")?;
            Command::CheckScript(string(&args[0], "the script")?)
        }
        "NOOP" => {
            arity(0, 1, "NOOP [\"tag\"]")?;
            Command::Noop { tag: args.first().map(|t| string(t, "the tag")).transpose()? }
        }
        _ => {
            arity(0, 0, &format!("{name} takes no arguments"))?;
            match name {
                "STARTTLS" => Command::StartTls,
                "LOGOUT" => Command::Logout,
                "CAPABILITY" => Command::Capability,
                "LISTSCRIPTS" => Command::ListScripts,
                _ => Command::Unauthenticate,
            }
        }
    })
}

/// The client's answer to a SASL challenge (RFC 5804 section 2.1): one string, or `"*"` to
/// cancel. Returns `None` for a cancel.
///
/// # Errors
///
/// A message when the line is not exactly one string.
pub fn parse_sasl_response(frame: &Frame) -> Result<Option<Secret<Vec<u8>>>, String> {
    match tokenize(frame)?.as_slice() {
        [Token::Str(s)] if s == b"*" => Ok(None),
        [Token::Str(s)] => Ok(Some(Secret::new(s.clone()))),
        _ => Err("expected one quoted string or literal".into()),
    }
}

/// `OK`, `NO` or `BYE` (RFC 5804 section 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// Response codes (RFC 5804 section 1.3; `resp-code` in section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    AuthTooWeak,
    EncryptNeeded,
    /// A quota other than the two below (e.g. total storage).
    Quota,
    QuotaMaxScripts,
    QuotaMaxSize,
    Referral(String),
    Sasl(String),
    TransitionNeeded,
    TryLater,
    Active,
    NonExistent,
    AlreadyExists,
    Tag(Vec<u8>),
    Warnings,
}

/// A status response: `OK`/`NO`/`BYE` with an optional code and human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub code: Option<Code>,
    pub text: Option<String>,
}

impl Response {
    pub fn ok() -> Self {
        Response { status: Status::Ok, code: None, text: None }
    }

    pub fn no(code: Option<Code>, text: impl Into<String>) -> Self {
        Response { status: Status::No, code, text: Some(text.into()) }
    }

    pub fn bye(text: impl Into<String>) -> Self {
        Response { status: Status::Bye, code: None, text: Some(text.into()) }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }

    /// Appends the wire form, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.status {
            Status::Ok => b"OK",
            Status::No => b"NO",
            Status::Bye => b"BYE",
        });
        if let Some(code) = &self.code {
            out.extend_from_slice(b" (");
            let word: &str = match code {
                Code::AuthTooWeak => "AUTH-TOO-WEAK",
                Code::EncryptNeeded => "ENCRYPT-NEEDED",
                Code::Quota => "QUOTA",
                Code::QuotaMaxScripts => "QUOTA/MAXSCRIPTS",
                Code::QuotaMaxSize => "QUOTA/MAXSIZE",
                Code::Referral(_) => "REFERRAL",
                Code::Sasl(_) => "SASL",
                Code::TransitionNeeded => "TRANSITION-NEEDED",
                Code::TryLater => "TRYLATER",
                Code::Active => "ACTIVE",
                Code::NonExistent => "NONEXISTENT",
                Code::AlreadyExists => "ALREADYEXISTS",
                Code::Tag(_) => "TAG",
                Code::Warnings => "WARNINGS",
            };
            out.extend_from_slice(word.as_bytes());
            match code {
                Code::Referral(url) => {
                    out.push(b' ');
                    out.extend_from_slice(url.as_bytes());
                }
                Code::Sasl(s) => {
                    out.push(b' ');
                    encode_string(out, s.as_bytes());
                }
                Code::Tag(t) => {
                    out.push(b' ');
                    encode_string(out, t);
                }
                _ => {}
            }
            out.push(b')');
        }
        if let Some(text) = &self.text {
            out.push(b' ');
            encode_string(out, text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends a `string`: quoted (`"` and `\` escaped) when it fits, else a server literal
/// `{n}` CRLF octets (`literal-s2c`) for text with NUL, CR or LF or over 1024 octets.
pub fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= MAX_QUOTED && !s.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        out.push(b'"');
        for &b in s {
            if matches!(b, b'"' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Command, CommandError> {
        let mut framer = crate::Framer::new();
        framer.push(s);
        let limits = crate::FrameLimits { max_line: 4096, max_literal: 4096, allow_sync_literals: false };
        match framer.next_event(&limits) {
            Ok(Some(crate::FrameEvent::Frame(f))) => parse_command(&f),
            other => panic!("not one frame: {other:?}"),
        }
    }

    fn name(s: &str) -> ScriptName {
        ScriptName::new(s).unwrap()
    }

    #[test]
    fn commands() {
        assert_eq!(parse(b"capability\r\n"), Ok(Command::Capability));
        assert_eq!(parse(b"StartTls\r\n"), Ok(Command::StartTls));
        assert_eq!(parse(b"Getscript \"my\\\"script\"\r\n"), Ok(Command::GetScript(name("my\"script"))));
        assert_eq!(
            parse(b"RENAMESCRIPT {3+}\r\nfoo \"bar\"\r\n"),
            Ok(Command::RenameScript { from: name("foo"), to: name("bar") })
        );
        assert_eq!(
            parse(b"HAVESPACE \"x\" 4294967295\r\n"),
            Ok(Command::HaveSpace { name: name("x"), size: u32::MAX })
        );
        assert_eq!(parse(b"SETACTIVE \"\"\r\n"), Ok(Command::SetActive(None)));
        assert_eq!(parse(b"NOOP \"t\\\\1\"\r\n"), Ok(Command::Noop { tag: Some(b"t\\1".to_vec()) }));
        assert_eq!(
            parse(b"AUTHENTICATE \"plain\" \"AGEAYg==\"\r\n"),
            Ok(Command::Authenticate { mechanism: "PLAIN".into(), initial: Some(Secret::new(b"AGEAYg==".to_vec())) })
        );
        assert_eq!(
            parse(b"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n"),
            Ok(Command::PutScript { name: name("a"), script: b"keep;".to_vec() })
        );
    }

    #[test]
    fn bad_commands() {
        assert_eq!(parse(b"\r\n"), Err(CommandError::Empty));
        assert_eq!(parse(b"FROB x\r\n"), Err(CommandError::Unknown("FROB".into())));
        let syntax = |s: &[u8]| matches!(parse(s), Err(CommandError::Syntax { .. }));
        assert!(syntax(b"GETSCRIPT foo\r\n"), "names are strings, not atoms");
        assert!(syntax(b"GETSCRIPT \"foo\r\n"));
        assert!(syntax(b"GETSCRIPT \"a\\b\"\r\n"));
        assert!(syntax(b"GETSCRIPT \"a\"\"b\"\r\n"));
        assert!(syntax(b"HAVESPACE \"x\" 4294967296\r\n"));
        assert!(syntax(b"HAVESPACE \"x\" -1\r\n"));
        assert!(syntax(b"LISTSCRIPTS \"x\"\r\n"));
        assert!(syntax(b"PUTSCRIPT \"x\"\r\n"));
        let long = [b"NOOP \"".as_slice(), &[b'a'; 1025], b"\"\r\n"].concat();
        assert!(syntax(&long));
        assert_eq!(parse(b"GETSCRIPT \"\"\r\n"), Err(CommandError::Name(NameError::Empty)));
        assert_eq!(parse(b"GETSCRIPT {3+}\r\na\nb\r\n"), Err(CommandError::Name(NameError::Control)));
        assert_eq!(parse(b"GETSCRIPT \"a\xc2\x85\"\r\n"), Err(CommandError::Name(NameError::Control)));
        assert_eq!(parse(b"GETSCRIPT \"a\xff\"\r\n"), Err(CommandError::Name(NameError::NotUtf8)));
        assert_eq!(ScriptName::new(&"x".repeat(129)), Err(NameError::TooLong));
        assert!(ScriptName::new(&"é".repeat(128)).is_ok());
        assert_eq!(ScriptName::new("a\u{2028}"), Err(NameError::Control));
    }

    #[test]
    fn responses() {
        assert_eq!(Response::ok().to_bytes(), b"OK\r\n");
        assert_eq!(
            Response::no(Some(Code::NonExistent), "There is no script by that name").to_bytes(),
            b"NO (NONEXISTENT) \"There is no script by that name\"\r\n"
        );
        assert_eq!(
            Response::ok().with_code(Code::Tag(b"STARTTLS-SYNC-42".to_vec())).with_text("Done").to_bytes(),
            b"OK (TAG \"STARTTLS-SYNC-42\") \"Done\"\r\n"
        );
        assert_eq!(Response::no(Some(Code::QuotaMaxSize), "x").to_bytes(), b"NO (QUOTA/MAXSIZE) \"x\"\r\n");
        assert_eq!(Response::bye("a\"b\\").to_bytes(), b"BYE \"a\\\"b\\\\\"\r\n");
        assert_eq!(Response::bye("a\r\nb").to_bytes(), b"BYE {4}\r\na\r\nb\r\n");
    }
}
