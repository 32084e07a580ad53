//! Postfix socketmap framing and requests: never panic, never read past the buffer, and a
//! netstring we encode decodes back to the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailscale_rolesd::socketmap::codec::{decode, encode, parse_request};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((payload, used)) = decode(rest, 100_000) {
        assert!(used <= rest.len() && payload.len() < used);
        let _ = parse_request(payload);
        rest = &rest[used..];
    }
    let framed = encode(data);
    assert_eq!(decode(&framed, usize::MAX).map(|(p, n)| (p.to_vec(), n)), Ok((data.to_vec(), framed.len())));
});
