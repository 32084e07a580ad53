//! Modified UTF-7 for mailbox names on the wire (RFC 3501 5.1.3).

use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

fn engine() -> GeneralPurpose {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").expect("valid alphabet");
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    )
}

/// UTF-8 → modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine().encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if ('\x20'..='\x7e').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 → UTF-8. Raw UTF-8 (8-bit) input is accepted as it is, as most servers do.
///
/// # Errors
/// A description when a `&...-` run is not valid modified base64 of UTF-16.
pub fn decode(wire: &[u8]) -> Result<String, &'static str> {
    let s = std::str::from_utf8(wire).map_err(|_| "mailbox name is neither modified UTF-7 nor UTF-8")?;
    if !s.is_ascii() {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-').ok_or("unterminated &... sequence in mailbox name")?;
        let b64 = &after[..end];
        if b64.is_empty() {
            out.push('&');
        } else {
            let bytes = engine().decode(b64).map_err(|_| "bad modified base64 in mailbox name")?;
            if bytes.len() % 2 != 0 {
                return Err("bad UTF-16 in mailbox name");
            }
            let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            let text = String::from_utf16(&units).map_err(|_| "bad UTF-16 in mailbox name")?;
            if text.chars().any(|c| ('\x20'..='\x7e').contains(&c)) {
                return Err("printable ASCII must not be base64-encoded in mailbox names");
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_examples() {
        assert_eq!(encode("~peter/mail/日本語/台北"), "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
        assert_eq!(decode(b"~peter/mail/&ZeVnLIqe-/&U,BTFw-").unwrap(), "~peter/mail/日本語/台北");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode(b"Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(decode(b"a&-b").unwrap(), "a&b");
        assert!(decode(b"&Jjo!").is_err());
        assert!(decode(b"&AGE-").is_err());
    }
}
