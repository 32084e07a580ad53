//! POP3 wire format (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH, RFC 2595 STLS): command lines
//! into [`Command`], status lines out, and the dot-stuffed multi-line body of RETR/TOP.

use crate::auth::Secret;

/// One client command.
#[derive(Debug, Clone)]
pub enum Command {
    User(String),
    /// The rest of the line: RFC 1939 lets a password contain spaces.
    Pass(Secret),
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 4).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Uidl(Option<u32>),
    Quit,
}

/// Why a line is not a command we can run; the text follows `-ERR `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown(String),
    Syntax(&'static str),
}

impl ParseError {
    pub fn text(&self) -> String {
        match self {
            ParseError::Unknown(c) => format!("Unknown command: {c}"),
            ParseError::Syntax(s) => (*s).to_string(),
        }
    }
}

fn msg_number(s: &str) -> Result<u32, ParseError> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(ParseError::Syntax("Invalid message number: expected a number from 1 up")),
    }
}

/// Parses a command line (without CRLF). Keywords are case-insensitive (RFC 1939 3).
///
/// # Errors
/// [`ParseError`] with a text for the `-ERR` reply.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("Invalid UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    if verb == "PASS" {
        if rest.is_empty() {
            return Err(ParseError::Syntax("PASS needs a password"));
        }
        return Ok(Command::Pass(Secret::new(rest)));
    }
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("This command takes no arguments"))
        }
    };
    let opt_msg = |c: fn(Option<u32>) -> Command| match args[..] {
        [] => Ok(c(None)),
        [n] => Ok(c(Some(msg_number(n)?))),
        _ => Err(ParseError::Syntax("Too many arguments")),
    };
    let one_msg = |c: fn(u32) -> Command| match args[..] {
        [n] => Ok(c(msg_number(n)?)),
        _ => Err(ParseError::Syntax("Expected one message number")),
    };
    match verb.as_str() {
        "USER" => match args[..] {
            [u] => Ok(Command::User(u.to_string())),
            _ => Err(ParseError::Syntax("USER needs one user name")),
        },
        "AUTH" => match args[..] {
            [] => Ok(Command::Auth { mechanism: None, initial: None }),
            [m] => Ok(Command::Auth { mechanism: Some(m.to_ascii_uppercase()), initial: None }),
            [m, ir] => Ok(Command::Auth { mechanism: Some(m.to_ascii_uppercase()), initial: Some(ir.to_string()) }),
            _ => Err(ParseError::Syntax("AUTH takes a mechanism and an initial response")),
        },
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "LIST" => opt_msg(Command::List),
        "RETR" => one_msg(Command::Retr),
        "DELE" => one_msg(Command::Dele),
        "TOP" => match args[..] {
            [n, lines] => Ok(Command::Top(
                msg_number(n)?,
                lines
                    .parse::<u32>()
                    .map_err(|_| ParseError::Syntax("TOP needs a message number and a number of lines"))?,
            )),
            _ => Err(ParseError::Syntax("TOP needs a message number and a number of lines")),
        },
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "UIDL" => opt_msg(Command::Uidl),
        "QUIT" => none(Command::Quit),
        "" => Err(ParseError::Unknown("(empty line)".into())),
        _ => Err(ParseError::Unknown(verb.chars().filter(|c| c.is_ascii_graphic()).take(32).collect())),
    }
}

pub fn ok(text: &str) -> Vec<u8> {
    format!("+OK {text}\r\n").into_bytes()
}

pub fn err(text: &str) -> Vec<u8> {
    format!("-ERR {text}\r\n").into_bytes()
}

/// `+OK text`, the lines, and the terminating `.` (RFC 1939 3: multi-line response). The
/// lines must not start with `.` (they are ids, sizes and capability names).
pub fn multi(text: &str, lines: &[String]) -> Vec<u8> {
    let mut out = ok(text);
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Appends a message as a multi-line response body: every line CRLF-terminated, lines that
/// start with `.` get another one (byte-stuffing), then the final `.` line. With `body_lines`
/// (TOP) only the header, the blank line and that many body lines are sent.
pub fn stuff_message(raw: &[u8], body_lines: Option<u32>, out: &mut Vec<u8>) {
    out.reserve(raw.len() + raw.len() / 64 + 5);
    let mut in_body = false;
    let mut body_sent = 0u32;
    let mut rest = raw;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if in_body {
            if body_lines.is_some_and(|n| body_sent >= n) {
                break;
            }
            body_sent += 1;
        } else if line.is_empty() {
            in_body = true;
        }
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert!(matches!(parse_command(b"user Demo1"), Ok(Command::User(u)) if u == "Demo1"));
        assert!(matches!(parse_command(b"PASS with space "), Ok(Command::Pass(p)) if p.expose() == "with space "));
        assert!(matches!(parse_command(b"LIST"), Ok(Command::List(None))));
        assert!(matches!(parse_command(b"list 3"), Ok(Command::List(Some(3)))));
        assert!(matches!(parse_command(b"TOP 2 0"), Ok(Command::Top(2, 0))));
        assert!(matches!(parse_command(b"UIDL 7"), Ok(Command::Uidl(Some(7)))));
        assert!(matches!(
            parse_command(b"AUTH plain AGEAYg=="),
            Ok(Command::Auth { mechanism: Some(m), initial: Some(i) }) if m == "PLAIN" && i == "AGEAYg=="
        ));
        assert!(matches!(parse_command(b"capa"), Ok(Command::Capa)));
    }

    #[test]
    fn bad_commands() {
        assert_eq!(parse_command(b"XYZZY 1").unwrap_err(), ParseError::Unknown("XYZZY".into()));
        for bad in [
            &b"RETR"[..],
            b"RETR 0",
            b"RETR -1",
            b"RETR +1",
            b"RETR x",
            b"DELE 1 2",
            b"TOP 1",
            b"STAT 1",
            b"PASS",
            b"USER",
        ] {
            assert!(matches!(parse_command(bad), Err(ParseError::Syntax(_))), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn pass_is_not_in_debug_output() {
        let c = parse_command(b"PASS hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn stuffing() {
        let mut out = Vec::new();
        stuff_message(b"A: 1\n.B: 2\r\n\r\n.\r\n..x\nlast", None, &mut out);
        assert_eq!(out, b"A: 1\r\n..B: 2\r\n\r\n..\r\n...x\r\nlast\r\n.\r\n");
    }

    #[test]
    fn top() {
        let raw = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
        let mut out = Vec::new();
        stuff_message(raw, Some(0), &mut out);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        out.clear();
        stuff_message(raw, Some(2), &mut out);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n");
        out.clear();
        stuff_message(raw, Some(99), &mut out);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
    }

    #[test]
    fn replies() {
        assert_eq!(ok("2 320"), b"+OK 2 320\r\n");
        assert_eq!(err("no"), b"-ERR no\r\n");
        assert_eq!(multi("x", &["1 2".into()]), b"+OK x\r\n1 2\r\n.\r\n");
    }
}
