//! Pure MIME analysis for the IMAP server: everything `mailstored` needs to
//! know about a message's bytes, without I/O.
//!
//! - [`analyze`] runs once at delivery and produces the cached ENVELOPE,
//!   BODY and BODYSTRUCTURE strings (RFC 3501 section 7.4.2), the header
//!   length and the Date for SENTBEFORE/SENTON/SENTSINCE and SORT.
//! - [`section`] extracts `BODY[section]` octets (RFC 3501 section 6.4.5).
//! - [`header_values`], [`header_text`], [`body_text`] and [`contains_ci`]
//!   back SEARCH (RFC 3501 section 6.4.4); [`mailboxes`] backs SORT
//!   (RFC 5256).
//! - [`imap_string`] / [`imap_nstring`] serialize `string` / `nstring`
//!   (RFC 3501 section 9).
//!
//! No function here panics or fails on any input: broken MIME degrades to
//! the RFC 2045 section 5.2 default (text/plain; charset=us-ascii), a
//! missing close-delimiter ends the last part at the end of its parent,
//! and a message without an empty line is all header.
//!
//! The MIME structure is found directly from the raw octets (see `tree`)
//! because IMAP sizes and sections are defined on exact octet ranges;
//! mail-parser supplies the RFC 2047, base64, charset and date decoders.

#![forbid(unsafe_code)]

mod address;
mod header;
mod imapstr;
mod section;
mod structure;
mod text;
mod tree;

#[cfg(test)]
mod tests;

pub use address::{mailboxes, Mailbox};
pub use imapstr::{contains_ci, imap_nstring, imap_string};
pub use section::{section, Section, SectionText};
pub use text::{body_text, header_text, header_values};

/// Result of analysing one RFC 5322 message once, at delivery time; cached
/// in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// ENVELOPE (RFC 3501 section 7.4.2), fully serialized, e.g.
    /// `("Mon, 7 Feb 1994 21:52:25 -0800" "subject" (("name" NIL "user" "host")) ...)`.
    pub envelope: String,
    /// BODYSTRUCTURE with extension data (`body-ext-1part` /
    /// `body-ext-mpart`: md5, disposition, language, location), serialized.
    pub bodystructure: String,
    /// BODY: the non-extensible form of BODYSTRUCTURE, serialized.
    pub body: String,
    /// Octets of the top-level header including the empty line that ends it
    /// (the whole message if there is no empty line).
    pub header_len: usize,
    /// The Date field as seconds since the Unix epoch (UTC); `None` when it
    /// is absent or cannot be parsed.
    pub sent_date: Option<i64>,
}

/// Analyses a raw RFC 5322 message.
///
/// ```
/// let a = mailscale_mime::analyze(b"Subject: hi\r\nFrom: Ann <ann@example.org>\r\n\r\nHello\r\n");
/// assert_eq!(a.body, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 1)"#);
/// assert!(a.envelope.starts_with(r#"(NIL "hi" (("Ann" NIL "ann" "example.org"))"#));
/// assert_eq!(a.header_len, 44);
/// ```
///
/// # Panics
///
/// Never, whatever the bytes (empty input, NULs, 8-bit, broken MIME).
pub fn analyze(raw: &[u8]) -> Analysis {
    let root = tree::parse(raw);
    Analysis {
        envelope: structure::envelope(raw, &root),
        bodystructure: structure::body(raw, &root, true),
        body: structure::body(raw, &root, false),
        header_len: root.body_start,
        sent_date: text::sent_date(raw),
    }
}
