//! Command syntax of extensions that imap-codec 2.0.0-alpha.10 does not parse, handled on the
//! framed message before it reaches the codec:
//!
//! - ESEARCH (RFC 4731): `SEARCH RETURN (MIN MAX ALL COUNT SAVE) ...` — the RETURN clause is
//!   taken off and returned as [`SearchReturn`]; the rest is an RFC 3501 SEARCH.
//! - SEARCHRES (RFC 5182): `$` as a sequence set (FETCH, STORE, COPY, MOVE, UID EXPUNGE) or
//!   as a search key is replaced by the saved result, so the codec sees an ordinary set.
//! - LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819): a LIST with selection options,
//!   several patterns or RETURN options is parsed here completely into [`ListExt`].
//!
//! Everything else passes through untouched. The scanner respects quoted strings and literals
//! (`{n}` / `{n+}`), so their bytes are never rewritten.

use std::borrow::Cow;

/// ESEARCH result options (RFC 4731 3.1) and SAVE (RFC 5182 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
}

impl SearchReturn {
    /// Whether an `* ESEARCH` response is due (SAVE alone answers nothing, RFC 5182 2.1).
    pub fn wants_esearch(&self) -> bool {
        self.min || self.max || self.all || self.count
    }
}

/// A LIST-EXTENDED command (RFC 5258 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExt {
    pub reference: String,
    pub patterns: Vec<String>,
    /// Selection options.
    pub subscribed: bool,
    pub recursive_match: bool,
    pub special_use_only: bool,
    /// Return options.
    pub ret_subscribed: bool,
    pub ret_children: bool,
    pub ret_special_use: bool,
    /// LIST-STATUS (RFC 5819): the STATUS data item names, upper-case.
    pub ret_status: Option<Vec<String>>,
}

/// What to do with a framed message.
#[derive(Debug)]
pub enum Pre<'a> {
    /// Decode these bytes with imap-codec; `search_return` applies when it is a SEARCH.
    Codec { bytes: Cow<'a, [u8]>, search_return: Option<SearchReturn> },
    /// A LIST-EXTENDED command, parsed here.
    List { tag: String, list: ListExt },
    /// Extension syntax that is malformed: answer BAD.
    Bad { tag: String, text: String },
}

/// The saved search result (RFC 5182) in the two spellings a command may need.
pub trait Saved {
    /// The saved result as a sequence set of UIDs (`uid`) or of message numbers, `None` when
    /// no mailbox is selected. An empty result gives `None` inside the option.
    fn set(&self, uid: bool) -> Option<Option<String>>;
}

/// A UID that no message has: what `$` turns into when the saved result is empty.
const NO_UID: &str = "4294967295";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Atom,
    Open,
    Close,
    Quoted,
    Literal,
}

/// Splits a command into tokens (byte ranges). Atoms stop at space, parentheses and quotes,
/// except that `[...]` is kept inside an atom (FETCH `BODY[HEADER.FIELDS (A B)]`).
fn tokens(raw: &[u8]) -> Vec<(Tok, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = raw.len();
    while i < n {
        match raw[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push((Tok::Open, i, i + 1));
                i += 1;
            }
            b')' => {
                out.push((Tok::Close, i, i + 1));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < n && raw[i] != b'"' {
                    if raw[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(n);
                out.push((Tok::Quoted, start, i));
            }
            b'{' | b'~' if literal_len(&raw[i..]).is_some() => {
                let (len, header) = literal_len(&raw[i..]).expect("checked");
                let start = i;
                i = i.saturating_add(header).saturating_add(len).min(n);
                out.push((Tok::Literal, start, i));
            }
            _ => {
                let start = i;
                let mut depth = 0;
                while i < n {
                    match raw[i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b'(' | b')' | b'"' | b'\r' | b'\n' if depth <= 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                out.push((Tok::Atom, start, i));
            }
        }
    }
    out
}

/// `{n}\r\n`, `{n+}\r\n` or `~{n}\r\n` at the start of `s`: (n, length of the announcement).
fn literal_len(s: &[u8]) -> Option<(usize, usize)> {
    let s2 = s.strip_prefix(b"~").unwrap_or(s);
    let skip = s.len() - s2.len();
    let rest = s2.strip_prefix(b"{")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    let digits = rest[..close].strip_suffix(b"+").unwrap_or(&rest[..close]);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // RFC 3501 `number` is 32-bit: a longer one is no literal (imap-codec's fragmentizer does
    // not take it for one either), and a length near usize::MAX must not wrap the scanner back.
    let len: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let len = usize::try_from(len).ok()?;
    let after = &rest[close + 1..];
    let crlf = if after.starts_with(b"\r\n") {
        2
    } else if after.starts_with(b"\n") {
        1
    } else {
        return None;
    };
    Some((len, skip + 1 + close + 1 + crlf))
}

fn upper(raw: &[u8], t: &(Tok, usize, usize)) -> String {
    String::from_utf8_lossy(&raw[t.1..t.2]).to_ascii_uppercase()
}

/// Looks at one framed command and decides how it is parsed.
pub fn preprocess<'a>(raw: &'a [u8], saved: &dyn Saved) -> Pre<'a> {
    let toks = tokens(raw);
    if toks.len() < 2 || toks[0].0 != Tok::Atom {
        return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None };
    }
    let tag = String::from_utf8_lossy(&raw[toks[0].1..toks[0].2]).into_owned();
    let mut c = 1;
    let uid = toks[c].0 == Tok::Atom && upper(raw, &toks[c]) == "UID";
    if uid {
        c += 1;
    }
    let Some(cmd_tok) = toks.get(c).filter(|t| t.0 == Tok::Atom) else {
        return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None };
    };
    let cmd = upper(raw, cmd_tok);
    let args = &toks[c + 1..];
    match cmd.as_str() {
        "LIST" if !uid => match list(raw, args) {
            Ok(Some(list)) => Pre::List { tag, list },
            Ok(None) => Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None },
            Err(text) => Pre::Bad { tag, text },
        },
        "SEARCH" => search(raw, args, uid, saved, tag),
        "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" => {
            let Some(first) = args.first() else {
                return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None };
            };
            if first.0 != Tok::Atom || &raw[first.1..first.2] != b"$" {
                return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None };
            }
            let (replacement, from) = match saved.set(uid) {
                None => return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None },
                Some(Some(set)) => (set, first.1),
                // No message: a UID nobody has, in UID form (the answer is the same: nothing).
                Some(None) if uid => (NO_UID.to_string(), first.1),
                Some(None) => {
                    (format!("UID {} {NO_UID}", String::from_utf8_lossy(&raw[cmd_tok.1..cmd_tok.2])), cmd_tok.1)
                }
            };
            let mut out = Vec::with_capacity(raw.len() + replacement.len());
            out.extend_from_slice(&raw[..from]);
            out.extend_from_slice(replacement.as_bytes());
            out.extend_from_slice(&raw[first.2..]);
            Pre::Codec { bytes: Cow::Owned(out), search_return: None }
        }
        "SORT" | "THREAD" => {
            let dollars = dollar_keys(raw, args);
            if dollars.is_empty() {
                return Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None };
            }
            match replace_dollars(raw, args, &dollars, saved) {
                Some(bytes) => Pre::Codec { bytes: Cow::Owned(bytes), search_return: None },
                None => Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None },
            }
        }
        _ => Pre::Codec { bytes: Cow::Borrowed(raw), search_return: None },
    }
}

/// Indices (into `args`) of `$` atoms.
fn dollar_keys(raw: &[u8], args: &[(Tok, usize, usize)]) -> Vec<usize> {
    (0..args.len()).filter(|&i| args[i].0 == Tok::Atom && &raw[args[i].1..args[i].2] == b"$").collect()
}

/// Replaces each `$` search key by `UID <saved uids>` (after a `UID` key: by the set alone).
fn replace_dollars(raw: &[u8], args: &[(Tok, usize, usize)], dollars: &[usize], saved: &dyn Saved) -> Option<Vec<u8>> {
    let set = saved.set(true)?.unwrap_or_else(|| NO_UID.to_string());
    let mut out = Vec::with_capacity(raw.len() + set.len() * dollars.len());
    let mut pos = 0;
    for &i in dollars {
        let after_uid = i > 0 && args[i - 1].0 == Tok::Atom && upper(raw, &args[i - 1]) == "UID";
        out.extend_from_slice(&raw[pos..args[i].1]);
        if !after_uid {
            out.extend_from_slice(b"UID ");
        }
        out.extend_from_slice(set.as_bytes());
        pos = args[i].2;
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

fn search<'a>(raw: &'a [u8], args: &[(Tok, usize, usize)], _uid: bool, saved: &dyn Saved, tag: String) -> Pre<'a> {
    let mut search_return = None;
    let mut cut: Option<(usize, usize)> = None;
    if args.first().is_some_and(|t| t.0 == Tok::Atom && upper(raw, t) == "RETURN") {
        if args.get(1).map(|t| t.0) != Some(Tok::Open) {
            return Pre::Bad { tag, text: "SEARCH RETURN expects a parenthesized list of options".into() };
        }
        let mut r = SearchReturn::default();
        let mut i = 2;
        loop {
            let Some(t) = args.get(i) else {
                return Pre::Bad { tag, text: "SEARCH RETURN: missing )".into() };
            };
            if t.0 == Tok::Close {
                break;
            }
            match upper(raw, t).as_str() {
                "MIN" => r.min = true,
                "MAX" => r.max = true,
                "ALL" => r.all = true,
                "COUNT" => r.count = true,
                "SAVE" => r.save = true,
                other => {
                    return Pre::Bad {
                        tag,
                        text: format!("SEARCH RETURN: expected MIN, MAX, ALL, COUNT or SAVE, got {other}"),
                    }
                }
            }
            i += 1;
        }
        if !(r.min || r.max || r.all || r.count || r.save) {
            // RETURN () means RETURN (ALL) (RFC 4731 3.1).
            r.all = true;
        }
        search_return = Some(r);
        cut = Some((args[0].1, args[i].2));
        if args.len() <= i + 1 {
            return Pre::Bad { tag, text: "SEARCH RETURN: expected search criteria".into() };
        }
    }
    let dollars = dollar_keys(raw, args);
    if cut.is_none() && dollars.is_empty() {
        return Pre::Codec { bytes: Cow::Borrowed(raw), search_return };
    }
    let base: Vec<u8> = if dollars.is_empty() {
        raw.to_vec()
    } else {
        match replace_dollars(raw, args, &dollars, saved) {
            Some(b) => b,
            None => return Pre::Bad { tag, text: "$ needs a selected mailbox".into() },
        }
    };
    let bytes = match cut {
        // RETURN comes before any `$`, so its offsets are unchanged by the replacement.
        Some((from, to)) => {
            let mut out = base[..from].to_vec();
            let mut rest = &base[to..];
            while rest.first() == Some(&b' ') {
                rest = &rest[1..];
            }
            out.extend_from_slice(rest);
            out
        }
        None => base,
    };
    Pre::Codec { bytes: Cow::Owned(bytes), search_return }
}

/// The value of an astring / list-mailbox token: atom text, quoted string unescaped, literal
/// bytes.
fn value(raw: &[u8], t: &(Tok, usize, usize)) -> Result<Vec<u8>, String> {
    let s = &raw[t.1..t.2];
    match t.0 {
        Tok::Atom => Ok(s.to_vec()),
        Tok::Quoted => {
            let inner = &s[1..s.len().saturating_sub(1).max(1)];
            let mut out = Vec::with_capacity(inner.len());
            let mut i = 0;
            while i < inner.len() {
                if inner[i] == b'\\' && i + 1 < inner.len() {
                    i += 1;
                }
                out.push(inner[i]);
                i += 1;
            }
            Ok(out)
        }
        Tok::Literal => {
            let (len, header) = literal_len(s).ok_or("bad literal")?;
            Ok(s[header..header.saturating_add(len).min(s.len())].to_vec())
        }
        _ => Err("expected a mailbox name or pattern".into()),
    }
}

fn mailbox_text(raw: &[u8], t: &(Tok, usize, usize)) -> Result<String, String> {
    let v = value(raw, t)?;
    super::utf7::decode(&v).map_err(|e| e.to_string())
}

/// A parenthesized list of atoms starting at `args[*i]` (which is `(`); nested lists (STATUS
/// items) come back as one entry each, prefixed by the preceding atom.
fn atom_list(raw: &[u8], args: &[(Tok, usize, usize)], i: &mut usize) -> Result<Vec<(String, Vec<String>)>, String> {
    if args.get(*i).map(|t| t.0) != Some(Tok::Open) {
        return Err("expected (".into());
    }
    *i += 1;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    loop {
        let t = args.get(*i).ok_or("missing )")?;
        match t.0 {
            Tok::Close => {
                *i += 1;
                return Ok(out);
            }
            Tok::Open => {
                *i += 1;
                let mut inner = Vec::new();
                loop {
                    let t = args.get(*i).ok_or("missing )")?;
                    if t.0 == Tok::Close {
                        *i += 1;
                        break;
                    }
                    if t.0 != Tok::Atom {
                        return Err("expected an atom".into());
                    }
                    inner.push(upper(raw, t));
                    *i += 1;
                }
                match out.last_mut() {
                    Some(last) => last.1 = inner,
                    None => return Err("unexpected (".into()),
                }
            }
            Tok::Atom => {
                out.push((upper(raw, t), Vec::new()));
                *i += 1;
            }
            _ => return Err("expected an atom".into()),
        }
    }
}

/// Parses LIST's arguments; `None` for the RFC 3501 form (the codec parses that).
fn list(raw: &[u8], args: &[(Tok, usize, usize)]) -> Result<Option<ListExt>, String> {
    let extended = args.first().is_some_and(|t| t.0 == Tok::Open)
        || args.get(1).is_some_and(|t| t.0 == Tok::Open)
        || args.len() > 2;
    if !extended {
        return Ok(None);
    }
    let mut l = ListExt::default();
    let mut i = 0;
    if args.first().is_some_and(|t| t.0 == Tok::Open) {
        for (opt, _) in atom_list(raw, args, &mut i)? {
            match opt.as_str() {
                "SUBSCRIBED" => l.subscribed = true,
                "RECURSIVEMATCH" => l.recursive_match = true,
                "SPECIAL-USE" => l.special_use_only = true,
                "REMOTE" => {}
                other => return Err(format!("LIST: unknown selection option {other}")),
            }
        }
        if l.recursive_match && !l.subscribed {
            return Err("LIST: RECURSIVEMATCH needs another selection option (RFC 5258 3.1)".into());
        }
    }
    let reference = args.get(i).ok_or("LIST: expected a reference name")?;
    l.reference = mailbox_text(raw, reference)?;
    i += 1;
    match args.get(i) {
        Some(t) if t.0 == Tok::Open => {
            i += 1;
            loop {
                let t = args.get(i).ok_or("LIST: missing ) after patterns")?;
                i += 1;
                if t.0 == Tok::Close {
                    break;
                }
                l.patterns.push(mailbox_text(raw, t)?);
            }
            if l.patterns.is_empty() {
                return Err("LIST: expected at least one pattern".into());
            }
        }
        Some(t) => {
            l.patterns.push(mailbox_text(raw, t)?);
            i += 1;
        }
        None => return Err("LIST: expected a mailbox pattern".into()),
    }
    if let Some(t) = args.get(i) {
        if t.0 != Tok::Atom || upper(raw, t) != "RETURN" {
            return Err("LIST: expected RETURN after the patterns".into());
        }
        i += 1;
        for (opt, items) in atom_list(raw, args, &mut i)? {
            match opt.as_str() {
                "SUBSCRIBED" => l.ret_subscribed = true,
                "CHILDREN" => l.ret_children = true,
                "SPECIAL-USE" => l.ret_special_use = true,
                "STATUS" if !items.is_empty() => l.ret_status = Some(items),
                other => return Err(format!("LIST: unknown return option {other}")),
            }
        }
        if i != args.len() {
            return Err("LIST: unexpected data after RETURN options".into());
        }
    }
    Ok(Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(Option<Vec<u32>>, Vec<u32>);
    impl Saved for S {
        fn set(&self, uid: bool) -> Option<Option<String>> {
            let v = self.0.as_ref()?;
            let v = if uid { v } else { &self.1 };
            Some((!v.is_empty()).then(|| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
        }
    }

    fn codec(p: Pre<'_>) -> (String, Option<SearchReturn>) {
        match p {
            Pre::Codec { bytes, search_return } => (String::from_utf8(bytes.into_owned()).unwrap(), search_return),
            other => panic!("expected codec, got {other:?}"),
        }
    }

    #[test]
    fn search_return_and_dollar() {
        let s = S(Some(vec![4, 9]), vec![2, 3]);
        let (b, r) = codec(preprocess(b"a UID SEARCH RETURN (MIN COUNT) UNSEEN\r\n", &s));
        assert_eq!(b, "a UID SEARCH UNSEEN\r\n");
        assert_eq!(r, Some(SearchReturn { min: true, count: true, ..Default::default() }));
        let (b, r) = codec(preprocess(b"a SEARCH RETURN () ALL\r\n", &s));
        assert_eq!(b, "a SEARCH ALL\r\n");
        assert!(r.unwrap().all);
        let (b, _) = codec(preprocess(b"a SEARCH $ SMALLER 4 UID $ SUBJECT \"$\"\r\n", &s));
        assert_eq!(b, "a SEARCH UID 4,9 SMALLER 4 UID 4,9 SUBJECT \"$\"\r\n");
        let (b, _) = codec(preprocess(b"a FETCH $ (FLAGS)\r\n", &s));
        assert_eq!(b, "a FETCH 2,3 (FLAGS)\r\n");
        let (b, _) = codec(preprocess(b"a UID STORE $ +FLAGS (x)\r\n", &s));
        assert_eq!(b, "a UID STORE 4,9 +FLAGS (x)\r\n");
        let empty = S(Some(vec![]), vec![]);
        let (b, _) = codec(preprocess(b"a FETCH $ FLAGS\r\n", &empty));
        assert_eq!(b, "a UID FETCH 4294967295 FLAGS\r\n");
        let (b, _) = codec(preprocess(b"a SEARCH SUBJECT {1}\r\n$ ALL\r\n", &s));
        assert_eq!(b, "a SEARCH SUBJECT {1}\r\n$ ALL\r\n");
        assert!(matches!(preprocess(b"a SEARCH RETURN (BOGUS) ALL\r\n", &s), Pre::Bad { .. }));
    }

    #[test]
    fn literal_length_beyond_32_bits_is_not_a_literal() {
        // Found by reading while adding fuzz/fuzz_targets/imap_ext.rs: a length that made
        // `i + header + len` wrap to `i` kept the scanner in place, pushing tokens until the
        // daemon ran out of memory, from any client before login.
        let s = S(None, vec![]);
        for raw in [
            b"a LIST \"\" {18446744073709551592}\r\nx\r\n".as_slice(),
            b"a {18446744073709551615+}\r\n",
            b"a SEARCH {4294967296}\r\n",
        ] {
            assert!(matches!(preprocess(raw, &s), Pre::Codec { .. } | Pre::Bad { .. }));
        }
        assert_eq!(literal_len(b"{4294967295}\r\n"), Some((4294967295, 14)));
        assert_eq!(literal_len(b"{4294967296}\r\n"), None);
        let Pre::List { list, .. } = preprocess(b"a LIST \"\" ({18446744073709551592} %)\r\n", &s) else { panic!() };
        assert_eq!(list.patterns, ["{18446744073709551592}", "%"]);
    }

    #[test]
    fn list_extended() {
        let s = S(None, vec![]);
        assert!(matches!(preprocess(b"a LIST \"\" *\r\n", &s), Pre::Codec { .. }));
        let Pre::List { tag, list } = preprocess(
            b"t1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" Foo/*) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n",
            &s,
        ) else {
            panic!()
        };
        assert_eq!(tag, "t1");
        assert!(list.subscribed && list.recursive_match && list.ret_children);
        assert_eq!(list.patterns, ["%", "Foo/*"]);
        assert_eq!(list.ret_status, Some(vec!["MESSAGES".into(), "UIDNEXT".into()]));
        let Pre::List { list, .. } = preprocess(b"t LIST \"\" % RETURN (SPECIAL-USE)\r\n", &s) else { panic!() };
        assert!(list.ret_special_use);
        assert!(matches!(preprocess(b"t LIST (RECURSIVEMATCH) \"\" %\r\n", &s), Pre::Bad { .. }));
    }
}
