//! LMTP command lines and DATA framing never panic; DATA never yields more than its cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstored::lmtp::codec::{parse_command, DataReader};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_command(line);
    }
    let mut reader = DataReader::new(4096);
    let mut rest = data;
    while !rest.is_empty() && !reader.is_done() {
        let n = reader.feed(&rest[..rest.len().min(97)]);
        if n == 0 {
            break;
        }
        rest = &rest[n..];
    }
    if let Some(msg) = reader.finish() {
        assert!(msg.len() <= 4096 + 2);
    }
});
