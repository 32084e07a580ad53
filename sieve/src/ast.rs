//! The compiled form of a script: commands and tests with typed, validated
//! arguments. Built by `parser`, walked by `interp`.

use crate::matching::Match;

/// A string argument. Without the "variables" extension it is one literal;
/// with it, `${name}` and `${N}` references are found at compile time
/// (RFC 5229 section 3) and substituted at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str(pub Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Lit(String),
    /// A user variable, name lower-cased (names are case-insensitive).
    Var(String),
    /// A match variable `${N}` (RFC 5229 section 3.2).
    MatchVar(usize),
}

impl Str {
    pub(crate) fn lit(s: impl Into<String>) -> Self {
        Str(vec![Seg::Lit(s.into())])
    }

    /// The value when it contains no variable reference.
    pub(crate) fn constant(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Seg::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Splits `s` into literals and variable references. A `${` that does
    /// not start a well-formed reference is literal text. Returns `Err`
    /// with the offending name for a reference into a namespace
    /// (`${ns.name}`): no namespace is supported, and RFC 5229 section 3
    /// makes such a reference an error.
    pub(crate) fn parse_variables(s: &str) -> Result<Str, String> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(at) = rest.find("${") {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match after.find('}').map(|end| (&after[..end], end)) {
                Some((name, end)) if is_num_var(name) => {
                    flush(&mut lit, &mut segs);
                    let n = name.trim_start_matches('0');
                    segs.push(Seg::MatchVar(if n.is_empty() { 0 } else { n.parse().unwrap_or(usize::MAX) }));
                    rest = &after[end + 1..];
                }
                Some((name, end)) if is_identifier(name) => {
                    flush(&mut lit, &mut segs);
                    segs.push(Seg::Var(name.to_ascii_lowercase()));
                    rest = &after[end + 1..];
                }
                Some((name, _)) if name.split('.').all(is_identifier) && name.contains('.') => {
                    return Err(name.to_owned());
                }
                _ => {
                    lit.push('$');
                    rest = &rest[at + 1..];
                }
            }
        }
        lit.push_str(rest);
        flush(&mut lit, &mut segs);
        Ok(Str(segs))
    }
}

/// Decodes `${hex:...}` and `${unicode:...}` (RFC 5228 section 2.4.2.4,
/// "encoded-character"). A sequence that is not well-formed is left as
/// written; `Err` names a well-formed one whose value is not UTF-8 or not a
/// Unicode scalar value.
pub(crate) fn decode_encoded_characters(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let decoded = after.find('}').and_then(|end| {
            let body = &after[..end];
            let (kind, seq) = body.split_once(':')?;
            let units: Vec<&str> = seq.split([' ', '\t', '\r', '\n']).filter(|u| !u.is_empty()).collect();
            if units.is_empty() || !units.iter().all(|u| u.bytes().all(|b| b.is_ascii_hexdigit())) {
                return None;
            }
            let value = if kind.eq_ignore_ascii_case("hex") {
                if units.iter().any(|u| u.len() > 2) {
                    return None;
                }
                let bytes: Vec<u8> = units.iter().map(|u| u8::from_str_radix(u, 16).unwrap_or(0)).collect();
                String::from_utf8(bytes).map_err(|_| format!("${{{body}}}"))
            } else if kind.eq_ignore_ascii_case("unicode") {
                let mut v = String::new();
                for u in &units {
                    let digits = u.trim_start_matches('0');
                    let c = match digits {
                        "" => Some('\0'),
                        d if d.len() > 6 => None,
                        d => u32::from_str_radix(d, 16).ok().and_then(char::from_u32),
                    };
                    match c {
                        Some(c) => v.push(c),
                        None => return Some((Err(format!("${{{body}}}")), end)),
                    }
                }
                Ok(v)
            } else {
                return None;
            };
            Some((value, end))
        });
        match decoded {
            Some((Ok(v), end)) => {
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            Some((Err(e), _)) => return Err(e),
            None => {
                out.push('$');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn flush(lit: &mut String, segs: &mut Vec<Seg>) {
    if !lit.is_empty() {
        segs.push(Seg::Lit(std::mem::take(lit)));
    }
}

fn is_num_var(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_")` (RFC 5228 section 8.1).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub(crate) type StrList = Vec<Str>;
pub(crate) type Block = Vec<Command>;

#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// `if` with its `elsif` branches, then the optional `else` block.
    If {
        branches: Vec<(Test, Block)>,
        otherwise: Option<Block>,
    },
    Stop,
    Keep {
        flags: Option<StrList>,
    },
    Discard,
    FileInto {
        mailbox: Str,
        flags: Option<StrList>,
        copy: bool,
    },
    Redirect {
        address: Str,
        copy: bool,
    },
    /// `setflag` / `addflag` / `removeflag` (RFC 5232 section 3), on the
    /// internal variable or on the named one.
    Flags {
        op: FlagOp,
        var: Option<String>,
        flags: StrList,
    },
    /// `set` (RFC 5229 section 4), modifiers in application order.
    Set {
        name: String,
        value: Str,
        modifiers: Vec<Modifier>,
    },
    Vacation(Box<Vacation>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagOp {
    Set,
    Add,
    Remove,
}

/// `set` modifiers (RFC 5229 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
}

impl Modifier {
    /// Precedence: higher is applied first; two of equal precedence may
    /// not be combined.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard => 20,
            Modifier::Length => 10,
        }
    }
}

/// Arguments of `vacation` (RFC 5230 section 4).
#[derive(Debug, Clone)]
pub(crate) struct Vacation {
    pub days: Option<u64>,
    pub subject: Option<Str>,
    pub from: Option<Str>,
    pub addresses: StrList,
    pub mime: bool,
    pub handle: Option<Str>,
    pub reason: Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressPart {
    All,
    LocalPart,
    Domain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyTransform {
    Raw,
    Content(StrList),
    Text,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Address { m: Match, part: AddressPart, headers: StrList, keys: StrList },
    Envelope { m: Match, part: AddressPart, parts: StrList, keys: StrList },
    Header { m: Match, headers: StrList, keys: StrList },
    Exists { headers: StrList },
    Size { over: bool, limit: u64 },
    HasFlag { m: Match, vars: Option<Vec<String>>, keys: StrList },
    Body { m: Match, transform: BodyTransform, keys: StrList },
    String { m: Match, sources: StrList, keys: StrList },
}
