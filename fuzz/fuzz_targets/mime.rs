//! MIME analysis and BODY[section] extraction never panic and always yield balanced IMAP
//! syntax, whatever the message bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailscale_mime::{analyze, section, Section, SectionText};

fuzz_target!(|data: &[u8]| {
    let a = analyze(data);
    assert!(a.header_len <= data.len());
    for s in [&a.envelope, &a.bodystructure, &a.body] {
        assert!(s.starts_with('(') && s.ends_with(')'), "unbalanced IMAP syntax: {s}");
    }
    let first = data.first().copied().unwrap_or(0);
    let part: Vec<u32> = data.iter().take(first as usize % 4).map(|b| u32::from(b % 5) + 1).collect();
    for text in [
        SectionText::Full,
        SectionText::Header,
        SectionText::Text,
        SectionText::Mime,
        SectionText::HeaderFields(vec!["Subject".into(), "From".into()]),
        SectionText::HeaderFieldsNot(vec!["Received".into()]),
    ] {
        let out = section(data, &Section { part: part.clone(), text });
        // HEADER.FIELDS(.NOT) may turn bare LFs into CRLFs and add the closing blank line.
        assert!(out.len() <= 2 * data.len() + 4);
    }
    let _ = mailscale_mime::body_text(data);
    let _ = mailscale_mime::header_values(data, "Subject");
});
