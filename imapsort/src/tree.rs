//! The thread tree that both THREAD algorithms produce, and its rendering
//! as the payload of the untagged THREAD response (RFC 5256 section 4).

use std::fmt::Write as _;

/// One node of a thread: a message, or a dummy standing for a message that
/// is not in the result (REFERENCES only), with its children in order.
///
/// Trees may be as deep as the longest reply chain in a mailbox; `Drop` and
/// [`format_threads`] therefore work without recursion. The derived
/// `PartialEq` and `Debug` do recurse and are meant for tests.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct Thread {
    /// The message's id (sequence number or UID, as in [`SortItem::id`]);
    /// `None` for a dummy.
    ///
    /// [`SortItem::id`]: crate::SortItem::id
    pub id: Option<u32>,
    /// Replies (or, at a dummy, the messages it groups), in order.
    pub children: Vec<Thread>,
}

impl Thread {
    /// A message without children.
    pub fn leaf(id: u32) -> Self {
        Thread { id: Some(id), children: Vec::new() }
    }

    /// A message with children.
    pub fn message(id: u32, children: Vec<Thread>) -> Self {
        Thread { id: Some(id), children }
    }

    /// A dummy grouping `children`.
    pub fn dummy(children: Vec<Thread>) -> Self {
        Thread { id: None, children }
    }

    /// True for a dummy node.
    pub fn is_dummy(&self) -> bool {
        self.id.is_none()
    }

    /// Message ids in the tree, depth-first pre-order (each message once).
    pub fn ids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(t) = stack.pop() {
            out.extend(t.id);
            stack.extend(t.children.iter().rev());
        }
        out
    }
}

impl Drop for Thread {
    /// Frees the subtree with an explicit stack instead of recursion, so a
    /// reply chain of any length cannot overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut t) = stack.pop() {
            stack.append(&mut t.children);
        }
    }
}

/// Renders threads as the `thread-list`s of a THREAD response (RFC 5256
/// section 5), without the leading `* THREAD `:
///
/// ```text
/// thread-list     = "(" (thread-members / thread-nested) ")"
/// thread-members  = nz-number *(SP nz-number) [SP thread-nested]
/// thread-nested   = 2*thread-list
/// ```
///
/// A message with one child is followed by that child on the same level;
/// a message with several children is followed by one parenthesised list
/// per child; a dummy contributes no number, so a dummy with several
/// children is written `((3)(5))`.
///
/// ```
/// use mailscale_imapsort::{format_threads, Thread};
/// let threads = [
///     Thread::leaf(2),
///     Thread::message(3, vec![Thread::message(6, vec![
///         Thread::message(4, vec![Thread::leaf(23)]),
///         Thread::message(44, vec![Thread::message(7, vec![Thread::leaf(96)])]),
///     ])]),
/// ];
/// assert_eq!(format_threads(&threads), "(2)(3 6 (4 23)(44 7 96))");
/// assert_eq!(format_threads(&[Thread::dummy(vec![Thread::leaf(3), Thread::leaf(5)])]), "((3)(5))");
/// ```
///
/// A dummy with one child is written as that child; a childless dummy
/// (which neither algorithm produces) is skipped.
pub fn format_threads(threads: &[Thread]) -> String {
    enum Task<'a> {
        List(&'a Thread),
        Close,
    }
    let mut out = String::new();
    let mut stack: Vec<Task<'_>> = threads.iter().rev().map(Task::List).collect();
    while let Some(task) = stack.pop() {
        let node = match task {
            Task::Close => {
                out.push(')');
                continue;
            }
            Task::List(node) => node,
        };
        if node.ids_empty() {
            continue;
        }
        out.push('(');
        let mut wrote = false;
        let mut cur = node;
        let nested = loop {
            if let Some(id) = cur.id {
                if wrote {
                    out.push(' ');
                }
                let _ = write!(out, "{id}");
                wrote = true;
            }
            let live: Vec<&Thread> = cur.children.iter().filter(|c| !c.ids_empty()).collect();
            match live.as_slice() {
                [only] => cur = only,
                _ => break live,
            }
        };
        if nested.is_empty() {
            out.push(')');
            continue;
        }
        if wrote {
            out.push(' ');
        }
        stack.push(Task::Close);
        stack.extend(nested.into_iter().rev().map(Task::List));
    }
    out
}

impl Thread {
    /// True when the subtree holds no message at all.
    fn ids_empty(&self) -> bool {
        let mut stack = vec![self];
        while let Some(t) = stack.pop() {
            if t.id.is_some() {
                return false;
            }
            stack.extend(&t.children);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5256_example_format() {
        // RFC 5256 section 4: "(2)(3 6 (4 23)(44 7 96))".
        let t = vec![
            Thread::leaf(2),
            Thread::message(
                3,
                vec![Thread::message(
                    6,
                    vec![
                        Thread::message(4, vec![Thread::leaf(23)]),
                        Thread::message(44, vec![Thread::message(7, vec![Thread::leaf(96)])]),
                    ],
                )],
            ),
        ];
        assert_eq!(format_threads(&t), "(2)(3 6 (4 23)(44 7 96))");
        assert_eq!(t[1].ids(), [3, 6, 4, 23, 44, 7, 96]);
    }

    #[test]
    fn dummies_and_edges() {
        assert_eq!(format_threads(&[]), "");
        let d = Thread::dummy(vec![Thread::message(3, vec![Thread::leaf(4)]), Thread::leaf(5)]);
        assert_eq!(format_threads(&[d]), "((3 4)(5))");
        assert_eq!(format_threads(&[Thread::dummy(vec![Thread::leaf(9)])]), "(9)");
        assert_eq!(format_threads(&[Thread::dummy(vec![]), Thread::leaf(1)]), "(1)");
        let nested = Thread::message(1, vec![Thread::leaf(2), Thread::dummy(vec![]), Thread::leaf(3)]);
        assert_eq!(format_threads(&[nested]), "(1 (2)(3))");
        let one_left = Thread::message(1, vec![Thread::leaf(2), Thread::dummy(vec![])]);
        assert_eq!(format_threads(&[one_left]), "(1 2)");
    }

    #[test]
    fn deep_chain_formats_and_drops_without_recursion() {
        let mut t = Thread::leaf(200_000);
        for id in (1..200_000).rev() {
            t = Thread::message(id, vec![t]);
        }
        let s = format_threads(std::slice::from_ref(&t));
        assert!(s.starts_with("(1 2 3 "));
        assert!(s.ends_with(" 199999 200000)"));
        drop(t);
    }
}
