//! `mailctl roles ...`: the roles database (who lives where) and its backends.

use std::io::{BufRead, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use mailscale_roles::{Backend, BackendState, Roles, UserRole, UserState};

use crate::args::Args;
use crate::ldap_import;

/// `--db DIR`, or `MAILCTL_ROLES_DB`.
pub fn db_dir(args: &mut Args) -> Result<PathBuf> {
    Ok(match args.option("db")? {
        Some(d) => d.into(),
        None => std::env::var_os("MAILCTL_ROLES_DB").context("--db DIR is required (or set MAILCTL_ROLES_DB)")?.into(),
    })
}

pub fn run(mut args: Args) -> Result<()> {
    let db = db_dir(&mut args)?;
    let sub =
        args.positional("roles subcommand (set, get, list, delete, import, import-ldap, export, backend, seq)")?;
    let dry_run = sub == "import-ldap" && args.flag("dry-run");
    // Read-only commands must not create a database where there is none.
    let read_only = matches!(sub.as_str(), "get" | "list" | "export" | "seq")
        || (sub == "backend" && args.first_positional_is("list"))
        || dry_run;
    let roles = open(&db, read_only)?;
    match sub.as_str() {
        "set" => {
            let state = args.option("state")?.map(|s| parse_user_state(&s)).transpose()?;
            let user = args.positional("USER")?;
            let backend = args.positional("BACKEND")?;
            args.finish()?;
            roles.set_user(&user, UserRole { backend, state: state.unwrap_or(UserState::Active) })?;
            Ok(())
        }
        "get" => {
            let user = args.positional("USER")?;
            args.finish()?;
            let route = roles.lookup(&user)?;
            let role = roles.get_user(&user)?.ok_or_else(|| anyhow!("unknown user {user:?}"))?;
            match route {
                Some(r) => println!(
                    "{} {} {} {} imap={} pop3={} lmtp={} backend-state={}",
                    user.to_ascii_lowercase(),
                    r.backend.name,
                    role.state,
                    r.backend.ip,
                    r.backend.imap,
                    r.backend.pop3,
                    r.backend.lmtp,
                    r.backend.state
                ),
                None => println!("{} {} {} (backend missing)", user.to_ascii_lowercase(), role.backend, role.state),
            }
            Ok(())
        }
        "list" | "export" => {
            args.finish()?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            for (user, role) in roles.list_users()? {
                if sub == "list" {
                    writeln!(out, "{user} {} {}", role.backend, role.state)?;
                } else {
                    match role.state {
                        UserState::Active => writeln!(out, "{user},{}", role.backend)?,
                        state => writeln!(out, "{user},{},{state}", role.backend)?,
                    }
                }
            }
            out.flush()?;
            Ok(())
        }
        "delete" => {
            let user = args.positional("USER")?;
            args.finish()?;
            if !roles.delete_user(&user)? {
                bail!("unknown user {user:?}");
            }
            Ok(())
        }
        "import" => {
            let file = PathBuf::from(args.positional("FILE.csv")?);
            args.finish()?;
            let n = import(&roles, &file)?;
            eprintln!("imported {n} user(s) from {}", file.display());
            Ok(())
        }
        "import-ldap" => {
            let opts = ldap_import::Options::parse(args, dry_run)?;
            let s = ldap_import::run(&roles, &opts)?;
            eprintln!(
                "{} {} user(s) from {}: {} new, {} changed, {} unchanged",
                if dry_run { "would import" } else { "imported" },
                s.entries,
                opts.url,
                s.new,
                s.changed,
                s.unchanged
            );
            Ok(())
        }
        "seq" => {
            args.finish()?;
            println!("{}", roles.last_seq()?);
            Ok(())
        }
        "backend" => backend(&roles, args),
        other => bail!("unknown roles subcommand {other:?} (mailctl help)"),
    }
}

fn open(db: &Path, read_only: bool) -> Result<Roles> {
    if read_only {
        if !db.join("data.mdb").exists() {
            bail!("no roles database in {} (create one with mailctl roles --db DIR backend add ...)", db.display());
        }
        Ok(Roles::open_read_only(db)?)
    } else {
        Ok(Roles::open(db)?)
    }
}

/// `active`, `moving` or `legacy:HOST[:PORT]`.
fn parse_user_state(s: &str) -> Result<UserState> {
    match s {
        "active" => Ok(UserState::Active),
        "moving" => Ok(UserState::Moving),
        _ => match s.strip_prefix("legacy:") {
            Some(address) => Ok(UserState::Legacy { address: address.to_string() }),
            None => bail!("user state {s:?}: want active, moving or legacy:HOST[:PORT]"),
        },
    }
}

/// Imports `user,backend[,state]` lines in one transaction: the first bad line aborts the whole
/// import, naming the file and line. Blank lines and `#` comments are skipped.
fn import(roles: &Roles, file: &Path) -> Result<usize> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let reader = std::io::BufReader::new(f);
    // The first bad line, as "FILE:LINE: why"; returning an error from the closure rolls back.
    let mut bad_line = None;
    let result = roles.write(|w| {
        let mut n = 0;
        for (i, line) in reader.lines().enumerate() {
            let mut fail = |e: String| {
                bad_line = Some(format!("{}:{}: {e}", file.display(), i + 1));
                mailscale_roles::RolesError::Invalid(e)
            };
            let line = line.map_err(|e| fail(e.to_string()))?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let (user, backend, state) = match fields[..] {
                [u, b] => (u, b, UserState::Active),
                [u, b, s] => (u, b, parse_user_state(s).map_err(|e| fail(e.to_string()))?),
                _ => return Err(fail(format!("want user,backend[,state], got {line:?}"))),
            };
            w.set_user(user, UserRole { backend: backend.to_string(), state }).map_err(|e| fail(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    });
    result.map_err(|e| anyhow!("{}; nothing imported", bad_line.take().unwrap_or_else(|| e.to_string())))
}

fn backend(roles: &Roles, mut args: Args) -> Result<()> {
    let sub = args.positional("backend subcommand (add, set, list, delete)")?;
    match sub.as_str() {
        "add" => {
            let imap = args.required("imap")?;
            let pop3 = args.required("pop3")?;
            let lmtp = args.required("lmtp")?;
            let partner = args.option("partner")?;
            let state = args.parsed::<BackendState>("state")?.unwrap_or(BackendState::Up);
            let name = args.positional("NAME")?;
            let ip = parse_ip(&args.positional("IP")?)?;
            args.finish()?;
            if roles.get_backend(&name)?.is_some() {
                bail!("backend {name:?} already exists (change it with mailctl roles backend set)");
            }
            roles.set_backend(Backend { name, ip, imap, pop3, lmtp, partner, state })?;
            Ok(())
        }
        "set" => {
            let state = args.parsed::<BackendState>("state")?;
            let ip = args.option("ip")?.map(|s| parse_ip(&s)).transpose()?;
            let imap = args.parsed("imap")?;
            let pop3 = args.parsed("pop3")?;
            let lmtp = args.parsed("lmtp")?;
            let partner = args.option("partner")?;
            let name = args.positional("NAME")?;
            args.finish()?;
            let mut b = roles.get_backend(&name)?.ok_or_else(|| anyhow!("unknown backend {name:?}"))?;
            b.state = state.unwrap_or(b.state);
            b.ip = ip.unwrap_or(b.ip);
            b.imap = imap.unwrap_or(b.imap);
            b.pop3 = pop3.unwrap_or(b.pop3);
            b.lmtp = lmtp.unwrap_or(b.lmtp);
            if let Some(p) = partner {
                b.partner = (p != "none" && !p.is_empty()).then_some(p);
            }
            roles.set_backend(b)?;
            Ok(())
        }
        "list" => {
            args.finish()?;
            for b in roles.list_backends()? {
                println!(
                    "{} {} imap={} pop3={} lmtp={} partner={} state={}",
                    b.name,
                    b.ip,
                    b.imap,
                    b.pop3,
                    b.lmtp,
                    b.partner.as_deref().unwrap_or("-"),
                    b.state
                );
            }
            Ok(())
        }
        "delete" => {
            let name = args.positional("NAME")?;
            args.finish()?;
            if !roles.delete_backend(&name)? {
                bail!("unknown backend {name:?}");
            }
            Ok(())
        }
        other => bail!("unknown backend subcommand {other:?} (want add, set, list or delete)"),
    }
}

fn parse_ip(s: &str) -> Result<IpAddr> {
    s.parse().map_err(|_| anyhow!("bad IP address {s:?}"))
}
