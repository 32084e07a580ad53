//! The admin API client shared by the commands that talk to mailstored (`repl`, `check`,
//! `failover`, `quota`, `undelete`): backends named with `--admin NAME=HOST:PORT[,...]` (or
//! `MAILCTL_ADMIN`), bearer token from `--token-file` (or `MAILCTL_ADMIN_TOKEN_FILE`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::args::Args;

/// One backend's admin endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) addr: String,
}

pub(crate) struct Admin {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) token: Option<String>,
}

impl Admin {
    pub(crate) fn from_args(args: &mut Args) -> Result<Admin> {
        let list = match args.option("admin")? {
            Some(l) => l,
            None => std::env::var("MAILCTL_ADMIN")
                .map_err(|_| anyhow!("--admin NAME=HOST:PORT[,...] is required (or set MAILCTL_ADMIN)"))?,
        };
        let mut endpoints = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, addr) =
                item.split_once('=').ok_or_else(|| anyhow!("--admin: want NAME=HOST:PORT, got {item:?}"))?;
            if name.is_empty() || addr.is_empty() {
                bail!("--admin: want NAME=HOST:PORT, got {item:?}");
            }
            endpoints.push(Endpoint { name: name.to_string(), addr: addr.to_string() });
        }
        if endpoints.is_empty() {
            bail!("--admin names no backend");
        }
        let token_file: Option<PathBuf> = match args.option("token-file")? {
            Some(f) => Some(f.into()),
            None => std::env::var_os("MAILCTL_ADMIN_TOKEN_FILE").map(PathBuf::from),
        };
        let token = match token_file {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read token file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Admin { endpoints, token })
    }

    pub(crate) fn endpoint(&self, name: &str) -> Result<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name).ok_or_else(|| anyhow!("backend {name:?} is not in --admin"))
    }

    /// One request; the JSON answer, or the API's error text.
    pub(crate) fn call(&self, e: &Endpoint, method: &str, target: &str, timeout: Duration) -> Result<Value> {
        let addr: SocketAddr = e
            .addr
            .to_socket_addrs()
            .with_context(|| format!("{}: bad address {:?}", e.name, e.addr))?
            .next()
            .ok_or_else(|| anyhow!("{}: {:?} resolves to nothing", e.name, e.addr))?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .with_context(|| format!("{} ({}) unreachable", e.name, e.addr))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(s, "{method} {target} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", e.addr)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).with_context(|| format!("{} ({}): no answer", e.name, e.addr))?;
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("{}: malformed HTTP answer", e.name))?;
        let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let v: Value =
            serde_json::from_str(body.trim()).map_err(|_| anyhow!("{}: HTTP {status}: {}", e.name, body.trim()))?;
        if status != 200 {
            bail!("{}: {}", e.name, v.get("error").and_then(Value::as_str).unwrap_or(body.trim()));
        }
        Ok(v)
    }

    pub(crate) fn status(&self, e: &Endpoint) -> Result<Value> {
        self.call(e, "GET", "/status", Duration::from_secs(5))
    }

    /// The endpoint whose status says it is the primary (the first reachable one).
    ///
    /// # Errors
    /// When none of them answers as the primary.
    pub(crate) fn primary(&self) -> Result<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| self.status(e).is_ok_and(|v| v.get("role").and_then(Value::as_str) == Some("primary")))
            .ok_or_else(|| anyhow!("none of the --admin backends is a reachable primary"))
    }
}

pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
