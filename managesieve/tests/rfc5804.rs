//! The examples of RFC 5804 section 2, played as transcripts. Where an example's server text is
//! free-form, ours is checked; where an example is not valid against the rest of the RFCs
//! (the PUTSCRIPT example uses `envelope` without requiring it), it is corrected and says so.

mod common;

use common::*;
use mailscale_managesieve::{Action, Config, MemoryStore};

#[test]
fn greeting_and_capability_2_4() {
    let mut s = session_with(config(), MemoryStore::new(), false);
    assert_eq!(
        String::from_utf8(s.greeting()).unwrap(),
        format!("{}OK \"ManageSieve ready\"\r\n", caps("", true, None))
    );
    transcript(&mut s, &[("CAPABILITY\r\n", &format!("{}OK\r\n", caps("", true, None)))]);
    // With TLS from the start: PLAIN offered, no STARTTLS.
    let mut s = session_with(config(), MemoryStore::new(), true);
    transcript(&mut s, &[("capability\r\n", &format!("{}OK\r\n", caps("PLAIN", false, None)))]);
    // After authentication: OWNER.
    let (mut s, _) = logged_in();
    transcript(&mut s, &[("Capability\r\n", &format!("{}OK\r\n", caps("PLAIN", false, Some("tim"))))]);
}

#[test]
fn starttls_2_2() {
    let mut s = session_with(config(), MemoryStore::new(), false);
    // Mixed case as in the RFC; a command pipelined behind STARTTLS in plaintext is dropped.
    let out = s.feed(b"StartTls\r\nLISTSCRIPTS\r\n");
    assert_eq!(out.bytes, b"OK \"Begin TLS negotiation now\"\r\n");
    assert_eq!(out.action, Some(Action::StartTls));
    assert!(s.feed(b"CAPABILITY\r\n").bytes.is_empty(), "nothing is read during the handshake");
    let after = s.tls_established();
    assert_eq!(String::from_utf8(after).unwrap(), format!("{}OK\r\n", caps("PLAIN", false, None)));
    assert!(s.is_tls());
    transcript(
        &mut s,
        &[
            ("STARTTLS\r\n", "NO \"TLS is already active\"\r\n"),
            (&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n"),
        ],
    );
    // Without TLS configured the command is refused.
    let mut s = session_with(Config::default(), MemoryStore::new(), false);
    transcript(&mut s, &[("STARTTLS\r\n", "NO \"STARTTLS is not available\"\r\n")]);
}

#[test]
fn authenticate_plain_2_1() {
    // Initial response in the command.
    let mut s = session_with(config(), MemoryStore::new(), true);
    transcript(&mut s, &[(&format!("Authenticate \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n")]);
    assert_eq!(s.owner(), Some("tim"));

    // Empty challenge, response as a literal.
    let mut s = session_with(config(), MemoryStore::new(), true);
    transcript(
        &mut s,
        &[("AUTHENTICATE \"PLAIN\"\r\n", "\"\"\r\n"), (&format!("{{{}+}}\r\n{TIM}\r\n", TIM.len()), "OK\r\n")],
    );
    assert_eq!(s.owner(), Some("tim"));

    // Initial response as a literal.
    let mut s = session_with(config(), MemoryStore::new(), true);
    transcript(&mut s, &[(&format!("AUTHENTICATE \"PLAIN\" {{{}+}}\r\n{TIM}\r\n", TIM.len()), "OK\r\n")]);

    // The client cancels with "*".
    let mut s = session_with(config(), MemoryStore::new(), true);
    transcript(
        &mut s,
        &[
            ("AUTHENTICATE \"PLAIN\"\r\n", "\"\"\r\n"),
            ("\"*\"\r\n", "NO \"Authentication cancelled\"\r\n"),
            ("LISTSCRIPTS\r\n", "NO \"LISTSCRIPTS needs authentication: expected AUTHENTICATE first\"\r\n"),
        ],
    );
}

#[test]
fn authenticate_failures_end_with_bye_2_1_example_2() {
    let mut s = session_with(config(), MemoryStore::new(), true);
    let action = transcript(
        &mut s,
        &[
            ("AUTHENTICATE \"PLAIN\" \"QJIrweAPyo6Q1T9xu\"\r\n", "NO \"Authentication failed\"\r\n"),
            ("AUTHENTICATE \"PLAIN\" \"QJIrweAPyo6Q1T9xz\"\r\n", "NO \"Authentication failed\"\r\n"),
            ("AUTHENTICATE \"PLAIN\" \"QJIrweAPyo6Q1T9xy\"\r\n", "BYE \"Too many failed authentication attempts\"\r\n"),
        ],
    );
    assert_eq!(action, Some(Action::Close));
    assert!(s.is_closed());
    assert!(s.feed(format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n").as_bytes()).bytes.is_empty());
}

#[test]
fn havespace_2_5() {
    let store = MemoryStore::new().with_quota(Some(2), Some(10_000), None);
    let (mut s, _) = logged_in_with(store.clone());
    put(&store, "a", "keep;");
    put(&store, "b", "keep;");
    transcript(
        &mut s,
        &[
            ("HAVESPACE \"myscript\" 999999\r\n", "NO (QUOTA/MAXSIZE) \"Script is too large\"\r\n"),
            ("HAVESPACE \"a\" 435\r\n", "OK\r\n"),
            ("HAVESPACE \"foobar\" 435\r\n", "NO (QUOTA/MAXSCRIPTS) \"Too many scripts\"\r\n"),
            // Over the session's own limit, before asking the store.
            ("HAVESPACE \"foobar\" 4294967295\r\n", "NO (QUOTA/MAXSIZE) \"Scripts are limited to 1048576 bytes\"\r\n"),
        ],
    );
}

fn logged_in_with(store: MemoryStore) -> (mailscale_managesieve::Session<TestAuth>, MemoryStore) {
    let mut s = session_with(config(), store.clone(), true);
    transcript(&mut s, &[(&format!("AUTHENTICATE \"PLAIN\" \"{TIM}\"\r\n"), "OK\r\n")]);
    (s, store)
}

#[test]
fn putscript_2_6() {
    let (mut s, store) = logged_in();
    transcript(
        &mut s,
        &[(
            "Putscript \"foo\" {31+}\r\n#comment\r\nInvalidSieveCommand\r\n\r\n",
            "NO \"line 2, column 1: unknown command 'invalidsievecommand'\"\r\n",
        )],
    );
    assert_eq!(store.script("foo"), None);
    // The RFC's second example uses `envelope` without requiring it, which RFC 5228 forbids.
    let script = "require [\"fileinto\", \"envelope\"];\r\n\r\nif envelope :contains \"to\" \"tmartin+sent\" {\r\n  fileinto \"INBOX.sent\";\r\n}\r\n";
    transcript(&mut s, &[(&format!("Putscript \"mysievescript\" {{{}+}}\r\n{script}\r\n", script.len()), "OK\r\n")]);
    assert_eq!(store.script("mysievescript").as_deref(), Some(script));
}

#[test]
fn listscripts_2_7() {
    let (mut s, store) = logged_in();
    transcript(&mut s, &[("Listscripts\r\n", "OK\r\n")]);
    for name in ["summer_script", "vacation_script", "clever\"script", "main_script"] {
        put(&store, name, "keep;");
    }
    transcript(&mut s, &[("SETACTIVE \"main_script\"\r\n", "OK\r\n")]);
    transcript(
        &mut s,
        &[(
            "Listscripts\r\n",
            "\"clever\\\"script\"\r\n\"main_script\" ACTIVE\r\n\"summer_script\"\r\n\"vacation_script\"\r\nOK\r\n",
        )],
    );
}

#[test]
fn setactive_2_8() {
    let (mut s, store) = logged_in();
    put(&store, "vacationscript", "keep;");
    transcript(&mut s, &[("Setactive \"vacationscript\"\r\n", "OK\r\n")]);
    assert_eq!(store.active().as_deref(), Some("vacationscript"));
    transcript(&mut s, &[("Setactive \"\"\r\n", "OK\r\n")]);
    assert_eq!(store.active(), None);
    transcript(&mut s, &[("Setactive \"baz\"\r\n", "NO (NONEXISTENT) \"There is no script by that name\"\r\n")]);
}

#[test]
fn getscript_2_9() {
    let (mut s, store) = logged_in();
    put(&store, "myscript", "#this is my wonderful script\r\nreject \"I reject all\";\r\n");
    transcript(
        &mut s,
        &[
            (
                "Getscript \"myscript\"\r\n",
                "{54}\r\n#this is my wonderful script\r\nreject \"I reject all\";\r\n\r\nOK\r\n",
            ),
            ("Getscript \"nothere\"\r\n", "NO (NONEXISTENT) \"There is no script by that name\"\r\n"),
        ],
    );
}

#[test]
fn deletescript_2_10() {
    let (mut s, store) = logged_in();
    put(&store, "foo", "keep;");
    put(&store, "baz", "keep;");
    transcript(
        &mut s,
        &[
            ("Setactive \"baz\"\r\n", "OK\r\n"),
            ("Deletescript \"foo\"\r\n", "OK\r\n"),
            ("Deletescript \"baz\"\r\n", "NO (ACTIVE) \"You may not delete an active script\"\r\n"),
            ("Deletescript \"foo\"\r\n", "NO (NONEXISTENT) \"There is no script by that name\"\r\n"),
        ],
    );
    assert_eq!(store.script("foo"), None);
    assert!(store.script("baz").is_some());
}

#[test]
fn renamescript_2_11() {
    let (mut s, store) = logged_in();
    put(&store, "foo", "keep;");
    put(&store, "baz", "discard;");
    transcript(
        &mut s,
        &[
            ("Setactive \"foo\"\r\n", "OK\r\n"),
            ("Renamescript \"foo\" \"bar\"\r\n", "OK\r\n"),
            ("Renamescript \"baz\" \"bar\"\r\n", "NO (ALREADYEXISTS) \"A script with that name already exists\"\r\n"),
            ("Renamescript \"foo\" \"qux\"\r\n", "NO (NONEXISTENT) \"There is no script by that name\"\r\n"),
        ],
    );
    assert_eq!(store.active().as_deref(), Some("bar"), "the active script stays active under its new name");
    assert_eq!(store.script("bar").as_deref(), Some("keep;"));
    assert_eq!(store.script("baz").as_deref(), Some("discard;"));
}

#[test]
fn checkscript_2_12() {
    let (mut s, store) = logged_in();
    transcript(
        &mut s,
        &[
            (
                "CheckScript {31+}\r\n#comment\r\nInvalidSieveCommand\r\n\r\n",
                "NO \"line 2, column 1: unknown command 'invalidsievecommand'\"\r\n",
            ),
            ("CHECKSCRIPT {28+}\r\nrequire \"fileinto\";\r\nkeep;\r\n\r\n", "OK\r\n"),
        ],
    );
    assert!(store.clone().list_names().is_empty(), "CHECKSCRIPT stores nothing");
}

trait Names {
    fn list_names(&mut self) -> Vec<String>;
}

impl Names for MemoryStore {
    fn list_names(&mut self) -> Vec<String> {
        use mailscale_managesieve::ScriptStore;
        self.list().unwrap().into_iter().map(|(n, _)| n.to_string()).collect()
    }
}

#[test]
fn noop_2_13() {
    let mut s = session_with(config(), MemoryStore::new(), false);
    transcript(
        &mut s,
        &[
            ("NOOP\r\n", "OK \"NOOP completed\"\r\n"),
            ("NOOP \"STARTTLS-SYNC-42\"\r\n", "OK (TAG \"STARTTLS-SYNC-42\") \"Done\"\r\n"),
            ("NOOP {3+}\r\na\"b\r\n", "OK (TAG \"a\\\"b\") \"Done\"\r\n"),
        ],
    );
}

#[test]
fn unauthenticate_2_14_and_logout_2_3() {
    let (mut s, _) = logged_in();
    transcript(
        &mut s,
        &[
            ("UNAUTHENTICATE\r\n", "OK\r\n"),
            ("LISTSCRIPTS\r\n", "NO \"LISTSCRIPTS needs authentication: expected AUTHENTICATE first\"\r\n"),
            ("UNAUTHENTICATE\r\n", "NO \"UNAUTHENTICATE: not authenticated\"\r\n"),
        ],
    );
    let action = transcript(&mut s, &[("Logout\r\nNOOP\r\n", "OK \"Logout completed\"\r\n")]);
    assert_eq!(action, Some(Action::Close));
}
