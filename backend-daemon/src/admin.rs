//! The operators' HTTP API (`[admin]`), what `mailctl repl` and `mailctl failover` talk to:
//!
//! | request | answer |
//! |---|---|
//! | `GET /status` | role, epoch, link, pending users, lag (JSON) |
//! | `GET /metrics` | the same as Prometheus text |
//! | `POST /repl/promote[?epoch=N]` | become the primary (a failover) |
//! | `POST /repl/demote[?epoch=N]` | become the replica (a planned switch-over) |
//! | `POST /repl/sync?user=U[&full=1]` | sync one user now and wait for it |
//! | `POST /repl/reset-lag` | forget the lag samples behind `lag_ms_p50`/`p99` (benchmarks) |
//! | `/quota`, `/undelete`, `/undelete/restore` | per-user quota and undelete ([`crate::mailadmin`]) |
//!
//! HTTP/1.0-style: one request per connection, answered and closed. With `token_file` set,
//! requests need `Authorization: Bearer <token>`.

use std::sync::Arc;
use std::time::Duration;

use mailstore::Username;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Ctx;

const MAX_REQUEST: usize = 16 * 1024;

/// Serves the admin API on `sock` until the process stops.
pub async fn run(ctx: Arc<Ctx>, sock: TcpListener) {
    let token = match ctx.cfg.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Ok(_) | Err(_) => {
                tracing::error!(path = %path.display(), "admin.token_file unreadable or empty: the admin API refuses every request");
                Some(String::new())
            }
        },
        None => None,
    };
    let token = Arc::new(token);
    loop {
        let (tcp, peer) = crate::server::accept(&sock).await;
        let (ctx, token) = (ctx.clone(), token.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(&ctx, tcp, token.as_deref()).await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses the request head (request line and headers, up to the blank line).
fn parse(head: &str) -> Result<Request, String> {
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed request line {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported protocol {version:?}"));
    }
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let mut query = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((percent_decode(k)?, percent_decode(v)?));
    }
    let mut authorization = None;
    for h in lines {
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    Ok(Request { method: method.to_string(), path: path.to_string(), query, authorization })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in {s:?}"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {s:?}"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

async fn serve(ctx: &Ctx, mut tcp: TcpStream, token: Option<&str>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
            }
            if buf.len() > MAX_REQUEST {
                return Ok(None);
            }
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let (status, ctype, body) = match head.map(|h| parse(&h)) {
        None => error(413, "request head too large"),
        Some(Err(e)) => error(400, &e),
        Some(Ok(req)) => {
            if let Some(t) = token {
                let given = req.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
                if t.is_empty() || !constant_time_eq(given.as_bytes(), t.as_bytes()) {
                    tracing::warn!(path = %req.path, "admin request refused: bad or missing token");
                    let (status, ctype, body) = error(401, "bad or missing bearer token");
                    write(&mut tcp, status, ctype, &body).await?;
                    return Ok(());
                }
            }
            route(ctx, &req).await
        }
    };
    write(&mut tcp, status, ctype, &body).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: u16, v: &serde_json::Value) -> (u16, &'static str, String) {
    (status, "application/json", format!("{v}\n"))
}

fn error(status: u16, text: &str) -> (u16, &'static str, String) {
    json(status, &serde_json::json!({ "error": text }))
}

async fn route(ctx: &Ctx, req: &Request) -> (u16, &'static str, String) {
    let repl = &ctx.repl;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/status") => json(200, &crate::blocking(|| repl.status(&ctx.store, &ctx.cfg.name))),
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4", metrics(ctx)),
        ("POST", "/repl/promote") => {
            if ctx.cfg.replication.is_none() {
                return error(409, "no [replication] section: nothing to promote");
            }
            let epoch = match req.param("epoch").map(str::parse::<u64>).transpose() {
                Ok(e) => e,
                Err(_) => return error(400, "epoch must be a number"),
            };
            match crate::blocking(|| repl.promote(&ctx.store, epoch)) {
                Ok(r) => json(200, &serde_json::json!({ "role": "primary", "epoch": r.epoch })),
                Err(e) => error(500, &format!("{e:#}")),
            }
        }
        ("POST", "/repl/demote") => {
            if ctx.cfg.replication.is_none() {
                return error(409, "no [replication] section: nothing to demote");
            }
            let epoch = match req.param("epoch").map(str::parse::<u64>).transpose() {
                Ok(e) => e.unwrap_or(0),
                Err(_) => return error(400, "epoch must be a number"),
            };
            match crate::blocking(|| repl.demote(epoch)) {
                Ok(r) => json(200, &serde_json::json!({ "role": "replica", "epoch": r.epoch })),
                Err(e) => error(500, &format!("{e:#}")),
            }
        }
        ("POST", "/repl/reset-lag") => {
            repl.reset_lags();
            json(200, &serde_json::json!({ "reset": true }))
        }
        ("POST", "/repl/sync") => {
            let Some(user) = req.param("user") else {
                return error(400, "user=NAME is required");
            };
            let Ok(name) = Username::new(user) else {
                return error(400, &format!("{user:?} is not a valid user name"));
            };
            let full = matches!(req.param("full"), Some("1" | "true" | "yes"));
            match repl.request_sync(name, full).await {
                Ok(ops) => json(200, &serde_json::json!({ "user": user, "full": full, "ops": ops, "identical": true })),
                Err(e) => error(503, &e),
            }
        }
        (m, p) if crate::mailadmin::handles(p) => {
            crate::mailadmin::route(ctx, m, p, &|k| req.param(k).map(String::from))
        }
        ("GET" | "POST", _) => error(404, &format!("no such endpoint {}", req.path)),
        _ => error(405, &format!("method {} not allowed", req.method)),
    }
}

/// Prometheus text exposition of the replication status.
fn metrics(ctx: &Ctx) -> String {
    let s = crate::blocking(|| ctx.repl.status(&ctx.store, &ctx.cfg.name));
    let num = |k: &str| s.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let role = s.get("role").and_then(|v| v.as_str()).unwrap_or("");
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"));
    };
    gauge(
        "mailstored_repl_primary",
        "1 when this backend is the primary of its pair",
        f64::from(u8::from(role == "primary")),
    );
    gauge("mailstored_repl_epoch", "failover epoch of this pair as this backend knows it", num("epoch"));
    gauge("mailstored_repl_pending_users", "users with changes the replica does not hold yet", num("pending_users"));
    gauge("mailstored_repl_lag_seconds", "age of the oldest change the replica does not hold yet", num("lag_seconds"));
    gauge(
        "mailstored_repl_link_up",
        "1 when the link to the replica is up",
        f64::from(u8::from(s.get("link").and_then(|v| v.as_str()) == Some("up"))),
    );
    gauge(
        "mailstored_repl_degraded",
        "1 when synchronous replication fell back to asynchronous",
        f64::from(u8::from(s.get("degraded").and_then(serde_json::Value::as_bool) == Some(true))),
    );
    out.push_str(&format!(
        "# HELP mailstored_repl_synced_users_total user syncs completed\n# TYPE mailstored_repl_synced_users_total counter\nmailstored_repl_synced_users_total {}\n",
        num("synced_users_total")
    ));
    out
}

async fn write(tcp: &mut TcpStream, status: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(msg.as_bytes()).await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let r =
            parse("POST /repl/sync?user=a%40b.org&full=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/repl/sync"));
        assert_eq!(r.param("user"), Some("a@b.org"));
        assert_eq!(r.param("full"), Some("1"));
        assert_eq!(r.authorization.as_deref(), Some("Bearer t0k"));
        assert!(parse("GET /status").unwrap_err().contains("malformed"));
        assert!(parse("GET /status SPDY/3").unwrap_err().contains("unsupported"));
        assert!(parse("GET /x?u=%zz HTTP/1.0").unwrap_err().contains("bad escape"));
        assert!(parse("GET /x?u=%ff HTTP/1.0").unwrap_err().contains("UTF-8"));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
