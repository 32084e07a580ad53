//! Directories that verify a password: the built-in users file and LDAP. Both are blocking
//! (argon2 is CPU-heavy, LDAP is network I/O): they run only inside nginx thread-pool tasks.

use std::path::Path;
use std::time::Duration;

use crate::decision::Secret;
use crate::escape;
use crate::flow::Pool;

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

    /// The thread pool its checks run on: the users file (CPU only) on its own pool, so that a
    /// stalled LDAP server can't hold its logins up.
    fn pool(&self) -> Pool {
        Pool::Directory
    }
}

// ---------------------------------------------------------------------------------------------
// users file

/// The built-in directory (`mailauth_users`): mailstored's users file format, re-read when the
/// file's modification time changes (no reload to add a user; a broken version keeps the old).
pub struct UsersFile(mailscale_userfile::UserFile);

impl UsersFile {
    /// Loads the file (at `nginx -t` / configuration time).
    ///
    /// # Errors
    ///
    /// Unreadable file or a malformed line, with file and line.
    pub fn load(path: &Path) -> Result<Self, String> {
        mailscale_userfile::UserFile::load(path).map(Self)
    }
}

impl Directory for UsersFile {
    fn verify(&self, user: &str, pass: &Secret<String>) -> Result<Lookup, DirectoryError> {
        Ok(match self.0.verify(user, pass.expose()) {
            mailscale_userfile::Lookup::Valid => Lookup::Valid,
            mailscale_userfile::Lookup::Invalid => Lookup::Invalid,
            mailscale_userfile::Lookup::Unknown => Lookup::Unknown,
        })
    }

    fn describe(&self) -> String {
        format!("users file {}", self.0.path().display())
    }

    fn pool(&self) -> Pool {
        Pool::Users
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
        let settings =
            ldap3::LdapConnSettings::new().set_conn_timeout(self.config.timeout).set_starttls(self.config.starttls);
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

    fn verify_on(
        &self,
        ldap: &mut ldap3::LdapConn,
        user: &str,
        pass: &Secret<String>,
    ) -> Result<Lookup, DirectoryError> {
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

    fn demo_hash() -> String {
        mailscale_userfile::hash_password("demo")
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
        assert_eq!(users.pool(), Pool::Users, "users-file checks never queue behind LDAP");
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, format!("ok:{}\nbad name:{}\n", demo_hash(), demo_hash())).unwrap();
        let e = UsersFile::load(&path).err().unwrap();
        assert!(
            e.ends_with(&format!(
                "{}:2: invalid user name \"bad name\" (allowed: A-Z a-z 0-9 . _ @ + -)",
                path.display()
            )),
            "{e}"
        );
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
