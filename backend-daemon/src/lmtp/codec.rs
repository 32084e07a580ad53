//! LMTP wire format (RFC 2033 over the RFC 5321 grammar): command lines into [`Command`],
//! replies out of [`Reply`], and [`DataReader`], the dot-terminated message decoder of DATA
//! (RFC 5321 4.5.2 transparency). No sockets here.

use std::fmt;

/// One client command (RFC 2033 4.1, RFC 5321 4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain`
    Lhlo(String),
    /// `HELO` / `EHLO`: SMTP greetings, refused on an LMTP port (RFC 2033 4.1).
    Helo,
    /// `MAIL FROM:<reverse-path> [SIZE=n] [BODY=7BIT|8BITMIME]`; `from` is empty for `<>`.
    Mail {
        from: String,
        size: Option<u64>,
    },
    /// `RCPT TO:<forward-path>`
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
}

/// Why a command line was refused; each maps to one reply (RFC 5321 4.2.4, RFC 3463).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command we know: `500 5.5.1`.
    Unknown(String),
    /// A known command with bad arguments: `501 5.5.4`.
    Syntax(&'static str),
    /// A MAIL/RCPT parameter we don't support: `555 5.5.4`.
    Param(String),
}

impl ParseError {
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::Unknown(c) => Reply::new(500, "5.5.1", format!("Unknown command {c}")),
            ParseError::Syntax(why) => Reply::new(501, "5.5.4", *why),
            ParseError::Param(p) => Reply::new(555, "5.5.4", format!("Unsupported parameter {p}")),
        }
    }
}

/// Parses one command line (without its CRLF).
///
/// # Errors
/// [`ParseError`] naming what is wrong; the session answers it and goes on.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("Invalid UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("This command takes no arguments"))
        }
    };
    match verb.as_str() {
        "LHLO" => {
            if rest.is_empty() || rest.contains(char::is_control) {
                Err(ParseError::Syntax("LHLO needs a domain: LHLO host.example"))
            } else {
                Ok(Command::Lhlo(rest.to_string()))
            }
        }
        "HELO" | "EHLO" => Ok(Command::Helo),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "" => Err(ParseError::Unknown("(empty line)".into())),
        _ => Err(ParseError::Unknown(verb.chars().filter(|c| c.is_ascii_graphic()).take(32).collect())),
    }
}

/// Strips a case-insensitive `FROM:` / `TO:` keyword (tolerating a space after the colon).
fn keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw).then(|| s[kw.len()..].trim_start())
}

fn parse_mail(rest: &str) -> Result<Command, ParseError> {
    let s = keyword(rest, "FROM:").ok_or(ParseError::Syntax("Syntax: MAIL FROM:<address>"))?;
    let (from, params) = parse_path(s)?;
    let mut size = None;
    for p in params.split_ascii_whitespace() {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_uppercase().as_str() {
            "SIZE" => size = Some(v.parse::<u64>().map_err(|_| ParseError::Syntax("SIZE= needs a number"))?),
            "BODY" if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
            _ => return Err(ParseError::Param(p.chars().take(64).collect())),
        }
    }
    Ok(Command::Mail { from, size })
}

fn parse_rcpt(rest: &str) -> Result<Command, ParseError> {
    let s = keyword(rest, "TO:").ok_or(ParseError::Syntax("Syntax: RCPT TO:<address>"))?;
    let (to, params) = parse_path(s)?;
    if let Some(p) = params.split_ascii_whitespace().next() {
        return Err(ParseError::Param(p.chars().take(64).collect()));
    }
    if to.is_empty() {
        return Err(ParseError::Syntax("Empty recipient address"));
    }
    Ok(Command::Rcpt { to })
}

/// Parses `<path>` (RFC 5321 4.1.2 `Path`, quoted local parts included; a source route
/// `@a,@b:` is dropped) and returns the address and what follows it. A bare address without
/// brackets is tolerated. Control characters are refused: the address ends up in a header.
fn parse_path(s: &str) -> Result<(String, &str), ParseError> {
    let (addr, rest) = if let Some(inner) = s.strip_prefix('<') {
        let mut quoted = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '>' if !quoted => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or(ParseError::Syntax("Address lacks its closing >"))?;
        (&inner[..end], &inner[end + 1..])
    } else {
        match s.find(' ') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if addr.chars().any(char::is_control) {
        return Err(ParseError::Syntax("Control characters in address"));
    }
    let addr = match addr.strip_prefix('@') {
        Some(route) => route.split_once(':').map(|(_, a)| a).ok_or(ParseError::Syntax("Bad source route"))?,
        None => addr,
    };
    if addr.len() > 512 {
        return Err(ParseError::Syntax("Address too long"));
    }
    Ok((addr.to_string(), rest.trim()))
}

/// A reply: code, optional enhanced status code (RFC 2034/3463), text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply { code, enhanced: Some(enhanced), lines: vec![text.into()] }
    }

    /// A reply without an enhanced code (greeting, LHLO, 354).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, enhanced: None, lines }
    }

    /// Wire form: `code-text` for every line but the last, `code text` for it, CRLF each.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            match self.enhanced {
                Some(e) => write!(f, "{}{sep}{e} {text}\r\n", self.code)?,
                None => write!(f, "{}{sep}{text}\r\n", self.code)?,
            }
        }
        Ok(())
    }
}

/// Decodes the DATA section: dot-unstuffing, the `.` line that ends it, bare LF (and a lone CR
/// before LF) turned into CRLF, and a size cap. Feed it what the connection has buffered; it
/// consumes up to the end of the terminating line and never beyond (pipelined commands after
/// the message stay in the buffer).
#[derive(Debug)]
pub struct DataReader {
    max: usize,
    out: Vec<u8>,
    at_line_start: bool,
    overflow: bool,
    done: bool,
}

/// A line longer than this without LF is passed on in pieces rather than buffered.
const PARTIAL_LINE: usize = 16 * 1024;

impl DataReader {
    pub fn new(max: usize) -> DataReader {
        DataReader { max, out: Vec::new(), at_line_start: true, overflow: false, done: false }
    }

    /// Consumes complete lines of `input` and returns how many bytes were used. After the
    /// terminating `.` line [`DataReader::is_done`] is true and nothing more is consumed.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while !self.done {
            let rest = &input[used..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let mut line = &rest[..pos];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    if self.at_line_start && line == b"." {
                        self.done = true;
                    } else {
                        self.push_text(line);
                        self.push(b"\r\n");
                        self.at_line_start = true;
                    }
                    used += pos + 1;
                }
                None if rest.len() > PARTIAL_LINE => {
                    // Keep a final CR back: it may be the first half of a CRLF.
                    let take = rest.len() - 1;
                    self.push_text(&rest[..take]);
                    self.at_line_start = false;
                    used += take;
                }
                None => break,
            }
        }
        used
    }

    fn push_text(&mut self, mut text: &[u8]) {
        if self.at_line_start && text.first() == Some(&b'.') {
            text = &text[1..];
        }
        self.push(text);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overflow || self.out.len() + bytes.len() > self.max {
            self.overflow = true;
            self.out = Vec::new();
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The message, or `None` when it exceeded the limit.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.overflow).then_some(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command(b"LHLO mx.example").unwrap(), Command::Lhlo("mx.example".into()));
        assert_eq!(parse_command(b"ehlo x").unwrap(), Command::Helo);
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME").unwrap(),
            Command::Mail { from: "a@b.example".into(), size: Some(100) }
        );
        assert_eq!(parse_command(b"mail from: <>").unwrap(), Command::Mail { from: String::new(), size: None });
        assert_eq!(
            parse_command(b"RCPT TO:<@relay.example:bob@x.example>").unwrap(),
            Command::Rcpt { to: "bob@x.example".into() }
        );
        assert_eq!(
            parse_command(b"RCPT TO:<\"odd > name\"@x>").unwrap(),
            Command::Rcpt { to: "\"odd > name\"@x".into() }
        );
        assert_eq!(parse_command(b"data").unwrap(), Command::Data);
        assert_eq!(parse_command(b"NOOP hello").unwrap(), Command::Noop);
    }

    #[test]
    fn bad_commands() {
        assert!(matches!(
            parse_command(b"FROB x"),
            Err(ParseError::Unknown(v)) if v == "FROB"
        ));
        assert!(matches!(parse_command(b"MAIL <a@b>"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_command(b"MAIL FROM:<a@b"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse_command(b"MAIL FROM:<a@b> SMTPUTF8"),
            Err(ParseError::Param(p)) if p == "SMTPUTF8"
        ));
        assert!(matches!(parse_command(b"MAIL FROM:<a\rX-Injected: 1@b>"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_command(b"RCPT TO:<>"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_command(b"DATA now"), Err(ParseError::Syntax(_))));
        assert_eq!(ParseError::Unknown("FROB".into()).reply().to_string(), "500 5.5.1 Unknown command FROB\r\n");
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::new(250, "2.1.0", "OK").to_string(), "250 2.1.0 OK\r\n");
        assert_eq!(
            Reply::plain(250, vec!["host".into(), "PIPELINING".into()]).to_string(),
            "250-host\r\n250 PIPELINING\r\n"
        );
    }

    #[test]
    fn data_unstuffs_and_stops_at_the_dot() {
        let mut r = DataReader::new(1000);
        let input = b"a\r\n..b\r\n.c\nbare lf\r\n.\r\nQUIT\r\n";
        let used = r.feed(input);
        assert!(r.is_done());
        assert_eq!(&input[used..], b"QUIT\r\n");
        assert_eq!(r.finish().unwrap(), b"a\r\n.b\r\nc\r\nbare lf\r\n");
    }

    #[test]
    fn data_in_pieces() {
        let mut r = DataReader::new(1000);
        let mut buf = Vec::new();
        for chunk in [&b"Subj"[..], b"ect: x\r", b"\n\r\nbody\r\n.", b"\r\n"] {
            buf.extend_from_slice(chunk);
            let used = r.feed(&buf);
            buf.drain(..used);
        }
        assert!(r.is_done() && buf.is_empty());
        assert_eq!(r.finish().unwrap(), b"Subject: x\r\n\r\nbody\r\n");
    }

    #[test]
    fn data_over_the_cap_is_read_to_the_end_and_refused() {
        let mut r = DataReader::new(10);
        let used = r.feed(b"0123456789\r\nmore\r\n.\r\nNOOP\r\n");
        assert!(r.is_done());
        assert_eq!(used, 21);
        assert!(r.finish().is_none());
    }

    #[test]
    fn long_line_without_lf_is_not_buffered_forever() {
        let mut r = DataReader::new(1 << 20);
        let long = vec![b'x'; PARTIAL_LINE + 10];
        let used = r.feed(&long);
        assert_eq!(used, long.len() - 1);
        assert_eq!(r.feed(b"x\r\n.\r\n"), 6);
        assert!(r.is_done());
        assert_eq!(r.finish().unwrap().len(), PARTIAL_LINE + 10 + 2);
    }
}
