//! Property-style robustness: mutated and truncated messages never make
//! the public functions panic, and what they produce stays well-formed.

use super::crlf;
use super::structure::NESTED;
use crate::{analyze, body_text, header_text, header_values, section, Section, SectionText};

/// xorshift64*: deterministic, dependency-free randomness for the tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SNIPPETS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"\xff\xfe",
    b"--outer",
    b"--outer--",
    b"--alt\r\n",
    b"--in\r\n\r\n",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: text/plain; charset=\"",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?b?",
    b"=?",
    b"?=",
    b"(",
    b")",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"@",
    b":",
    b";",
    b",",
    b"[",
    b" ",
    b"\t",
];

/// `MIME_FUZZ_ITERS` overrides the default for longer local runs.
fn iterations(default: usize) -> usize {
    std::env::var("MIME_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(m.len() + 1);
        match rng.below(5) {
            0 => m.truncate(at),
            1 if at < m.len() => m[at] = rng.next() as u8,
            2 => {
                let end = (at + rng.below(40)).min(m.len());
                m.drain(at..end);
            }
            _ => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                m.splice(at..at, s.iter().copied());
            }
        }
    }
    m
}

/// Checks that `s` is one balanced parenthesized IMAP list whose strings and
/// literals are well-formed.
fn assert_well_formed(s: &str) {
    let b = s.as_bytes();
    let (mut depth, mut i, mut closed_top) = (0i32, 0, false);
    while i < b.len() {
        assert!(!closed_top, "trailing data after list: {s:?}");
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                assert!(depth >= 0, "unbalanced: {s:?}");
                closed_top = depth == 0;
            }
            b'"' => {
                i += 1;
                while b[i] != b'"' {
                    assert!(b[i] != b'\r' && b[i] != b'\n' && b[i] < 0x80, "bad quoted: {s:?}");
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                let close = i + b[i..].iter().position(|&c| c == b'}').expect("literal");
                let n: usize = s[i + 1..close].parse().expect("literal length");
                assert_eq!(&b[close + 1..close + 3], b"\r\n");
                i = close + 2 + n;
            }
            _ => {}
        }
        i += 1;
    }
    assert!(closed_top, "not a list: {s:?}");
}

fn exercise(rng: &mut Rng, raw: &[u8]) {
    let a = analyze(raw);
    assert!(a.header_len <= raw.len());
    assert_well_formed(&a.envelope);
    assert_well_formed(&a.body);
    assert_well_formed(&a.bodystructure);
    let whole = Section { part: vec![], text: SectionText::Full };
    assert_eq!(&section(raw, &whole)[..], raw);
    for _ in 0..4 {
        let part: Vec<u32> = (0..rng.below(4)).map(|_| rng.below(4) as u32).collect();
        let text = match rng.below(6) {
            0 => SectionText::Full,
            1 => SectionText::Header,
            2 => SectionText::HeaderFields(vec!["subject".into(), "content-type".into()]),
            3 => SectionText::HeaderFieldsNot(vec!["from".into()]),
            4 => SectionText::Text,
            _ => SectionText::Mime,
        };
        let got = section(raw, &Section { part, text });
        assert!(got.len() <= raw.len() + 4, "section longer than the message");
    }
    body_text(raw);
    header_text(raw);
    header_values(raw, "subject");
}

#[test]
fn mutated_inputs_never_panic() {
    let seeds = [
        crlf(NESTED),
        NESTED.as_bytes().to_vec(),
        crlf("From: A <a@b>, g: c@d;\nSubject: =?utf-8?q?x?=\n\nbody"),
        crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nb\n--d--\n"),
        Vec::new(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..iterations(600) {
        let seed = &seeds[i % seeds.len()];
        let raw = mutate(&mut rng, seed);
        exercise(&mut rng, &raw);
    }
    // Every truncation of the nested message.
    let full = crlf(NESTED);
    for n in 0..full.len() {
        exercise(&mut rng, &full[..n]);
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let mut deep_msg = b"Subject: bottom\r\n\r\nx".to_vec();
    for _ in 0..2000 {
        let mut m = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
        m.extend_from_slice(&deep_msg);
        deep_msg = m;
    }
    let a = analyze(&deep_msg);
    assert_well_formed(&a.bodystructure);
    assert_eq!(a.bodystructure.matches(r#"("MESSAGE" "RFC822""#).count(), 64);
    assert!(a.bodystructure.contains(r#"("APPLICATION" "OCTET-STREAM" NIL"#));
    let mut deep_mp = Vec::new();
    for i in 0..2000 {
        deep_mp.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes());
    }
    let a = analyze(&deep_mp);
    assert_well_formed(&a.bodystructure);
    assert!(a.body.contains(r#"("APPLICATION" "OCTET-STREAM" ("BOUNDARY" "b64") NIL NIL "7BIT" "#));
    body_text(&deep_mp);
    let many: Vec<u8> = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        .iter()
        .chain(b"--b\r\n".repeat(50_000).iter())
        .copied()
        .collect();
    assert_well_formed(&analyze(&many).body);
}

/// The mail-parser decoders (charsets, RFC 2047, dates) on random input.
#[test]
fn decoders_never_panic() {
    const CHARSETS: &[&str] = &[
        "utf-7",
        "utf-16",
        "utf-16le",
        "utf-16be",
        "iso-2022-jp",
        "shift_jis",
        "euc-jp",
        "big5",
        "gb18030",
        "gbk",
        "euc-kr",
        "koi8-r",
        "iso-8859-1",
        "windows-1252",
        "x-unknown",
        "",
    ];
    const DATES: &[&str] = &[
        "Mon, 7 Feb 1994 21:52:25 -0800",
        "7 Feb 94 21:52 PST",
        "Thu, 31 Dec 9999 23:59:60 +9999",
        "Sat, 0 Foo 0 99:99:99 -",
        "1 Jan 1970 00:00:00 GMT",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..iterations(300) {
        let cs = CHARSETS[rng.below(CHARSETS.len())];
        let payload: Vec<u8> = (0..rng.below(24)).map(|_| rng.next() as u8).collect();
        crate::text::decode_charset(&payload, cs);
        let mut subject = format!("Subject: =?{cs}?{}?", ["q", "b", "Q", "x"][rng.below(4)]).into_bytes();
        subject.extend(payload.iter().filter(|&&b| b != b'\n'));
        subject.extend_from_slice(b"?= tail\r\n");
        let mut date = DATES[rng.below(DATES.len())].as_bytes().to_vec();
        let at = rng.below(date.len() + 1);
        date.truncate(at + rng.below(8));
        if rng.below(2) == 0 && at < date.len() {
            date[at] = rng.next() as u8;
        }
        let mut raw = subject;
        raw.extend_from_slice(b"Date: ");
        raw.extend_from_slice(&date);
        raw.extend_from_slice(b"\r\nContent-Type: text/plain; charset=");
        raw.extend_from_slice(cs.as_bytes());
        raw.extend_from_slice(b"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        raw.extend(payload.iter().map(|b| b"AZaz09+/=\r\n!"[usize::from(*b) % 12]));
        let a = analyze(&raw);
        assert_well_formed(&a.envelope);
        header_values(&raw, "subject");
        header_text(&raw);
        body_text(&raw);
    }
}

/// A large attachment is analysed in linear time (run with --nocapture to
/// see the timing).
#[test]
fn large_message_is_fast() {
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n";
    let mut raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\n");
    raw.extend(line.repeat(300_000).bytes());
    raw.extend_from_slice(b"--b--\r\n");
    let start = std::time::Instant::now();
    let a = analyze(&raw);
    let text = body_text(&raw);
    let spent = start.elapsed();
    println!("{} MB in {spent:?}", raw.len() >> 20);
    assert!(a.body.contains("\"BASE64\" 19799998 300000)"), "{}", a.body);
    assert_eq!(text.len(), 14_400_000);
    assert!(text.starts_with("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvABCDEF"));
}
