//! Mailbox names from the wire: modified UTF-7 decoding and validation never panic, a valid
//! name can't escape its hierarchy, and encode/decode round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstore::MailboxName;
use mailstored::imap::utf7;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = utf7::decode(data) else { return };
    let Ok(name) = MailboxName::new(&decoded) else { return };
    let s = name.as_str();
    assert!(!s.starts_with('/'));
    assert!(!s.split('/').any(|p| p.is_empty() || p == "." || p == ".."));
    assert!(!s.chars().any(char::is_control));
    assert_eq!(utf7::decode(utf7::encode(s).as_bytes()).as_deref(), Ok(s));
});
