//! Timing check on a 50,000-message mailbox. Ignored by default; run with
//! `cargo test --release -p mailscale-imapsort --test timing -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use mailscale_imapsort::{format_threads, parse_sort_keys, sort, thread_orderedsubject, thread_references, SortItem};

/// Deterministic pseudo-random numbers (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// A mailing-list-like mailbox: threads of 1-60 messages, replies carrying
/// References to the root and up to four ancestors, about 3% of messages
/// deleted (their Message-IDs stay referenced and become dummies), list
/// tags, some encoded-word subjects, display names, Date headers.
fn mailbox(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Lcg(42);
    let mut out = Vec::with_capacity(n);
    let mut threads: Vec<Vec<u32>> = Vec::new(); // ancestry chains of message numbers
    let mut k = 0u32;
    while out.len() < n {
        k += 1;
        let start_new = threads.is_empty() || rng.next(100) < 15;
        let (subject_no, refs) = if start_new {
            threads.push(vec![k]);
            (threads.len() - 1, Vec::new())
        } else {
            let t = threads.len() - 1 - rng.next(threads.len().min(200) as u64) as usize;
            let chain = &mut threads[t];
            let depth = 1 + rng.next(chain.len() as u64) as usize;
            chain.truncate(depth);
            let mut refs = vec![chain[0]];
            refs.extend(chain.iter().skip(1).rev().take(4).rev());
            chain.push(k);
            (t, refs)
        };
        if rng.next(100) < 3 {
            continue; // deleted: never in the mailbox
        }
        let subject = match (refs.is_empty(), rng.next(10)) {
            (true, 0) => format!("=?utf-8?q?Caf=C3=A9_topic_{subject_no}?="),
            (true, _) => format!("[list] Topic number {subject_no}"),
            (false, 0) => format!("Fwd: [list] Re: Topic number {subject_no}"),
            (false, _) => format!("Re: [list] Topic number {subject_no}"),
        };
        let refs: Vec<String> = refs.iter().map(|r| format!("<{r}.{}@list.example.org>", r * 7)).collect();
        let day = 1 + (k / 2000) % 28;
        let mut header = format!(
            "Return-Path: <bounce@list.example.org>\r\nReceived: from mx by backend; {day} Feb 2025 10:00:00 +0000\r\n\
             Message-ID: <{k}.{}@list.example.org>\r\nDate: {day} Feb 2025 {:02}:{:02}:{:02} +0{}00\r\n\
             From: \"User {}\" <user{}@example.org>\r\nTo: list@list.example.org\r\nCc: cc{}@example.net\r\n\
             Subject: {subject}\r\n",
            k * 7,
            rng.next(24),
            rng.next(60),
            rng.next(60),
            rng.next(10),
            rng.next(500),
            rng.next(500),
            rng.next(50),
        );
        if !refs.is_empty() {
            header.push_str(&format!(
                "In-Reply-To: {}\r\nReferences: {}\r\n",
                refs[refs.len() - 1],
                refs.join("\r\n ")
            ));
        }
        header.push_str("\r\n");
        out.push(header.into_bytes());
    }
    out
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    eprintln!("{what:<40} {:>8.1} ms", took.as_secs_f64() * 1000.0);
    (out, took)
}

#[test]
#[ignore = "timing check; run in release mode with --ignored"]
fn fifty_thousand_messages() {
    const N: usize = 50_000;
    let headers = mailbox(N);
    let (items, _) = timed("SortItem::from_header x50000", || {
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| SortItem::from_header(i as u32 + 1, 1_738_000_000 + i as i64, 2000 + h.len() as u64, h))
            .collect::<Vec<_>>()
    });
    let limit = Duration::from_secs(1);
    for criteria in [
        &["ARRIVAL"][..],
        &["REVERSE", "DATE"],
        &["SUBJECT"],
        &["FROM"],
        &["CC", "REVERSE", "SIZE"],
        &["DISPLAYFROM"],
        &["SUBJECT", "REVERSE", "DATE", "FROM"],
    ] {
        let keys = parse_sort_keys(criteria).unwrap();
        let (ids, took) = timed(&format!("SORT {}", criteria.join(" ")), || sort(&items, &keys));
        assert_eq!(ids.len(), N);
        assert!(took < limit, "SORT {criteria:?} took {took:?}");
    }
    let (threads, took) = timed("THREAD=REFERENCES", || thread_references(&items));
    assert!(took < limit, "THREAD=REFERENCES took {took:?}");
    let mut seen: Vec<u32> = threads.iter().flat_map(|t| t.ids()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=N as u32).collect::<Vec<_>>(), "every message exactly once");
    let (text, _) = timed("format_threads (REFERENCES)", || format_threads(&threads));
    eprintln!("  {} threads, {} bytes of THREAD response", threads.len(), text.len());
    let (threads, took) = timed("THREAD=ORDEREDSUBJECT", || thread_orderedsubject(&items));
    assert!(took < limit, "THREAD=ORDEREDSUBJECT took {took:?}");
    eprintln!("  {} threads", threads.len());
}
