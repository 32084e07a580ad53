//! Argument checking for each command and test: tagged arguments first
//! (any order, each at most once), then positional ones (RFC 5228 section
//! 2.6), each of the expected type, and the capability each needs.

use crate::ast::{is_identifier, AddressPart, BodyTransform, Command, FlagOp, Modifier, Str, StrList, Test, Vacation};
use crate::error::{ParseError, Pos};
use crate::matching::{Comparator, Match, MatchKind};
use crate::parser::{Arg, Parser};

/// The arguments of one command or test, consumed front to back.
struct Args {
    name: String,
    pos: Pos,
    items: std::vec::IntoIter<Arg>,
    peeked: Option<Arg>,
}

impl Args {
    fn new(name: &str, pos: Pos, args: Vec<Arg>) -> Self {
        Args { name: name.to_owned(), pos, items: args.into_iter(), peeked: None }
    }

    fn peek(&mut self) -> Option<&Arg> {
        if self.peeked.is_none() {
            self.peeked = self.items.next();
        }
        self.peeked.as_ref()
    }

    fn next(&mut self) -> Option<Arg> {
        self.peek();
        self.peeked.take()
    }

    /// The next argument if it is a tag.
    fn tag(&mut self) -> Option<(String, Pos)> {
        match self.peek() {
            Some(Arg::Tag(..)) => match self.next() {
                Some(Arg::Tag(t, p)) => Some((t, p)),
                _ => None,
            },
            _ => None,
        }
    }

    fn missing(&self, what: &str) -> ParseError {
        ParseError::new(self.pos, format!("'{}' is missing its {what} argument", self.name))
    }

    fn wrong(&self, arg: &Arg, expected: &str, what: &str) -> ParseError {
        ParseError::new(arg.pos(), format!("'{}' expects {expected} ({what}), found {}", self.name, arg.describe()))
    }

    fn string_list(&mut self, what: &str) -> Result<Vec<(String, Pos)>, ParseError> {
        match self.next() {
            Some(Arg::Strings { items, .. }) => Ok(items),
            Some(other) => Err(self.wrong(&other, "a string list", what)),
            None => Err(self.missing(what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        match self.next() {
            Some(Arg::Strings { mut items, list: false, .. }) => Ok(items.remove(0)),
            Some(other) => Err(self.wrong(&other, "a string", what)),
            None => Err(self.missing(what)),
        }
    }

    fn number(&mut self, what: &str) -> Result<u64, ParseError> {
        match self.next() {
            Some(Arg::Number(n, _)) => Ok(n),
            Some(other) => Err(self.wrong(&other, "a number", what)),
            None => Err(self.missing(what)),
        }
    }

    fn unknown_tag(&self, tag: &str, pos: Pos) -> ParseError {
        ParseError::new(pos, format!("unknown tag ':{tag}' for '{}'", self.name))
    }

    fn finish(mut self) -> Result<(), ParseError> {
        match self.next() {
            None => Ok(()),
            Some(Arg::Tag(t, p)) => Err(ParseError::new(
                p,
                format!("tag ':{t}' for '{}' must come before the positional arguments", self.name),
            )),
            Some(extra) => Err(ParseError::new(
                extra.pos(),
                format!("too many arguments for '{}': unexpected {}", self.name, extra.describe()),
            )),
        }
    }
}

/// Collects the optional match type, comparator and address part that
/// several tests share.
#[derive(Default)]
struct Common {
    kind: Option<MatchKind>,
    cmp: Option<Comparator>,
    part: Option<AddressPart>,
}

impl Common {
    /// Handles `tag` if it is a match type, `:comparator`, or (when
    /// `address_parts`) an address part; `Ok(false)` if it is none of these.
    fn tag(&mut self, a: &mut Args, tag: &str, pos: Pos, address_parts: bool) -> Result<bool, ParseError> {
        let cmd = a.name.clone();
        let dup = |what: &str| ParseError::new(pos, format!("more than one {what} for '{cmd}'"));
        let kind = match tag {
            "is" => Some(MatchKind::Is),
            "contains" => Some(MatchKind::Contains),
            "matches" => Some(MatchKind::Matches),
            _ => None,
        };
        if let Some(k) = kind {
            if self.kind.replace(k).is_some() {
                return Err(dup("match type"));
            }
            return Ok(true);
        }
        if tag == "comparator" {
            let (name, npos) = a.string("comparator name")?;
            let cmp = Comparator::from_name(&name)
                .ok_or_else(|| ParseError::new(npos, format!("unsupported comparator \"{name}\"")))?;
            if self.cmp.replace(cmp).is_some() {
                return Err(dup("comparator"));
            }
            return Ok(true);
        }
        let part = match tag {
            "all" => Some(AddressPart::All),
            "localpart" => Some(AddressPart::LocalPart),
            "domain" => Some(AddressPart::Domain),
            _ => None,
        };
        match part {
            Some(part) if address_parts => {
                if self.part.replace(part).is_some() {
                    return Err(dup("address part"));
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn matcher(&self) -> Match {
        Match { kind: self.kind.unwrap_or_default(), cmp: self.cmp.unwrap_or_default() }
    }
}

/// Minimal `addr-spec` check for redirect targets: one `@`, a non-empty
/// local part and domain, no white space or angle brackets.
pub(crate) fn valid_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
                && !domain.contains('@')
        }
        None => false,
    }
}

impl Parser<'_> {
    fn strs(&self, items: Vec<(String, Pos)>) -> Result<StrList, ParseError> {
        items.iter().map(|(s, p)| self.string(s, *p)).collect()
    }

    fn flag_list(&self, a: &mut Args) -> Result<StrList, ParseError> {
        let items = a.string_list("flag list")?;
        self.strs(items)
    }

    pub(crate) fn compile_command(&mut self, name: &str, pos: Pos, args: Vec<Arg>) -> Result<Command, ParseError> {
        let mut a = Args::new(name, pos, args);
        let cmd = match name {
            "stop" => Command::Stop,
            "discard" => Command::Discard,
            "keep" => {
                let mut flags = None;
                while let Some((tag, tpos)) = a.tag() {
                    match tag.as_str() {
                        "flags" => {
                            self.need("imap4flags", "the :flags tag", tpos)?;
                            flags = Some(self.flag_list(&mut a)?);
                        }
                        _ => return Err(a.unknown_tag(&tag, tpos)),
                    }
                }
                Command::Keep { flags }
            }
            "fileinto" => {
                self.need("fileinto", "the fileinto command", pos)?;
                let (mut flags, mut copy) = (None, false);
                while let Some((tag, tpos)) = a.tag() {
                    match tag.as_str() {
                        "flags" => {
                            self.need("imap4flags", "the :flags tag", tpos)?;
                            flags = Some(self.flag_list(&mut a)?);
                        }
                        "copy" => {
                            self.need("copy", "the :copy tag", tpos)?;
                            copy = true;
                        }
                        _ => return Err(a.unknown_tag(&tag, tpos)),
                    }
                }
                let (mailbox, mpos) = a.string("mailbox")?;
                if mailbox.is_empty() {
                    return Err(ParseError::new(mpos, "fileinto needs a non-empty mailbox name"));
                }
                Command::FileInto { mailbox: self.string(&mailbox, mpos)?, flags, copy }
            }
            "redirect" => {
                let mut copy = false;
                while let Some((tag, tpos)) = a.tag() {
                    match tag.as_str() {
                        "copy" => {
                            self.need("copy", "the :copy tag", tpos)?;
                            copy = true;
                        }
                        _ => return Err(a.unknown_tag(&tag, tpos)),
                    }
                }
                let (address, apos) = a.string("address")?;
                let address = self.string(&address, apos)?;
                if let Some(c) = address.constant() {
                    if !valid_address(c) {
                        return Err(ParseError::new(apos, format!("invalid redirect address \"{c}\"")));
                    }
                }
                Command::Redirect { address, copy }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", &format!("the {name} command"), pos)?;
                let op = match name {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                let first = a.string_list("flag list")?;
                let (var, flags) = match a.peek() {
                    Some(Arg::Strings { .. }) => {
                        let var = self.variable_name(&first, &format!("{name} variable name"))?;
                        (Some(var), self.flag_list(&mut a)?)
                    }
                    _ => (None, self.strs(first)?),
                };
                Command::Flags { op, var, flags }
            }
            "set" => {
                self.need("variables", "the set command", pos)?;
                let mut modifiers: Vec<Modifier> = Vec::new();
                while let Some((tag, tpos)) = a.tag() {
                    let m = match tag.as_str() {
                        "lower" => Modifier::Lower,
                        "upper" => Modifier::Upper,
                        "lowerfirst" => Modifier::LowerFirst,
                        "upperfirst" => Modifier::UpperFirst,
                        "quotewildcard" => Modifier::QuoteWildcard,
                        "length" => Modifier::Length,
                        _ => return Err(a.unknown_tag(&tag, tpos)),
                    };
                    if modifiers.iter().any(|o| o.precedence() == m.precedence()) {
                        return Err(ParseError::new(
                            tpos,
                            format!("modifier ':{tag}' conflicts with another modifier of the same precedence"),
                        ));
                    }
                    modifiers.push(m);
                }
                modifiers.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
                let (var, vpos) = a.string("variable name")?;
                let name = self.variable_name(&[(var, vpos)], "set variable name")?;
                let (value, valpos) = a.string("value")?;
                Command::Set { name, value: self.string(&value, valpos)?, modifiers }
            }
            "vacation" => {
                self.need("vacation", "the vacation command", pos)?;
                Command::Vacation(Box::new(self.vacation(&mut a)?))
            }
            "if" | "elsif" | "else" | "require" => unreachable!("handled by the parser"),
            _ => return Err(ParseError::new(pos, format!("unknown command '{name}'"))),
        };
        a.finish()?;
        Ok(cmd)
    }

    /// A constant variable name (RFC 5229 section 3: `identifier`).
    fn variable_name(&self, items: &[(String, Pos)], what: &str) -> Result<String, ParseError> {
        match items {
            [(s, _)] if is_identifier(s) => Ok(s.to_ascii_lowercase()),
            [(s, p)] => Err(ParseError::new(*p, format!("invalid {what} \"{s}\""))),
            [_, (_, p), ..] => Err(ParseError::new(*p, format!("{what} must be a single string"))),
            [] => unreachable!("string lists are never empty"),
        }
    }

    fn vacation(&self, a: &mut Args) -> Result<Vacation, ParseError> {
        let mut v = Vacation {
            days: None,
            subject: None,
            from: None,
            addresses: Vec::new(),
            mime: false,
            handle: None,
            reason: Str::lit(""),
        };
        while let Some((tag, tpos)) = a.tag() {
            let dup = v.days.is_some() && tag == "days";
            match tag.as_str() {
                "days" => v.days = Some(a.number("days")?),
                "subject" => {
                    let (s, p) = a.string("subject")?;
                    v.subject = Some(self.string(&s, p)?);
                }
                "from" => {
                    let (s, p) = a.string("from")?;
                    v.from = Some(self.string(&s, p)?);
                }
                "addresses" => {
                    let items = a.string_list("addresses")?;
                    v.addresses = self.strs(items)?;
                }
                "mime" => v.mime = true,
                "handle" => {
                    let (s, p) = a.string("handle")?;
                    v.handle = Some(self.string(&s, p)?);
                }
                _ => return Err(a.unknown_tag(&tag, tpos)),
            }
            if dup {
                return Err(ParseError::new(tpos, "more than one :days for 'vacation'"));
            }
        }
        let (reason, rpos) = a.string("reason")?;
        v.reason = self.string(&reason, rpos)?;
        Ok(v)
    }

    pub(crate) fn compile_test(&mut self, name: &str, pos: Pos, args: Vec<Arg>) -> Result<Test, ParseError> {
        let mut a = Args::new(name, pos, args);
        let mut c = Common::default();
        let test = match name {
            "true" => Test::True,
            "false" => Test::False,
            "address" | "envelope" => {
                if name == "envelope" {
                    self.need("envelope", "the envelope test", pos)?;
                }
                while let Some((tag, tpos)) = a.tag() {
                    if !c.tag(&mut a, &tag, tpos, true)? {
                        return Err(a.unknown_tag(&tag, tpos));
                    }
                }
                let first = a.string_list(if name == "address" { "header list" } else { "envelope part" })?;
                let first = self.strs(first)?;
                let keys = a.string_list("key list")?;
                let keys = self.strs(keys)?;
                let (m, part) = (c.matcher(), c.part.unwrap_or(AddressPart::All));
                if name == "address" {
                    Test::Address { m, part, headers: first, keys }
                } else {
                    Test::Envelope { m, part, parts: first, keys }
                }
            }
            "header" | "string" => {
                if name == "string" {
                    self.need("variables", "the string test", pos)?;
                }
                while let Some((tag, tpos)) = a.tag() {
                    if !c.tag(&mut a, &tag, tpos, false)? {
                        return Err(a.unknown_tag(&tag, tpos));
                    }
                }
                let first = a.string_list(if name == "header" { "header names" } else { "source" })?;
                let first = self.strs(first)?;
                let keys = a.string_list("key list")?;
                let keys = self.strs(keys)?;
                if name == "header" {
                    Test::Header { m: c.matcher(), headers: first, keys }
                } else {
                    Test::String { m: c.matcher(), sources: first, keys }
                }
            }
            "exists" => {
                let headers = a.string_list("header names")?;
                Test::Exists { headers: self.strs(headers)? }
            }
            "size" => {
                let Some((tag, tpos)) = a.tag() else {
                    return Err(ParseError::new(pos, "'size' needs :over or :under followed by a number"));
                };
                let over = match tag.as_str() {
                    "over" => true,
                    "under" => false,
                    _ => return Err(a.unknown_tag(&tag, tpos)),
                };
                let limit = a.number("size limit")?;
                if let Some((tag, tpos)) = a.tag() {
                    if tag == "over" || tag == "under" {
                        return Err(ParseError::new(tpos, "'size' takes exactly one of :over and :under"));
                    }
                    return Err(a.unknown_tag(&tag, tpos));
                }
                Test::Size { over, limit }
            }
            "hasflag" => {
                self.need("imap4flags", "the hasflag test", pos)?;
                while let Some((tag, tpos)) = a.tag() {
                    if !c.tag(&mut a, &tag, tpos, false)? {
                        return Err(a.unknown_tag(&tag, tpos));
                    }
                }
                let first = a.string_list("flag list")?;
                let (vars, keys) = match a.peek() {
                    Some(Arg::Strings { .. }) => {
                        let vars = first
                            .iter()
                            .map(|item| self.variable_name(std::slice::from_ref(item), "hasflag variable name"))
                            .collect::<Result<Vec<_>, _>>()?;
                        let keys = a.string_list("flag list")?;
                        (Some(vars), self.strs(keys)?)
                    }
                    _ => (None, self.strs(first)?),
                };
                Test::HasFlag { m: c.matcher(), vars, keys }
            }
            "body" => {
                self.need("body", "the body test", pos)?;
                let mut transform = None;
                while let Some((tag, tpos)) = a.tag() {
                    if c.tag(&mut a, &tag, tpos, false)? {
                        continue;
                    }
                    let t = match tag.as_str() {
                        "raw" => BodyTransform::Raw,
                        "text" => BodyTransform::Text,
                        "content" => {
                            let items = a.string_list("content types")?;
                            BodyTransform::Content(self.strs(items)?)
                        }
                        _ => return Err(a.unknown_tag(&tag, tpos)),
                    };
                    if transform.replace(t).is_some() {
                        return Err(ParseError::new(tpos, "more than one body transform for 'body'"));
                    }
                }
                let keys = a.string_list("key list")?;
                Test::Body {
                    m: c.matcher(),
                    transform: transform.unwrap_or(BodyTransform::Text),
                    keys: self.strs(keys)?,
                }
            }
            _ => return Err(ParseError::new(pos, format!("unknown test '{name}'"))),
        };
        a.finish()?;
        Ok(test)
    }
}
