//! One TOML file per instance (many instances side by side on one host, each with its own file
//! and directories). Relative paths resolve against the file's directory. Every key has a
//! default except `data_dir` and `users_file`; unknown keys are refused with the file's name.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_hostname")]
    pub hostname: String,
    pub data_dir: PathBuf,
    pub users_file: PathBuf,
    #[serde(default)]
    pub listen: Listen,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub store: StoreConfig,
    /// Logins from the frontends with signed tickets; absent: only the users file.
    pub frontend: Option<Frontend>,
    /// Rolling replication to or from a partner backend; absent: a standalone backend.
    pub replication: Option<Replication>,
    /// The operators' HTTP API (`mailctl repl`, `mailctl failover`, metrics); absent: none.
    pub admin: Option<Admin>,
    /// Sieve at LMTP delivery and ManageSieve: limits and the SMTP relay.
    #[serde(default)]
    pub sieve: SieveConfig,
}

/// `[sieve]`: Sieve at delivery (RFC 5228) and the ManageSieve listener's script limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SieveConfig {
    /// `HOST:PORT` of the SMTP relay that redirect and vacation send through; absent: they are
    /// not sent (a redirect then keeps the message in INBOX, a vacation reply is logged only).
    pub relay: Option<String>,
    /// Largest script accepted by ManageSieve and run at delivery, in bytes.
    pub max_script_size: usize,
    /// Most scripts one user may keep.
    pub max_scripts: usize,
    /// Most redirects one delivery may send (the `MAXREDIRECTS` capability).
    pub max_redirects: usize,
    /// Most actions one script run may take.
    pub max_actions: usize,
    /// Envelope sender of redirected messages: `original` (the message's own MAIL FROM, RFC
    /// 5228 section 4.2) or `null` (`<>`: bounces of a redirect go nowhere, never back to a
    /// forged sender).
    pub redirect_sender: RedirectSender,
    /// Connect + whole-transaction timeout towards the relay.
    pub relay_timeout_secs: u64,
    /// Offer SASL PLAIN on ManageSieve connections without TLS (default: only after STARTTLS).
    pub plaintext_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedirectSender {
    #[default]
    Original,
    Null,
}

impl Default for SieveConfig {
    fn default() -> Self {
        SieveConfig {
            relay: None,
            max_script_size: 64 * 1024,
            max_scripts: 32,
            max_redirects: 4,
            max_actions: 32,
            redirect_sender: RedirectSender::Original,
            relay_timeout_secs: 30,
            plaintext_auth: false,
        }
    }
}

/// `[admin]`: a small HTTP API for `mailctl` and monitoring (JSON; Prometheus text on
/// `/metrics`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: SocketAddr,
    /// A file holding the bearer token `mailctl` must send (`--token-file`); required unless
    /// `listen` is a loopback address.
    pub token_file: Option<PathBuf>,
}

/// `[replication]`: this backend's role in its pair, and the mutually authenticated TLS link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    pub role: Role,
    /// The partner's replication listener (needed by a primary; on a replica too, so that it
    /// can replicate back once promoted).
    pub partner: Option<String>,
    /// Where to accept the partner's connections (needed by a replica; on a primary too, so that
    /// it can take the partner's updates once demoted, at fail-back).
    pub listen: Option<SocketAddr>,
    /// This side's certificate and key (PEM), signed by `ca`.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA both partners' certificates must chain to.
    pub ca: PathBuf,
    /// Primary: the name the replica's certificate must carry (default: `partner`'s host).
    pub server_name: Option<String>,
    /// How often the primary's worker polls the change log.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// `async`: LMTP 250 / APPEND OK once durable here, the replica follows. `sync`: only once
    /// the replica holds the change durably too.
    #[serde(default)]
    pub mode: SyncMode,
    /// Synchronous mode with the replica unreachable or too slow: `tempfail` (LMTP 451, APPEND
    /// NO [UNAVAILABLE]) or `async` (acknowledge anyway, log an error, report "degraded").
    #[serde(default)]
    pub unreachable: Unreachable,
    /// Synchronous mode: how long a write waits for the replica.
    #[serde(default = "default_sync_timeout_ms")]
    pub sync_timeout_ms: u64,
    /// A request on the link unanswered for this long (plus 1 s per MiB of content sent) means
    /// the link is dead: the worker reconnects. An idle link is pinged every 3 s.
    #[serde(default = "default_link_timeout_secs")]
    pub link_timeout_secs: u64,
}

fn default_link_timeout_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Async,
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    #[default]
    Tempfail,
    Async,
}

fn default_sync_timeout_ms() -> u64 {
    5000
}

fn default_interval_ms() -> u64 {
    200
}

impl Config {
    /// Whether this backend is a replica (read-only IMAP, no LMTP).
    pub fn is_replica(&self) -> bool {
        self.replication.as_ref().is_some_and(|r| r.role == Role::Replica)
    }
}

/// `[frontend]`: the frontends (nginx + ngx-mailauth) log in with a signed ticket as password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// Key shared with the frontends: 64 hex characters (`mailctl ticket-key generate`).
    pub ticket_key: PathBuf,
    /// Peer addresses allowed to log in with a ticket (the frontends' source addresses).
    #[serde(default = "default_trusted")]
    pub trusted: Vec<IpAddr>,
}

fn default_trusted() -> Vec<IpAddr> {
    vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub lmtp: Option<SocketAddr>,
    /// ManageSieve (RFC 5804), script upload; STARTTLS when [tls] is set.
    pub managesieve: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest command line (IMAP without its literals, POP3, LMTP).
    pub max_line_bytes: usize,
    /// Largest IMAP literal (APPEND) and LMTP message (`SIZE`).
    pub max_literal_bytes: usize,
    pub max_connections: usize,
    /// IMAP autologout timer; RFC 3501 5.4 says at least 30 minutes.
    pub imap_idle_timeout_secs: u64,
    pub pop3_timeout_secs: u64,
    pub lmtp_timeout_secs: u64,
    /// A ManageSieve session with no command for this long is closed.
    pub managesieve_timeout_secs: u64,
    /// How long a client may leave a response unread before it is dropped.
    pub write_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_literal_bytes: 50 * 1024 * 1024,
            max_connections: 2000,
            imap_idle_timeout_secs: 1800,
            pop3_timeout_secs: 600,
            lmtp_timeout_secs: 300,
            managesieve_timeout_secs: 600,
            write_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub expunge_retention_secs: i64,
    pub purge_interval_secs: u64,
    pub open_index_cache: usize,
    /// Storage quota per user in bytes (0 = unlimited); `mailctl quota set` overrides it per user.
    pub quota_bytes: u64,
    /// LMTP answers a delivery over quota with `552 5.2.2` (permanent) instead of `452 4.2.2`.
    pub quota_lmtp_permanent: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            expunge_retention_secs: 7 * 86400,
            purge_interval_secs: 3600,
            open_index_cache: 128,
            quota_bytes: 0,
            quota_lmtp_permanent: false,
        }
    }
}

fn default_name() -> String {
    "mailstored".into()
}

fn default_hostname() -> String {
    "localhost".into()
}

impl Config {
    /// Reads and validates an instance config.
    ///
    /// # Errors
    /// A message naming the file and, where it applies, the key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg: Config = toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.data_dir);
        abs(&mut cfg.users_file);
        if let Some(t) = cfg.tls.as_mut() {
            abs(&mut t.cert);
            abs(&mut t.key);
        }
        if let Some(f) = cfg.frontend.as_mut() {
            abs(&mut f.ticket_key);
            if f.trusted.is_empty() {
                bail!("{}: frontend.trusted is empty: no frontend could log in with a ticket", path.display());
            }
        }
        if let Some(r) = cfg.replication.as_mut() {
            abs(&mut r.cert);
            abs(&mut r.key);
            abs(&mut r.ca);
            match r.role {
                Role::Primary if r.partner.is_none() => {
                    bail!("{}: replication.partner (HOST:PORT) is required for role = \"primary\"", path.display())
                }
                Role::Replica if r.listen.is_none() => {
                    bail!("{}: replication.listen (HOST:PORT) is required for role = \"replica\"", path.display())
                }
                _ => {}
            }
            if r.interval_ms == 0 {
                bail!("{}: replication.interval_ms must be > 0", path.display());
            }
            if r.link_timeout_secs == 0 {
                bail!("{}: replication.link_timeout_secs must be > 0", path.display());
            }
            if r.sync_timeout_ms == 0 {
                bail!("{}: replication.sync_timeout_ms must be > 0", path.display());
            }
        }
        if let Some(a) = cfg.admin.as_mut() {
            match a.token_file.as_mut() {
                Some(t) => abs(t),
                None if !a.listen.ip().is_loopback() => bail!(
                    "{}: admin.token_file is required when admin.listen ({}) is not a loopback address",
                    path.display(),
                    a.listen
                ),
                None => {}
            }
        }
        let sv = &cfg.sieve;
        if let Some(relay) = &sv.relay {
            if !relay.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)) {
                bail!("{}: sieve.relay must be HOST:PORT, got {relay:?}", path.display());
            }
        }
        if sv.max_script_size == 0 || sv.max_scripts == 0 || sv.max_actions == 0 || sv.relay_timeout_secs == 0 {
            bail!(
                "{}: sieve.max_script_size, sieve.max_scripts, sieve.max_actions and sieve.relay_timeout_secs must be > 0",
                path.display()
            );
        }
        let l = &cfg.listen;
        if l.imap.is_none() && l.imaps.is_none() && l.pop3.is_none() && l.pop3s.is_none() && l.lmtp.is_none() {
            bail!("{}: [listen] names no listener (imap, imaps, pop3, pop3s, lmtp)", path.display());
        }
        if (l.imaps.is_some() || l.pop3s.is_some()) && cfg.tls.is_none() {
            bail!("{}: listen.imaps / listen.pop3s need a [tls] section with cert and key", path.display());
        }
        let lim = &cfg.limits;
        if lim.max_line_bytes < 1024 {
            bail!("{}: limits.max_line_bytes must be at least 1024", path.display());
        }
        if lim.max_literal_bytes == 0 || lim.max_connections == 0 {
            bail!("{}: limits.max_literal_bytes and limits.max_connections must be > 0", path.display());
        }
        if lim.imap_idle_timeout_secs < 1800 {
            tracing::warn!(
                value = lim.imap_idle_timeout_secs,
                "limits.imap_idle_timeout_secs is below the 30 minutes RFC 3501 5.4 asks for"
            );
        }
        if cfg.store.expunge_retention_secs < 0 {
            bail!("{}: store.expunge_retention_secs must be >= 0", path.display());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn minimal_config_gets_defaults_and_absolute_paths() {
        let c = load("data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimap = \"127.0.0.1:10143\"\n").unwrap();
        assert!(c.data_dir.is_absolute());
        assert_eq!(c.limits.imap_idle_timeout_secs, 1800);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("data_dir = \"d\"\nusers_file = \"u\"\nbogus = 1\n[listen]\nimap = \"127.0.0.1:1\"\n");
        assert!(format!("{:#}", e.unwrap_err()).contains("bogus"));
        let e = load("data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimaps = \"127.0.0.1:1\"\n");
        assert!(format!("{:#}", e.unwrap_err()).contains("[tls]"));
        let e = load("data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimap = \"nope\"\n");
        assert!(format!("{:#}", e.unwrap_err()).contains("imap"));
        let base = "data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimap = \"127.0.0.1:1\"\n[frontend]\n";
        let e = load(&format!("{base}ticket_key = \"k\"\ntrusted = [\"10.0.0.300\"]\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("trusted"));
        let e = load(&format!("{base}ticket_key = \"k\"\ntrusted = []\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("frontend.trusted"));
        let c = load(&format!("{base}ticket_key = \"k\"\n")).unwrap();
        let f = c.frontend.unwrap();
        assert!(f.ticket_key.is_absolute());
        assert_eq!(f.trusted.len(), 2);
    }

    #[test]
    fn replication_section() {
        let base = "data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimap = \"127.0.0.1:1\"\n[replication]\n";
        let tls = "cert = \"c\"\nkey = \"k\"\nca = \"ca\"\n";
        let c = load(&format!("{base}role = \"primary\"\npartner = \"r:1\"\n{tls}")).unwrap();
        let r = c.replication.as_ref().unwrap();
        assert!(r.ca.is_absolute() && !c.is_replica());
        assert_eq!(r.interval_ms, 200);
        let c = load(&format!("{base}role = \"replica\"\nlisten = \"127.0.0.1:2\"\n{tls}")).unwrap();
        assert!(c.is_replica());
        let e = load(&format!("{base}role = \"primary\"\n{tls}"));
        assert!(format!("{:#}", e.unwrap_err()).contains("replication.partner"));
        let e = load(&format!("{base}role = \"replica\"\n{tls}"));
        assert!(format!("{:#}", e.unwrap_err()).contains("replication.listen"));
        let e = load(&format!("{base}role = \"primary\"\npartner = \"r:1\"\n{tls}bogus = 1\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("bogus"));
        let e = load(&format!("{base}role = \"boss\"\npartner = \"r:1\"\n{tls}"));
        assert!(format!("{:#}", e.unwrap_err()).contains("role"));
        let c = load(&format!(
            "{base}role = \"primary\"\npartner = \"r:1\"\nmode = \"sync\"\nunreachable = \"async\"\n{tls}"
        ))
        .unwrap();
        let r = c.replication.unwrap();
        assert_eq!((r.mode, r.unreachable, r.sync_timeout_ms), (SyncMode::Sync, Unreachable::Async, 5000));
        let e = load(&format!("{base}role = \"primary\"\npartner = \"r:1\"\nmode = \"eventually\"\n{tls}"));
        assert!(format!("{:#}", e.unwrap_err()).contains("mode"));
    }

    #[test]
    fn admin_section() {
        let base = "data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nimap = \"127.0.0.1:1\"\n[admin]\n";
        let c = load(&format!("{base}listen = \"127.0.0.1:10180\"\n")).unwrap();
        assert!(c.admin.unwrap().token_file.is_none());
        let e = load(&format!("{base}listen = \"0.0.0.0:10180\"\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("admin.token_file"));
        let c = load(&format!("{base}listen = \"0.0.0.0:10180\"\ntoken_file = \"t\"\n")).unwrap();
        assert!(c.admin.unwrap().token_file.unwrap().is_absolute());
    }

    #[test]
    fn sieve_section() {
        let base = "data_dir = \"d\"\nusers_file = \"u\"\n[listen]\nmanagesieve = \"127.0.0.1:4190\"\nimap = \"127.0.0.1:1\"\n";
        let c = load(base).unwrap();
        assert_eq!((c.sieve.relay, c.sieve.max_redirects), (None, 4));
        assert_eq!(c.listen.managesieve.unwrap().port(), 4190);
        let c = load(&format!("{base}[sieve]\nrelay = \"localhost:25\"\nredirect_sender = \"null\"\n")).unwrap();
        assert_eq!(c.sieve.redirect_sender, RedirectSender::Null);
        let e = load(&format!("{base}[sieve]\nrelay = \"localhost\"\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("sieve.relay"));
        let e = load(&format!("{base}[sieve]\nrealy = \"localhost:25\"\n"));
        assert!(format!("{:#}", e.unwrap_err()).contains("realy"));
    }
}
