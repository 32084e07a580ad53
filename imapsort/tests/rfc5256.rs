//! Known-answer tests for SORT and THREAD (RFC 5256, RFC 5957), built from
//! header blocks the way the IMAP server will build them.

use mailscale_imapsort::{
    base_subject, format_threads, parse_sort_keys, sort, thread_orderedsubject, thread_references, SortItem, Thread,
    ThreadAlgorithm,
};

/// A message from header lines; `arrival` = INTERNALDATE.
fn msg(id: u32, arrival: i64, size: u64, headers: &[&str]) -> SortItem {
    let mut raw = headers.join("\r\n");
    raw.push_str("\r\n\r\nbody\r\n");
    SortItem::from_header(id, arrival, size, raw.as_bytes())
}

/// A message for threading: Message-ID `<m{id}@x>`, Date = `sent` seconds
/// after 2024-01-01, the given subject and extra headers.
fn tmsg(id: u32, sent: i64, subject: &str, extra: &[&str]) -> SortItem {
    let date = format!("Date: {}", rfc822(1_704_067_200 + sent));
    let mid = format!("Message-ID: <m{id}@x>");
    let subject = format!("Subject: {subject}");
    let mut headers = vec![mid.as_str(), date.as_str(), subject.as_str()];
    headers.extend_from_slice(extra);
    msg(id, 0, 0, &headers)
}

fn rfc822(t: i64) -> String {
    // 2024-01-01 00:00:00 UTC was a Monday; tests stay within January 2024.
    let (day, rest) = ((t - 1_704_067_200) / 86_400 + 1, t % 86_400);
    format!("{day} Jan 2024 {:02}:{:02}:{:02} +0000", rest / 3600, rest / 60 % 60, rest % 60)
}

fn refs(list: &str) -> String {
    format!("References: {list}")
}

fn threads(items: &[SortItem]) -> String {
    format_threads(&thread_references(items))
}

fn keys(k: &[&str]) -> Vec<mailscale_imapsort::SortKey> {
    parse_sort_keys(k).unwrap()
}

// ---- base subject -------------------------------------------------------

#[test]
fn base_subject_well_known_cases() {
    let cases = [
        ("Re: [fwd: Re: x] (fwd)", "x"),
        ("Re: Re: Re: hello", "hello"),
        ("RE[3]: hello", "hello"),
        ("Fwd: [fwd: hello (fwd)]", "hello"),
        ("[mailscale-dev] Re: [PATCH 2/3] imapsort", "imapsort"),
        ("[PATCH 2/3]", "[PATCH 2/3]"),
        ("Re: [list]", "[list]"),
        ("  hello \t  world  (fwd) ", "hello world"),
        ("=?UTF-8?Q?Re=3A_=5Bfwd=3A_na=C3=AFve=5D?=", "na\u{ef}ve"),
        ("Fw : [x] Re : y", "y"),
        ("Re:", ""),
        ("", ""),
    ];
    for (subject, base) in cases {
        assert_eq!(base_subject(subject), base, "base subject of {subject:?}");
    }
}

// ---- SORT ---------------------------------------------------------------

fn sort_fixture() -> Vec<SortItem> {
    vec![
        msg(1, 500, 300, &["Subject: Re: beta", "From: Zed <zed@x>", "To: b@x", "Date: 3 Jan 2024 00:00:00 +0000"]),
        msg(2, 100, 100, &["Subject: alpha", "From: \"Amy\" <AMY@x>", "Cc: c@x", "Date: 2 Jan 2024 00:00:00 +0000"]),
        msg(3, 300, 300, &["Subject: [list] Beta", "From: bob@x", "To: a@x", "Date: 2 Jan 2024 01:00:00 +0100"]),
        msg(4, 200, 50, &["Subject: Fwd: ALPHA", "From: amy@y", "Date: not a date"]),
        msg(5, 400, 900, &[]),
    ]
}

#[test]
fn sort_single_keys() {
    let items = sort_fixture();
    assert_eq!(sort(&items, &keys(&["ARRIVAL"])), [2, 4, 3, 5, 1]);
    assert_eq!(sort(&items, &keys(&["SIZE"])), [4, 2, 1, 3, 5], "equal sizes keep mailbox order");
    assert_eq!(sort(&items, &keys(&["REVERSE", "SIZE"])), [5, 1, 3, 2, 4], "REVERSE does not reverse the tie-break");
    // Sent dates: 3 is 2 Jan 00:00 UTC, the same instant as 2; 4 has no
    // parsable Date and 5 none at all, so they sort by INTERNALDATE
    // (1970), before everything else.
    assert_eq!(sort(&items, &keys(&["DATE"])), [4, 5, 2, 3, 1]);
    assert_eq!(sort(&items, &keys(&["reverse", "date"])), [1, 2, 3, 5, 4]);
    // Base subjects: beta, alpha, Beta, ALPHA, "" (case-insensitive).
    assert_eq!(sort(&items, &keys(&["SUBJECT"])), [5, 2, 4, 1, 3]);
    // addr-mailbox: zed, AMY, bob, amy, none.
    assert_eq!(sort(&items, &keys(&["FROM"])), [5, 2, 4, 3, 1]);
    assert_eq!(sort(&items, &keys(&["TO"])), [2, 4, 5, 3, 1]);
    assert_eq!(sort(&items, &keys(&["CC"])), [1, 3, 4, 5, 2]);
    assert_eq!(sort(&items, &[]), [1, 2, 3, 4, 5]);
}

#[test]
fn sort_multiple_keys() {
    let items = sort_fixture();
    assert_eq!(sort(&items, &keys(&["SUBJECT", "REVERSE", "ARRIVAL"])), [5, 4, 2, 1, 3]);
    assert_eq!(sort(&items, &keys(&["FROM", "REVERSE", "SIZE"])), [5, 2, 4, 3, 1]);
    assert_eq!(sort(&items, &keys(&["REVERSE", "SUBJECT", "SIZE"])), [1, 3, 4, 2, 5]);
}

#[test]
fn sort_display_keys() {
    let items = vec![
        msg(1, 0, 0, &["From: \"Zoe\" <a@x>", "To: =?utf-8?q?=C3=89mile?= <e@x>"]),
        msg(2, 0, 0, &["From: <b@x>", "To: Al <z@x>"]),
        msg(3, 0, 0, &["From: Carl <c@x>", "To: y@x"]),
        msg(4, 0, 0, &[]),
    ];
    // Display values: zoe, b@x, carl, "".
    assert_eq!(sort(&items, &keys(&["DISPLAYFROM"])), [4, 2, 3, 1]);
    assert_eq!(sort(&items, &keys(&["FROM"])), [4, 1, 2, 3]);
    // al, y@x, "", and "Émile" (non-ASCII, after all ASCII letters).
    assert_eq!(sort(&items, &keys(&["DISPLAYTO"])), [4, 2, 3, 1]);
}

#[test]
fn sort_by_uid_uses_ids_not_positions() {
    let mut items = sort_fixture();
    for (i, item) in items.iter_mut().enumerate() {
        item.id = 1000 - i as u32 * 10;
        item.size = 7;
    }
    assert_eq!(sort(&items, &keys(&["SIZE"])), [960, 970, 980, 990, 1000]);
}

// ---- THREAD=REFERENCES --------------------------------------------------

#[test]
fn references_rfc_example_format() {
    // The THREAD response example of RFC 5256 section 4:
    // (2)(3 6 (4 23)(44 7 96))
    let items = vec![
        tmsg(2, 2, "other", &[]),
        tmsg(3, 3, "topic", &[]),
        tmsg(4, 4, "Re: topic", &["References: <m3@x> <m6@x>"]),
        tmsg(6, 6, "Re: topic", &["In-Reply-To: <m3@x>"]),
        tmsg(7, 7, "Re: topic", &["References: <m3@x> <m6@x>\r\n <m44@x>"]),
        tmsg(23, 23, "Re: topic", &["References: <m3@x> <m6@x> <m4@x>"]),
        tmsg(44, 44, "Re: topic", &["References: <m3@x> <m6@x>"]),
        tmsg(96, 96, "Re: topic", &["References: <m7@x>"]),
    ];
    assert_eq!(threads(&items), "(2)(3 6 (4 23)(44 7 96))");
    // Input order does not matter: messages are processed in mailbox order.
    let mut shuffled = items;
    shuffled.reverse();
    assert_eq!(threads(&shuffled), "(2)(3 6 (4 23)(44 7 96))");
}

#[test]
fn references_missing_parents_become_dummies() {
    // 3 and 5 answer a message that is not in the mailbox: a dummy root
    // with two children is kept and written without a number.
    let items = vec![tmsg(3, 3, "Re: gone", &[&refs("<gone@x>")]), tmsg(5, 5, "Re: gone", &[&refs("<gone@x>")])];
    assert_eq!(threads(&items), "((3)(5))");
    // A dummy root with one child is replaced by the child.
    assert_eq!(threads(&items[..1]), "(3)");
    // A missing message in the middle of a chain: its replies move up.
    let items = vec![
        tmsg(1, 1, "a", &[]),
        tmsg(2, 2, "Re: a", &[&refs("<m1@x> <lost@x>")]),
        tmsg(3, 3, "Re: a", &[&refs("<m1@x> <lost@x>")]),
        tmsg(4, 4, "Re: a", &[&refs("<m1@x> <lost@x> <m3@x>")]),
    ];
    assert_eq!(threads(&items), "(1 (2)(3 4))");
    // Two missing levels under a missing root: everything is promoted to
    // the one dummy that must stay.
    let items = vec![
        tmsg(1, 1, "x", &[&refs("<r@x> <s@x> <t@x>")]),
        tmsg(2, 2, "y", &[&refs("<r@x> <u@x>")]),
        tmsg(3, 3, "z", &[&refs("<r@x>")]),
    ];
    assert_eq!(threads(&items), "((1)(2)(3))");
}

#[test]
fn references_in_reply_to_only_when_no_references() {
    let items = vec![
        tmsg(1, 1, "a", &[]),
        tmsg(2, 2, "b", &[]),
        tmsg(3, 3, "c", &["In-Reply-To: <m1@x> <m2@x>"]),
        tmsg(4, 4, "d", &["In-Reply-To: <m1@x>", "References: <m2@x>"]),
        tmsg(5, 5, "e", &["In-Reply-To: <m2@x>", "References: no ids here"]),
        tmsg(6, 6, "f", &["In-Reply-To: Your message of Monday"]),
    ];
    assert_eq!(threads(&items), "(1 3)(2 (4)(5))(6)");
}

#[test]
fn references_loops_are_not_created() {
    // Two messages naming each other as parent.
    let items = vec![tmsg(1, 1, "p", &[&refs("<m2@x>")]), tmsg(2, 2, "q", &[&refs("<m1@x>")])];
    assert_eq!(threads(&items), "(2 1)");
    // A message referencing itself.
    assert_eq!(threads(&[tmsg(1, 1, "p", &[&refs("<m1@x>")])]), "(1)");
    assert_eq!(threads(&[tmsg(1, 1, "p", &[&refs("<m0@x> <m1@x> <m0@x>")])]), "(1)");
    // A three-way cycle.
    let items = vec![
        tmsg(1, 1, "p", &[&refs("<m2@x> <m3@x>")]),
        tmsg(2, 2, "q", &[&refs("<m3@x> <m1@x>")]),
        tmsg(3, 3, "r", &[&refs("<m1@x> <m2@x>")]),
    ];
    assert_eq!(threads(&items), "(2 3 1)");
}

#[test]
fn references_duplicate_and_missing_message_ids() {
    let items = vec![
        tmsg(1, 1, "a", &[]),
        // Same Message-ID as 1: gets a unique one, so 3 answers 1 only.
        msg(2, 0, 0, &["Message-ID: <m1@x>", "Subject: b", "Date: 1 Jan 2024 00:00:02 +0000"]),
        tmsg(3, 3, "c", &[&refs("<m1@x>")]),
        // No Message-ID at all, and one that is not a msg-id.
        msg(4, 0, 0, &["Subject: d", "Date: 1 Jan 2024 00:00:04 +0000"]),
        msg(5, 0, 0, &["Message-ID: m1@x", "Subject: e", "Date: 1 Jan 2024 00:00:05 +0000"]),
        // Message-IDs are case-sensitive.
        tmsg(6, 6, "f", &[&refs("<M1@X>")]),
    ];
    assert_eq!(threads(&items), "(1 3)(2)(4)(5)(6)");
}

#[test]
fn references_existing_parent_is_kept() {
    // 3 says 2's parent is 1; 4 (with a truncated References) claims 2's
    // parent is 9: the existing link wins. 9 joins by subject.
    let items = vec![
        tmsg(1, 1, "a", &[]),
        tmsg(3, 3, "Re: a", &[&refs("<m1@x> <m2@x>")]),
        tmsg(4, 4, "Re: a", &[&refs("<m9@x> <m2@x>")]),
        tmsg(9, 9, "Re: a", &[]),
        tmsg(10, 10, "Re: a", &[&refs("<m1@x> <m2@x>")]),
    ];
    // 2 is missing: a dummy under 1 with children 3, 4, 10, spliced into 1.
    assert_eq!(threads(&items), "(1 (3)(4)(9)(10))");
    let mut with_two = items;
    with_two.push(tmsg(2, 2, "Re: a", &[&refs("<m1@x>")]));
    assert_eq!(threads(&with_two), "(1 (2 (3)(4)(10))(9))");
}

#[test]
fn references_own_references_replace_a_guessed_parent() {
    // 5's References guess that 6's parent is 9; 6's own References say 1
    // (step 1.B breaks the guessed link).
    let items = vec![
        tmsg(1, 1, "a", &[]),
        tmsg(5, 5, "Re: a", &[&refs("<m9@x> <m6@x>")]),
        tmsg(6, 6, "Re: a", &[&refs("<m1@x>")]),
        tmsg(9, 9, "zzz", &[]),
    ];
    assert_eq!(threads(&items), "(1 6 5)(9)");
    // Without 6's own References the guess stands.
    let items = vec![tmsg(1, 1, "a", &[]), tmsg(5, 5, "Re: a", &[&refs("<m9@x> <m6@x>")]), tmsg(9, 9, "zzz", &[])];
    assert_eq!(threads(&items), "(1)(9 5)");
}

#[test]
fn references_subject_grouping() {
    // A non-reply first and a reply: the reply joins the first thread.
    let items = vec![tmsg(1, 1, "Lunch", &[]), tmsg(2, 2, "Re: lunch", &[])];
    assert_eq!(threads(&items), "(1 2)");
    // Two non-replies with the same subject: siblings under a new dummy.
    let items = vec![tmsg(1, 1, "Lunch", &[]), tmsg(2, 2, "LUNCH", &[])];
    assert_eq!(threads(&items), "((1)(2))");
    // The reply is older: the non-reply still becomes the head.
    let items = vec![tmsg(1, 1, "Re: lunch", &[]), tmsg(2, 2, "lunch", &[])];
    assert_eq!(threads(&items), "(2 1)");
    // Two replies: a dummy again.
    let items = vec![tmsg(1, 1, "Re: lunch", &[]), tmsg(2, 2, "Fwd: lunch", &[]), tmsg(3, 3, "Re: lunch", &[])];
    assert_eq!(threads(&items), "((1)(2)(3))");
    // A dummy thread absorbs a later message with its subject; a thread
    // with its own replies moves as a whole.
    let items = vec![
        tmsg(3, 3, "Re: gone", &[&refs("<gone@x>")]),
        tmsg(5, 5, "Re: gone", &[&refs("<gone@x>")]),
        tmsg(7, 7, "[fwd: gone]", &[]),
        tmsg(8, 8, "Re: Re: gone", &[&refs("<m7@x>")]),
        tmsg(9, 9, "gone (fwd)", &[]),
    ];
    assert_eq!(threads(&items), "((3)(5)(7 8)(9))");
    // Empty subjects are never grouped.
    let items = vec![tmsg(1, 1, "", &[]), tmsg(2, 2, "Re:", &[]), msg(3, 3, 0, &[])];
    assert_eq!(threads(&items), "(3)(1)(2)");
}

#[test]
fn references_siblings_sorted_by_sent_date_then_mailbox_order() {
    let items = vec![
        tmsg(1, 1, "a", &[]),
        tmsg(2, 50, "Re: a", &[&refs("<m1@x>")]),
        tmsg(3, 20, "Re: a", &[&refs("<m1@x>")]),
        tmsg(4, 20, "Re: a", &[&refs("<m1@x>")]),
        // No Date: INTERNALDATE (1970) is the sent date, so it sorts first.
        msg(5, 0, 0, &["Message-ID: <m5@x>", "Subject: Re: a", "References: <m1@x>"]),
        tmsg(6, 0, "b", &[]),
        // A dummy thread sorts as its first child (sent 10, after 6's 0).
        tmsg(7, 30, "c", &[&refs("<none@x>")]),
        tmsg(8, 10, "d", &[&refs("<none@x>")]),
    ];
    assert_eq!(threads(&items), "(6)(1 (5)(3)(4)(2))((8)(7))");
}

#[test]
fn thread_trees_are_returned_as_data() {
    let items = vec![tmsg(1, 1, "a", &[]), tmsg(2, 2, "Re: a", &[&refs("<m1@x>")]), tmsg(3, 3, "b", &[&refs("<q@x>")])];
    let t = thread_references(&items);
    assert_eq!(t, [Thread::message(1, vec![Thread::leaf(2)]), Thread::leaf(3)]);
    assert_eq!(ThreadAlgorithm::from_name("references"), Some(ThreadAlgorithm::References));
    assert_eq!(ThreadAlgorithm::from_name("X-FOO"), None);
    assert_eq!(ThreadAlgorithm::References.run(&items), t);
    assert!(thread_references(&[]).is_empty());
}

/// `n` messages in one reply chain; message `k` answers `k - 1` when
/// `forward`, else `k + 1` (so every message starts out as a dummy).
fn chain(n: u32, forward: bool) -> Vec<SortItem> {
    (1..=n)
        .map(|k| {
            let mut item = SortItem::new(k, i64::from(k), 1);
            item.message_id = Some(format!("<c{k}@x>"));
            let parent = if forward { k - 1 } else { k + 1 };
            if (1..=n).contains(&parent) {
                let root = if forward { "<c1@x> " } else { "" };
                item.references = Some(format!("{root}<c{parent}@x>"));
            }
            item.subject = Some("Re: chain".into());
            item
        })
        .collect()
}

#[test]
fn deep_reply_chains_do_not_overflow_the_stack() {
    let s = threads(&chain(50_000, true));
    assert!(s.starts_with("(1 2 3 4 "), "{}", &s[..20]);
    assert!(s.ends_with(" 49999 50000)"));
    let s = threads(&chain(50_000, false));
    assert!(s.starts_with("(50000 49999 "), "{}", &s[..20]);
    assert!(s.ends_with(" 3 2 1)"));
}

// ---- THREAD=ORDEREDSUBJECT ----------------------------------------------

#[test]
fn orderedsubject() {
    let items = vec![
        tmsg(1, 40, "Re: b", &[]),
        tmsg(2, 10, "a", &[]),
        tmsg(3, 30, "B", &[]),
        tmsg(4, 20, "[list] re: A", &[]),
        tmsg(5, 5, "c", &[&refs("<m2@x>")]),
        tmsg(6, 20, "a (fwd)", &[]),
        tmsg(7, 50, "", &[]),
        msg(8, 0, 0, &[]),
    ];
    // Threads: "" (8 at 1970, then 7), c (5), a (2; then 4 and 6 tie on
    // date and keep mailbox order), b (3; then 1). References are ignored.
    assert_eq!(format_threads(&thread_orderedsubject(&items)), "(8 7)(5)(2 (4)(6))(3 1)");
    assert_eq!(
        thread_orderedsubject(&items[..2]),
        [Thread::leaf(2), Thread::leaf(1)],
        "one message per subject: no children"
    );
    assert_eq!(ThreadAlgorithm::from_name("OrderedSubject"), Some(ThreadAlgorithm::OrderedSubject));
}
