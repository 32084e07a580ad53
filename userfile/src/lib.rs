//! The built-in user file: one `user:$argon2id$...` line per user, `#` comments. mailstored
//! (demo and test users) and the frontend module (`mailauth_users`) read the same format.
//! The file is re-read when its modification time changes, so adding a user needs no restart;
//! a broken new version is refused and the old one kept.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Whether `name` is a login name the platform accepts: 1–255 bytes of `[A-Za-z0-9._@+-]`, not
/// starting with `.` (safe as a path component, in an LDAP filter and in an HTTP header).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// Hashes a password for the file (argon2id, random salt, PHC string).
///
/// # Panics
/// Never with the default parameters.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default params").to_string()
}

/// What the file says about a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not in the file (another directory may know the user).
    Unknown,
    Valid,
    Invalid,
}

/// Parses the file's text; errors name the file and line.
///
/// # Errors
/// A line without `:`, an invalid user name or a malformed hash.
pub fn parse(path: &Path, text: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let (name, hash) = line.split_once(':').ok_or_else(|| format!("{}: expected `user:hash`", at()))?;
        if !valid_name(name) {
            return Err(format!("{}: invalid user name {name:?} (allowed: A-Z a-z 0-9 . _ @ + -)", at()));
        }
        PasswordHash::new(hash).map_err(|e| format!("{}: bad password hash: {e}", at()))?;
        map.insert(name.to_ascii_lowercase(), hash.to_owned());
    }
    Ok(map)
}

struct Loaded {
    mtime: Option<SystemTime>,
    users: Arc<HashMap<String, String>>,
}

/// A user file, re-read on change.
pub struct UserFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for UserFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserFile").field("path", &self.path).finish()
    }
}

/// A hash that no password matches, verified for unknown users so that the answer takes as
/// long as for a known one (no user enumeration by timing).
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("mailscale decoy, never a password"))
}

impl UserFile {
    /// # Errors
    /// Unreadable file or a malformed line (named by file and line number).
    pub fn load(path: &Path) -> Result<UserFile, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
        let users = parse(path, &text)?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(UserFile { path: path.to_path_buf(), loaded: Mutex::new(Loaded { mtime, users: Arc::new(users) }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn current(&self) -> Arc<HashMap<String, String>> {
        let mut l = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime != l.mtime {
            // A broken new version keeps the old one; the caller's next load() reports why.
            if let Ok(users) =
                std::fs::read_to_string(&self.path).map_err(|e| e.to_string()).and_then(|t| parse(&self.path, &t))
            {
                l.users = Arc::new(users);
            }
            l.mtime = mtime;
        }
        l.users.clone()
    }

    /// Whether the file has this user (case-insensitive).
    pub fn contains(&self, user: &str) -> bool {
        valid_name(user) && self.current().contains_key(&user.to_ascii_lowercase())
    }

    /// Checks a password. CPU-heavy (argon2, also for unknown users): call it off any event loop.
    pub fn verify(&self, user: &str, password: &str) -> Lookup {
        let users = self.current();
        let hash = if valid_name(user) { users.get(&user.to_ascii_lowercase()) } else { None };
        let known = hash.is_some();
        let parsed = PasswordHash::new(hash.map_or(decoy(), String::as_str));
        let ok = parsed.is_ok_and(|p| Argon2::default().verify_password(password.as_bytes(), &p).is_ok());
        match (known, ok) {
            (false, _) => Lookup::Unknown,
            (true, true) => Lookup::Valid,
            (true, false) => Lookup::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, format!("# demo\ndemo1:{}\n", hash_password("demo"))).unwrap();
        let u = UserFile::load(&p).unwrap();
        assert_eq!(u.verify("Demo1", "demo"), Lookup::Valid);
        assert_eq!(u.verify("demo1", "wrong"), Lookup::Invalid);
        assert_eq!(u.verify("nobody", "demo"), Lookup::Unknown);
        assert_eq!(u.verify("demo1\r\n", "demo"), Lookup::Unknown);
        assert_eq!(u.verify("*)(uid=*", "demo"), Lookup::Unknown);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, format!("demo1:{}\ndemo2:{}\n", hash_password("x"), hash_password("y"))).unwrap();
        assert_eq!(u.verify("demo2", "y"), Lookup::Valid);
        std::fs::write(&p, "broken line\n").unwrap();
        assert_eq!(u.verify("demo2", "y"), Lookup::Valid, "a broken file keeps the old users");
    }

    #[test]
    fn errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, format!("ok:{}\nbroken\n", hash_password("a"))).unwrap();
        assert!(UserFile::load(&p).unwrap_err().contains(":2:"));
        std::fs::write(&p, "a/b:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n").unwrap();
        assert!(UserFile::load(&p).unwrap_err().contains("invalid user name"));
    }

    #[test]
    fn unknown_users_cost_as_much_as_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, format!("demo1:{}\n", hash_password("demo"))).unwrap();
        let u = UserFile::load(&p).unwrap();
        u.verify("nobody", "x");
        let t = std::time::Instant::now();
        u.verify("demo1", "x");
        let known = t.elapsed();
        let t = std::time::Instant::now();
        u.verify("nobody", "x");
        let unknown = t.elapsed();
        assert!(unknown * 3 > known, "unknown {unknown:?} vs known {known:?}");
    }
}
