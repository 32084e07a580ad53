//! Login tickets: how a backend trusts a frontend by signature, not by network (DESIGN principle 4).
//!
//! The frontend (ngx-mailauth) authenticates the user against the directory, then hands nginx a
//! short-lived ticket as `Auth-Pass`; nginx logs in to the backend with it, and mailstored checks
//! the signature, the expiry and the user without any directory access. The user's real password
//! never reaches a backend.
//!
//! Wire format (ASCII only, no CR/LF, no spaces, so it is a valid IMAP atom/quoted string, POP3
//! argument and SASL PLAIN password):
//!
//! ```text
//! MST1.<base64url-nopad(user)>.<expiry, unix seconds, decimal>.<nonce, 32 lower-case hex>.<base64url-nopad(mac)>
//! mac = HMAC-SHA256(key, "MST1" 0x00 user 0x00 expiry-decimal 0x00 nonce-16-raw-bytes)
//! ```
//!
//! The nonce is random per ticket so that the verifier can refuse a replay (it remembers nonces
//! until their expiry); this crate only carries it.
#![forbid(unsafe_code)]

use std::fmt;
use std::fmt::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Prefix (and version) of every ticket.
pub const PREFIX: &str = "MST1.";

/// Tickets longer than this are refused before any decoding (a 255-byte user encodes to 340).
pub const MAX_TICKET_LEN: usize = 512;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a ticket or a key was refused. The messages never contain the ticket or the key.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// Not of the `MST1.` five-field form (bad base64, bad number, wrong lengths, too long).
    #[error("malformed login ticket")]
    Malformed,
    /// Well formed, but the MAC does not match: tampered, or signed with another key.
    #[error("login ticket signature does not match")]
    BadSignature,
    /// Genuine but past its expiry.
    #[error("login ticket expired")]
    Expired,
    /// The key could not be loaded or is too short; the message names the file.
    #[error("ticket key: {0}")]
    Key(String),
}

/// The HMAC key shared by the frontends (issuers) and the backends (verifiers).
///
/// Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct TicketKey {
    key: [u8; KEY_LEN],
    /// HMAC state with the key already absorbed: cloned per ticket instead of hashing the key
    /// again (`new_from_slice` costs two SHA-256 blocks).
    keyed: HmacSha256,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(***)")
    }
}

impl TicketKey {
    fn new(key: [u8; KEY_LEN]) -> TicketKey {
        let keyed = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
        TicketKey { key, keyed }
    }

    /// Loads a key file: either 64 hex characters (what `mailctl ticket-key generate` writes,
    /// surrounding whitespace such as a final newline ignored), or at least 32 raw bytes (taken as
    /// [`TicketKey::from_bytes`] does).
    ///
    /// # Errors
    /// [`TicketError::Key`] naming the file when it cannot be read or holds fewer than 32 bytes.
    pub fn from_file(path: &Path) -> Result<TicketKey, TicketError> {
        let raw = std::fs::read(path).map_err(|e| TicketError::Key(format!("cannot read {}: {e}", path.display())))?;
        let trimmed = raw.trim_ascii();
        if trimmed.len() == 2 * KEY_LEN && trimmed.iter().all(u8::is_ascii_hexdigit) {
            let mut key = [0u8; KEY_LEN];
            hex::decode_to_slice(trimmed, &mut key)
                .map_err(|e| TicketError::Key(format!("{}: {e}", path.display())))?;
            return Ok(TicketKey::new(key));
        }
        TicketKey::from_bytes(&raw).map_err(|_| {
            TicketError::Key(format!(
                "{}: too short ({} bytes): want 64 hex characters or at least {KEY_LEN} random bytes \
                 (make one with `mailctl ticket-key generate`)",
                path.display(),
                raw.len()
            ))
        })
    }

    /// Takes exactly 32 bytes as the key; a longer secret is hashed (SHA-256) down to 32 bytes,
    /// so every byte of it counts.
    ///
    /// # Errors
    /// [`TicketError::Key`] when shorter than 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<TicketKey, TicketError> {
        match b.len() {
            n if n < KEY_LEN => Err(TicketError::Key(format!("too short ({n} bytes), want at least {KEY_LEN}"))),
            KEY_LEN => {
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(b);
                Ok(TicketKey::new(key))
            }
            _ => Ok(TicketKey::new(Sha256::digest(b).into())),
        }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> TicketKey {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        TicketKey::new(key)
    }

    /// The key as 64 lower-case hex characters, the key file format.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key)
    }

    fn mac(&self, user: &str, expiry: &str, nonce: &[u8; 16]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"MST1\0");
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(expiry.as_bytes());
        mac.update(b"\0");
        mac.update(nonce);
        mac
    }
}

/// A ticket whose signature and expiry checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user the frontend authenticated, exactly as issued.
    pub user: String,
    /// Unix seconds; the ticket is refused from this second on.
    pub expires: u64,
    /// Random per ticket: the verifier remembers it until `expires` to refuse replays.
    pub nonce: [u8; 16],
}

/// Issues a ticket for `user`, valid for `ttl_secs` seconds from `now_unix` (a ttl of 0 gives a
/// ticket that is already expired).
pub fn issue(key: &TicketKey, user: &str, ttl_secs: u64, now_unix: u64) -> String {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    issue_with_nonce(key, user, now_unix.saturating_add(ttl_secs), nonce)
}

fn issue_with_nonce(key: &TicketKey, user: &str, expires: u64, nonce: [u8; 16]) -> String {
    // Built in one allocation (this runs once per login on the frontend's event loop).
    let mut out = String::with_capacity(PREFIX.len() + user.len().div_ceil(3) * 4 + 1 + 20 + 1 + 32 + 1 + 43);
    out.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(user.as_bytes(), &mut out);
    out.push('.');
    let start = out.len();
    write!(out, "{expires}").expect("writing to a String cannot fail");
    let tag = key.mac(user, &out[start..], &nonce).finalize().into_bytes();
    out.push('.');
    let mut nonce_hex = [0u8; 32];
    hex::encode_to_slice(nonce, &mut nonce_hex).expect("32 hex digits for 16 bytes");
    out.push_str(std::str::from_utf8(&nonce_hex).expect("hex is ASCII"));
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut out);
    out
}

/// Checks a ticket's form, signature (constant-time compare) and expiry, in that order.
///
/// # Errors
/// [`TicketError::Malformed`], [`TicketError::BadSignature`] or [`TicketError::Expired`]
/// (when `now_unix >= expires`). Never panics, whatever the input.
pub fn verify(key: &TicketKey, ticket: &str, now_unix: u64) -> Result<Verified, TicketError> {
    if ticket.len() > MAX_TICKET_LEN || !ticket.is_ascii() {
        return Err(TicketError::Malformed);
    }
    let rest = ticket.strip_prefix(PREFIX).ok_or(TicketError::Malformed)?;
    let mut fields = rest.split('.');
    let (Some(user_b64), Some(expiry), Some(nonce_hex), Some(tag_b64), None) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(TicketError::Malformed);
    };
    let user = URL_SAFE_NO_PAD.decode(user_b64).map_err(|_| TicketError::Malformed)?;
    let user = String::from_utf8(user).map_err(|_| TicketError::Malformed)?;
    // Canonical decimal only (no sign, no leading zeros), so one expiry has one spelling.
    if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TicketError::Malformed);
    }
    if expiry.len() > 1 && expiry.starts_with('0') {
        return Err(TicketError::Malformed);
    }
    let expires: u64 = expiry.parse().map_err(|_| TicketError::Malformed)?;
    if nonce_hex.len() != 32 || nonce_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(TicketError::Malformed);
    }
    let mut nonce = [0u8; 16];
    hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| TicketError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| TicketError::Malformed)?;
    if tag.len() != 32 {
        return Err(TicketError::Malformed);
    }
    // `verify_slice` compares in constant time.
    key.mac(&user, expiry, &nonce).verify_slice(&tag).map_err(|_| TicketError::BadSignature)?;
    if now_unix >= expires {
        return Err(TicketError::Expired);
    }
    Ok(Verified { user, expires, nonce })
}

/// Whether a password is meant as a ticket (starts with `MST1.`); a verifier uses it to decide
/// between the ticket path and its own password file.
pub fn looks_like_ticket(s: &str) -> bool {
    s.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn key() -> TicketKey {
        TicketKey::from_bytes(&[7u8; 32]).unwrap()
    }

    fn fields(t: &str) -> Vec<String> {
        t.split('.').map(str::to_string).collect()
    }

    #[test]
    fn round_trip() {
        let t = issue(&key(), "Alice@example.org", 60, NOW);
        assert!(looks_like_ticket(&t));
        assert!(t.is_ascii() && !t.contains(['\r', '\n', ' ', '"', '\\']));
        let v = verify(&key(), &t, NOW + 59).unwrap();
        assert_eq!(v.user, "Alice@example.org");
        assert_eq!(v.expires, NOW + 60);
        // two tickets for the same user differ by their nonce
        let t2 = issue(&key(), "Alice@example.org", 60, NOW);
        assert_ne!(t, t2);
        assert_ne!(verify(&key(), &t2, NOW).unwrap().nonce, v.nonce);
    }

    #[test]
    fn known_answer() {
        // pins the format: the module and the daemon must agree across versions
        let t = issue_with_nonce(&key(), "bob", 1_700_000_060, [0xab; 16]);
        let f = fields(&t);
        assert_eq!(&f[..4], ["MST1", "Ym9i", "1700000060", "abababababababababababababababab"]);
        let mut mac = HmacSha256::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(b"MST1\x00bob\x001700000060\x00");
        mac.update(&[0xab; 16]);
        assert_eq!(f[4], URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn expired() {
        let t = issue(&key(), "bob", 60, NOW);
        assert_eq!(verify(&key(), &t, NOW + 60), Err(TicketError::Expired));
        let t0 = issue(&key(), "bob", 0, NOW);
        assert_eq!(verify(&key(), &t0, NOW), Err(TicketError::Expired));
    }

    #[test]
    fn wrong_key() {
        let t = issue(&key(), "bob", 60, NOW);
        assert_eq!(verify(&TicketKey::generate(), &t, NOW), Err(TicketError::BadSignature));
    }

    #[test]
    fn tamper_each_field() {
        let t = issue(&key(), "bob", 60, NOW);
        let f = fields(&t);
        let with = |i: usize, v: &str| {
            let mut g = f.clone();
            g[i] = v.to_string();
            g.join(".")
        };
        // another user, a later expiry, another nonce: well formed, signature breaks
        assert_eq!(verify(&key(), &with(1, &URL_SAFE_NO_PAD.encode("root")), NOW), Err(TicketError::BadSignature));
        assert_eq!(verify(&key(), &with(2, &(NOW + 9999).to_string()), NOW), Err(TicketError::BadSignature));
        assert_eq!(verify(&key(), &with(3, &"0".repeat(32)), NOW), Err(TicketError::BadSignature));
        let mut tag = URL_SAFE_NO_PAD.decode(&f[4]).unwrap();
        tag[0] ^= 1;
        assert_eq!(verify(&key(), &with(4, &URL_SAFE_NO_PAD.encode(tag)), NOW), Err(TicketError::BadSignature));
        // another version, a non-canonical spelling of the same expiry
        assert_eq!(verify(&key(), &with(0, "MST2"), NOW), Err(TicketError::Malformed));
        assert_eq!(verify(&key(), &with(2, &format!("0{}", f[2])), NOW), Err(TicketError::Malformed));
        assert_eq!(verify(&key(), &with(3, &f[3].to_uppercase()), NOW), Err(TicketError::Malformed));
        assert_eq!(verify(&key(), &format!("{t}.x"), NOW), Err(TicketError::Malformed));
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "",
            "MST1.",
            "MST1.....",
            "MST1.a.b.c.d",
            "MST1.Ym9i.99999999999999999999999.00.AA",
            "MST1.Ym9i.18446744073709551616.abababababababababababababababab.AA",
            "MST1.//.1.abababababababababababababababab.AA",
            "MST1.Ym9i.1.zzababababababababababababababab.AA",
            "MST1.Ym9i.1.abababababababababababababababab.!!",
            "MST1.Ym9i.-1.abababababababababababababababab.AA",
            "MST1.\u{e9}.1.ab.cd",
            "password",
        ];
        for s in samples {
            assert!(verify(&key(), s, NOW).is_err(), "{s:?}");
        }
        let long = format!("MST1.{}", "A".repeat(10_000));
        assert_eq!(verify(&key(), &long, NOW), Err(TicketError::Malformed));
        // every prefix and every single-byte change of a real ticket
        let t = issue(&key(), "bob", 60, NOW);
        for i in 0..t.len() {
            assert!(verify(&key(), &t[..i], NOW).is_err());
            for c in [b'A', b'.', b'0', b'z', b'-'] {
                let mut b = t.clone().into_bytes();
                if b[i] == c {
                    continue;
                }
                b[i] = c;
                assert!(verify(&key(), std::str::from_utf8(&b).unwrap(), NOW).is_err(), "byte {i} -> {c}");
            }
        }
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = TicketKey::generate();
        assert_eq!(format!("{k:?}"), "TicketKey(***)");
        let hex_file = dir.path().join("hex.key");
        std::fs::write(&hex_file, format!("{}\n", k.to_hex())).unwrap();
        let loaded = TicketKey::from_file(&hex_file).unwrap();
        assert_eq!(loaded.to_hex(), k.to_hex());
        let t = issue(&k, "bob", 60, NOW);
        assert!(verify(&loaded, &t, NOW).is_ok());

        let raw_file = dir.path().join("raw.key");
        std::fs::write(&raw_file, [1u8; 32]).unwrap();
        assert_eq!(TicketKey::from_file(&raw_file).unwrap().to_hex(), hex::encode([1u8; 32]));
        std::fs::write(&raw_file, [1u8; 48]).unwrap();
        assert_eq!(TicketKey::from_file(&raw_file).unwrap().to_hex(), hex::encode(Sha256::digest([1u8; 48])));

        let short = dir.path().join("short.key");
        std::fs::write(&short, "deadbeef\n").unwrap();
        let err = TicketKey::from_file(&short).unwrap_err().to_string();
        assert!(err.contains("short.key") && err.contains("too short"), "{err}");
        let err = TicketKey::from_file(&dir.path().join("missing.key")).unwrap_err().to_string();
        assert!(err.contains("missing.key"), "{err}");
        assert!(TicketKey::from_bytes(&[0u8; 31]).is_err());
    }
}
