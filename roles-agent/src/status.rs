//! A follower's replication state, its JSON and Prometheus forms, the small HTTP server that
//! exposes them (`--status ADDR`) and the Nagios-style check (`rolesd status`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tracing::debug;

/// What the follower knows about itself and its primary.
#[derive(Debug)]
pub struct State {
    pub applied_seq: u64,
    /// The primary's last sequence, as last heard (0 before the first contact).
    pub primary_seq: u64,
    pub connected: bool,
    pub last_error: Option<String>,
    /// When the follower was last known to hold everything the primary had. Starts at the
    /// process start: a restarted follower is not known to be up to date until it has caught up.
    pub up_to_date_at: Instant,
    pub changes_applied: u64,
    pub snapshots_applied: u64,
    pub reconnects: u64,
}

impl State {
    pub fn new(applied_seq: u64) -> State {
        State {
            applied_seq,
            primary_seq: 0,
            connected: false,
            last_error: None,
            up_to_date_at: Instant::now(),
            changes_applied: 0,
            snapshots_applied: 0,
            reconnects: 0,
        }
    }

    /// Records that the follower holds everything up to `applied_seq` and the primary was last
    /// heard at `primary_seq`.
    pub fn note_progress(&mut self) {
        if self.connected && self.applied_seq >= self.primary_seq {
            self.up_to_date_at = Instant::now();
        }
    }

    pub fn report(&self) -> Report {
        let up_to_date = self.connected && self.applied_seq >= self.primary_seq;
        Report {
            applied_seq: self.applied_seq,
            primary_seq: self.primary_seq,
            lag_changes: self.primary_seq.saturating_sub(self.applied_seq),
            lag_seconds: if up_to_date { 0.0 } else { self.up_to_date_at.elapsed().as_secs_f64() },
            connected: self.connected,
            last_error: self.last_error.clone(),
            changes_applied: self.changes_applied,
            snapshots_applied: self.snapshots_applied,
            reconnects: self.reconnects,
        }
    }
}

pub type Shared = Arc<Mutex<State>>;

/// The JSON document of `GET /status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub applied_seq: u64,
    pub primary_seq: u64,
    pub lag_changes: u64,
    /// Seconds since the follower was last known to be up to date; 0 while it is.
    pub lag_seconds: f64,
    pub connected: bool,
    pub last_error: Option<String>,
    pub changes_applied: u64,
    pub snapshots_applied: u64,
    pub reconnects: u64,
}

impl Report {
    /// Prometheus text exposition format.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        };
        metric(
            "mailscale_roles_applied_seq",
            "gauge",
            "Last changelog sequence applied.",
            self.applied_seq.to_string(),
        );
        metric(
            "mailscale_roles_primary_seq",
            "gauge",
            "Primary's last sequence, as last heard.",
            self.primary_seq.to_string(),
        );
        metric("mailscale_roles_lag_changes", "gauge", "Changes not yet applied.", self.lag_changes.to_string());
        metric(
            "mailscale_roles_lag_seconds",
            "gauge",
            "Seconds since the follower was last known up to date.",
            format!("{:.3}", self.lag_seconds),
        );
        metric(
            "mailscale_roles_connected",
            "gauge",
            "1 while connected to the primary.",
            u8::from(self.connected).to_string(),
        );
        metric(
            "mailscale_roles_changes_applied_total",
            "counter",
            "Changes applied since start.",
            self.changes_applied.to_string(),
        );
        metric(
            "mailscale_roles_snapshots_applied_total",
            "counter",
            "Snapshots applied since start.",
            self.snapshots_applied.to_string(),
        );
        metric(
            "mailscale_roles_reconnects_total",
            "counter",
            "Connection attempts after the first.",
            self.reconnects.to_string(),
        );
        out
    }

    /// One line, as `rolesd status` prints it.
    pub fn line(&self) -> String {
        format!(
            "applied_seq={} primary_seq={} lag_changes={} lag_seconds={:.1} connected={}{}",
            self.applied_seq,
            self.primary_seq,
            self.lag_changes,
            self.lag_seconds,
            self.connected,
            self.last_error.as_ref().map(|e| format!(" last_error={e:?}")).unwrap_or_default()
        )
    }
}

/// Serves `GET /status` (JSON) and `GET /metrics` (Prometheus) until the listener fails.
///
/// # Errors
/// An `accept` failure.
pub async fn serve(listener: TcpListener, state: Shared) -> std::io::Result<()> {
    loop {
        let (conn, peer) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(conn, &state).await {
                debug!(%peer, "status request: {e}");
            }
        });
    }
}

async fn answer(mut conn: TcpStream, state: &Shared) -> std::io::Result<()> {
    let mut req = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = match timeout(Duration::from_secs(5), conn.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 || req.len() > 8192 {
            return Ok(());
        }
        req.extend_from_slice(&chunk[..n]);
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let report = state.lock().expect("status lock").report();
    let (code, ctype, body) = match (method, path) {
        (b"GET", b"/status") => ("200 OK", "application/json", serde_json::to_string(&report).expect("json") + "\n"),
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", report.metrics()),
        (b"GET", _) => ("404 Not Found", "text/plain", "try /status or /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// `rolesd status`: fetches `/status` from `addr`.
///
/// # Errors
/// Connection failures, a non-200 answer, undecodable JSON.
pub async fn fetch(addr: &str) -> anyhow::Result<Report> {
    use anyhow::Context;
    let work = async {
        let mut conn = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        conn.write_all(b"GET /status HTTP/1.0\r\n\r\n").await?;
        let mut resp = Vec::new();
        conn.read_to_end(&mut resp).await?;
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP answer")?;
        if !head.starts_with("HTTP/1.1 200") {
            anyhow::bail!("{addr}: {}", head.lines().next().unwrap_or_default());
        }
        serde_json::from_str(body).context("undecodable /status JSON")
    };
    timeout(Duration::from_secs(5), work).await.map_err(|_| anyhow::anyhow!("{addr}: no answer within 5 s"))?
}
