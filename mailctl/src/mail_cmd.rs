//! `mailctl quota get|set` and `mailctl undelete list|restore`: one user's storage quota and
//! deleted mail, over mailstored's admin API (the routes of `backend-daemon/src/mailadmin.rs`).
//!
//! Reads and restores go to the primary of the `--admin` backends (the only one given, or the
//! one whose status says primary); `quota set` goes to every one of them, since an override is
//! a per-backend setting that replication does not carry.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::admin_client::{percent_encode, Admin, Endpoint};
use crate::args::Args;

const TIMEOUT: Duration = Duration::from_secs(120);

fn target(admin: &Admin) -> Result<&Endpoint> {
    match admin.endpoints.as_slice() {
        [only] => Ok(only),
        _ => admin.primary(),
    }
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `--since`: unix seconds or RFC 3339 (checked by the backend, which names the bad value).
fn filter_query(args: &mut Args) -> Result<String> {
    let mut q = String::new();
    if let Some(m) = args.option("mailbox")? {
        q.push_str(&format!("&mailbox={}", percent_encode(&m)));
    }
    if let Some(t) = args.option("since")? {
        q.push_str(&format!("&since={}", percent_encode(&t)));
    }
    Ok(q)
}

fn describe_quota(v: &Value) -> String {
    let usage = num(v, "usage_bytes");
    let limit = match v.get("limit_bytes").and_then(Value::as_u64) {
        Some(l) => format!("{l} bytes ({}%)", usage.saturating_mul(100) / l.max(1)),
        None => "unlimited".into(),
    };
    let source = match v.get("override") {
        Some(Value::Null) | None => "default".to_string(),
        Some(Value::String(s)) => format!("user override: {s}"),
        Some(o) => format!("user override: {o} bytes"),
    };
    let mut out = format!("{}: {usage} bytes used of {limit}, {source}", text(v, "user"));
    if num(v, "counted_bytes") != usage {
        out.push_str(&format!(" (WARNING: the messages add up to {} bytes)", num(v, "counted_bytes")));
    }
    out
}

/// `mailctl quota get|set`.
///
/// # Errors
/// Usage errors, unreachable backends, the API's error text.
pub fn quota(mut args: Args) -> Result<()> {
    let sub = args.positional("quota subcommand (get or set)")?;
    let admin = Admin::from_args(&mut args)?;
    let user: String = args.required("user")?;
    let json = args.flag("json");
    match sub.as_str() {
        "get" => {
            args.finish()?;
            let e = target(&admin)?;
            let v = admin.call(e, "GET", &format!("/quota?user={}", percent_encode(&user)), TIMEOUT)?;
            println!("{}", if json { v.to_string() } else { describe_quota(&v) });
            Ok(())
        }
        "set" => {
            let bytes: String = args.required("bytes")?;
            args.finish()?;
            if !(bytes == "none" || bytes == "default" || bytes.parse::<u64>().is_ok()) {
                bail!("--bytes {bytes:?}: want a number of bytes, none (unlimited) or default");
            }
            let path = format!("/quota?user={}&bytes={}", percent_encode(&user), percent_encode(&bytes));
            let mut failed = Vec::new();
            for e in &admin.endpoints {
                match admin.call(e, "POST", &path, TIMEOUT) {
                    Ok(v) if json => println!("{v}"),
                    Ok(v) => println!("{}: {}", e.name, describe_quota(&v)),
                    Err(err) => {
                        eprintln!("mailctl: {err:#}");
                        failed.push(e.name.clone());
                    }
                }
            }
            if !failed.is_empty() {
                bail!("quota not set on {}", failed.join(", "));
            }
            Ok(())
        }
        other => bail!("unknown quota subcommand {other:?} (want get or set)"),
    }
}

/// `mailctl undelete list|restore`.
///
/// # Errors
/// Usage errors, unreachable backends, the API's error text.
pub fn undelete(mut args: Args) -> Result<()> {
    let sub = args.positional("undelete subcommand (list or restore)")?;
    let admin = Admin::from_args(&mut args)?;
    let user: String = args.required("user")?;
    let json = args.flag("json");
    let q = filter_query(&mut args)?;
    args.finish()?;
    let e = target(&admin)?;
    let user_q = percent_encode(&user);
    match sub.as_str() {
        "list" => {
            let v = admin.call(e, "GET", &format!("/undelete?user={user_q}{q}"), TIMEOUT)?;
            if json {
                println!("{v}");
                return Ok(());
            }
            let msgs = v.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
            println!("{user}: {} restorable message(s) (retention {}s)", msgs.len(), num(&v, "retention_secs"));
            if !msgs.is_empty() {
                println!("{:<25}  {:<20}  {:>7}  {:>9}  subject", "expunged at", "mailbox", "old uid", "size");
            }
            for m in &msgs {
                println!(
                    "{:<25}  {:<20}  {:>7}  {:>9}  {}",
                    text(m, "expunged_at_rfc3339"),
                    text(m, "mailbox"),
                    num(m, "uid"),
                    num(m, "size"),
                    text(m, "subject")
                );
            }
            Ok(())
        }
        "restore" => {
            let v = admin.call(e, "POST", &format!("/undelete/restore?user={user_q}{q}"), TIMEOUT)?;
            if json {
                println!("{v}");
            } else {
                let restored = v.get("restored").and_then(Value::as_array).cloned().unwrap_or_default();
                for r in &restored {
                    println!(
                        "{}: uid {} restored as uid {} (uidvalidity {}){}",
                        text(r, "mailbox"),
                        num(r, "old_uid"),
                        num(r, "uid"),
                        num(r, "uidvalidity"),
                        if r.get("recreated").and_then(Value::as_bool) == Some(true) {
                            ", folder recreated"
                        } else {
                            ""
                        }
                    );
                }
                println!(
                    "{user}: {} message(s) restored on {}; usage now {} bytes",
                    restored.len(),
                    e.name,
                    num(&v, "usage_bytes")
                );
            }
            let failed = v.get("failed").and_then(Value::as_array).map_or(0, Vec::len);
            if failed > 0 {
                bail!("{failed} message(s) could not be restored: {}", v["failed"]);
            }
            Ok(())
        }
        other => bail!("unknown undelete subcommand {other:?} (want list or restore)"),
    }
}
