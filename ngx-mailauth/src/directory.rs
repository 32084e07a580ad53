//! Directories that verify a password: the built-in users file and LDAP. Both are blocking
//! (argon2 is CPU-heavy, LDAP is network I/O): they run only inside nginx thread-pool tasks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;

use crate::decision::Secret;
use crate::escape;

/// What a directory says about a user name and password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The password is right.
    Valid,
    /// The user exists here and the password is wrong (or the directory can't tell the two
    /// apart, as an LDAP bind with a DN template).
    Invalid,
    /// This directory has no such user: ask the next one.
    Unknown,
}

/// A directory failure (unreachable, timed out, misconfigured): a temporary failure for the
/// client, never "wrong password".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryError(pub String);

/// A password check. Implementations block; call only off the event loop.
pub trait Directory: Send + Sync {
    /// Checks `pass` for `user` (a name already checked by [`escape::check_login_name`]).
    ///
    /// # Errors
    ///
    /// [`DirectoryError`] when the directory could not answer.
    fn verify(&self, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError>;

    /// For logs: which directory this is (never a secret).
    fn describe(&self) -> String;
}

/// Asks each directory in order until one knows the user.
///
/// # Errors
///
/// The first [`DirectoryError`]: a directory that can't answer is not skipped, so that a
/// stopped LDAP server can't make a users-file entry of the same name win.
pub fn verify_all(dirs: &[Arc<dyn Directory>], user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
    for dir in dirs {
        match dir.verify(user, pass)? {
            Lookup::Unknown => continue,
            known => return Ok(known),
        }
    }
    Ok(Lookup::Unknown)
}

// ---------------------------------------------------------------------------------------------
// users file

/// Parses a users file: `user:$argon2id$...` lines (mailstored's format), `#` comments.
///
/// # Errors
///
/// A message naming the line for a line without `:`, a bad user name or a hash that is not a
/// PHC string.
pub fn parse_users(path: &Path, text: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let (name, hash) = line.split_once(':').ok_or_else(|| format!("{}: expected `user:hash`", at()))?;
        if !escape::check_login_name(name) {
            return Err(format!("{}: invalid user name {name:?} (allowed: A-Z a-z 0-9 . _ @ + -)", at()));
        }
        PasswordHash::new(hash).map_err(|e| format!("{}: bad password hash: {e}", at()))?;
        map.insert(name.to_owned(), hash.to_owned());
    }
    Ok(map)
}

struct Loaded {
    mtime: Option<SystemTime>,
    users: Arc<HashMap<String, String>>,
}

/// The built-in directory (`mailauth_users`): re-read when the file's modification time
/// changes, so adding a user needs no reload; a broken new version keeps the old one.
pub struct UsersFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl UsersFile {
    /// Loads the file (at `nginx -t` / configuration time).
    ///
    /// # Errors
    ///
    /// Unreadable file or a malformed line, with file and line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let users = parse_users(path, &text)?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Self { path: path.to_owned(), loaded: Mutex::new(Loaded { mtime, users: Arc::new(users) }) })
    }

    fn current(&self) -> Arc<HashMap<String, String>> {
        let mut l = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime != l.mtime {
            if let Ok(users) = std::fs::read_to_string(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_users(&self.path, &t))
            {
                l.users = Arc::new(users);
            }
            l.mtime = mtime;
        }
        l.users.clone()
    }
}

impl Directory for UsersFile {
    fn verify(&self, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
        let users = self.current();
        let Some(hash) = users.get(user) else { return Ok(Lookup::Unknown) };
        let parsed = PasswordHash::new(hash).map_err(|e| DirectoryError(format!("bad hash for a user: {e}")))?;
        Ok(match Argon2::default().verify_password(pass.expose().as_bytes(), &parsed) {
            Ok(()) => Lookup::Valid,
            Err(_) => Lookup::Invalid,
        })
    }

    fn describe(&self) -> String {
        format!("users file {}", self.path.display())
    }
}

// ---------------------------------------------------------------------------------------------
// LDAP

/// How the LDAP directory finds the entry to bind as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LdapMode {
    /// Bind directly as `template` with `%u` replaced by the RFC 4514-escaped user name.
    BindDn(String),
    /// Bind as `search_dn`, search `base` (subtree) with `filter` (`%u` replaced by the RFC
    /// 4515-escaped name), then bind as the one entry found.
    Search {
        /// Search base.
        base: String,
        /// Filter template with `%u`.
        filter: String,
        /// DN of the search account.
        search_dn: String,
        /// Its password (from `search_password_file`).
        search_password: Secret<String>,
    },
}

/// `mailauth_ldap`: the server and how to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// Bind-DN template or search-then-bind.
    pub mode: LdapMode,
    /// Applies to the connection and to each operation.
    pub timeout: Duration,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
}

/// An LDAP directory (ldap3's synchronous client; one connection per verification).
pub struct Ldap {
    config: LdapConfig,
}

/// LDAP result code for a wrong password or unknown bind DN (RFC 4511 4.1.9).
const LDAP_INVALID_CREDENTIALS: u32 = 49;

impl Ldap {
    /// A directory for `config`.
    pub fn new(config: LdapConfig) -> Self {
        Self { config }
    }

    fn connect(&self) -> Result<ldap3::LdapConn, DirectoryError> {
        let settings = ldap3::LdapConnSettings::new()
            .set_conn_timeout(self.config.timeout)
            .set_starttls(self.config.starttls);
        ldap3::LdapConn::with_settings(settings, &self.config.url)
            .map_err(|e| DirectoryError(format!("LDAP {}: cannot connect: {e}", self.config.url)))
    }

    fn bind(&self, ldap: &mut ldap3::LdapConn, dn: &str, pass: &str) -> Result<bool, DirectoryError> {
        let res = ldap
            .with_timeout(self.config.timeout)
            .simple_bind(dn, pass)
            .map_err(|e| DirectoryError(format!("LDAP {}: bind failed: {e}", self.config.url)))?;
        match res.rc {
            0 => Ok(true),
            LDAP_INVALID_CREDENTIALS => Ok(false),
            rc => Err(DirectoryError(format!("LDAP {}: bind answered {rc} {}", self.config.url, res.text))),
        }
    }

    fn verify_on(&self, ldap: &mut ldap3::LdapConn, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
        match &self.config.mode {
            LdapMode::BindDn(template) => {
                let dn = escape::fill_template(template, &escape::ldap_dn_value(user));
                Ok(if self.bind(ldap, &dn, pass.expose())? { Lookup::Valid } else { Lookup::Invalid })
            }
            LdapMode::Search { base, filter, search_dn, search_password } => {
                if !self.bind(ldap, search_dn, search_password.expose())? {
                    return Err(DirectoryError(format!(
                        "LDAP {}: the search account {search_dn:?} was refused",
                        self.config.url
                    )));
                }
                let filter = escape::fill_template(filter, &escape::ldap_filter_value(user));
                let (entries, _) = ldap
                    .with_timeout(self.config.timeout)
                    .search(base, ldap3::Scope::Subtree, &filter, vec!["1.1"])
                    .and_then(|r| r.success())
                    .map_err(|e| DirectoryError(format!("LDAP {}: search failed: {e}", self.config.url)))?;
                match entries.len() {
                    0 => Ok(Lookup::Unknown),
                    1 => {
                        let dn = ldap3::SearchEntry::construct(entries.into_iter().next().expect("one entry")).dn;
                        Ok(if self.bind(ldap, &dn, pass.expose())? { Lookup::Valid } else { Lookup::Invalid })
                    }
                    n => Err(DirectoryError(format!(
                        "LDAP {}: the filter matched {n} entries for one user; refusing",
                        self.config.url
                    ))),
                }
            }
        }
    }
}

impl Directory for Ldap {
    fn verify(&self, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
        // An empty password would be an unauthenticated bind, which servers accept (RFC 4513
        // 5.1.2): never let it mean "valid".
        if pass.expose().is_empty() {
            return Ok(Lookup::Invalid);
        }
        let mut ldap = self.connect()?;
        let result = self.verify_on(&mut ldap, user, pass);
        let _ = ldap.unbind();
        result
    }

    fn describe(&self) -> String {
        format!("LDAP {}", self.config.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // argon2id of "demo" (mailstored hash-password), m=19456,t=2,p=1.
    const DEMO_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$Y5u5DNmOHjGkFBUrXMM7IEtP1yGTN2bsIpuH4LbTzWc";

    fn demo_hash() -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        Argon2::default().hash_password(b"demo", &salt).unwrap().to_string()
    }

    #[test]
    fn users_file_verifies_and_reports_unknown_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, format!("# demo\n\ndemo1:{}\n", demo_hash())).unwrap();
        let users = UsersFile::load(&path).unwrap();
        assert_eq!(users.verify("demo1", &Secret::new("demo".into())).unwrap(), Lookup::Valid);
        assert_eq!(users.verify("demo1", &Secret::new("x".into())).unwrap(), Lookup::Invalid);
        assert_eq!(users.verify("demo2", &Secret::new("demo".into())).unwrap(), Lookup::Unknown);
        let dirs: Vec<Arc<dyn Directory>> = vec![Arc::new(users)];
        assert_eq!(verify_all(&dirs, "nobody", &Secret::new("demo".into())).unwrap(), Lookup::Unknown);
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let p = Path::new("/x/users");
        assert_eq!(parse_users(p, "broken\n").unwrap_err(), "/x/users:1: expected `user:hash`");
        let e = parse_users(p, &format!("ok:{DEMO_HASH}\nbad name:{DEMO_HASH}\n")).unwrap_err();
        assert!(e.starts_with("/x/users:2: invalid user name"), "{e}");
        assert!(parse_users(p, "a:nothash\n").unwrap_err().starts_with("/x/users:1: bad password hash"));
    }

    #[test]
    fn ldap_refuses_empty_passwords_without_connecting() {
        let ldap = Ldap::new(LdapConfig {
            url: "ldap://127.0.0.1:1".into(),
            mode: LdapMode::BindDn("uid=%u,dc=example".into()),
            timeout: Duration::from_millis(100),
            starttls: false,
        });
        assert_eq!(ldap.verify("a", &Secret::new(String::new())).unwrap(), Lookup::Invalid);
        // Nothing listens on port 1: a connection error is a directory error, not "invalid".
        assert!(ldap.verify("a", &Secret::new("p".into())).is_err());
    }
}
