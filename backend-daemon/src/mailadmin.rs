//! The admin API's per-user mail routes (`mailctl quota`, `mailctl undelete`), and how an
//! over-quota refusal reads in LMTP:
//!
//! | request | answer |
//! |---|---|
//! | `GET /quota?user=U` | usage, limit in force, the user's override, the default (JSON) |
//! | `POST /quota?user=U&bytes=N\|none\|default` | sets the override (`none`: unlimited; `default`: the config's) |
//! | `GET /undelete?user=U[&mailbox=M][&since=T]` | expunged messages still within the retention |
//! | `POST /undelete/restore?user=U[&mailbox=M][&since=T]` | restores them (primary only) |
//!
//! `T` is unix seconds or RFC 3339. Quota overrides are per backend (not replicated):
//! `mailctl quota set` sends them to every backend it is given.

use mailstore::{QuotaOverride, UndeleteFilter, UserStore, Username};
use serde_json::{json, Value};

use crate::lmtp::codec::Reply;
use crate::server::Ctx;

/// What the admin API answers: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// The LMTP reply for a recipient over quota (RFC 3463 X.2.2 "mailbox full"): temporary
/// (452) unless `[store] quota_lmtp_permanent`.
pub fn lmtp_over_quota(ctx: &Ctx, address: &str) -> Reply {
    let text = format!("<{address}>: mailbox full (over quota)");
    if ctx.cfg.store.quota_lmtp_permanent {
        Reply::new(552, "5.2.2", text)
    } else {
        Reply::new(452, "4.2.2", text)
    }
}

/// Whether `path` is one of this module's routes.
pub fn handles(path: &str) -> bool {
    matches!(path, "/quota" | "/undelete" | "/undelete/restore")
}

fn answer(status: u16, v: &Value) -> Answer {
    (status, "application/json", format!("{v}\n"))
}

fn error(status: u16, text: &str) -> Answer {
    answer(status, &json!({ "error": text }))
}

/// Serves a request for which [`handles`] is true; `param` reads the decoded query.
pub fn route(ctx: &Ctx, method: &str, path: &str, param: &dyn Fn(&str) -> Option<String>) -> Answer {
    let Some(user) = param("user") else {
        return error(400, "user=NAME is required");
    };
    let Ok(name) = Username::new(&user) else {
        return error(400, &format!("{user:?} is not a valid user name"));
    };
    let r = crate::blocking(|| -> Result<Answer, Answer> {
        let setting = method == "POST" && path == "/quota";
        // Reading must not create an index for a mistyped name; setting a quota ahead of the
        // first delivery may.
        if !setting && !ctx.store.users().map_err(|e| error(500, &e.to_string()))?.contains(&name) {
            return Err(error(404, &format!("no mailbox for user {user:?} on this backend")));
        }
        let us = ctx.store.user(&name).map_err(|e| error(500, &e.to_string()))?;
        Ok(match (method, path) {
            ("GET", "/quota") => quota(ctx, &us)?,
            ("POST", "/quota") => {
                let o = match param("bytes").as_deref() {
                    Some("none" | "unlimited") => QuotaOverride::Unlimited,
                    Some("default") => QuotaOverride::Default,
                    Some(n) => match n.parse::<u64>() {
                        Ok(n) => QuotaOverride::Bytes(n),
                        Err(_) => return Err(error(400, &format!("bytes={n:?}: want a number, none or default"))),
                    },
                    None => return Err(error(400, "bytes=N|none|default is required")),
                };
                us.set_quota_override(o).map_err(|e| error(500, &e.to_string()))?;
                tracing::info!(user = %name, limit = ?o, "quota override set");
                quota(ctx, &us)?
            }
            ("GET", "/undelete") => undelete_list(ctx, &us, &filter(ctx, param)?)?,
            ("POST", "/undelete/restore") => {
                if ctx.repl.is_replica() {
                    return Err(error(409, "this backend is a replica: restore on the primary"));
                }
                undelete_restore(&us, &filter(ctx, param)?)?
            }
            ("GET" | "POST", _) => error(405, &format!("method {method} not allowed on {path}")),
            _ => error(405, &format!("method {method} not allowed")),
        })
    });
    r.unwrap_or_else(|e| e)
}

fn quota(ctx: &Ctx, us: &UserStore) -> Result<Answer, Answer> {
    let fail = |e: mailstore::Error| error(500, &e.to_string());
    let (usage, limit) = us.quota().map_err(fail)?;
    let (_, counted) = us.usage_check().map_err(fail)?;
    let own = match us.quota_override().map_err(fail)? {
        None => Value::Null,
        Some(0) => json!("unlimited"),
        Some(n) => json!(n),
    };
    Ok(answer(
        200,
        &json!({
            "user": us.user().as_str(),
            "usage_bytes": usage,
            "limit_bytes": if limit == 0 { Value::Null } else { json!(limit) },
            "override": own,
            "default_bytes": if ctx.cfg.store.quota_bytes == 0 { Value::Null } else { json!(ctx.cfg.store.quota_bytes) },
            "counted_bytes": counted,
        }),
    ))
}

/// Parses `since` (unix seconds or RFC 3339) and applies the retention: what is older is no
/// longer restorable, whether or not the purge task has run yet.
fn filter(ctx: &Ctx, param: &dyn Fn(&str) -> Option<String>) -> Result<UndeleteFilter, Answer> {
    let since = match param("since") {
        None => None,
        Some(t) => {
            Some(parse_time(&t).ok_or_else(|| error(400, &format!("since={t:?}: want unix seconds or RFC 3339")))?)
        }
    };
    let horizon = chrono::Utc::now().timestamp() - ctx.cfg.store.expunge_retention_secs;
    Ok(UndeleteFilter { mailbox: param("mailbox"), since: Some(since.map_or(horizon, |s| s.max(horizon))) })
}

/// Unix seconds or an RFC 3339 date-time.
pub fn parse_time(t: &str) -> Option<i64> {
    t.parse::<i64>().ok().or_else(|| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp()))
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339()).unwrap_or_default()
}

fn undelete_list(ctx: &Ctx, us: &UserStore, f: &UndeleteFilter) -> Result<Answer, Answer> {
    let list = us.undeletable(f).map_err(|e| error(500, &e.to_string()))?;
    let messages: Vec<Value> = list
        .iter()
        .map(|m| {
            json!({
                "mailbox": m.mailbox,
                "mailbox_unique_id": m.mailbox_unique_id,
                "uid": m.uid,
                "expunged_at": m.expunged_at,
                "expunged_at_rfc3339": rfc3339(m.expunged_at),
                "size": m.size,
                "flags": crate::imap::resp::flag_list(&m.flags, false),
                "subject": m.subject,
            })
        })
        .collect();
    Ok(answer(
        200,
        &json!({
            "user": us.user().as_str(),
            "retention_secs": ctx.cfg.store.expunge_retention_secs,
            "messages": messages,
        }),
    ))
}

fn undelete_restore(us: &UserStore, f: &UndeleteFilter) -> Result<Answer, Answer> {
    let report = us.restore_expunged(f).map_err(|e| error(500, &e.to_string()))?;
    let restored: Vec<Value> = report
        .restored
        .iter()
        .map(|r| {
            json!({
                "mailbox": r.mailbox, "old_uid": r.old_uid, "uid": r.uid, "uidvalidity": r.uidvalidity,
                "size": r.size, "recreated": r.recreated,
            })
        })
        .collect();
    let failed: Vec<Value> =
        report.failed.iter().map(|(m, uid, why)| json!({ "mailbox": m, "uid": uid, "error": why })).collect();
    let (usage, _) = us.quota().map_err(|e| error(500, &e.to_string()))?;
    tracing::info!(user = %us.user(), restored = restored.len(), failed = failed.len(), "undelete restore");
    Ok(answer(
        200,
        &json!({
            "user": us.user().as_str(), "restored": restored, "failed": failed, "usage_bytes": usage,
            "already_present": report.present.iter().map(|(m, uid)| json!({ "mailbox": m, "old_uid": uid })).collect::<Vec<_>>(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert!(handles("/quota") && handles("/undelete/restore") && !handles("/status"));
    }
}
