//! The built-in user file (`name:$argon2id$...` lines) and SASL PLAIN decoding. Passwords are
//! held in [`Secret`] so they can't reach a log by accident.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use mailstore::Username;

/// A password or ticket. `Debug` prints `***`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

pub use mailscale_userfile::hash_password;

/// The users file of this instance (shared format, see `mailscale_userfile`).
pub struct Users(mailscale_userfile::UserFile);

impl Users {
    /// # Errors
    /// Unreadable file or a malformed line (named by file and line number).
    pub fn load(path: &Path) -> anyhow::Result<Users> {
        mailscale_userfile::UserFile::load(path).map(Users).map_err(anyhow::Error::msg)
    }

    /// Whether a mailbox exists for this name (LMTP RCPT).
    pub fn exists(&self, user: &str) -> Option<Username> {
        let u = Username::new(user).ok()?;
        self.0.contains(u.as_str()).then_some(u)
    }

    /// Checks a password. CPU-heavy (argon2, also for unknown users so that timing doesn't tell
    /// who exists): call from a blocking context.
    pub fn verify(&self, user: &str, password: &Secret) -> Option<Username> {
        let u = Username::new(user).ok()?;
        (self.0.verify(u.as_str(), password.expose()) == mailscale_userfile::Lookup::Valid).then_some(u)
    }

    /// [`Users::verify`] off the async runtime's worker threads.
    pub async fn verify_async(self: &Arc<Self>, user: String, password: Secret) -> Option<Username> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.verify(&user, &password)).await.ok().flatten()
    }
}

/// Decodes a SASL PLAIN message (RFC 4616): `[authzid] NUL authcid NUL passwd`.
///
/// # Errors
/// A static description when it's not base64 or not three NUL-separated UTF-8 fields, or when
/// an authorization identity different from the authentication identity is asked for.
pub fn decode_sasl_plain(b64: &[u8]) -> Result<(String, Secret), &'static str> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim_ascii())
        .map_err(|_| "invalid base64 in SASL PLAIN response")?;
    decode_plain_raw(&raw)
}

/// [`decode_sasl_plain`] for already-decoded bytes (IMAP's AUTHENTICATE data arrives decoded).
///
/// # Errors
/// As [`decode_sasl_plain`].
pub fn decode_plain_raw(raw: &[u8]) -> Result<(String, Secret), &'static str> {
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("SASL PLAIN needs authzid NUL authcid NUL password");
    };
    let authz = std::str::from_utf8(authz).map_err(|_| "SASL PLAIN fields must be UTF-8")?;
    let authc = std::str::from_utf8(authc).map_err(|_| "SASL PLAIN fields must be UTF-8")?;
    let pass = std::str::from_utf8(pass).map_err(|_| "SASL PLAIN fields must be UTF-8")?;
    if !authz.is_empty() && authz != authc {
        return Err("proxy authorization (authzid) is not supported");
    }
    Ok((authc.to_string(), Secret::new(pass)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, format!("# demo\ndemo1:{}\n", hash_password("demo"))).unwrap();
        let u = Users::load(&p).unwrap();
        assert_eq!(u.verify("Demo1", &Secret::new("demo")).unwrap().as_str(), "demo1");
        assert!(u.verify("demo1", &Secret::new("wrong")).is_none());
        assert!(u.verify("nobody", &Secret::new("demo")).is_none());
        assert!(u.verify("demo1\r\n", &Secret::new("demo")).is_none());
        assert_eq!(format!("{:?}", Secret::new("demo")), "***");
    }

    #[test]
    fn bad_users_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "ok:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\nbroken\n").unwrap();
        let e = format!("{:#}", Users::load(&p).err().unwrap());
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn sasl_plain() {
        let (u, p) = decode_sasl_plain(b"AGRlbW8xAGRlbW8=").unwrap();
        assert_eq!((u.as_str(), p.expose()), ("demo1", "demo"));
        assert!(decode_sasl_plain(b"!!!").is_err());
        assert!(decode_plain_raw(b"other\0demo1\0demo").is_err());
        assert!(decode_plain_raw(b"demo1\0demo").is_err());
    }
}
