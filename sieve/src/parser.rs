//! The grammar of RFC 5228 section 8.2: commands, blocks, tests and
//! arguments. Each command and test is compiled (see `compile`) as soon as
//! its arguments are read, so the first error in script order is the one
//! reported.

use std::collections::BTreeSet;

use crate::ast::{decode_encoded_characters, Block, Command, Str, Test};
use crate::error::{ParseError, Pos};
use crate::lexer::{tokenize, Tok, Token};
use crate::Limits;

/// Extensions a script may `require` (RFC 5228 section 3.2), as listed in
/// the ManageSieve SIEVE capability.
pub(crate) const EXTENSIONS: &[&str] = &[
    "fileinto",
    "envelope",
    "imap4flags",
    "copy",
    "vacation",
    "body",
    "variables",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "encoded-character",
];

/// A generic argument (`argument = string-list / number / tag`).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Tag(String, Pos),
    Number(u64, Pos),
    /// A string (`list == false`) or a bracketed string list.
    Strings {
        items: Vec<(String, Pos)>,
        pos: Pos,
        list: bool,
    },
}

impl Arg {
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Arg::Tag(_, p) | Arg::Number(_, p) | Arg::Strings { pos: p, .. } => *p,
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Arg::Tag(..) => "a tag",
            Arg::Number(..) => "a number",
            Arg::Strings { list: true, .. } => "a string list",
            Arg::Strings { list: false, .. } => "a string",
        }
    }
}

pub(crate) struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    pub(crate) required: BTreeSet<&'static str>,
    limits: &'a Limits,
    depth: usize,
    /// A command other than `require` has been seen.
    past_requires: bool,
}

/// Parses and compiles a whole script.
pub(crate) fn parse(script: &str, limits: &Limits) -> Result<(Block, BTreeSet<&'static str>), ParseError> {
    if script.len() > limits.max_script_size {
        return Err(ParseError::new(
            Pos { line: 1, column: 1 },
            format!("script is {} bytes, larger than the limit of {}", script.len(), limits.max_script_size),
        ));
    }
    let mut p =
        Parser { toks: tokenize(script)?, i: 0, required: BTreeSet::new(), limits, depth: 0, past_requires: false };
    let block = p.commands(true)?;
    Ok((block, p.required))
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    pub(crate) fn has(&self, ext: &str) -> bool {
        self.required.contains(ext)
    }

    /// Turns a string literal into a [`Str`], finding variable references
    /// when "variables" is required.
    pub(crate) fn string(&self, s: &str, pos: Pos) -> Result<Str, ParseError> {
        let decoded;
        let s = if self.has("encoded-character") {
            decoded = decode_encoded_characters(s).map_err(|seq| {
                ParseError::new(pos, format!("encoded character {seq} is not valid UTF-8 or not a Unicode character"))
            })?;
            decoded.as_str()
        } else {
            s
        };
        if !self.has("variables") {
            return Ok(Str::lit(s));
        }
        Str::parse_variables(s)
            .map_err(|name| ParseError::new(pos, format!("unknown variable namespace in '${{{name}}}'")))
    }

    /// Fails unless `ext` was required; `what` names the command, test or tag.
    pub(crate) fn need(&self, ext: &str, what: &str, pos: Pos) -> Result<(), ParseError> {
        if self.has(ext) {
            Ok(())
        } else {
            Err(ParseError::new(pos, format!("{what} needs the \"{ext}\" capability: add require \"{ext}\";")))
        }
    }

    fn nest(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.limits.max_nesting {
            return Err(ParseError::new(pos, format!("nesting deeper than {} levels", self.limits.max_nesting)));
        }
        Ok(())
    }

    /// `commands = *command`, up to `}` (in a block) or the end.
    fn commands(&mut self, top: bool) -> Result<Block, ParseError> {
        let mut block: Block = Vec::new();
        // Whether the last command was an if/elsif that an elsif/else may extend.
        let mut open_if = false;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof if top => return Ok(block),
                Tok::Eof => return Err(ParseError::new(t.pos, "missing '}' at end of script")),
                Tok::RBrace if !top => {
                    self.next();
                    return Ok(block);
                }
                Tok::Ident(name) => {
                    self.next();
                    match name.as_str() {
                        "require" => {
                            if !top || self.past_requires {
                                return Err(ParseError::new(
                                    t.pos,
                                    "require is only allowed at the start of the script, before other commands",
                                ));
                            }
                            self.require(t.pos)?;
                            open_if = false;
                        }
                        "if" => {
                            self.past_requires = true;
                            let (test, body) = self.branch(&t)?;
                            block.push(Command::If { branches: vec![(test, body)], otherwise: None });
                            open_if = true;
                        }
                        "elsif" | "else" => {
                            self.past_requires = true;
                            if !open_if {
                                return Err(ParseError::new(t.pos, format!("'{name}' without a preceding 'if'")));
                            }
                            let Some(Command::If { branches, otherwise }) = block.last_mut() else {
                                unreachable!("open_if is only set right after pushing an If")
                            };
                            if name == "elsif" {
                                branches.push(self.branch(&t)?);
                            } else {
                                let args = self.arguments()?;
                                if let Some(a) = args.first() {
                                    return Err(ParseError::new(a.pos(), "'else' takes no arguments"));
                                }
                                *otherwise = Some(self.block(&t)?);
                                open_if = false;
                            }
                        }
                        _ => {
                            self.past_requires = true;
                            let args = self.arguments()?;
                            let cmd = self.compile_command(name, t.pos, args)?;
                            let end = self.next();
                            if end.tok != Tok::Semicolon {
                                return Err(ParseError::new(
                                    end.pos,
                                    format!("missing ';' after '{name}' (found {})", end.tok.describe()),
                                ));
                            }
                            block.push(cmd);
                            open_if = false;
                        }
                    }
                }
                other => return Err(ParseError::new(t.pos, format!("expected a command, found {}", other.describe()))),
            }
        }
    }

    /// `require <capabilities: string-list>;`
    fn require(&mut self, pos: Pos) -> Result<(), ParseError> {
        let args = self.arguments()?;
        let items = match args.as_slice() {
            [Arg::Strings { items, .. }] => items.clone(),
            [] => return Err(ParseError::new(pos, "require needs a string list of capabilities")),
            [other, ..] => {
                return Err(ParseError::new(
                    other.pos(),
                    format!("require expects a string list of capabilities, found {}", other.describe()),
                ))
            }
        };
        if let Some(extra) = args.get(1) {
            return Err(ParseError::new(extra.pos(), "require takes a single string list"));
        }
        for (cap, cap_pos) in items {
            let known = EXTENSIONS.iter().find(|e| e.eq_ignore_ascii_case(&cap));
            match known {
                Some(ext) => {
                    self.required.insert(ext);
                }
                None => return Err(ParseError::new(cap_pos, format!("unsupported capability \"{cap}\" in require"))),
            }
        }
        let end = self.next();
        if end.tok != Tok::Semicolon {
            return Err(ParseError::new(
                end.pos,
                format!("missing ';' after 'require' (found {})", end.tok.describe()),
            ));
        }
        Ok(())
    }

    /// `if`/`elsif`: no arguments, one test, one block.
    fn branch(&mut self, t: &Token) -> Result<(Test, Block), ParseError> {
        let Tok::Ident(name) = &t.tok else { unreachable!("branch is called on an identifier") };
        if let Some(a) = self.arguments()?.first() {
            return Err(ParseError::new(a.pos(), format!("'{name}' takes a test, not {}", a.describe())));
        }
        if !matches!(self.peek().tok, Tok::Ident(_)) {
            let found = self.peek().clone();
            return Err(ParseError::new(found.pos, format!("'{name}' needs a test (found {})", found.tok.describe())));
        }
        let test = self.test()?;
        let body = self.block(t)?;
        Ok((test, body))
    }

    /// `block = "{" commands "}"`.
    fn block(&mut self, owner: &Token) -> Result<Block, ParseError> {
        let open = self.next();
        if open.tok != Tok::LBrace {
            let Tok::Ident(name) = &owner.tok else { unreachable!("blocks belong to identifiers") };
            return Err(ParseError::new(
                open.pos,
                format!("expected '{{' to start the block of '{name}', found {}", open.tok.describe()),
            ));
        }
        self.nest(open.pos)?;
        let block = self.commands(false)?;
        self.depth -= 1;
        Ok(block)
    }

    /// `test = identifier arguments`, with `not`, `allof` and `anyof`
    /// taking a test or a `test-list`.
    pub(crate) fn test(&mut self) -> Result<Test, ParseError> {
        let t = self.next();
        let Tok::Ident(name) = &t.tok else {
            return Err(ParseError::new(t.pos, format!("expected a test, found {}", t.tok.describe())));
        };
        self.nest(t.pos)?;
        let test = match name.as_str() {
            "not" => {
                if let Some(a) = self.arguments()?.first() {
                    return Err(ParseError::new(a.pos(), format!("'not' takes a test, not {}", a.describe())));
                }
                Test::Not(Box::new(self.test()?))
            }
            "allof" | "anyof" => {
                if let Some(a) = self.arguments()?.first() {
                    return Err(ParseError::new(a.pos(), format!("'{name}' takes a test list, not {}", a.describe())));
                }
                let tests = self.test_list(name)?;
                if name == "allof" {
                    Test::AllOf(tests)
                } else {
                    Test::AnyOf(tests)
                }
            }
            _ => {
                let args = self.arguments()?;
                self.compile_test(name, t.pos, args)?
            }
        };
        self.depth -= 1;
        Ok(test)
    }

    /// `test-list = "(" test *("," test) ")"`.
    fn test_list(&mut self, owner: &str) -> Result<Vec<Test>, ParseError> {
        let open = self.next();
        if open.tok != Tok::LParen {
            return Err(ParseError::new(
                open.pos,
                format!("'{owner}' needs a test list in parentheses (found {})", open.tok.describe()),
            ));
        }
        let mut tests = vec![self.test()?];
        loop {
            let t = self.next();
            match t.tok {
                Tok::Comma => tests.push(self.test()?),
                Tok::RParen => return Ok(tests),
                other => {
                    return Err(ParseError::new(
                        t.pos,
                        format!("expected ',' or ')' in the test list of '{owner}', found {}", other.describe()),
                    ))
                }
            }
        }
    }

    /// `arguments = *argument` (the test part is parsed by the caller).
    fn arguments(&mut self) -> Result<Vec<Arg>, ParseError> {
        let mut args = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Tag(name) => args.push(Arg::Tag(name, t.pos)),
                Tok::Number(n) => args.push(Arg::Number(n, t.pos)),
                Tok::Str(s) => args.push(Arg::Strings { items: vec![(s, t.pos)], pos: t.pos, list: false }),
                Tok::LBracket => {
                    self.next();
                    args.push(self.string_list(t.pos)?);
                    continue;
                }
                _ => return Ok(args),
            }
            self.next();
        }
    }

    /// `string-list = "[" string *("," string) "]"`, after the `[`.
    fn string_list(&mut self, pos: Pos) -> Result<Arg, ParseError> {
        let mut items = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Str(s) => items.push((s, t.pos)),
                other => {
                    return Err(ParseError::new(
                        t.pos,
                        format!("expected a string in list, found {}", other.describe()),
                    ))
                }
            }
            let sep = self.next();
            match sep.tok {
                Tok::Comma => {}
                Tok::RBracket => return Ok(Arg::Strings { items, pos, list: true }),
                other => {
                    return Err(ParseError::new(
                        sep.pos,
                        format!("expected ',' or ']' in string list, found {}", other.describe()),
                    ))
                }
            }
        }
    }
}
