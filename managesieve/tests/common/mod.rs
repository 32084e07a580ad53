//! Fixtures shared by the transcript tests: an authenticator with two users and a helper that
//! plays a client/server transcript against a session.

#![allow(dead_code)]

use mailscale_managesieve::{
    Action, AuthError, Authenticator, Config, Login, MemoryStore, PlainCredentials, ScriptStore, Session,
};

/// `tim` / `tanstaaftanstaaf` (the RFC 5804 examples' user), `ticket` accepts the frontend
/// ticket `T1`, `down` makes the directory unavailable.
pub struct TestAuth {
    pub store: MemoryStore,
}

impl Authenticator for TestAuth {
    type Store = MemoryStore;

    fn authenticate(&mut self, c: &PlainCredentials) -> Result<Login<MemoryStore>, AuthError> {
        let ok = match (c.authcid.as_str(), c.password.expose().as_str()) {
            ("tim", "tanstaaftanstaaf") | ("ticket", "T1") => true,
            ("down", _) => return Err(AuthError::TryLater("ldap unreachable".into())),
            _ => false,
        };
        // Acting as another user is not allowed here.
        if !ok || c.authzid.as_deref().is_some_and(|z| z != c.authcid) {
            return Err(AuthError::Rejected);
        }
        Ok(Login { owner: c.authcid.clone(), store: self.store.clone() })
    }
}

/// base64("\0tim\0tanstaaftanstaaf")
pub const TIM: &str = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";

pub fn config() -> Config {
    Config { tls_available: true, ..Config::default() }
}

pub fn session_with(config: Config, store: MemoryStore, tls: bool) -> Session<TestAuth> {
    Session::new(config, TestAuth { store }, tls)
}

/// A TLS session logged in as tim, with its store.
pub fn logged_in() -> (Session<TestAuth>, MemoryStore) {
    let store = MemoryStore::new();
    let mut s = session_with(config(), store.clone(), true);
    let out = s.feed(format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n").as_bytes());
    assert_eq!(String::from_utf8_lossy(&out.bytes), "OK\r\n");
    (s, store)
}

pub fn put(store: &MemoryStore, name: &str, script: &str) {
    let mut store = store.clone();
    store.put(&mailscale_managesieve::ScriptName::new(name).unwrap(), script).unwrap();
}

/// Plays `C:`/`S:` pairs: each client chunk is fed whole and the server's answer must be
/// exactly the expected text. Returns the last action.
pub fn transcript(s: &mut Session<TestAuth>, steps: &[(&str, &str)]) -> Option<Action> {
    let mut action = None;
    for (client, server) in steps {
        let out = s.feed(client.as_bytes());
        assert_eq!(String::from_utf8_lossy(&out.bytes), *server, "answer to {client:?}");
        action = out.action;
    }
    action
}

/// The capability lines of a default config, without the final OK.
pub fn caps(sasl: &str, starttls: bool, owner: Option<&str>) -> String {
    let mut c = format!(
        "\"IMPLEMENTATION\" \"mailscale ManageSieve\"\r\n\"SASL\" \"{sasl}\"\r\n\"SIEVE\" \"{}\"\r\n",
        mailscale_sieve::capabilities()
    );
    if starttls {
        c.push_str("\"STARTTLS\"\r\n");
    }
    c.push_str("\"MAXREDIRECTS\" \"4\"\r\n");
    if let Some(o) = owner {
        c.push_str(&format!("\"OWNER\" \"{o}\"\r\n"));
    }
    c.push_str("\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n");
    c
}
