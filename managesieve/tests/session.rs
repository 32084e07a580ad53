//! Session behaviour beyond the RFC's examples: literals split anywhere, size limits,
//! synchronising literals, syntax errors, authentication rules, script rules.

mod common;

use common::*;
use mailscale_managesieve::{Action, Config, MemoryStore, Output, Session};

/// A whole conversation in one string: login, upload with a literal, read back, logout.
fn conversation() -> Vec<u8> {
    let script = "require \"fileinto\";\r\nif header :contains \"subject\" \"{5+}\" {\r\n  fileinto \"x\";\r\n}\r\n";
    format!(
        "AUTHENTICATE \"PLAIN\" {{{}+}}\r\n{TIM}\r\nPUTSCRIPT {{4+}}\r\nmain {{{}+}}\r\n{script}\r\n\
         SETACTIVE \"main\"\r\nGETSCRIPT \"main\"\r\nNOOP \"a\\\"b\"\r\nLISTSCRIPTS\r\nLOGOUT\r\n",
        TIM.len(),
        script.len()
    )
    .into_bytes()
}

fn run(chunks: &[&[u8]]) -> (Output, MemoryStore) {
    let store = MemoryStore::new();
    let mut s = session_with(config(), store.clone(), true);
    let mut all = Output::default();
    for chunk in chunks {
        let out = s.feed(chunk);
        all.bytes.extend_from_slice(&out.bytes);
        if out.action.is_some() {
            all.action = out.action;
        }
    }
    (all, store)
}

#[test]
fn conversation_in_one_piece() {
    let (out, store) = run(&[&conversation()]);
    let text = String::from_utf8(out.bytes).unwrap();
    let script = store.script("main").unwrap();
    assert_eq!(
        text,
        format!(
            "OK\r\nOK\r\nOK\r\n{{{}}}\r\n{script}\r\nOK\r\nOK (TAG \"a\\\"b\") \"Done\"\r\n\"main\" ACTIVE\r\nOK\r\nOK \"Logout completed\"\r\n",
            script.len()
        )
    );
    assert_eq!(out.action, Some(Action::Close));
}

#[test]
fn literal_split_at_every_byte_position() {
    let input = conversation();
    let (whole, _) = run(&[&input]);
    for cut in 0..=input.len() {
        let (split, store) = run(&[&input[..cut], &input[cut..]]);
        assert_eq!(split, whole, "split at byte {cut}");
        assert!(store.script("main").is_some());
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes).0, whole, "one byte at a time");
}

#[test]
fn oversized_literal_is_refused_and_the_stream_stays_in_step() {
    let cfg = Config { max_script_size: 100, ..config() };
    let store = MemoryStore::new();
    let mut s = session_with(cfg, store.clone(), true);
    transcript(&mut s, &[(&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n")]);
    // The literal's content looks like commands; none of it may run.
    let body = "DELETESCRIPT \"x\"\r\n".repeat(10);
    transcript(
        &mut s,
        &[
            (
                &format!("PUTSCRIPT \"big\" {{{}+}}\r\n{body}\r\n", body.len()),
                "NO (QUOTA/MAXSIZE) \"180 bytes is over the limit of 100 bytes\"\r\n",
            ),
            ("NOOP\r\n", "OK \"NOOP completed\"\r\n"),
        ],
    );
    assert_eq!(store.script("big"), None);
    // Before login, literals are capped at max_line.
    let mut s = session_with(Config { max_line: 64, ..config() }, MemoryStore::new(), true);
    transcript(
        &mut s,
        &[
            (
                &format!("AUTHENTICATE \"PLAIN\" {{100+}}\r\n{}\r\n", "A".repeat(100)),
                "NO \"Literal of 100 bytes is over the limit of 64 before login\"\r\n",
            ),
            ("NOOP\r\n", "OK \"NOOP completed\"\r\n"),
        ],
    );
}

#[test]
fn synchronising_literal_is_refused_by_default() {
    let (mut s, store) = logged_in();
    let out = s.feed(b"PUTSCRIPT \"a\" {5}\r\n");
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        "BYE \"Protocol error: synchronizing literals are not allowed in ManageSieve, use {n+} (RFC 5804 section 4)\"\r\n"
    );
    assert_eq!(out.action, Some(Action::Close));
    assert!(s.feed(b"keep;\r\n").bytes.is_empty());
    assert_eq!(store.script("a"), None);
}

#[test]
fn synchronising_literal_when_allowed_gets_a_continuation() {
    let cfg = Config { allow_sync_literals: true, max_script_size: 10, ..config() };
    let store = MemoryStore::new();
    let mut s = session_with(cfg, store.clone(), true);
    transcript(
        &mut s,
        &[
            (&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n"),
            ("PUTSCRIPT \"a\" {5}\r\n", "+ \"Ready for literal data\"\r\n"),
            ("keep;\r\n", "OK\r\n"),
            // Too large: refused before the client sends the octets.
            ("PUTSCRIPT \"b\" {500}\r\n", "NO (QUOTA/MAXSIZE) \"500 bytes is over the limit of 10 bytes\"\r\n"),
            ("NOOP\r\n", "OK \"NOOP completed\"\r\n"),
        ],
    );
    assert_eq!(store.script("a").as_deref(), Some("keep;"));
}

#[test]
fn bad_syntax() {
    let (mut s, _) = logged_in();
    transcript(
        &mut s,
        &[
            ("FROBNICATE\r\n", "NO \"Unknown command FROBNICATE\"\r\n"),
            ("\r\n", "NO \"Empty command line\"\r\n"),
            (
                "GETSCRIPT foo\r\n",
                "NO \"Syntax error in GETSCRIPT: the script name must be a quoted string or a literal, got foo\"\r\n",
            ),
            ("GETSCRIPT \"foo\r\n", "NO \"Syntax error in command: unterminated quoted string\"\r\n"),
            (
                "GETSCRIPT \"a\\b\"\r\n",
                "NO \"Syntax error in command: only \\\\\\\" and \\\\\\\\ may be escaped in a quoted string\"\r\n",
            ),
            ("LISTSCRIPTS now\r\n", "NO \"Syntax error in LISTSCRIPTS: usage: LISTSCRIPTS takes no arguments\"\r\n"),
            ("HAVESPACE \"a\" lots\r\n", "NO \"Syntax error in HAVESPACE: size must be a number\"\r\n"),
            ("PUTSCRIPT \"\" \"keep;\"\r\n", "NO \"Invalid script name: script name is empty\"\r\n"),
            ("GETSCRIPT {3+}\r\na\rb\r\n", "NO \"Invalid script name: script name contains a control character\"\r\n"),
            (
                &format!("GETSCRIPT \"{}\"\r\n", "n".repeat(129)),
                "NO \"Invalid script name: script name is longer than 128 characters\"\r\n",
            ),
            ("NOOP\r\n", "OK \"NOOP completed\"\r\n"),
        ],
    );
}

#[test]
fn overlong_line_ends_the_connection() {
    let mut s = session_with(Config { max_line: 100, ..config() }, MemoryStore::new(), true);
    let out = s.feed(format!("NOOP \"{}\"\r\n", "x".repeat(200)).as_bytes());
    assert_eq!(out.bytes, b"BYE \"Protocol error: command line longer than 100 bytes\"\r\n");
    assert_eq!(out.action, Some(Action::Close));
    // Also when no line end ever comes.
    let mut s = session_with(Config { max_line: 100, ..config() }, MemoryStore::new(), true);
    assert!(s.feed(&[b'x'; 90]).bytes.is_empty());
    assert_eq!(s.feed(&[b'x'; 90]).action, Some(Action::Close));
}

#[test]
fn authentication_rules() {
    // No TLS and plaintext not allowed: PLAIN is neither offered nor accepted.
    let mut s = session_with(config(), MemoryStore::new(), false);
    transcript(
        &mut s,
        &[
            (
                &format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"),
                "NO (ENCRYPT-NEEDED) \"PLAIN needs TLS: use STARTTLS first\"\r\n",
            ),
            ("GETSCRIPT \"a\"\r\n", "NO \"GETSCRIPT needs authentication: expected AUTHENTICATE first\"\r\n"),
        ],
    );
    // Allowed by configuration.
    let mut s = session_with(Config { allow_plaintext_auth: true, ..config() }, MemoryStore::new(), false);
    assert!(String::from_utf8(s.greeting()).unwrap().contains("\"SASL\" \"PLAIN\"\r\n"));
    transcript(&mut s, &[(&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n")]);

    let mut s = session_with(config(), MemoryStore::new(), true);
    // base64("\0tim\0wrong"), base64("bob\0tim\0tanstaaftanstaaf"), base64("\0down\0x")
    transcript(
        &mut s,
        &[
            ("AUTHENTICATE \"DIGEST-MD5\"\r\n", "NO \"Unsupported SASL mechanism DIGEST-MD5: use PLAIN\"\r\n"),
            ("AUTHENTICATE \"PLAIN\" \"AHRpbQB3cm9uZw==\"\r\n", "NO \"Authentication failed\"\r\n"),
            ("AUTHENTICATE \"PLAIN\" \"Ym9iAHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n", "NO \"Authentication failed\"\r\n"),
            (
                "AUTHENTICATE \"PLAIN\" \"AGRvd24AeA==\"\r\n",
                "NO (TRYLATER) \"Authentication is temporarily unavailable\"\r\n",
            ),
            ("AUTHENTICATE \"PLAIN\"\r\n", "\"\"\r\n"),
            ("NOOP\r\n", "NO \"Bad SASL response: expected one quoted string or literal\"\r\n"),
            // A frontend ticket as password: base64("\0ticket\0T1").
            ("AUTHENTICATE \"PLAIN\" \"AHRpY2tldABUMQ==\"\r\n", "OK\r\n"),
            (&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "NO \"Already authenticated\"\r\n"),
            ("STARTTLS\r\n", "NO \"STARTTLS is only allowed before AUTHENTICATE\"\r\n"),
        ],
    );
    assert_eq!(s.owner(), Some("ticket"));
}

#[test]
fn failures_are_counted_across_the_continuation_form() {
    let mut s = session_with(config(), MemoryStore::new(), true);
    let action = transcript(
        &mut s,
        &[
            ("AUTHENTICATE \"PLAIN\" \"not base64!\"\r\n", "NO \"Authentication failed\"\r\n"),
            ("AUTHENTICATE \"PLAIN\"\r\n", "\"\"\r\n"),
            ("\"AHRpbQB3cm9uZw==\"\r\n", "NO \"Authentication failed\"\r\n"),
            ("AUTHENTICATE \"PLAIN\"\r\n", "\"\"\r\n"),
            ("{16+}\r\nAHRpbQB3cm9uZw==\r\n", "BYE \"Too many failed authentication attempts\"\r\n"),
        ],
    );
    assert_eq!(action, Some(Action::Close));
}

#[test]
fn putscript_rules() {
    let store = MemoryStore::new().with_quota(Some(1), None, Some(50));
    let mut s = session_with(config(), store.clone(), true);
    transcript(
        &mut s,
        &[
            (&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n"),
            ("PUTSCRIPT \"a\" \"keep;\"\r\n", "OK\r\n"),
            ("SETACTIVE \"a\"\r\n", "OK\r\n"),
            // Replacing the active script keeps it active and is not a new script.
            ("PUTSCRIPT \"a\" \"discard;\"\r\n", "OK\r\n"),
            ("PUTSCRIPT \"b\" \"keep;\"\r\n", "NO (QUOTA/MAXSCRIPTS) \"Too many scripts\"\r\n"),
            (&format!("PUTSCRIPT \"a\" \"{}keep;\"\r\n", "#".repeat(60)), "NO (QUOTA) \"Quota exceeded\"\r\n"),
            ("PUTSCRIPT \"a\" \"fileinto \\\"x\\\";\"\r\n", "NO \"line 1, column 1: the fileinto command needs the \\\"fileinto\\\" capability: add require \\\"fileinto\\\";\"\r\n"),
        ],
    );
    let out = s.feed(b"PUTSCRIPT \"a\" {2+}\r\n\xff;\r\n");
    assert_eq!(out.bytes, b"NO \"Script is not valid UTF-8 (first bad byte at offset 0)\"\r\n");
    assert_eq!(store.script("a").as_deref(), Some("discard;"));
    assert_eq!(store.active().as_deref(), Some("a"));
}

#[test]
fn putscript_syntax_error_names_line_and_column() {
    let (mut s, store) = logged_in();
    let script = "require \"fileinto\";\r\nif true {\r\n  fileinto \"a\"\r\n}\r\n";
    let out = s.feed(format!("PUTSCRIPT \"s\" {{{}+}}\r\n{script}\r\n", script.len()).as_bytes());
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(text.starts_with("NO \"line 4, column 1: "), "{text}");
    assert_eq!(store.script("s"), None);
}

#[test]
fn input_after_close_is_ignored() {
    let mut s: Session<TestAuth> = session_with(config(), MemoryStore::new(), true);
    assert_eq!(s.feed(b"LOGOUT\r\n").action, Some(Action::Close));
    assert_eq!(s.feed(b"NOOP\r\n"), Output::default());
}

/// xorshift64: deterministic noise without a dependency.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn mangled_conversations_never_panic_and_stay_bounded() {
    let base = conversation();
    let mut seed = 0x5eed_u64;
    for _ in 0..2000 {
        let mut input = base.clone();
        for _ in 0..(noise(&mut seed) % 8) {
            let at = (noise(&mut seed) % input.len() as u64) as usize;
            let pick = b"{}+\"\\ \r\n0123456789AZ\x00\xff";
            match noise(&mut seed) % 3 {
                0 => input[at] = pick[(noise(&mut seed) % pick.len() as u64) as usize],
                1 => {
                    input.remove(at);
                }
                _ => input.insert(at, pick[(noise(&mut seed) % pick.len() as u64) as usize]),
            }
        }
        let cut = (noise(&mut seed) % (input.len() as u64 + 1)) as usize;
        let cfg = Config { max_line: 256, max_script_size: 512, ..config() };
        let mut s = session_with(cfg, MemoryStore::new(), true);
        let mut total = 0;
        for chunk in [&input[..cut], &input[cut..]] {
            let out = s.feed(chunk);
            total += out.bytes.len();
            if out.action == Some(Action::Close) {
                break;
            }
        }
        assert!(total < 8 * input.len() + 4096, "output grows with input only");
    }
}
