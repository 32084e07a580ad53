//! `rolesd`: roles replication primary and follower, status check, checksum.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use mailscale_roles::Roles;
use mailscale_rolesd::follower::Follower;
use mailscale_rolesd::primary::Primary;
use mailscale_rolesd::status::{self, State};
use mailscale_rolesd::token::Token;
use mailscale_rolesd::{checksum, socketmap, tls};
use rustls::pki_types::ServerName;
use tokio::net::TcpListener;
use tracing::info;

const USAGE: &str = "\
usage:
  rolesd primary --db DIR --listen ADDR --cert PEM --key PEM --token-file FILE [--retain N]
  rolesd follower --db DIR --primary HOST:PORT --ca PEM --token-file FILE [--server-name NAME]
                  [--status ADDR] [--socketmap ADDR] [--retain N]
  rolesd socketmap --db DIR --listen ADDR
                                 (Postfix socketmap on a roles DB, read-only: e.g. on the primary)
  rolesd status --status ADDR [--warn SECONDS] [--crit SECONDS]
                                 (exit 0 ok, 1 warning, 2 critical, 3 unknown; defaults 10 and 60)
  rolesd checksum --db DIR       (sha256 over all users and backends, counts, sequence)
Logging: RUST_LOG (default info), on stderr.";

/// `--name value` options after the subcommand; unknown or repeated ones are refused.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String], known: &[&str]) -> Result<Opts> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let Some(key) = name.strip_prefix("--").filter(|k| known.contains(k)) else {
                bail!("unknown argument {name:?} (rolesd help)");
            };
            let value = it.next().with_context(|| format!("{name} needs a value"))?;
            if map.insert(key.to_string(), value.clone()).is_some() {
                bail!("{name} given twice");
            }
        }
        Ok(Opts(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn need(&self, key: &str) -> Result<&str> {
        self.get(key).with_context(|| format!("--{key} is required (rolesd help)"))
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        self.need(key).map(PathBuf::from)
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.get(key).map(|v| v.parse().map_err(|_| anyhow::anyhow!("--{key} {v:?}: not a number"))).transpose()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "primary" | "follower" | "socketmap" => daemon(cmd, rest).map(|()| ExitCode::SUCCESS),
        "status" => return status_check(rest),
        "checksum" => checksum_cmd(rest).map(|()| ExitCode::SUCCESS),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(anyhow::anyhow!("unknown command {other:?} (rolesd help)")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("rolesd: {}", format!("{e:#}").replace('\n', " "));
        ExitCode::FAILURE
    })
}

fn daemon(cmd: &str, args: &[String]) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        match cmd {
            "primary" => primary(args).await,
            "socketmap" => socketmap_only(args).await,
            _ => follower(args).await,
        }
    })
}

async fn primary(args: &[String]) -> Result<()> {
    let o = Opts::parse(args, &["db", "listen", "cert", "key", "token-file", "retain"])?;
    let db = o.path("db")?;
    let primary = Primary {
        roles: Arc::new(Roles::open(&db)?),
        acceptor: tls::acceptor(&o.path("cert")?, &o.path("key")?)?,
        token: Token::from_file(&o.path("token-file")?)?,
        retain: o.num("retain")?,
    };
    let listen = o.need("listen")?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("--listen {listen}"))?;
    info!(db = %db.display(), listen = %listener.local_addr()?, retain = ?primary.retain, "roles primary serving");
    tokio::select! {
        r = Arc::new(primary).run(listener) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The socketmap alone, reading a roles DB another process writes (LMDB allows that).
async fn socketmap_only(args: &[String]) -> Result<()> {
    let o = Opts::parse(args, &["db", "listen"])?;
    let db = o.path("db")?;
    let roles = Arc::new(Roles::open_read_only(&db).with_context(|| format!("--db {}", db.display()))?);
    let listen = o.need("listen")?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("--listen {listen}"))?;
    info!(db = %db.display(), socketmap = %listener.local_addr()?, "Postfix socketmap");
    tokio::select! {
        r = socketmap::serve(listener, roles) => Ok(r?),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn follower(args: &[String]) -> Result<()> {
    let o = Opts::parse(args, &["db", "primary", "ca", "token-file", "server-name", "status", "socketmap", "retain"])?;
    let db = o.path("db")?;
    let primary = o.need("primary")?.to_string();
    let name = match o.get("server-name") {
        Some(n) => n.to_string(),
        None => {
            primary.rsplit_once(':').map_or(primary.as_str(), |(host, _)| host).trim_matches(['[', ']']).to_string()
        }
    };
    let server_name = ServerName::try_from(name.clone()).with_context(|| format!("--server-name {name:?}"))?;
    // One read-write handle for the whole process (heed refuses a second open of the same
    // directory): the applier writes through it, the socketmap reads through it.
    let roles = Arc::new(Roles::open(&db)?);
    let state = Arc::new(Mutex::new(State::new(roles.last_seq()?)));
    if let Some(addr) = o.get("status") {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("--status {addr}"))?;
        info!(status = %listener.local_addr()?, "status on HTTP");
        tokio::spawn(status::serve(listener, state.clone()));
    }
    if let Some(keep) = o.num("retain")? {
        tokio::spawn(mailscale_rolesd::primary::trim_loop(roles.clone(), keep));
    }
    if let Some(addr) = o.get("socketmap") {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("--socketmap {addr}"))?;
        info!(socketmap = %listener.local_addr()?, "Postfix socketmap");
        let roles = roles.clone();
        tokio::spawn(async move {
            if let Err(e) = socketmap::serve(listener, roles).await {
                tracing::error!("socketmap server stopped: {e}");
            }
        });
    }
    let follower = Follower {
        roles,
        primary,
        server_name,
        connector: tls::connector(&o.path("ca")?)?,
        token: Token::from_file(&o.path("token-file")?)?,
        state,
    };
    info!(db = %db.display(), primary = %follower.primary, "roles follower starting");
    tokio::select! {
        () = follower.run() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Nagios plugin conventions: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line on stdout.
fn status_check(args: &[String]) -> ExitCode {
    let run = || -> Result<(u8, String)> {
        let o = Opts::parse(args, &["status", "warn", "crit"])?;
        let warn: f64 = o.num("warn")?.unwrap_or(10.0);
        let crit: f64 = o.num("crit")?.unwrap_or(60.0);
        let addr = o.need("status")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let report = rt.block_on(status::fetch(addr))?;
        let (code, word) = match report.lag_seconds {
            l if l >= crit => (2, "CRITICAL"),
            l if l >= warn => (1, "WARNING"),
            _ => (0, "OK"),
        };
        Ok((code, format!("ROLES {word}: {}", report.line())))
    };
    match run() {
        Ok((code, line)) => {
            println!("{line}");
            ExitCode::from(code)
        }
        Err(e) => {
            println!("ROLES UNKNOWN: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(3)
        }
    }
}

fn checksum_cmd(args: &[String]) -> Result<()> {
    let o = Opts::parse(args, &["db"])?;
    let db = o.path("db")?;
    if !db.join("data.mdb").exists() {
        bail!("no roles database in {}", db.display());
    }
    let roles = Roles::open_read_only(&db)?;
    println!("{}", checksum(&roles.snapshot()?));
    Ok(())
}
