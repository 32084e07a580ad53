//! `mailctl repl status|sync`, `mailctl check repl` and `mailctl failover`: the replication
//! commands, over each mailstored's admin API (`[admin]` in its config).
//!
//! Backends are named with `--admin NAME=HOST:PORT[,NAME=HOST:PORT...]` (or `MAILCTL_ADMIN`),
//! the names being those of the roles database; `--token-file` (or `MAILCTL_ADMIN_TOKEN_FILE`)
//! holds the bearer token when the backends require one.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mailscale_roles::{BackendState, Roles};
use serde_json::Value;

use crate::admin_client::{percent_encode, Admin, Endpoint};
use crate::args::Args;

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn describe(e: &Endpoint, v: &Value) -> String {
    let s = |k: &str| match field(v, k) {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    if s("role") == "replica" {
        return format!("{} replica epoch={} (receives from its primary)", e.name, s("epoch"));
    }
    format!(
        "{} {} epoch={} partner={} link={} mode={} pending_users={} lag_seconds={:.1} degraded={} lag_ms_p50={} lag_ms_p99={}{}",
        e.name,
        s("role"),
        s("epoch"),
        s("partner"),
        s("link"),
        s("mode"),
        s("pending_users"),
        field(v, "lag_seconds").as_f64().unwrap_or(0.0),
        if field(v, "degraded").as_bool() == Some(true) { "yes" } else { "no" },
        s("lag_ms_p50"),
        s("lag_ms_p99"),
        match field(v, "last_error").as_str() {
            Some(err) if s("link") == "down" => format!(" last_error={err:?}"),
            _ => String::new(),
        }
    )
}

/// `mailctl repl status|sync`.
pub fn run(mut args: Args) -> Result<()> {
    let sub = args.positional("repl subcommand (status, sync)")?;
    match sub.as_str() {
        "status" => {
            let admin = Admin::from_args(&mut args)?;
            let as_json = args.flag("json");
            args.finish()?;
            let mut failed = 0;
            let mut all = Vec::new();
            for e in &admin.endpoints {
                match admin.status(e) {
                    Ok(v) if as_json => all.push(v),
                    Ok(v) => println!("{}", describe(e, &v)),
                    Err(err) => {
                        failed += 1;
                        if as_json {
                            all.push(serde_json::json!({ "name": e.name, "error": format!("{err:#}") }));
                        } else {
                            println!("{} unreachable: {err:#}", e.name);
                        }
                    }
                }
            }
            if as_json {
                println!("{}", Value::Array(all));
            }
            if failed > 0 {
                bail!("{failed} backend(s) did not answer");
            }
            Ok(())
        }
        "sync" => {
            let admin = Admin::from_args(&mut args)?;
            let user: String = args.required("user")?;
            let full = args.flag("full");
            args.finish()?;
            // The primary of the named backends does the sync.
            let primary = admin.primary()?;
            let target = format!("/repl/sync?user={}{}", percent_encode(&user), if full { "&full=1" } else { "" });
            let v = admin.call(primary, "POST", &target, Duration::from_secs(600))?;
            println!(
                "{user}: {} compare from {} done, {} change(s) sent, replica identical",
                if full { "full" } else { "quick" },
                primary.name,
                field(&v, "ops")
            );
            Ok(())
        }
        other => bail!("unknown repl subcommand {other:?} (want status or sync)"),
    }
}

/// Nagios plugin exit codes.
const OK: u8 = 0;
const WARNING: u8 = 1;
const CRITICAL: u8 = 2;
const UNKNOWN: u8 = 3;

/// `mailctl check repl --warn S --crit S`: one status line with perfdata, exit 0/1/2 (3 when
/// nothing could be checked). Returns the exit code.
pub fn check(mut args: Args) -> Result<u8> {
    let what = args.positional("check subject (repl)")?;
    if what != "repl" {
        bail!("unknown check {what:?} (want repl)");
    }
    let warn: f64 = args.required("warn")?;
    let crit: f64 = args.required("crit")?;
    if warn > crit {
        bail!("--warn ({warn}) must not exceed --crit ({crit})");
    }
    let admin = Admin::from_args(&mut args)?;
    args.finish()?;
    let (code, line) = evaluate(&admin, warn, crit);
    println!("{line}");
    Ok(code)
}

fn evaluate(admin: &Admin, warn: f64, crit: f64) -> (u8, String) {
    let mut code = OK;
    let mut parts = Vec::new();
    let mut perf = Vec::new();
    let mut primaries = 0;
    for e in &admin.endpoints {
        match admin.status(e) {
            Err(err) => {
                code = code.max(CRITICAL);
                parts.push(format!("{} unreachable ({err:#})", e.name));
            }
            Ok(v) if field(&v, "role").as_str() != Some("primary") => parts.push(format!("{} replica", e.name)),
            Ok(v) => {
                primaries += 1;
                let lag = field(&v, "lag_seconds").as_f64().unwrap_or(0.0);
                let pending = field(&v, "pending_users").as_u64().unwrap_or(0);
                let link = field(&v, "link").as_str().unwrap_or("?").to_string();
                let degraded = field(&v, "degraded").as_bool() == Some(true);
                let mut c = if lag >= crit {
                    CRITICAL
                } else if lag >= warn {
                    WARNING
                } else {
                    OK
                };
                if degraded {
                    c = c.max(WARNING);
                }
                if link == "down" && pending > 0 {
                    c = c.max(WARNING);
                }
                code = code.max(c);
                parts.push(format!(
                    "{}: lag {lag:.1}s, {pending} pending user(s), link {link}{}",
                    e.name,
                    if degraded { ", synchronous replication DEGRADED" } else { "" }
                ));
                perf.push(format!("{}_lag={lag:.3}s;{warn};{crit};0", e.name));
                perf.push(format!("{}_pending={pending};;;0", e.name));
            }
        }
    }
    if primaries == 0 && code == OK {
        code = UNKNOWN;
        parts.push("no primary among the checked backends".into());
    }
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code)];
    (code, format!("REPL {word} - {} | {}", parts.join("; "), perf.join(" ")))
}

/// `mailctl failover BACKEND`: the partner takes over `BACKEND`'s users.
///
/// 1. `BACKEND`, if it still answers, is demoted first (so it stops taking writes);
/// 2. its partner is promoted with a higher epoch (it compares every user with the old
///    primary when that one is back, and rescues what only the old primary held);
/// 3. the roles database marks `BACKEND` `failover`, and frontends follow its changelog.
pub fn failover(mut args: Args) -> Result<()> {
    let db = crate::roles_cmd::db_dir(&mut args)?;
    let admin = Admin::from_args(&mut args)?;
    let name = args.positional("BACKEND")?;
    args.finish()?;
    let roles = Roles::open(&db)?;
    let b = roles.get_backend(&name)?.ok_or_else(|| anyhow!("unknown backend {name:?} in the roles database"))?;
    let partner_name =
        b.partner.clone().ok_or_else(|| anyhow!("backend {name:?} has no partner in the roles database"))?;
    let partner = roles
        .get_backend(&partner_name)?
        .ok_or_else(|| anyhow!("partner {partner_name:?} of {name:?} is not in the roles database"))?;
    // A partner in failover is the old primary coming back into service (fail-back).
    if partner.state == BackendState::Down {
        bail!("partner {partner_name:?} is down in the roles database: it cannot take over");
    }
    let pe = admin.endpoint(&partner_name)?;
    let ps = admin.status(pe).with_context(|| format!("partner {partner_name} must answer to take over"))?;
    let old = admin.endpoint(&name).ok();
    let old_status = old.map(|e| admin.status(e));
    let epoch =
        field(&ps, "epoch").as_u64().unwrap_or(0).max(
            old_status.as_ref().and_then(|s| s.as_ref().ok()).and_then(|v| field(v, "epoch").as_u64()).unwrap_or(0),
        ) + 1;
    match (old, old_status) {
        (Some(e), Some(Ok(_))) => {
            match admin.call(e, "POST", &format!("/repl/demote?epoch={epoch}"), Duration::from_secs(10)) {
                Ok(_) => println!("{name}: demoted to replica (epoch {epoch}); it takes no more writes"),
                Err(err) => {
                    println!("{name}: could not be demoted ({err:#}); it will step down when it meets {partner_name}")
                }
            }
        }
        (_, Some(Err(err))) => {
            println!("{name}: unreachable ({err:#}); it will step down when it comes back and meets {partner_name}")
        }
        (None, _) | (_, None) => {
            println!("{name}: no admin address given; it will step down when it meets {partner_name}")
        }
    }
    let v = admin.call(pe, "POST", &format!("/repl/promote?epoch={epoch}"), Duration::from_secs(60))?;
    println!(
        "{partner_name}: promoted to primary (epoch {}); every user will be compared with {name} once it is back",
        field(&v, "epoch")
    );
    let mut b = b;
    b.state = BackendState::Failover;
    roles.set_backend(b)?;
    if partner.state != BackendState::Up {
        let mut p = partner.clone();
        p.state = BackendState::Up;
        roles.set_backend(p)?;
        println!("roles: {partner_name} marked up again");
    }
    let users = roles.list_users()?.into_iter().filter(|(_, r)| r.backend == name).count();
    println!(
        "roles: {name} marked failover; its {users} user(s) now go to {partner_name} ({}); frontends follow the roles changelog",
        partner.ip
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_lists_and_encoding() {
        let mut a = Args::new(["--admin", "a1=127.0.0.1:1, a2=127.0.0.1:2"].map(String::from));
        let admin = Admin::from_args(&mut a).unwrap();
        assert_eq!(admin.endpoints.len(), 2);
        assert_eq!(admin.endpoint("a2").unwrap().addr, "127.0.0.1:2");
        assert!(admin.endpoint("b").is_err());
        let mut a = Args::new(["--admin", "a1"].map(String::from));
        assert!(Admin::from_args(&mut a).err().unwrap().to_string().contains("NAME=HOST:PORT"));
        assert_eq!(percent_encode("a b&c@d"), "a%20b%26c@d");
    }

    #[test]
    fn unreachable_backends_are_critical_and_nothing_checked_is_unknown() {
        let admin = Admin { endpoints: vec![Endpoint { name: "a1".into(), addr: "127.0.0.1:1".into() }], token: None };
        let (code, line) = evaluate(&admin, 10.0, 20.0);
        assert_eq!(code, CRITICAL);
        assert!(line.starts_with("REPL CRITICAL - a1 unreachable"), "{line}");
        let admin = Admin { endpoints: vec![], token: None };
        assert_eq!(evaluate(&admin, 1.0, 2.0).0, UNKNOWN);
    }
}
