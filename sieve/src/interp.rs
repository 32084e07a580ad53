//! Running a compiled script against one message: tests are evaluated,
//! actions collected (RFC 5228 section 2.10), then the implicit keep and
//! duplicate rules applied.

use std::collections::HashMap;

use crate::ast::{AddressPart, Block, BodyTransform, Command, FlagOp, Modifier, Seg, Str, Test};
use crate::compile::valid_address;
use crate::error::RuntimeError;
use crate::matching::{Match, MatchKind};
use crate::message::{Address, Envelope, MessageContext};
use crate::vacation::{self, VacationArgs, VacationSkip};
use crate::{Action, Limits, Outcome};

/// Header fields the `address` test parses as address lists (RFC 5228
/// section 5.1 requires at least the first seven).
const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "resent-from",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-sender",
    "reply-to",
    "return-path",
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "errors-to",
    "disposition-notification-to",
    "mail-followup-to",
    "mail-reply-to",
];

enum Flow {
    Continue,
    Stop,
}

pub(crate) struct Run<'r, 'm> {
    msg: &'r MessageContext<'m>,
    env: &'r Envelope,
    limits: &'r Limits,
    variables: bool,
    vars: HashMap<String, String>,
    match_vars: Vec<String>,
    /// The imap4flags internal variable (RFC 5232 section 3).
    flags: Vec<String>,
    actions: Vec<Action>,
    implicit_keep: bool,
    discarded: bool,
    vacation_ran: bool,
    vacation_skipped: Option<VacationSkip>,
}

impl<'r, 'm> Run<'r, 'm> {
    pub(crate) fn new(msg: &'r MessageContext<'m>, env: &'r Envelope, limits: &'r Limits, variables: bool) -> Self {
        Run {
            msg,
            env,
            limits,
            variables,
            vars: HashMap::new(),
            match_vars: Vec::new(),
            flags: Vec::new(),
            actions: Vec::new(),
            implicit_keep: true,
            discarded: false,
            vacation_ran: false,
            vacation_skipped: None,
        }
    }

    pub(crate) fn run(mut self, script: &Block) -> Result<Outcome, RuntimeError> {
        self.block(script)?;
        let implicit_keep = self.implicit_keep;
        if implicit_keep {
            let flags = self.flags.clone();
            self.keep(flags)?;
        }
        // A fileinto "INBOX" next to a keep is the same delivery
        // (RFC 5228 section 4.1: no duplicate copies).
        if let Some(k) = self.actions.iter().position(|a| matches!(a, Action::Keep { .. })) {
            let mut extra = Vec::new();
            self.actions.retain(|a| match a {
                Action::FileInto { mailbox, flags, .. } if mailbox.eq_ignore_ascii_case("INBOX") => {
                    extra.extend(flags.iter().cloned());
                    false
                }
                _ => true,
            });
            let k = self.actions.iter().position(|a| matches!(a, Action::Keep { .. })).unwrap_or(k);
            if let Action::Keep { flags } = &mut self.actions[k] {
                add_flags(flags, extra);
            }
        }
        let stored = self.actions.iter().any(|a| matches!(a, Action::Keep { .. } | Action::FileInto { .. }));
        if self.discarded && !stored {
            self.actions.push(Action::Discard);
        }
        Ok(Outcome { actions: self.actions, implicit_keep, vacation_skipped: self.vacation_skipped })
    }

    fn block(&mut self, block: &Block) -> Result<Flow, RuntimeError> {
        for cmd in block {
            if let Flow::Stop = self.command(cmd)? {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn command(&mut self, cmd: &Command) -> Result<Flow, RuntimeError> {
        match cmd {
            Command::If { branches, otherwise } => {
                for (test, body) in branches {
                    if self.test(test)? {
                        return self.block(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.block(body);
                }
            }
            Command::Stop => return Ok(Flow::Stop),
            Command::Keep { flags } => {
                let flags = self.flag_arg(flags.as_deref())?;
                self.implicit_keep = false;
                self.keep(flags)?;
            }
            Command::Discard => {
                self.discarded = true;
                self.implicit_keep = false;
            }
            Command::FileInto { mailbox, flags, copy } => {
                let mailbox = self.expand(mailbox)?;
                if mailbox.is_empty() {
                    return Err(RuntimeError::InvalidMailbox(mailbox));
                }
                let flags = self.flag_arg(flags.as_deref())?;
                if !copy {
                    self.implicit_keep = false;
                }
                self.fileinto(mailbox, flags, *copy)?;
            }
            Command::Redirect { address, copy } => {
                let address = self.expand(address)?;
                if !valid_address(&address) {
                    return Err(RuntimeError::InvalidAddress(address));
                }
                if !copy {
                    self.implicit_keep = false;
                }
                self.redirect(address, *copy)?;
            }
            Command::Flags { op, var, flags } => {
                let list = self.flag_list(flags)?;
                let mut current = match var {
                    None => std::mem::take(&mut self.flags),
                    Some(v) => split_flags(self.vars.get(v).map(String::as_str).unwrap_or("")),
                };
                match op {
                    FlagOp::Set => current = list,
                    FlagOp::Add => add_flags(&mut current, list),
                    FlagOp::Remove => current.retain(|f| !list.iter().any(|r| r.eq_ignore_ascii_case(f))),
                }
                match var {
                    None => self.flags = current,
                    Some(v) => self.set_var(v, current.join(" "))?,
                }
            }
            Command::Set { name, value, modifiers } => {
                let value = self.expand(value)?;
                let value = modifiers.iter().fold(value, |v, m| apply_modifier(*m, v));
                self.set_var(name, value)?;
            }
            Command::Vacation(v) => {
                if self.vacation_ran {
                    return Err(RuntimeError::DuplicateVacation);
                }
                self.vacation_ran = true;
                let args = VacationArgs {
                    days: v.days.unwrap_or(7),
                    subject: v.subject.as_ref().map(|s| self.expand(s)).transpose()?,
                    from: v.from.as_ref().map(|s| self.expand(s)).transpose()?,
                    addresses: v.addresses.iter().map(|s| self.expand(s)).collect::<Result<_, _>>()?,
                    mime: v.mime,
                    handle: v.handle.as_ref().map(|s| self.expand(s)).transpose()?,
                    reason: self.expand(&v.reason)?,
                };
                let range = (self.limits.min_vacation_days, self.limits.max_vacation_days);
                match vacation::reply(&args, self.msg, self.env, range) {
                    Ok(reply) => self.push(Action::Vacation(reply))?,
                    Err(skip) => self.vacation_skipped = Some(skip),
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn push(&mut self, action: Action) -> Result<(), RuntimeError> {
        if self.actions.len() >= self.limits.max_actions {
            return Err(RuntimeError::TooManyActions { limit: self.limits.max_actions });
        }
        self.actions.push(action);
        Ok(())
    }

    /// Records a keep; a second keep is the same delivery, its flags added.
    fn keep(&mut self, flags: Vec<String>) -> Result<(), RuntimeError> {
        for a in &mut self.actions {
            if let Action::Keep { flags: existing } = a {
                add_flags(existing, flags);
                return Ok(());
            }
        }
        self.push(Action::Keep { flags })
    }

    /// Records a fileinto; a second one into the same mailbox is collapsed.
    fn fileinto(&mut self, mailbox: String, flags: Vec<String>, copy: bool) -> Result<(), RuntimeError> {
        for a in &mut self.actions {
            if let Action::FileInto { mailbox: m, flags: existing, copy: c } = a {
                if *m == mailbox {
                    add_flags(existing, flags);
                    *c &= copy;
                    return Ok(());
                }
            }
        }
        self.push(Action::FileInto { mailbox, flags, copy })
    }

    fn redirect(&mut self, address: String, copy: bool) -> Result<(), RuntimeError> {
        let mut count = 0;
        for a in &mut self.actions {
            if let Action::Redirect { address: existing, copy: c } = a {
                if existing.eq_ignore_ascii_case(&address) {
                    *c &= copy;
                    return Ok(());
                }
                count += 1;
            }
        }
        if count >= self.limits.max_redirects {
            return Err(RuntimeError::TooManyRedirects { limit: self.limits.max_redirects });
        }
        self.push(Action::Redirect { address, copy })
    }

    fn set_var(&mut self, name: &str, value: String) -> Result<(), RuntimeError> {
        self.check_len(value.len())?;
        if !self.vars.contains_key(name) && self.vars.len() >= self.limits.max_variables {
            return Err(RuntimeError::TooManyVariables { limit: self.limits.max_variables });
        }
        self.vars.insert(name.to_owned(), value);
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<(), RuntimeError> {
        if len > self.limits.max_string_len {
            return Err(RuntimeError::StringTooLong { len, limit: self.limits.max_string_len });
        }
        Ok(())
    }

    /// Substitutes variables (RFC 5229 section 3): unknown ones are empty,
    /// and substituted text is not scanned again.
    fn expand(&self, s: &Str) -> Result<String, RuntimeError> {
        if let Some(c) = s.constant() {
            return Ok(c.to_owned());
        }
        let mut out = String::new();
        for seg in &s.0 {
            match seg {
                Seg::Lit(l) => out.push_str(l),
                Seg::Var(v) => out.push_str(self.vars.get(v).map(String::as_str).unwrap_or("")),
                Seg::MatchVar(n) => out.push_str(self.match_vars.get(*n).map(String::as_str).unwrap_or("")),
            }
            self.check_len(out.len())?;
        }
        Ok(out)
    }

    fn expand_all(&self, list: &[Str]) -> Result<Vec<String>, RuntimeError> {
        list.iter().map(|s| self.expand(s)).collect()
    }

    fn flag_list(&self, list: &[Str]) -> Result<Vec<String>, RuntimeError> {
        let mut out = Vec::new();
        for s in list {
            add_flags(&mut out, split_flags(&self.expand(s)?));
        }
        Ok(out)
    }

    /// The `:flags` argument of keep/fileinto, or the internal variable.
    fn flag_arg(&self, flags: Option<&[Str]>) -> Result<Vec<String>, RuntimeError> {
        match flags {
            Some(list) => self.flag_list(list),
            None => Ok(self.flags.clone()),
        }
    }

    /// True when some value matches some key; a successful `:matches`
    /// sets the match variables (RFC 5229 section 3.2) when `capture`.
    fn any_match(
        &mut self,
        m: &Match,
        values: &[String],
        keys: &[String],
        capture: bool,
    ) -> Result<bool, RuntimeError> {
        let capture = capture && self.variables && m.kind == MatchKind::Matches;
        let mut caps = Vec::new();
        for value in values {
            for key in keys {
                if m.eval(value, key, capture.then_some(&mut caps))? {
                    if capture {
                        self.match_vars = std::mem::take(&mut caps);
                    }
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn test(&mut self, test: &Test) -> Result<bool, RuntimeError> {
        match test {
            Test::True => Ok(true),
            Test::False => Ok(false),
            Test::Not(t) => Ok(!self.test(t)?),
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Test::Address { m, part, headers, keys } => {
                let mut values = Vec::new();
                for h in self.expand_all(headers)? {
                    if ADDRESS_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(&h)) {
                        values.extend(self.msg.addresses(&h).iter().filter_map(|a| address_part(a, *part)));
                    }
                }
                let keys = self.expand_all(keys)?;
                self.any_match(m, &values, &keys, true)
            }
            Test::Envelope { m, part, parts, keys } => {
                let mut values = Vec::new();
                for p in self.expand_all(parts)? {
                    let raw = match p.to_ascii_lowercase().as_str() {
                        "from" => &self.env.from,
                        "to" => &self.env.to,
                        _ => continue,
                    };
                    let addr = Address::parse(raw);
                    if addr.local.is_empty() && addr.domain.is_none() {
                        // The null reverse-path: only ":all" sees it, as "".
                        if *part == AddressPart::All {
                            values.push(String::new());
                        }
                    } else {
                        values.extend(address_part(&addr, *part));
                    }
                }
                let keys = self.expand_all(keys)?;
                self.any_match(m, &values, &keys, true)
            }
            Test::Header { m, headers, keys } => {
                let mut values = Vec::new();
                for h in self.expand_all(headers)? {
                    values.extend(self.msg.header(&h));
                }
                let keys = self.expand_all(keys)?;
                self.any_match(m, &values, &keys, true)
            }
            Test::Exists { headers } => {
                for h in self.expand_all(headers)? {
                    if !self.msg.has_header(&h) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Test::Size { over, limit } => {
                let size = self.msg.size();
                Ok(if *over { size > *limit } else { size < *limit })
            }
            Test::HasFlag { m, vars, keys } => {
                let flags = match vars {
                    None => self.flags.clone(),
                    Some(names) => names
                        .iter()
                        .flat_map(|n| split_flags(self.vars.get(n).map(String::as_str).unwrap_or("")))
                        .collect(),
                };
                let keys = self.flag_list(keys)?;
                self.any_match(m, &flags, &keys, true)
            }
            Test::Body { m, transform, keys } => {
                let values = match transform {
                    BodyTransform::Raw => vec![self.msg.raw_body()],
                    BodyTransform::Text => vec![self.msg.body_text()],
                    BodyTransform::Content(types) => self.msg.body_parts(&self.expand_all(types)?),
                };
                let keys = self.expand_all(keys)?;
                // RFC 5173 leaves match variables after a body :matches
                // unspecified; they are not set, to keep bodies out of them.
                self.any_match(m, &values, &keys, false)
            }
            Test::String { m, sources, keys } => {
                let values = self.expand_all(sources)?;
                let keys = self.expand_all(keys)?;
                self.any_match(m, &values, &keys, true)
            }
        }
    }
}

fn address_part(a: &Address, part: AddressPart) -> Option<String> {
    match part {
        AddressPart::All => Some(a.all()),
        AddressPart::LocalPart => Some(a.local.clone()),
        AddressPart::Domain => a.domain.clone(),
    }
}

/// Flags of a space-separated list (RFC 5232 section 3), each once.
fn split_flags(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    add_flags(&mut out, s.split_whitespace().map(str::to_owned).collect());
    out
}

/// Adds flags not yet present (flag names compare case-insensitively).
fn add_flags(to: &mut Vec<String>, flags: Vec<String>) {
    for f in flags {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&f)) {
            to.push(f);
        }
    }
}

fn apply_modifier(m: Modifier, v: String) -> String {
    let first = |v: &str, upper: bool| {
        let mut c = v.chars();
        match c.next() {
            Some(f) if upper => f.to_uppercase().chain(c).collect(),
            Some(f) => f.to_lowercase().chain(c).collect(),
            None => String::new(),
        }
    };
    match m {
        Modifier::Lower => v.to_lowercase(),
        Modifier::Upper => v.to_uppercase(),
        Modifier::LowerFirst => first(&v, false),
        Modifier::UpperFirst => first(&v, true),
        Modifier::QuoteWildcard => {
            let mut out = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '*' | '?' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
        Modifier::Length => v.chars().count().to_string(),
    }
}
