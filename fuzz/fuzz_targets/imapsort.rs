//! SORT and THREAD (RFC 5256) over messages whose header blocks are any bytes (split at NUL):
//! `SortItem::from_header` never panics; every SORT key, plain and REVERSE, and a compound
//! key return each message exactly once, in key order where the key is a number; both THREAD
//! algorithms put each message exactly once in a tree, siblings and threads ordered by sent
//! date then id, dummies only at the top with two children or more; `format_threads` writes
//! each id exactly once with balanced parentheses and no empty list.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mailscale_imapsort::{
    base_subject, format_threads, parse_sort_keys, sort, thread_orderedsubject, thread_references, SortItem, Thread,
};

const KEYS: [&str; 9] = ["ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"];

fn sorted(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids
}

fn check_tree(threads: &[Thread], items: &[SortItem], want: &[u32], dummies: bool) {
    let key: HashMap<u32, (i64, u32)> = items.iter().map(|i| (i.id, (i.sent_date(), i.id))).collect();
    let first_key = |t: &Thread| {
        let mut t = t;
        while t.id.is_none() {
            t = &t.children[0];
        }
        key[&t.id.expect("a message")]
    };
    assert_eq!(sorted(threads.iter().flat_map(Thread::ids).collect()), want, "every message exactly once");
    for t in threads {
        if t.is_dummy() {
            assert!(dummies, "ORDEREDSUBJECT makes no dummy");
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

    let text = format_threads(threads);
    assert!(!text.contains("()"), "{text}");
    let mut depth = 0usize;
    for c in text.bytes() {
        match c {
            b'(' => depth += 1,
            b')' => depth = depth.checked_sub(1).unwrap_or_else(|| panic!("unbalanced: {text}")),
            b' ' | b'0'..=b'9' => assert!(depth > 0, "number outside a list: {text}"),
            _ => panic!("unexpected {:?} in {text}", c as char),
        }
    }
    assert_eq!(depth, 0, "unbalanced: {text}");
    let numbers = text.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    assert_eq!(sorted(numbers.map(|n| n.parse().expect("an id")).collect()), want, "{text}");
}

fuzz_target!(|data: &[u8]| {
    let items: Vec<SortItem> = data
        .split(|&b| b == 0)
        .take(64)
        .enumerate()
        .map(|(i, header)| {
            let id = 1 + i as u32;
            // Few distinct arrival times and sizes, so ties (broken by id) are common.
            let arrival = i64::from(header.first().copied().unwrap_or(0) % 4) * 1_000_000_000;
            SortItem::from_header(id, arrival, (header.len() % 7) as u64, header)
        })
        .collect();
    let want: Vec<u32> = items.iter().map(|i| i.id).collect();

    for key in KEYS {
        for criteria in [vec![key], vec!["REVERSE", key]] {
            let keys = parse_sort_keys(&criteria).expect("a valid key");
            let ids = sort(&items, &keys);
            assert_eq!(sorted(ids.clone()), want, "SORT ({criteria:?}) returns every message once");
            let by_id: HashMap<u32, &SortItem> = items.iter().map(|i| (i.id, i)).collect();
            let numeric = |i: &SortItem| match key {
                "ARRIVAL" => Some(i.arrival),
                "DATE" => Some(i.sent_date()),
                "SIZE" => Some(i.size as i64),
                _ => None,
            };
            let seq: Vec<(i64, u32)> = ids.iter().filter_map(|id| numeric(by_id[id]).map(|v| (v, *id))).collect();
            if criteria.len() == 1 {
                assert!(seq.windows(2).all(|w| w[0] < w[1]), "SORT ({key}) out of order: {seq:?}");
            } else {
                assert!(seq.windows(2).all(|w| w[0].0 >= w[1].0), "SORT (REVERSE {key}) out of order: {seq:?}");
            }
        }
    }
    let all = parse_sort_keys(&["SUBJECT", "REVERSE", "DATE", "DISPLAYFROM", "REVERSE", "SIZE", "CC"]).expect("valid");
    assert_eq!(sorted(sort(&items, &all)), want);

    for item in &items {
        if let Some(subject) = &item.subject {
            let base = base_subject(subject);
            assert_eq!(base.trim_matches(' '), base, "{subject:?}");
        }
    }

    check_tree(&thread_references(&items), &items, &want, true);
    check_tree(&thread_orderedsubject(&items), &items, &want, false);

    // The same bytes as SORT criteria: parsing them must not panic either.
    if let Ok(text) = std::str::from_utf8(data) {
        let words: Vec<&str> = text.split_ascii_whitespace().take(16).collect();
        let _ = parse_sort_keys(&words);
    }
});
