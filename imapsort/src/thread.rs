//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 section 3).
//!
//! REFERENCES works on an arena of nodes (one per message, plus dummies for
//! referenced Message-IDs that are not in the result) and never recurses,
//! so no header content can exhaust the stack.

use std::collections::HashMap;

use crate::item::{msg_ids, SortItem};
use crate::subject::{analyze_subject, casemap, BaseSubject};
use crate::tree::Thread;

/// A threading algorithm advertised as `THREAD=<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadAlgorithm {
    /// THREAD=ORDEREDSUBJECT, [`thread_orderedsubject`].
    OrderedSubject,
    /// THREAD=REFERENCES, [`thread_references`].
    References,
}

impl ThreadAlgorithm {
    /// Parses the algorithm name of a THREAD command, case-insensitively;
    /// `None` for an algorithm this crate does not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("ORDEREDSUBJECT") {
            Some(ThreadAlgorithm::OrderedSubject)
        } else if name.eq_ignore_ascii_case("REFERENCES") {
            Some(ThreadAlgorithm::References)
        } else {
            None
        }
    }

    /// Runs the algorithm.
    pub fn run(self, items: &[SortItem]) -> Vec<Thread> {
        match self {
            ThreadAlgorithm::OrderedSubject => thread_orderedsubject(items),
            ThreadAlgorithm::References => thread_references(items),
        }
    }
}

/// THREAD=ORDEREDSUBJECT ("poor man's threading", RFC 5256 section 3):
/// messages are sorted by base subject, then sent date; each run of equal
/// base subjects (`i;ascii-casemap`, the empty subject included) is one
/// thread whose first message is the root and whose other messages are all
/// its children; threads are ordered by the sent date of their root. Ties
/// on sent date go to mailbox order (ascending id).
///
/// ```
/// use mailscale_imapsort::{format_threads, thread_orderedsubject, SortItem};
/// let item = |id, sent, subject: &str| SortItem { sent: Some(sent), subject: Some(subject.into()), ..SortItem::new(id, 0, 0) };
/// let items = [item(1, 30, "b"), item(2, 10, "a"), item(3, 20, "Re: A"), item(4, 5, "b"), item(5, 15, "re: a")];
/// assert_eq!(format_threads(&thread_orderedsubject(&items)), "(4 1)(2 (5)(3))");
/// ```
pub fn thread_orderedsubject(items: &[SortItem]) -> Vec<Thread> {
    let subjects: Vec<String> =
        items.iter().map(|i| casemap(&analyze_subject(i.subject.as_deref().unwrap_or("")).text)).collect();
    let date_key = |i: usize| (items[i].sent_date(), items[i].id);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| subjects[a].cmp(&subjects[b]).then_with(|| date_key(a).cmp(&date_key(b))));
    let mut groups: Vec<(usize, Thread)> = Vec::new();
    for run in order.chunk_by(|&a, &b| subjects[a] == subjects[b]) {
        let children = run[1..].iter().map(|&i| Thread::leaf(items[i].id)).collect();
        groups.push((run[0], Thread::message(items[run[0]].id, children)));
    }
    groups.sort_by_key(|&(root, _)| date_key(root));
    groups.into_iter().map(|(_, t)| t).collect()
}

const NONE: u32 = u32::MAX;

#[derive(Debug)]
struct Node {
    /// Index into the items; `None` for a dummy.
    item: Option<u32>,
    parent: u32,
    children: Vec<u32>,
}

/// The REFERENCES workspace: the node arena plus per-item data.
struct Forest<'a> {
    items: &'a [SortItem],
    nodes: Vec<Node>,
}

impl Forest<'_> {
    fn add(&mut self, item: Option<usize>) -> u32 {
        let index = u32::try_from(self.nodes.len()).expect("more than u32::MAX nodes");
        self.nodes.push(Node { item: item.map(|i| i as u32), parent: NONE, children: Vec::new() });
        index
    }

    fn is_dummy(&self, n: u32) -> bool {
        self.nodes[n as usize].item.is_none()
    }

    /// True when `a` is `b` or a descendant of `b`.
    fn is_within(&self, a: u32, b: u32) -> bool {
        if a == b {
            return true;
        }
        if self.nodes[b as usize].children.is_empty() {
            return false;
        }
        let mut cur = self.nodes[a as usize].parent;
        while cur != NONE {
            if cur == b {
                return true;
            }
            cur = self.nodes[cur as usize].parent;
        }
        false
    }

    fn unlink(&mut self, n: u32) {
        let parent = std::mem::replace(&mut self.nodes[n as usize].parent, NONE);
        if parent != NONE {
            let siblings = &mut self.nodes[parent as usize].children;
            if let Some(pos) = siblings.iter().position(|&c| c == n) {
                // Sibling order before step 4 is irrelevant: every set of
                // siblings is sorted later.
                siblings.swap_remove(pos);
            }
        }
    }

    fn link(&mut self, child: u32, parent: u32) {
        self.nodes[child as usize].parent = parent;
        self.nodes[parent as usize].children.push(child);
    }

    /// Sort key of section 2.2 / step 4 and 6: sent date, then mailbox
    /// order; a dummy sorts as its first child.
    fn date_key(&self, mut n: u32) -> (i64, u32) {
        while self.is_dummy(n) {
            match self.nodes[n as usize].children.first() {
                Some(&c) => n = c,
                None => return (i64::MIN, 0),
            }
        }
        let item = &self.items[self.nodes[n as usize].item.unwrap_or_default() as usize];
        (item.sent_date(), item.id)
    }

    fn sort_children(&mut self, n: u32) {
        let mut children = std::mem::take(&mut self.nodes[n as usize].children);
        children.sort_by_cached_key(|&c| self.date_key(c));
        self.nodes[n as usize].children = children;
    }

    /// Nodes below `roots`, parents before children.
    fn breadth_first(&self, roots: &[u32]) -> Vec<u32> {
        let mut order = roots.to_vec();
        let mut i = 0;
        while i < order.len() {
            let n = order[i] as usize;
            order.extend_from_slice(&self.nodes[n].children);
            i += 1;
        }
        order
    }
}

/// THREAD=REFERENCES (RFC 5256 section 3), all six steps:
///
/// 1. Messages (in mailbox order) are linked parent/child along their
///    References (or, lacking valid ones, the first Message-ID of
///    In-Reply-To); unknown Message-IDs become dummies; an existing parent
///    link is never changed by a reference chain but is replaced by the
///    message's own last reference; no link that would close a loop is
///    made (the message then keeps the parent it had); a message without a valid Message-ID, or repeating an
///    earlier message's, gets a unique one; Message-IDs compare
///    case-sensitively.
/// 2. Parentless messages become the threads.
/// 3. Dummies are pruned: childless ones vanish, others are replaced by
///    their children, except that a top-level dummy with several children
///    stays.
/// 4. Threads are sorted by sent date (a dummy by its first child).
/// 5. Threads with the same base subject are merged, preferring a dummy,
///    then a non-reply, as the head, per steps 5.B and 5.C.
/// 6. Every set of siblings is sorted by sent date, ties by mailbox order.
///
/// ```
/// use mailscale_imapsort::{format_threads, thread_references, SortItem};
/// let msg = |id, mid: &str, refs: Option<&str>, subject: &str| SortItem {
///     message_id: Some(mid.into()),
///     references: refs.map(Into::into),
///     subject: Some(subject.into()),
///     sent: Some(i64::from(id)),
///     ..SortItem::new(id, 0, 0)
/// };
/// let items = [
///     msg(1, "<a@x>", None, "plan"),
///     msg(2, "<b@x>", Some("<a@x>"), "Re: plan"),
///     msg(3, "<c@x>", Some("<a@x>"), "Re: plan"),
///     msg(4, "<d@x>", Some("<a@x> <c@x>"), "Re: plan"),
///     msg(5, "<e@x>", None, "other"),
/// ];
/// assert_eq!(format_threads(&thread_references(&items)), "(1 (2)(3 4))(5)");
/// ```
pub fn thread_references(items: &[SortItem]) -> Vec<Thread> {
    let mut forest = Forest { items, nodes: Vec::with_capacity(items.len() * 2) };
    let mut by_id: HashMap<std::borrow::Cow<'_, str>, u32> = HashMap::with_capacity(items.len() * 2);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].id);

    // (1)
    let mut refs = Vec::new();
    for &i in &order {
        let item = &items[i];
        let own = item.message_id.as_deref().and_then(|v| msg_ids(v).next());
        let node = match own {
            Some(mid) => match by_id.get(mid.as_ref()) {
                Some(&n) if forest.is_dummy(n) => {
                    forest.nodes[n as usize].item = Some(i as u32);
                    n
                }
                // A repeated Message-ID: this message gets a unique one,
                // i.e. a node nobody can reference.
                Some(_) => forest.add(Some(i)),
                None => {
                    let n = forest.add(Some(i));
                    by_id.insert(mid, n);
                    n
                }
            },
            None => forest.add(Some(i)),
        };

        refs.clear();
        refs.extend(item.references.as_deref().map(msg_ids).into_iter().flatten());
        if refs.is_empty() {
            refs.extend(item.in_reply_to.as_deref().and_then(|v| msg_ids(v).next()));
        }
        // (1.A)
        let mut prev = NONE;
        for r in refs.drain(..) {
            let n = match by_id.get(r.as_ref()) {
                Some(&n) => n,
                None => {
                    let n = forest.add(None);
                    by_id.insert(r, n);
                    n
                }
            };
            if prev != NONE && forest.nodes[n as usize].parent == NONE && !forest.is_within(prev, n) {
                forest.link(n, prev);
            }
            prev = n;
        }
        // (1.B)
        if prev == NONE {
            forest.unlink(node);
        } else if forest.nodes[node as usize].parent != prev && !forest.is_within(prev, node) {
            forest.unlink(node);
            forest.link(node, prev);
        }
    }
    drop(by_id);

    // (2)
    let tops: Vec<u32> = (0..forest.nodes.len() as u32).filter(|&n| forest.nodes[n as usize].parent == NONE).collect();

    // (3) bottom-up, so that a node's children are final before the node
    // itself is looked at.
    for &n in forest.breadth_first(&tops).iter().rev() {
        let children = std::mem::take(&mut forest.nodes[n as usize].children);
        let mut kept = Vec::with_capacity(children.len());
        for c in children {
            if forest.is_dummy(c) {
                let grandchildren = std::mem::take(&mut forest.nodes[c as usize].children);
                for &g in &grandchildren {
                    forest.nodes[g as usize].parent = n;
                }
                kept.extend(grandchildren);
            } else {
                kept.push(c);
            }
        }
        forest.nodes[n as usize].children = kept;
    }
    let mut roots = Vec::with_capacity(tops.len());
    for n in tops {
        match (forest.is_dummy(n), forest.nodes[n as usize].children.as_slice()) {
            (false, _) => roots.push(n),
            (true, []) => {}
            (true, &[only]) => {
                forest.nodes[only as usize].parent = NONE;
                roots.push(only);
            }
            (true, _) => roots.push(n),
        }
    }

    // (4)
    for &n in &roots {
        if forest.is_dummy(n) {
            forest.sort_children(n);
        }
    }
    roots.sort_by_cached_key(|&n| forest.date_key(n));

    // (5)
    let roots = gather_subjects(&mut forest, roots);

    // (6)
    let order = forest.breadth_first(&roots);
    for &n in order.iter().rev() {
        if forest.nodes[n as usize].children.len() > 1 {
            forest.sort_children(n);
        }
    }
    let mut roots = roots;
    roots.sort_by_cached_key(|&n| forest.date_key(n));

    // Build the output trees bottom-up.
    let mut built: Vec<Option<Thread>> = Vec::new();
    built.resize_with(forest.nodes.len(), || None);
    for &n in order.iter().rev() {
        let node = &forest.nodes[n as usize];
        let children = node.children.iter().filter_map(|&c| built[c as usize].take()).collect();
        let id = node.item.map(|i| items[i as usize].id);
        built[n as usize] = Some(Thread { id, children });
    }
    roots.iter().filter_map(|&n| built[n as usize].take()).collect()
}

/// Step 5: merges top-level threads that share a base subject; returns the
/// new top level (unsorted).
fn gather_subjects(forest: &mut Forest<'_>, roots: Vec<u32>) -> Vec<u32> {
    // (5.B.i) the thread subject: of the message, or of a dummy's first
    // child. Dummies at this level have only real children.
    let subject_of = |forest: &Forest<'_>, n: u32| -> BaseSubject {
        let mut m = n;
        while forest.is_dummy(m) {
            match forest.nodes[m as usize].children.first() {
                Some(&c) => m = c,
                None => return BaseSubject::default(),
            }
        }
        let item = &forest.items[forest.nodes[m as usize].item.unwrap_or_default() as usize];
        let mut s = analyze_subject(item.subject.as_deref().unwrap_or(""));
        s.text = casemap(&s.text);
        s
    };
    let subjects: Vec<BaseSubject> = roots.iter().map(|&n| subject_of(forest, n)).collect();
    // "Reply or forward" of each top-level message, by node; dummies and
    // nodes made in 5.C are not.
    let mut refwd = vec![false; forest.nodes.len()];
    for (&n, s) in roots.iter().zip(&subjects) {
        refwd[n as usize] = s.reply_or_forward && !forest.is_dummy(n);
    }
    let is_refwd = |n: u32| refwd.get(n as usize).copied().unwrap_or(false);

    // (5.A), (5.B)
    let mut table: HashMap<&str, u32> = HashMap::new();
    for (&n, s) in roots.iter().zip(&subjects) {
        if s.text.is_empty() {
            continue;
        }
        let t = table.entry(s.text.as_str()).or_insert(n);
        if !forest.is_dummy(*t) && (forest.is_dummy(n) || (is_refwd(*t) && !is_refwd(n))) {
            *t = n;
        }
    }

    // (5.C) Top-level nodes merged into another thread leave the top level;
    // a node that was moved under a new dummy is not visited again.
    let mut removed = vec![false; roots.len()];
    let position: HashMap<u32, usize> = roots.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut added = Vec::new();
    for (i, (&n, s)) in roots.iter().zip(&subjects).enumerate() {
        if s.text.is_empty() || removed[i] {
            continue;
        }
        let t = table[s.text.as_str()];
        if t == n {
            continue;
        }
        let (t_dummy, n_dummy) = (forest.is_dummy(t), forest.is_dummy(n));
        if t_dummy && n_dummy {
            let children = std::mem::take(&mut forest.nodes[n as usize].children);
            for c in children {
                forest.link(c, t);
            }
        } else if t_dummy || (is_refwd(n) && !is_refwd(t)) {
            forest.link(n, t);
        } else {
            // Both real: t is an original top-level message (only dummies
            // are ever added to the table in this step).
            let d = forest.add(None);
            removed[position[&t]] = true;
            forest.link(t, d);
            forest.link(n, d);
            table.insert(&s.text, d);
            added.push(d);
        }
        removed[i] = true;
    }
    roots.iter().zip(&removed).filter(|(_, &r)| !r).map(|(&n, _)| n).chain(added).collect()
}
