//! `rolesd follower`: keeps a local copy of the primary's roles database.
//!
//! Two halves joined by a channel: the connection task (TLS, HELLO, frame decoding, reconnect with
//! backoff) and the applier thread, which owns every write to the local database. The applier
//! takes every CHANGE already queued when it wakes up and applies them in one transaction, so a
//! burst costs one commit (one fsync) per batch, not per change.
//!
//! While the primary is unreachable nothing is written: the database keeps serving the last state
//! to its readers (nginx workers, the socketmap), and the status shows the growing lag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mailscale_roles::{Change, Roles, Snapshot};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

use crate::status::Shared;
use crate::token::Token;
use crate::wire::{decode, frame_len, Frame, Hello, WireError};

/// Changes applied per transaction at most.
const MAX_BATCH: usize = 20_000;
/// Silence from the primary after which the connection is given up (heartbeats come every 1 s).
const SILENCE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Work for the applier thread, in stream order.
enum Item {
    Snapshot(Snapshot),
    Change(u64, Change),
    Heartbeat {
        last_seq: u64,
    },
    /// Answered with the last applied sequence once everything queued before it is applied.
    Sync(oneshot::Sender<u64>),
}

pub struct Follower {
    pub roles: Arc<Roles>,
    /// `--primary host:port`.
    pub primary: String,
    pub server_name: ServerName<'static>,
    pub connector: TlsConnector,
    pub token: Token,
    pub state: Shared,
}

impl Follower {
    /// Replicates forever: connects, streams, and reconnects with backoff after any failure.
    pub async fn run(self) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let broken = Arc::new(AtomicBool::new(false));
        let (roles, state, b) = (self.roles.clone(), self.state.clone(), broken.clone());
        std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || apply_loop(&roles, &state, &b, rx))
            .expect("spawn the applier thread");
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            let result = self.session(&tx, &broken).await;
            {
                let mut st = self.state.lock().expect("state lock");
                st.connected = false;
                st.reconnects += 1;
                if let Err(e) = &result {
                    st.last_error = Some(format!("{e:#}"));
                }
            }
            if let Err(e) = result {
                warn!(primary = %self.primary, "replication interrupted: {e:#}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = BACKOFF_MIN;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection: from HELLO until the first failure.
    async fn session(&self, tx: &mpsc::Sender<Item>, broken: &AtomicBool) -> anyhow::Result<()> {
        // Everything received on an earlier connection is applied before asking for more.
        let (ask, answer) = oneshot::channel();
        tx.send(Item::Sync(ask)).await.context("applier gone")?;
        let applied = answer.await.context("applier gone")?;
        broken.store(false, Ordering::SeqCst);

        let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.primary))
            .await
            .with_context(|| format!("connect to {}: timed out", self.primary))?
            .with_context(|| format!("connect to {}", self.primary))?;
        tcp.set_nodelay(true)?;
        let mut tls = timeout(CONNECT_TIMEOUT, self.connector.connect(self.server_name.clone(), tcp))
            .await
            .context("TLS handshake timed out")?
            .context("TLS handshake")?;
        tls.write_all(&Hello { token: self.token.expose().to_string(), last_seq: applied }.encode()).await?;
        tls.flush().await?;
        info!(primary = %self.primary, applied, "connected, HELLO sent");

        let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
        let mut first = true;
        loop {
            let mut used = 0;
            loop {
                match decode(&buf[used..]) {
                    Ok((frame, n)) => {
                        used += n;
                        if first {
                            first = false;
                            if !matches!(frame, Frame::Refused { .. }) {
                                let mut st = self.state.lock().expect("state lock");
                                st.connected = true;
                                st.last_error = None;
                            }
                        }
                        let item = match frame {
                            Frame::Refused { reason } => bail!("the primary refused us: {reason}"),
                            Frame::Snapshot(s) => Item::Snapshot(s),
                            Frame::Change { seq, change } => Item::Change(seq, change),
                            Frame::Heartbeat { last_seq, .. } => Item::Heartbeat { last_seq },
                        };
                        tx.send(item).await.context("applier gone")?;
                    }
                    Err(WireError::Incomplete) => break,
                    Err(e) => bail!("from the primary: {e}"),
                }
            }
            buf.drain(..used);
            if broken.load(Ordering::SeqCst) {
                bail!("applying failed; reconnecting to resynchronise");
            }
            if let Ok(len) = frame_len(&buf) {
                buf.reserve((4 + len).saturating_sub(buf.len()));
            }
            let n = timeout(SILENCE, tls.read_buf(&mut buf))
                .await
                .context("no word from the primary for 5 s")?
                .context("read from the primary")?;
            if n == 0 {
                bail!("the primary closed the connection");
            }
        }
    }
}

/// The applier thread: applies queued items in order, batching consecutive changes.
fn apply_loop(roles: &Roles, state: &Shared, broken: &AtomicBool, mut rx: mpsc::Receiver<Item>) {
    let mut batch: Vec<(u64, Change)> = Vec::new();
    while let Some(item) = rx.blocking_recv() {
        let mut next = Some(item);
        while let Some(item) = next.take() {
            match item {
                Item::Change(seq, change) => {
                    batch.push((seq, change));
                    if batch.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                other => {
                    flush(roles, state, broken, &mut batch);
                    handle(roles, state, broken, other);
                    next = rx.try_recv().ok();
                }
            }
        }
        flush(roles, state, broken, &mut batch);
    }
}

fn flush(roles: &Roles, state: &Shared, broken: &AtomicBool, batch: &mut Vec<(u64, Change)>) {
    if batch.is_empty() {
        return;
    }
    if broken.load(Ordering::SeqCst) {
        batch.clear();
        return;
    }
    let applied = state.lock().expect("state lock").applied_seq;
    // A change already held (re-sent after a reconnect) is skipped, not a gap.
    batch.retain(|(seq, _)| *seq > applied);
    let n = batch.len() as u64;
    let result = roles.apply(batch);
    batch.clear();
    let mut st = state.lock().expect("state lock");
    match result {
        Ok(seq) => {
            st.applied_seq = seq;
            st.changes_applied += n;
            st.primary_seq = st.primary_seq.max(seq);
            st.note_progress();
        }
        Err(e) => {
            warn!("applying changes failed: {e}");
            st.last_error = Some(format!("apply: {e}"));
            broken.store(true, Ordering::SeqCst);
        }
    }
}

fn handle(roles: &Roles, state: &Shared, broken: &AtomicBool, item: Item) {
    match item {
        Item::Change(..) => unreachable!("changes are batched by the caller"),
        Item::Sync(answer) => {
            let _ = answer.send(state.lock().expect("state lock").applied_seq);
        }
        Item::Heartbeat { last_seq } => {
            let mut st = state.lock().expect("state lock");
            st.primary_seq = last_seq;
            st.note_progress();
        }
        Item::Snapshot(snapshot) if !broken.load(Ordering::SeqCst) => {
            let (seq, users) = (snapshot.seq, snapshot.users.len());
            let started = Instant::now();
            let result = roles.replace_all(&snapshot);
            let mut st = state.lock().expect("state lock");
            match result {
                Ok(()) => {
                    info!(seq, users, ms = started.elapsed().as_millis() as u64, "snapshot applied");
                    st.applied_seq = seq;
                    st.snapshots_applied += 1;
                    st.primary_seq = st.primary_seq.max(seq);
                    st.note_progress();
                }
                Err(e) => {
                    warn!("applying a snapshot failed: {e}");
                    st.last_error = Some(format!("snapshot: {e}"));
                    broken.store(true, Ordering::SeqCst);
                }
            }
        }
        Item::Snapshot(_) => {}
    }
}
