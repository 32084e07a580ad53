//! `mailctl ticket-key ...` and `mailctl ticket ...`: the frontend/backend login-ticket key and
//! tickets by hand (for operators checking a setup, and for tests).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use mailscale_ticket::TicketKey;

use crate::args::Args;

pub fn run_key(mut args: Args) -> Result<()> {
    match args.positional("ticket-key subcommand (generate)")?.as_str() {
        "generate" => {
            args.finish()?;
            println!("{}", TicketKey::generate().to_hex());
            Ok(())
        }
        other => bail!("unknown ticket-key subcommand {other:?} (want generate)"),
    }
}

pub fn run(mut args: Args) -> Result<()> {
    let sub = args.positional("ticket subcommand (issue, verify)")?;
    let key_path: PathBuf = args.required("key")?;
    let key = TicketKey::from_file(&key_path)?;
    let now = match args.parsed::<u64>("now")? {
        Some(n) => n,
        None => SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs(),
    };
    match sub.as_str() {
        "issue" => {
            let user: String = args.required("user")?;
            let ttl: i64 = args.parsed("ttl")?.unwrap_or(60);
            args.finish()?;
            // A negative ttl moves the issue time back, so the ticket expired |ttl| seconds ago.
            let ticket = if ttl >= 0 {
                mailscale_ticket::issue(&key, &user, ttl.unsigned_abs(), now)
            } else {
                mailscale_ticket::issue(&key, &user, 0, now.saturating_sub(ttl.unsigned_abs()))
            };
            println!("{ticket}");
            Ok(())
        }
        "verify" => {
            let ticket = args.positional("TICKET")?;
            args.finish()?;
            let v = mailscale_ticket::verify(&key, &ticket, now)?;
            println!("user={} expires={} ({}s left)", v.user, v.expires, v.expires - now);
            Ok(())
        }
        other => bail!("unknown ticket subcommand {other:?} (want issue or verify)"),
    }
}
