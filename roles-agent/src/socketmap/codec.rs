//! The socketmap wire format (Postfix `socketmap_table(5)`): netstrings, requests, replies.
//!
//! Pure functions over bytes; no sockets.
//!
//! ```text
//! netstring = length ":" data ","          ; length: decimal byte count of data
//! request   = netstring of  name SP key
//! reply     = netstring of  status SP data  ; OK, NOTFOUND, TEMP, TIMEOUT, PERM
//! ```

use std::fmt;

/// Largest netstring payload accepted, Postfix's own limit (`socketmap_table(5)`: "the maximal
/// length of a netstring is 100000 characters").
pub const MAX_NETSTRING: usize = 100_000;

/// Digits needed for [`MAX_NETSTRING`]; a longer length prefix is refused without reading more.
const MAX_LENGTH_DIGITS: usize = 6;

/// Why a netstring could not be decoded. [`NetstringError::Incomplete`] is not a failure: read
/// more bytes and try again (mini-redis `frame.rs`). Every other variant means the framing is
/// lost: answer once and close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetstringError {
    #[error("incomplete netstring")]
    Incomplete,
    #[error("malformed netstring length (want decimal digits before ':')")]
    BadLength,
    #[error("netstring too long: {0} bytes, the limit is {MAX_NETSTRING}")]
    TooLong(usize),
    #[error("netstring not terminated by ','")]
    MissingComma,
}

/// Decodes one netstring at the start of `buf`.
///
/// Returns the payload and the number of bytes the whole netstring took. A length above
/// `max` is refused as soon as its digits are known, before the payload arrives.
///
/// # Errors
/// [`NetstringError::Incomplete`] when `buf` holds only part of a netstring; the other variants
/// for input that can never become one.
pub fn decode(buf: &[u8], max: usize) -> Result<(&[u8], usize), NetstringError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_LENGTH_DIGITS.max(max.to_string().len()) {
        return Err(length_error(&buf[..digits], max));
    }
    match buf.get(digits) {
        None => return Err(NetstringError::Incomplete),
        Some(b':') if digits > 0 => {}
        Some(_) => return Err(NetstringError::BadLength),
    }
    let len: usize =
        std::str::from_utf8(&buf[..digits]).ok().and_then(|s| s.parse().ok()).ok_or(NetstringError::BadLength)?;
    if len > max {
        return Err(NetstringError::TooLong(len));
    }
    let start = digits + 1;
    let end = start + len;
    match buf.get(end) {
        None => Err(NetstringError::Incomplete),
        Some(b',') => Ok((&buf[start..end], end + 1)),
        Some(_) => Err(NetstringError::MissingComma),
    }
}

/// The error for a length prefix with too many digits: `TooLong` when it is a number at all.
fn length_error(digits: &[u8], max: usize) -> NetstringError {
    let value = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<usize>().ok()).unwrap_or(usize::MAX);
    if value > max {
        NetstringError::TooLong(value)
    } else {
        NetstringError::BadLength
    }
}

/// Encodes `data` as a netstring.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(b',');
    out
}

/// One lookup: `<name> <key>`, the map name and the key Postfix looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub name: &'a str,
    pub key: &'a str,
}

/// Why a netstring's payload is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("malformed request (want \"<name> <key>\")")]
    Malformed,
}

/// Parses a request payload: the map name, one space, the key (which may itself contain
/// spaces, but no control characters).
///
/// # Errors
/// [`RequestError`] for non-UTF-8 payloads, a missing name or key, or control characters.
pub fn parse_request(payload: &[u8]) -> Result<Request<'_>, RequestError> {
    let text = std::str::from_utf8(payload).map_err(|_| RequestError::NotUtf8)?;
    let (name, key) = text.split_once(' ').ok_or(RequestError::Malformed)?;
    if name.is_empty() || key.is_empty() || text.chars().any(char::is_control) {
        return Err(RequestError::Malformed);
    }
    Ok(Request { name, key })
}

/// An answer to a request (`socketmap_table(5)` "Server replies").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The key was found; the value (here a transport, `lmtp:inet:host:port`).
    Ok(String),
    /// The key is not in the map: Postfix tries its next lookup or table.
    NotFound,
    /// A temporary problem: Postfix defers the message and retries later.
    Temp(String),
    /// A permanent configuration or request error.
    Perm(String),
}

impl Reply {
    /// The reply as one netstring, ready to write. Reason and value texts are cut to fit the
    /// netstring limit and stripped of control characters.
    pub fn encode(&self) -> Vec<u8> {
        encode(self.to_string().as_bytes())
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, text) = match self {
            Reply::Ok(v) => ("OK", v.as_str()),
            Reply::NotFound => ("NOTFOUND", ""),
            Reply::Temp(r) => ("TEMP", r.as_str()),
            Reply::Perm(r) => ("PERM", r.as_str()),
        };
        f.write_str(status)?;
        f.write_str(" ")?;
        let clean = text.chars().filter(|c| !c.is_control()).scan(status.len() + 1, |used, c| {
            *used += c.len_utf8();
            (*used <= MAX_NETSTRING).then_some(c)
        });
        for c in clean {
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_known_answers() {
        assert_eq!(decode(b"5:hello,", MAX_NETSTRING), Ok((&b"hello"[..], 8)));
        assert_eq!(decode(b"0:,rest", MAX_NETSTRING), Ok((&b""[..], 3)));
        assert_eq!(decode(b"3:abc,4:", MAX_NETSTRING), Ok((&b"abc"[..], 6)));
    }

    #[test]
    fn decode_incomplete() {
        for partial in [&b""[..], b"1", b"12", b"5:", b"5:hel", b"5:hello"] {
            assert_eq!(decode(partial, MAX_NETSTRING), Err(NetstringError::Incomplete), "{partial:?}");
        }
    }

    #[test]
    fn decode_malformed() {
        assert_eq!(decode(b":abc,", MAX_NETSTRING), Err(NetstringError::BadLength));
        assert_eq!(decode(b"x5:hello,", MAX_NETSTRING), Err(NetstringError::BadLength));
        assert_eq!(decode(b"5x:hello,", MAX_NETSTRING), Err(NetstringError::BadLength));
        assert_eq!(decode(b"-1:a,", MAX_NETSTRING), Err(NetstringError::BadLength));
        assert_eq!(decode(b"5:hello;", MAX_NETSTRING), Err(NetstringError::MissingComma));
        assert_eq!(decode(b"3:hello,", MAX_NETSTRING), Err(NetstringError::MissingComma));
    }

    #[test]
    fn decode_too_long_before_the_payload_arrives() {
        assert_eq!(decode(b"100001:", MAX_NETSTRING), Err(NetstringError::TooLong(100_001)));
        assert_eq!(decode(b"999999999", MAX_NETSTRING), Err(NetstringError::TooLong(999_999_999)));
        assert_eq!(decode(b"99999999999999999999999999", MAX_NETSTRING), Err(NetstringError::TooLong(usize::MAX)));
        assert_eq!(decode(b"0000000001:a,", MAX_NETSTRING), Err(NetstringError::BadLength));
        assert_eq!(decode(b"11:", 10), Err(NetstringError::TooLong(11)));
        let max = format!("{MAX_NETSTRING}:");
        assert_eq!(decode(max.as_bytes(), MAX_NETSTRING), Err(NetstringError::Incomplete));
    }

    /// Garbage never panics, and whatever decodes lies inside the input.
    #[test]
    fn decode_survives_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"0123456789:,x \xff";
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let input: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if let Ok((payload, used)) = decode(&input, 16) {
                assert!(used <= input.len() && payload.len() <= 16, "{input:?}");
                let _ = parse_request(payload);
            }
        }
    }

    #[test]
    fn encode_round_trips() {
        for data in [&b""[..], b"x", b"transport demo1@example.org", &[0u8, 255, b',', b':']] {
            let wire = encode(data);
            assert_eq!(decode(&wire, MAX_NETSTRING), Ok((data, wire.len())));
        }
        assert_eq!(encode(b"hello"), b"5:hello,");
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"transport demo1@example.org"),
            Ok(Request { name: "transport", key: "demo1@example.org" })
        );
        assert_eq!(parse_request(b"virtual a b").map(|r| r.key), Ok("a b"));
        for bad in [&b""[..], b"transport", b"transport ", b" key", b"transport a\r\nb"] {
            assert_eq!(parse_request(bad), Err(RequestError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_request(b"transport \xff"), Err(RequestError::NotUtf8));
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::Ok("lmtp:inet:10.0.0.1:24".into()).encode(), b"24:OK lmtp:inet:10.0.0.1:24,");
        assert_eq!(Reply::NotFound.encode(), b"9:NOTFOUND ,");
        assert_eq!(Reply::Temp("backend unavailable".into()).encode(), b"24:TEMP backend unavailable,");
        assert_eq!(Reply::Perm("bad\r\nthing".into()).to_string(), "PERM badthing");
        let huge = Reply::Perm("x".repeat(2 * MAX_NETSTRING)).encode();
        assert!(decode(&huge, MAX_NETSTRING).is_ok());
    }
}
