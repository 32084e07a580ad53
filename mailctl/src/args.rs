//! A small argument reader: positionals in order, `--name VALUE` / `--name=VALUE` options anywhere.
//! Cheaper to compile than clap for a dozen subcommands; unknown or leftover arguments are errors.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};

pub struct Args {
    items: Vec<String>,
}

impl Args {
    pub fn new(it: impl IntoIterator<Item = String>) -> Args {
        Args { items: it.into_iter().collect() }
    }

    /// Removes and returns the value of `--name`, if given (once).
    pub fn option(&mut self, name: &str) -> Result<Option<String>> {
        let flag = format!("--{name}");
        let prefix = format!("--{name}=");
        let mut found = None;
        let mut i = 0;
        while i < self.items.len() {
            let value = if self.items[i] == flag {
                if i + 1 >= self.items.len() {
                    bail!("{flag} needs a value");
                }
                let v = self.items.remove(i + 1);
                self.items.remove(i);
                v
            } else if let Some(v) = self.items[i].strip_prefix(&prefix) {
                let v = v.to_string();
                self.items.remove(i);
                v
            } else {
                i += 1;
                continue;
            };
            if found.replace(value).is_some() {
                bail!("{flag} given twice");
            }
        }
        Ok(found)
    }

    /// Removes `--name` (a flag without a value); whether it was given.
    pub fn flag(&mut self, name: &str) -> bool {
        let flag = format!("--{name}");
        let before = self.items.len();
        self.items.retain(|a| *a != flag);
        self.items.len() != before
    }

    /// `--name VALUE` parsed as `T`, naming the option in the error.
    pub fn parsed<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.option(name)? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|e| anyhow!("--{name} {v:?}: {e}")),
        }
    }

    pub fn required<T>(&mut self, name: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parsed(name)?.with_context(|| format!("--{name} is required"))
    }

    /// The next argument that is not an option (call after taking the options that may precede it).
    pub fn next_positional(&mut self) -> Option<String> {
        let i = self.items.iter().position(|a| !a.starts_with("--") || a == "--")?;
        let a = self.items.remove(i);
        if a == "--" {
            return (!self.items.is_empty()).then(|| self.items.remove(0));
        }
        Some(a)
    }

    /// Whether the next positional is `word` (without taking it).
    pub fn first_positional_is(&self, word: &str) -> bool {
        self.items.iter().find(|a| !a.starts_with("--")).is_some_and(|a| a == word)
    }

    pub fn positional(&mut self, what: &str) -> Result<String> {
        self.next_positional().with_context(|| format!("missing {what}"))
    }

    /// Fails on anything not consumed: a typo must not be silently ignored.
    pub fn finish(self) -> Result<()> {
        match self.items.first() {
            None => Ok(()),
            Some(a) if a.starts_with("--") => bail!("unknown option {a}"),
            Some(a) => bail!("unexpected argument {a:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        Args::new(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options_anywhere() {
        let mut a = args("add a1 --imap 143 10.0.0.1 --pop3=110");
        assert_eq!(a.parsed::<u16>("imap").unwrap(), Some(143));
        assert_eq!(a.parsed::<u16>("pop3").unwrap(), Some(110));
        assert_eq!(a.positional("x").unwrap(), "add");
        assert_eq!(a.positional("x").unwrap(), "a1");
        assert_eq!(a.positional("x").unwrap(), "10.0.0.1");
        a.finish().unwrap();
    }

    #[test]
    fn errors() {
        assert!(args("--imap").option("imap").is_err());
        assert!(args("--imap 1 --imap 2").option("imap").is_err());
        assert!(args("--imap x").parsed::<u16>("imap").unwrap_err().to_string().contains("--imap"));
        assert!(args("--bogus 1").finish().unwrap_err().to_string().contains("--bogus"));
        let mut a = args("import-ldap --dry-run x");
        assert!(a.flag("dry-run"));
        assert!(!a.flag("dry-run"));
        let mut a = args("-- --ttl");
        assert_eq!(a.next_positional().unwrap(), "--ttl");
    }
}
