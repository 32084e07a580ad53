//! Framing: buffered bytes into complete commands. A command is one or more lines; a line
//! that ends in a literal header (`{n+}`, RFC 5804 section 4 `literal-c2s`) is followed by
//! exactly n octets and then the rest of the command on the next line. The same framing
//! carries the client's SASL responses (`string CRLF`, section 2.1).
//!
//! The framer never holds more than [`FrameLimits::max_line`] bytes of line text or more than
//! [`FrameLimits::max_literal`] bytes per literal. A literal over the cap is read and thrown
//! away, so the stream stays in step, and the command is answered with the [`Refusal`].

/// One piece of a command: a line without its CRLF (and without a trailing literal header),
/// or the octets of a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    Line(Vec<u8>),
    Literal(Vec<u8>),
}

/// A complete command as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub fragments: Vec<Fragment>,
    /// Set when a literal of this command was over a limit and its octets were discarded:
    /// the command must be answered with this refusal and not executed.
    pub refused: Option<Refusal>,
}

/// Why a command's literal was not accepted; the session answers `NO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `{size+}` with size over the cap (RFC 5804 `QUOTA/MAXSIZE` after authentication).
    LiteralTooLarge { size: u64, limit: usize },
    /// More literals in one command than any command takes.
    TooManyLiterals,
}

/// What [`Framer::next_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete command.
    Frame(Frame),
    /// A synchronising literal `{n}` was accepted: write a continuation line, the client
    /// waits for it before sending the octets.
    Continue,
    /// A synchronising literal `{n}` was refused before its octets were sent: answer `NO`;
    /// the client drops the command and sends the next one.
    RefusedSync(Refusal),
}

/// Errors after which the two sides no longer agree where a command starts: the session
/// answers `BYE` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("command line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("synchronizing literals are not allowed in ManageSieve, use {{n+}} (RFC 5804 section 4)")]
    SyncLiteral,
    #[error("literal length is not a 32-bit number")]
    BadLiteralLength,
}

/// Limits for the command being framed; the session passes smaller ones before authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub max_line: usize,
    pub max_literal: usize,
    pub allow_sync_literals: bool,
}

/// No command takes more than two strings (PUTSCRIPT, RENAMESCRIPT, AUTHENTICATE); a few
/// more are tolerated before the command is refused.
const MAX_LITERALS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Line,
    /// Inside a literal; `keep` is false when its octets are being discarded.
    Literal { remaining: u64, keep: bool },
}

/// Incremental framer: [`Framer::push`] what arrives, then call [`Framer::next_event`] until
/// it returns `Ok(None)` (more input needed).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already searched for LF.
    scanned: usize,
    state: State,
    current: Frame,
    line_bytes: usize,
    literals: usize,
}

impl Framer {
    pub fn new() -> Self {
        Framer::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// Forgets everything buffered, e.g. plaintext pipelined after STARTTLS, which must not
    /// be executed once TLS is up.
    pub fn clear(&mut self) {
        *self = Framer::default();
    }

    /// True when nothing is buffered and no command is half read.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.state == State::Line && self.current.fragments.is_empty()
    }

    /// The next framing event from the buffered bytes, or `Ok(None)` when more are needed.
    ///
    /// # Errors
    ///
    /// [`FramingError`] when the stream cannot be resynchronised; the connection must end.
    pub fn next_event(&mut self, limits: &FrameLimits) -> Result<Option<FrameEvent>, FramingError> {
        loop {
            match self.state {
                State::Literal { remaining: 0, .. } => self.state = State::Line,
                State::Literal { remaining, keep } => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(self.buf.len());
                    if keep {
                        if let Some(Fragment::Literal(data)) = self.current.fragments.last_mut() {
                            data.extend_from_slice(&self.buf[..n]);
                        }
                    }
                    self.buf.drain(..n);
                    self.state = State::Literal { remaining: remaining - n as u64, keep };
                }
                State::Line => {
                    let Some(lf) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                        self.scanned = self.buf.len();
                        if self.line_bytes + self.buf.len() > limits.max_line + 2 {
                            return Err(FramingError::LineTooLong { limit: limits.max_line });
                        }
                        return Ok(None);
                    };
                    let end = self.scanned + lf;
                    let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                    self.scanned = 0;
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.line_bytes += line.len();
                    if self.line_bytes > limits.max_line {
                        return Err(FramingError::LineTooLong { limit: limits.max_line });
                    }
                    let Some(header) = literal_header(&line)? else {
                        self.current.fragments.push(Fragment::Line(line));
                        let frame = std::mem::take(&mut self.current);
                        self.line_bytes = 0;
                        self.literals = 0;
                        return Ok(Some(FrameEvent::Frame(frame)));
                    };
                    line.truncate(header.start);
                    self.current.fragments.push(Fragment::Line(line));
                    self.literals += 1;
                    let refusal = if self.literals > MAX_LITERALS {
                        Some(Refusal::TooManyLiterals)
                    } else if header.size > limits.max_literal as u64 {
                        Some(Refusal::LiteralTooLarge { size: header.size, limit: limits.max_literal })
                    } else {
                        None
                    };
                    if header.sync {
                        if !limits.allow_sync_literals {
                            return Err(FramingError::SyncLiteral);
                        }
                        if let Some(refusal) = refusal {
                            self.current = Frame::default();
                            self.line_bytes = 0;
                            self.literals = 0;
                            return Ok(Some(FrameEvent::RefusedSync(refusal)));
                        }
                    }
                    if self.current.refused.is_none() {
                        self.current.refused = refusal;
                    }
                    let keep = self.current.refused.is_none();
                    if keep {
                        self.current.fragments.push(Fragment::Literal(Vec::with_capacity(header.size as usize)));
                    }
                    self.state = State::Literal { remaining: header.size, keep };
                    if header.sync {
                        return Ok(Some(FrameEvent::Continue));
                    }
                }
            }
        }
    }
}

struct LiteralHeader {
    /// Where `{` is in the line.
    start: usize,
    size: u64,
    sync: bool,
}

/// The literal header that ends `line`, if any: `{` number [`+`] `}` outside a quoted string.
/// `{` followed by anything but digits is not a header (the parser reports it).
fn literal_header(line: &[u8]) -> Result<Option<LiteralHeader>, FramingError> {
    if line.last() != Some(&b'}') {
        return Ok(None);
    }
    let mut in_quote = false;
    let mut escaped = false;
    let mut open = None;
    for (i, &b) in line.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'{' if !in_quote => open = Some(i),
            _ => {}
        }
    }
    let Some(start) = open.filter(|_| !in_quote) else {
        return Ok(None);
    };
    let inner = &line[start + 1..line.len() - 1];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    // RFC 5804 section 4: `number` is a 32-bit unsigned number.
    let size =
        std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u32>().ok()).ok_or(FramingError::BadLiteralLength)?;
    Ok(Some(LiteralHeader { start, size: u64::from(size), sync }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits { max_line: 64, max_literal: 16, allow_sync_literals: false };

    fn frames(input: &[u8], limits: &FrameLimits) -> Vec<Result<FrameEvent, FramingError>> {
        let mut f = Framer::new();
        f.push(input);
        let mut out = Vec::new();
        loop {
            match f.next_event(limits) {
                Ok(Some(e)) => out.push(Ok(e)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    fn line(s: &str) -> Fragment {
        Fragment::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_and_literals() {
        let got = frames(b"NOOP\r\nPUTSCRIPT \"a\" {5+}\r\nkeep;\r\nLOGOUT\n", &LIMITS);
        assert_eq!(
            got,
            vec![
                Ok(FrameEvent::Frame(Frame { fragments: vec![line("NOOP")], refused: None })),
                Ok(FrameEvent::Frame(Frame {
                    fragments: vec![line("PUTSCRIPT \"a\" "), Fragment::Literal(b"keep;".to_vec()), line("")],
                    refused: None
                })),
                Ok(FrameEvent::Frame(Frame { fragments: vec![line("LOGOUT")], refused: None })),
            ]
        );
    }

    #[test]
    fn brace_inside_a_quoted_string_is_not_a_literal() {
        let got = frames(b"NOOP \"{3+}\"\r\nNOOP \"a\\\"{3+}\"\r\n", &LIMITS);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|e| matches!(e, Ok(FrameEvent::Frame(f)) if f.fragments.len() == 1)));
    }

    #[test]
    fn oversized_literal_is_skipped_and_refused() {
        let got = frames(b"PUTSCRIPT \"a\" {20+}\r\n01234567890123456789\r\nNOOP\r\n", &LIMITS);
        assert_eq!(
            got[0],
            Ok(FrameEvent::Frame(Frame {
                fragments: vec![line("PUTSCRIPT \"a\" "), line("")],
                refused: Some(Refusal::LiteralTooLarge { size: 20, limit: 16 })
            }))
        );
        assert_eq!(got[1], Ok(FrameEvent::Frame(Frame { fragments: vec![line("NOOP")], refused: None })));
    }

    #[test]
    fn synchronising_literals() {
        assert_eq!(frames(b"PUTSCRIPT \"a\" {5}\r\n", &LIMITS), vec![Err(FramingError::SyncLiteral)]);
        let lenient = FrameLimits { allow_sync_literals: true, ..LIMITS };
        let got = frames(b"PUTSCRIPT \"a\" {5}\r\nkeep;\r\n", &lenient);
        assert_eq!(got[0], Ok(FrameEvent::Continue));
        assert!(matches!(&got[1], Ok(FrameEvent::Frame(f)) if f.fragments[1] == Fragment::Literal(b"keep;".to_vec())));
        let got = frames(b"PUTSCRIPT \"a\" {99}\r\nNOOP\r\n", &lenient);
        assert_eq!(got[0], Ok(FrameEvent::RefusedSync(Refusal::LiteralTooLarge { size: 99, limit: 16 })));
        assert!(matches!(&got[1], Ok(FrameEvent::Frame(f)) if f.fragments == [line("NOOP")]));
    }

    #[test]
    fn limits_end_the_stream() {
        let long = [b"NOOP \"".as_slice(), &[b'x'; 80], b"\"\r\n"].concat();
        assert_eq!(frames(&long, &LIMITS), vec![Err(FramingError::LineTooLong { limit: 64 })]);
        // Without any LF the buffer must not grow past the cap either.
        assert_eq!(frames(&[b'x'; 100], &LIMITS), vec![Err(FramingError::LineTooLong { limit: 64 })]);
        assert_eq!(frames(b"NOOP {99999999999+}\r\n", &LIMITS), vec![Err(FramingError::BadLiteralLength)]);
    }

    #[test]
    fn too_many_literals() {
        let input = b"NOOP {1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd {1+}\r\ne\r\n";
        let got = frames(input, &LIMITS);
        assert!(matches!(&got[0], Ok(FrameEvent::Frame(f)) if f.refused == Some(Refusal::TooManyLiterals)));
        assert_eq!(got.len(), 1);
    }
}
