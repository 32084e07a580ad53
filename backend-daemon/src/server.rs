//! Listeners, the connection limit, per-connection tracing spans and the purge task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::auth::Users;
use crate::config::Config;
use crate::frontend::Frontends;
use crate::net::{Conn, Stream};
use mailstore::{Store, StoreOptions};

/// What every session needs: config, store, users, TLS.
pub struct Ctx {
    pub cfg: Config,
    pub store: Arc<Store>,
    pub users: Arc<Users>,
    pub tls: Option<TlsAcceptor>,
    /// Ticket logins from the frontends (`[frontend]`), when configured.
    pub frontends: Option<Frontends>,
    /// This backend's role in its pair, the link's health, synchronous writers' waits.
    pub repl: crate::repl::state::ReplState,
    /// Parsed active Sieve scripts of recent recipients (LMTP delivery).
    pub sieve: crate::lmtp::sieve::ScriptCache,
}

impl Ctx {
    /// # Errors
    /// Store, users file or TLS set-up failures, with the config key in the message.
    pub fn new(cfg: Config) -> anyhow::Result<Arc<Ctx>> {
        let store = Store::open(
            &cfg.data_dir,
            StoreOptions {
                open_index_cache: cfg.store.open_index_cache,
                expunge_retention_secs: cfg.store.expunge_retention_secs,
                quota_bytes: cfg.store.quota_bytes,
            },
        )
        .with_context(|| format!("data_dir {}", cfg.data_dir.display()))?;
        let users = Users::load(&cfg.users_file)?;
        let tls = match &cfg.tls {
            Some(t) => Some(crate::tls::acceptor(&t.cert, &t.key)?),
            None => None,
        };
        if let Some(r) = &cfg.replication {
            // Fail at start, not in the worker, on unreadable or mismatched PEM files.
            drop(crate::repl::conn::connector(r)?);
            drop(crate::repl::conn::acceptor(r)?);
        }
        let repl = crate::repl::state::ReplState::load(&cfg.data_dir, cfg.replication.as_ref())?;
        let frontends = match &cfg.frontend {
            Some(f) => {
                let key = mailscale_ticket::TicketKey::from_file(&f.ticket_key).context("frontend.ticket_key")?;
                Some(Frontends::new(key, f.trusted.clone()))
            }
            None => None,
        };
        if cfg.replication.as_ref().is_some_and(|r| r.partner.is_some()) {
            // A change wakes the sync worker: it travels at once, not at the next poll.
            let kick = repl.kick.clone();
            store.on_change(Box::new(move || kick.notify_one()));
        }
        Ok(Arc::new(Ctx {
            cfg,
            store: Arc::new(store),
            users: Arc::new(users),
            tls,
            frontends,
            repl,
            sieve: Default::default(),
        }))
    }
}

/// The protocols a listener can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Imap,
    Pop3,
    Lmtp,
    ManageSieve,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Imap => "imap",
            Proto::Pop3 => "pop3",
            Proto::Lmtp => "lmtp",
            Proto::ManageSieve => "managesieve",
        }
    }

    fn busy_reply(self) -> &'static [u8] {
        match self {
            Proto::Imap => b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
            Proto::Pop3 => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            Proto::Lmtp => b"421 4.3.2 Too many connections, try again later\r\n",
            Proto::ManageSieve => b"BYE (TRYLATER) \"Too many connections, try again later\"\r\n",
        }
    }
}

/// Binds every configured listener, then serves until the process is stopped.
///
/// # Errors
/// A listener that cannot be bound (named with its address).
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let l = ctx.cfg.listen.clone();
    let limit = Arc::new(Semaphore::new(ctx.cfg.limits.max_connections));
    let mut listeners = Vec::new();
    for (addr, proto, implicit_tls) in [
        (l.imap, Proto::Imap, false),
        (l.imaps, Proto::Imap, true),
        (l.pop3, Proto::Pop3, false),
        (l.pop3s, Proto::Pop3, true),
        (l.lmtp, Proto::Lmtp, false),
        (l.managesieve, Proto::ManageSieve, false),
    ] {
        if let Some(addr) = addr {
            let sock = listen(addr).with_context(|| {
                format!("cannot listen on {addr} ({}{})", proto.name(), if implicit_tls { "s" } else { "" })
            })?;
            tracing::info!(%addr, proto = proto.name(), tls = implicit_tls, "listening");
            listeners.push((sock, proto, implicit_tls));
        }
    }
    spawn_purge(ctx.clone());
    crate::lmtp::sieve::resend_outbox(&ctx);
    if let Some(r) = &ctx.cfg.replication {
        // Both halves wherever they are configured: the role decides at run time which one
        // works (a primary's listener fences off stale partners; a replica's worker idles).
        if r.listen.is_some() {
            let sock = crate::repl::server::bind(&ctx).await?;
            let c = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::repl::server::run(c, sock).await {
                    tracing::error!(error = %format!("{e:#}"), "replication listener stopped");
                }
            });
        }
        if r.partner.is_some() {
            let c = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::repl::client::run(c).await {
                    tracing::error!(error = %format!("{e:#}"), "replication worker stopped");
                }
            });
        }
    }
    if let Some(a) = &ctx.cfg.admin {
        let sock = listen(a.listen).with_context(|| format!("cannot listen on {} (admin.listen)", a.listen))?;
        tracing::info!(addr = %a.listen, proto = "admin", "listening");
        tokio::spawn(crate::admin::run(ctx.clone(), sock));
    }
    let mut tasks = Vec::new();
    for (sock, proto, implicit_tls) in listeners {
        let ctx = ctx.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(accept_loop(ctx, sock, proto, implicit_tls, limit)));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// A listening socket with SO_REUSEADDR (restart without waiting for TIME_WAIT) and a backlog
/// sized for login storms after a frontend failover, not the 128 of a plain `bind`.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    sock.set_nodelay(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// The next connection, with TCP_NODELAY (latency matters more than packet count here); a
/// failed accept (e.g. out of file descriptors) is logged and retried after a short pause.
pub async fn accept(sock: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match sock.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return (tcp, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_loop(ctx: Arc<Ctx>, sock: TcpListener, proto: Proto, implicit_tls: bool, limit: Arc<Semaphore>) {
    loop {
        let (tcp, peer) = accept(&sock).await;
        let ctx = ctx.clone();
        let permit = limit.clone().try_acquire_owned();
        let span = tracing::info_span!("conn", proto = proto.name(), %peer, session = tracing::field::Empty, user = tracing::field::Empty);
        tokio::spawn(
            async move {
                let Ok(_permit) = permit else {
                    tracing::warn!("connection refused: max_connections reached");
                    refuse(tcp, proto).await;
                    return;
                };
                serve(ctx, tcp, peer, proto, implicit_tls).await;
            }
            .instrument(span),
        );
    }
}

async fn refuse(mut tcp: TcpStream, proto: Proto) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(proto.busy_reply())).await;
}

async fn serve(ctx: Arc<Ctx>, tcp: TcpStream, peer: SocketAddr, proto: Proto, implicit_tls: bool) {
    let lim = &ctx.cfg.limits;
    let read_timeout = Duration::from_secs(match proto {
        Proto::Imap => lim.imap_idle_timeout_secs,
        Proto::Pop3 => lim.pop3_timeout_secs,
        Proto::Lmtp => lim.lmtp_timeout_secs,
        Proto::ManageSieve => lim.managesieve_timeout_secs,
    });
    let write_timeout = Duration::from_secs(lim.write_timeout_secs);
    let stream = if implicit_tls {
        let Some(acceptor) = ctx.tls.as_ref() else {
            return;
        };
        match tokio::time::timeout(write_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Stream::Tls(Box::new(s)),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                return;
            }
        }
    } else {
        Stream::Plain(tcp)
    };
    let conn = Conn::new(stream, read_timeout, write_timeout);
    tracing::debug!("connected");
    let result = match proto {
        Proto::Imap => crate::imap::serve(ctx, conn, peer).await,
        Proto::Pop3 => crate::pop3::serve(ctx, conn, peer).await,
        Proto::Lmtp => crate::lmtp::serve(ctx, conn, peer).await,
        Proto::ManageSieve => crate::managesieve::serve(ctx, conn, peer).await,
    };
    match result {
        Ok(()) => tracing::debug!("disconnected"),
        Err(e) => tracing::info!(error = %format!("{e:#}"), "connection ended"),
    }
}

fn spawn_purge(ctx: Arc<Ctx>) {
    let every = Duration::from_secs(ctx.cfg.store.purge_interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let store = ctx.store.clone();
            match tokio::task::spawn_blocking(move || store.purge_all()).await {
                Ok(n) if n > 0 => {
                    tracing::info!(purged = n, "expunged messages past retention purged")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "purge task failed"),
            }
        }
    });
}
