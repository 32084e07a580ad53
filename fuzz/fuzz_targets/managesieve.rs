//! ManageSieve: a `Session` over a `MemoryStore`, fed any bytes in chunks whose sizes come
//! from the input, before or after a successful login. Never panics; every answer is whole
//! CRLF lines; output stays linear in the input (no command answers more than one script,
//! one listing of a quota-capped store, or one error text); a closed session stays closed
//! and silent; whatever is stored parses as Sieve within the configured size, and at most one
//! stored script is active.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailscale_managesieve::{
    Action, AuthError, Authenticator, Config, Login, MemoryStore, PlainCredentials, ScriptStore, Session,
};

const MAX_SCRIPT: usize = 4096;
const MAX_LINE: usize = 1024;
const MAX_SCRIPTS: usize = 8;
/// Most bytes one framing event (one command, `{n}` continuation or refusal) may answer: a
/// script as a literal, a listing of `MAX_SCRIPTS` names of up to 128 characters (4 bytes
/// each, quoted or as literals), the capabilities, or an error quoting the command or script.
const PER_EVENT: usize = 4 * MAX_SCRIPT + 4 * MAX_LINE;

/// Accepts `tim` / `pw` (authzid empty or `tim`); `later` gets TRYLATER, `away` a referral.
struct Fake(MemoryStore);

impl Authenticator for Fake {
    type Store = MemoryStore;

    fn authenticate(&mut self, c: &PlainCredentials) -> Result<Login<MemoryStore>, AuthError> {
        match (c.authzid.as_deref(), c.authcid.as_str(), c.password.expose().as_str()) {
            (None | Some("tim"), "tim", "pw") => Ok(Login { owner: "tim".into(), store: self.0.clone() }),
            (_, "later", _) => Err(AuthError::TryLater("directory down".into())),
            (_, "away", _) => Err(AuthError::Referral("sieve://other.example".into())),
            _ => Err(AuthError::Rejected),
        }
    }
}

/// `"\0tim\0pw"` in base64.
const LOGIN: &[u8] = b"AUTHENTICATE \"PLAIN\" \"AHRpbQBwdw==\"\r\n";

fn lfs(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

fuzz_target!(|data: &[u8]| {
    let [flags, s0, s1, s2, rest @ ..] = data else { return };
    let sizes = [*s0, *s1, *s2];
    let pre_auth = flags & 0x10 != 0;
    let config = Config {
        tls_available: flags & 0x01 != 0,
        allow_plaintext_auth: flags & 0x02 != 0,
        allow_sync_literals: flags & 0x04 != 0,
        max_line: MAX_LINE,
        max_script_size: MAX_SCRIPT,
        max_auth_failures: 3,
        ..Config::default()
    };
    let store = MemoryStore::new().with_quota(Some(MAX_SCRIPTS), Some(MAX_SCRIPT as u64), Some(4 * MAX_SCRIPT as u64));
    let mut session = Session::new(config, Fake(store.clone()), pre_auth || flags & 0x08 != 0);
    let mut written = session.greeting().len();
    let mut newlines = 0;
    if pre_auth {
        let out = session.feed(LOGIN);
        assert_eq!(out.bytes, b"OK\r\n");
        assert_eq!(session.owner(), Some("tim"));
        newlines += 1;
        written += out.bytes.len();
    }

    let mut input = rest;
    let mut i = 0;
    while !input.is_empty() {
        let size = match sizes[i % sizes.len()] {
            0 => input.len(),
            n => usize::from(n % 64) + 1,
        };
        i += 1;
        let (chunk, tail) = input.split_at(size.min(input.len()));
        input = tail;
        newlines += lfs(chunk);
        let was_closed = session.is_closed();
        let out = session.feed(chunk);
        written += out.bytes.len();
        if was_closed {
            assert!(out.bytes.is_empty() && out.action.is_none(), "a closed session answered");
        }
        if !out.bytes.is_empty() {
            assert!(
                out.bytes.ends_with(b"\r\n"),
                "answer is not whole lines: {:?}",
                String::from_utf8_lossy(&out.bytes)
            );
        }
        match out.action {
            Some(Action::Close) => assert!(session.is_closed()),
            Some(Action::StartTls) => {
                assert!(!session.is_tls());
                written += session.tls_established().len();
                assert!(session.is_tls());
            }
            None => {}
        }
        assert!(written <= PER_EVENT * (newlines + 2), "{written} bytes answered to {newlines} lines");
    }

    let mut store = store;
    let listed = store.list().expect("memory store");
    assert!(listed.len() <= MAX_SCRIPTS);
    assert!(listed.iter().filter(|(_, active)| *active).count() <= 1);
    let limits = mailscale_sieve::Limits { max_script_size: MAX_SCRIPT, ..Default::default() };
    for (name, _) in &listed {
        let text = store.get(name).expect("listed script");
        if let Err(e) = mailscale_sieve::parse_with_limits(&text, &limits) {
            panic!("stored script {:?} does not parse: {e}", name.as_str());
        }
    }
});
