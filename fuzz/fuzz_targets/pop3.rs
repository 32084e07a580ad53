//! POP3 command lines and SASL PLAIN responses never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailstored::pop3::codec::parse_command(data);
    let _ = mailstored::auth::decode_sasl_plain(data);
    let _ = mailstored::auth::decode_plain_raw(data);
});
