//! The ManageSieve (RFC 5804) connection shell: socket, STARTTLS, timeouts and logins around
//! the socket-less [`mailscale_managesieve::Session`]; scripts live in the user's index
//! (`mailstore`'s `sieve.rs`). Logins take the same path as IMAP's: a frontend ticket when
//! `[frontend]` is set and the password is one, else the users file. On a replica, scripts can
//! be listed and read but every change is answered `NO`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use mailscale_managesieve::{
    Action, AuthError, Authenticator, Login, PlainCredentials, ScriptName, ScriptStore, Session, StoreError,
};
use mailstore::{ScriptError, UserStore, Username};

use crate::auth::Secret;
use crate::net::Conn;
use crate::server::Ctx;

/// Serves one ManageSieve connection until LOGOUT, EOF, timeout or an I/O error.
///
/// # Errors
/// Socket errors, write timeouts and failed TLS handshakes; they end this connection only.
pub async fn serve(ctx: Arc<Ctx>, mut conn: Conn, peer: SocketAddr) -> anyhow::Result<()> {
    let sieve = &ctx.cfg.sieve;
    let config = mailscale_managesieve::Config {
        tls_available: ctx.tls.is_some(),
        allow_plaintext_auth: sieve.plaintext_auth,
        max_line: ctx.cfg.limits.max_line_bytes,
        max_script_size: sieve.max_script_size,
        max_redirects: sieve.max_redirects,
        ..mailscale_managesieve::Config::default()
    };
    let auth = Auth { ctx: ctx.clone(), peer: peer.ip() };
    let mut session = Session::new(config, auth, conn.is_tls());
    conn.send(&session.greeting()).await?;
    let mut logged_in = false;
    loop {
        match conn.fill(conn.read_timeout).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::info!("idle timeout");
                conn.queue(b"BYE \"Idle timeout, closing connection\"\r\n");
                conn.shutdown().await;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let input = conn.take_buffered();
        // Logins (argon2, ticket checks) and script changes (LMDB commits) block.
        let out = crate::blocking(|| session.feed(&input));
        if !logged_in {
            if let Some(owner) = session.owner() {
                tracing::Span::current().record("user", owner);
                tracing::info!("login");
                logged_in = true;
            }
        } else if session.owner().is_none() {
            logged_in = false;
        }
        conn.queue(&out.bytes);
        conn.flush().await?;
        match out.action {
            None => {}
            Some(Action::Close) => {
                conn.shutdown().await;
                return Ok(());
            }
            Some(Action::StartTls) => {
                let Some(acceptor) = ctx.tls.as_ref() else {
                    return Ok(());
                };
                conn.starttls(acceptor).await?;
                conn.send(&session.tls_established()).await?;
            }
        }
    }
}

/// SASL PLAIN credentials checked as an IMAP LOGIN is ([`crate::frontend::authenticate`]).
struct Auth {
    ctx: Arc<Ctx>,
    peer: IpAddr,
}

impl Authenticator for Auth {
    type Store = Scripts;

    fn authenticate(&mut self, c: &PlainCredentials) -> Result<Login<Scripts>, AuthError> {
        if c.authzid.as_deref().is_some_and(|z| z != c.authcid) {
            tracing::info!(user = %c.authcid.escape_debug(), "login refused: proxy authorization is not supported");
            return Err(AuthError::Rejected);
        }
        let pass = Secret::new(c.password.expose().clone());
        // Called inside `crate::blocking`, so waiting for the async check here is allowed.
        let login = crate::frontend::authenticate(&self.ctx, self.peer, c.authcid.clone(), pass);
        match tokio::runtime::Handle::current().block_on(login) {
            Some(user) => Ok(Login { owner: user.as_str().to_owned(), store: Scripts { ctx: self.ctx.clone(), user } }),
            None => {
                tracing::info!(user = %c.authcid.escape_debug(), "login failed");
                Err(AuthError::Rejected)
            }
        }
    }
}

/// One user's scripts in the index, with the `[sieve]` limits.
struct Scripts {
    ctx: Arc<Ctx>,
    user: Username,
}

impl Scripts {
    fn store(&self) -> Result<Arc<UserStore>, StoreError> {
        self.ctx.store.user(&self.user).map_err(|e| failed(&self.user, &e))
    }

    /// The store, for a change: refused on a replica (its primary holds the scripts).
    fn writable(&self) -> Result<Arc<UserStore>, StoreError> {
        if self.ctx.repl.is_replica() {
            return Err(StoreError::Failed(
                "This backend is a replica: scripts are read-only here, change them on the primary".into(),
            ));
        }
        self.store()
    }

    fn script_error(&self, e: ScriptError) -> StoreError {
        match e {
            ScriptError::NoSuchScript(_) => StoreError::NonExistent,
            ScriptError::ScriptExists(_) => StoreError::AlreadyExists,
            ScriptError::Active(_) => StoreError::Active,
            ScriptError::Store(e) => failed(&self.user, &e),
        }
    }
}

fn failed(user: &Username, e: &mailstore::Error) -> StoreError {
    tracing::error!(user = %user, error = %e, "managesieve: script store failed");
    StoreError::TryLater
}

impl ScriptStore for Scripts {
    fn list(&mut self) -> Result<Vec<(ScriptName, bool)>, StoreError> {
        let list = self.store()?.list_scripts().map_err(|e| failed(&self.user, &e))?;
        // Names were validated when stored; one that no longer parses is left out, not fatal.
        Ok(list.into_iter().filter_map(|(n, active)| Some((ScriptName::new(&n).ok()?, active))).collect())
    }

    fn get(&mut self, name: &ScriptName) -> Result<String, StoreError> {
        self.store()?.get_script(name.as_str()).map_err(|e| failed(&self.user, &e))?.ok_or(StoreError::NonExistent)
    }

    fn put(&mut self, name: &ScriptName, script: &str) -> Result<(), StoreError> {
        self.have_space(name, script.len() as u64)?;
        self.writable()?.put_script(name.as_str(), script).map_err(|e| failed(&self.user, &e))?;
        tracing::info!(script = %name.as_str(), size = script.len(), "sieve script stored");
        Ok(())
    }

    fn delete(&mut self, name: &ScriptName) -> Result<(), StoreError> {
        self.writable()?.delete_script(name.as_str()).map_err(|e| self.script_error(e))
    }

    fn rename(&mut self, from: &ScriptName, to: &ScriptName) -> Result<(), StoreError> {
        self.writable()?.rename_script(from.as_str(), to.as_str()).map_err(|e| self.script_error(e))
    }

    fn set_active(&mut self, name: Option<&ScriptName>) -> Result<(), StoreError> {
        self.writable()?.set_active_script(name.map(ScriptName::as_str)).map_err(|e| self.script_error(e))?;
        tracing::info!(script = ?name.map(ScriptName::as_str), "sieve script activated");
        Ok(())
    }

    fn have_space(&mut self, name: &ScriptName, size: u64) -> Result<(), StoreError> {
        let cfg = &self.ctx.cfg.sieve;
        if size > cfg.max_script_size as u64 {
            return Err(StoreError::QuotaMaxSize);
        }
        let (others, _) = self.store()?.script_usage_without(name.as_str()).map_err(|e| failed(&self.user, &e))?;
        if others >= cfg.max_scripts {
            return Err(StoreError::QuotaMaxScripts);
        }
        Ok(())
    }
}
