//! Match types (RFC 5228 section 2.7.1) and comparators (section 2.7.3,
//! RFC 4790): `:is`, `:contains`, `:matches` under `i;ascii-casemap` or
//! `i;octet`.

use crate::error::RuntimeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MatchKind {
    #[default]
    Is,
    Contains,
    Matches,
}

/// Comparators every implementation must offer (RFC 5228 section 2.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Comparator {
    /// ASCII letters compare case-insensitively, everything else by octet.
    #[default]
    AsciiCasemap,
    /// Octet by octet.
    Octet,
}

impl Comparator {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "i;ascii-casemap" => Some(Comparator::AsciiCasemap),
            "i;octet" => Some(Comparator::Octet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Match {
    pub kind: MatchKind,
    pub cmp: Comparator,
}

/// Most backtracking steps one `:matches` evaluation may take before the
/// run is abandoned with [`RuntimeError::MatchTooComplex`].
const MATCH_STEPS: usize = 10_000_000;

impl Match {
    /// Whether `value` matches `key`. For `:matches`, when `captures` is
    /// given and the match succeeds, it receives `${0}` (the whole value)
    /// followed by the text of each `*` and `?` in order (RFC 5229
    /// section 3.2).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::MatchTooComplex`] when a pattern needs more than
    /// `MATCH_STEPS` steps.
    pub(crate) fn eval(
        &self,
        value: &str,
        key: &str,
        captures: Option<&mut Vec<String>>,
    ) -> Result<bool, RuntimeError> {
        match (self.kind, self.cmp) {
            (MatchKind::Is, Comparator::Octet) => Ok(value == key),
            (MatchKind::Is, Comparator::AsciiCasemap) => Ok(value.eq_ignore_ascii_case(key)),
            (MatchKind::Contains, Comparator::Octet) => Ok(value.contains(key)),
            (MatchKind::Contains, Comparator::AsciiCasemap) => {
                Ok(value.to_ascii_lowercase().contains(&key.to_ascii_lowercase()))
            }
            (MatchKind::Matches, Comparator::Octet) => {
                let pattern = compile_pattern(key.bytes());
                let caps = wildcard(&pattern, value.as_bytes(), |a, b| a == b)?;
                Ok(store(caps, captures, |r| String::from_utf8_lossy(&value.as_bytes()[r]).into_owned(), value))
            }
            (MatchKind::Matches, Comparator::AsciiCasemap) => {
                let chars: Vec<char> = value.chars().collect();
                let pattern = compile_pattern(key.chars());
                let caps = wildcard(&pattern, &chars, |a: &char, b: &char| a.eq_ignore_ascii_case(b))?;
                Ok(store(caps, captures, |r| chars[r].iter().collect(), value))
            }
        }
    }
}

fn store(
    caps: Option<Vec<std::ops::Range<usize>>>,
    out: Option<&mut Vec<String>>,
    text: impl Fn(std::ops::Range<usize>) -> String,
    whole: &str,
) -> bool {
    let Some(caps) = caps else { return false };
    if let Some(out) = out {
        out.clear();
        out.push(whole.to_owned());
        out.extend(caps.into_iter().map(text));
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat<T> {
    Lit(T),
    One,
    Star,
}

/// `*` and `?` are wildcards, `\` makes the next unit literal (RFC 5228
/// section 2.7.1); a trailing lone `\` is literal.
fn compile_pattern<T: Copy + PartialEq + From<u8>>(units: impl Iterator<Item = T>) -> Vec<Pat<T>> {
    let (star, one, esc) = (T::from(b'*'), T::from(b'?'), T::from(b'\\'));
    let mut out = Vec::new();
    let mut units = units.peekable();
    while let Some(u) = units.next() {
        if u == esc {
            out.push(Pat::Lit(units.next().unwrap_or(esc)));
        } else if u == star {
            out.push(Pat::Star);
        } else if u == one {
            out.push(Pat::One);
        } else {
            out.push(Pat::Lit(u));
        }
    }
    out
}

/// A pending choice: the `*` at pattern index `pi` currently spans
/// `text[start..start + len]`; `caps` is how many captures existed before it.
struct Choice {
    pi: usize,
    start: usize,
    len: usize,
    caps: usize,
}

/// Wildcard match over units (chars or bytes). Each `*` takes as little as
/// possible, leftmost first, which gives RFC 5229's example captures
/// (`"[*] *"` on `"[acme-users] [fwd] version 1.0 is out"` yields
/// `acme-users`). Returns the span of every wildcard on success.
///
/// A star that failed from start `s` fails from any later start too (it
/// would try a subset of the same continuations), so each star remembers
/// the earliest start it failed from; the work is then bounded by about
/// stars x text length x literal run, and capped by `MATCH_STEPS`.
#[allow(clippy::type_complexity)]
fn wildcard<T: Copy>(
    pattern: &[Pat<T>],
    text: &[T],
    eq: impl Fn(&T, &T) -> bool,
) -> Result<Option<Vec<std::ops::Range<usize>>>, RuntimeError> {
    let mut fail_from = vec![usize::MAX; pattern.len()];
    let mut stack: Vec<Choice> = Vec::new();
    let mut caps: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut pi, mut ti) = (0, 0);
    let mut steps = 0usize;
    loop {
        steps += 1;
        if steps > MATCH_STEPS {
            return Err(RuntimeError::MatchTooComplex);
        }
        let ok = match pattern.get(pi) {
            None => {
                if ti == text.len() {
                    return Ok(Some(caps));
                }
                false
            }
            Some(Pat::Lit(c)) => {
                let ok = text.get(ti).is_some_and(|t| eq(t, c));
                if ok {
                    pi += 1;
                    ti += 1;
                }
                ok
            }
            Some(Pat::One) => {
                let ok = ti < text.len();
                if ok {
                    caps.push(ti..ti + 1);
                    pi += 1;
                    ti += 1;
                }
                ok
            }
            Some(Pat::Star) => {
                if ti >= fail_from[pi] {
                    false
                } else {
                    stack.push(Choice { pi, start: ti, len: 0, caps: caps.len() });
                    caps.push(ti..ti);
                    pi += 1;
                    true
                }
            }
        };
        if ok {
            continue;
        }
        // Backtrack: let the innermost star take one more unit.
        loop {
            let Some(mut c) = stack.pop() else { return Ok(None) };
            if c.start + c.len < text.len() {
                c.len += 1;
                caps.truncate(c.caps);
                caps.push(c.start..c.start + c.len);
                pi = c.pi + 1;
                ti = c.start + c.len;
                stack.push(c);
                break;
            }
            fail_from[c.pi] = fail_from[c.pi].min(c.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: MatchKind, cmp: Comparator) -> Match {
        Match { kind, cmp }
    }

    fn caps(value: &str, key: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        m(MatchKind::Matches, Comparator::AsciiCasemap).eval(value, key, Some(&mut out)).unwrap().then_some(out)
    }

    #[test]
    fn match_types_and_comparators() {
        let is = m(MatchKind::Is, Comparator::AsciiCasemap);
        assert!(is.eval("Frobnitzm", "FROBNITZM", None).unwrap());
        assert!(!m(MatchKind::Is, Comparator::Octet).eval("Frobnitzm", "FROBNITZM", None).unwrap());
        assert!(m(MatchKind::Contains, Comparator::AsciiCasemap).eval("Hello World", "o w", None).unwrap());
        assert!(!m(MatchKind::Contains, Comparator::Octet).eval("Hello World", "o w", None).unwrap());
        assert!(m(MatchKind::Contains, Comparator::Octet).eval("anything", "", None).unwrap());
        // ascii-casemap leaves non-ASCII letters alone.
        assert!(!is.eval("\u{e9}", "\u{c9}", None).unwrap());
    }

    #[test]
    fn wildcards() {
        assert!(caps("abc", "a*c").is_some());
        assert!(caps("abc", "a?c").is_some());
        assert!(caps("ac", "a?c").is_none());
        assert!(caps("a*c", "a\\*c").is_some());
        assert!(caps("abc", "a\\*c").is_none());
        assert!(caps("a?c", "a\\?c").is_some());
        assert!(caps("a\\c", "a\\\\c").is_some());
        assert!(caps("", "*").is_some());
        assert!(caps("x", "").is_none());
        // '?' is one character under i;ascii-casemap, one octet under i;octet.
        assert!(caps("\u{e9}", "?").is_some());
        let octet = m(MatchKind::Matches, Comparator::Octet);
        assert!(!octet.eval("\u{e9}", "?", None).unwrap());
        assert!(octet.eval("\u{e9}", "??", None).unwrap());
        assert!(!octet.eval("ABC", "a*", None).unwrap());
    }

    #[test]
    fn captures_are_leftmost_shortest() {
        assert_eq!(
            caps("[acme-users] [fwd] version 1.0 is out", "[*] *").unwrap()[1..],
            ["acme-users", "[fwd] version 1.0 is out"]
        );
        assert_eq!(
            caps("coyote@ACME.Example.COM", "coyote@**.com").unwrap(),
            ["coyote@ACME.Example.COM", "", "ACME.Example"]
        );
        assert_eq!(caps("Ann <ann@x.org>", "*<*@*").unwrap()[1..], ["Ann ", "ann", "x.org>"]);
        assert_eq!(caps("abcd", "?b?*").unwrap()[1..], ["a", "c", "d"]);
    }

    #[test]
    fn pathological_pattern_terminates() {
        let text = "a".repeat(3000);
        let pattern = format!("{}b", "*a".repeat(40));
        assert!(caps(&text, &pattern).is_none());
    }
}
