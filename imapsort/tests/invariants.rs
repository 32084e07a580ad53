//! Invariants on random input: nothing panics, every message appears in
//! exactly one place, dummies only where RFC 5256 leaves them, siblings in
//! sent-date order.

use std::collections::HashMap;

use mailscale_imapsort::{
    analyze_subject, format_threads, parse_sort_keys, sort, thread_orderedsubject, thread_references, SortItem, Thread,
};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "Re:",
    "re",
    "FWD",
    "fw",
    ":",
    "[",
    "]",
    "[fwd:",
    "(fwd)",
    " ",
    "\t",
    "x",
    "Y",
    "[list]",
    "=?utf-8?q?R=C3=A9?=",
    "é",
];

fn random_subject(rng: &mut Lcg) -> String {
    (0..rng.next(8)).map(|_| rng.pick(PIECES)).collect()
}

/// Messages with random Message-IDs (often repeated or missing), random
/// References over a small id space (so loops, self-references and
/// dummies are common), random subjects and dates.
fn random_mailbox(rng: &mut Lcg, n: u32) -> Vec<SortItem> {
    let space = u64::from(n) + 5;
    (1..=n)
        .map(|id| {
            let mut item = SortItem::new(id, rng.next(50) as i64, rng.next(10));
            if rng.next(10) > 0 {
                item.message_id = Some(format!("<{}@x>", rng.next(space)));
            }
            if rng.next(3) > 0 {
                item.references = Some((0..rng.next(5)).map(|_| format!("<{}@x> ", rng.next(space))).collect());
            }
            if rng.next(4) == 0 {
                item.in_reply_to = Some(format!("<{}@x>", rng.next(space)));
            }
            if rng.next(2) == 0 {
                item.sent = Some(rng.next(30) as i64);
            }
            item.subject = Some(random_subject(rng));
            item
        })
        .collect()
}

fn check_tree(threads: &[Thread], items: &[SortItem]) {
    let key: HashMap<u32, (i64, u32)> = items.iter().map(|i| (i.id, (i.sent_date(), i.id))).collect();
    let first_key = |t: &Thread| {
        let mut t = t;
        while t.id.is_none() {
            t = &t.children[0];
        }
        key[&t.id.unwrap()]
    };
    let mut seen: Vec<u32> = threads.iter().flat_map(Thread::ids).collect();
    seen.sort_unstable();
    let mut want: Vec<u32> = items.iter().map(|i| i.id).collect();
    want.sort_unstable();
    assert_eq!(seen, want, "every message exactly once");
    for t in threads {
        if t.is_dummy() {
            assert!(t.children.len() >= 2, "a top-level dummy has at least two children");
        }
    }
    let mut stack: Vec<&Thread> = threads.iter().collect();
    while let Some(t) = stack.pop() {
        for c in &t.children {
            assert!(!c.is_dummy(), "no dummy below the top level");
            stack.push(c);
        }
        let keys: Vec<_> = t.children.iter().map(first_key).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "siblings sorted by sent date, then id");
    }
    let keys: Vec<_> = threads.iter().map(first_key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "threads sorted by sent date, then id");
}

#[test]
fn random_mailboxes_keep_the_invariants() {
    let mut rng = Lcg(7);
    for round in 0..400 {
        let items = random_mailbox(&mut rng, 1 + (round % 60));
        let threads = thread_references(&items);
        check_tree(&threads, &items);
        assert!(!format_threads(&threads).contains("()"));
        let threads = thread_orderedsubject(&items);
        check_tree(&threads, &items);
        let sorted = sort(&items, &parse_sort_keys(&["SUBJECT", "REVERSE", "DATE"]).unwrap());
        assert_eq!(sorted.len(), items.len());
    }
}

#[test]
fn base_subject_never_panics_and_has_no_outer_space() {
    let mut rng = Lcg(11);
    for _ in 0..20_000 {
        let s = random_subject(&mut rng);
        let base = analyze_subject(&s).text;
        assert_eq!(base.trim_matches(' '), base, "{s:?}");
        assert!(!base.contains("  "), "{s:?}");
    }
}

#[test]
fn from_header_never_panics() {
    let mut rng = Lcg(13);
    let alphabet = b"From:To:Subject: <>@\r\n\t ,;\"()[]=?\xc3\xa9\xff\x00Re:References:Message-ID:Date: 1 Jan 2024";
    for _ in 0..5_000 {
        let raw: Vec<u8> = (0..rng.next(120)).map(|_| alphabet[rng.next(alphabet.len() as u64) as usize]).collect();
        let item = SortItem::from_header(1, 0, 0, &raw);
        let items = [item.clone(), SortItem { id: 2, ..item }];
        for k in ["FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO", "SUBJECT", "DATE"] {
            assert_eq!(sort(&items, &parse_sort_keys(&[k]).unwrap()), [1, 2]);
        }
        check_tree(&thread_references(&items), &items);
    }
}
