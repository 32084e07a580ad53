//! This instance's place in its pair, at run time: its role and epoch (persisted, so that a
//! promotion or demotion survives a restart), the link's health, and what synchronous writers
//! wait on.
//!
//! # Roles and epochs (fencing)
//!
//! The config's `role` is only where an instance starts the first time. `mailctl failover`
//! promotes the partner with a higher *epoch*; the epoch travels in every link's `Hello`. A
//! primary that meets a primary with a higher epoch (the old primary coming back after a
//! failover) demotes itself before it has sent anything, so a returning backend can never
//! overwrite the side that took over; it becomes the replica and is brought up to date, its
//! unreplicated messages rescued first (see `client.rs`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use mailstore::{Store, Username};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::config::{Replication, Role, SyncMode, Unreachable};

const ROLE_FILE: &str = "role.json";
/// Recent per-user lags kept for the percentiles in the status.
const LAG_SAMPLES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleFile {
    pub role: Role,
    pub epoch: u64,
}

/// An operator's "sync this user now" (`mailctl repl sync`), answered with the ops sent.
pub struct SyncRequest {
    pub user: Username,
    pub full: bool,
    pub reply: oneshot::Sender<Result<usize, String>>,
    /// Attempts that met a dead link so far.
    pub attempts: u8,
}

/// Why a synchronous write was not acknowledged.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReplicated {
    /// The replica is known to be unreachable (refused before anything was stored).
    Unreachable,
    /// The write is stored here but the replica did not confirm it in time.
    Timeout,
}

pub struct ReplState {
    /// Held (shared) by each `Apply` the replica runs, taken (exclusive) by a promotion: a
    /// promotion waits for in-flight applies, and no apply of the old primary starts after it.
    pub apply_gate: std::sync::RwLock<()>,
    dir: PathBuf,
    role: Mutex<RoleFile>,
    replica: AtomicBool,
    cfg: Option<Replication>,
    /// Wakes the sync worker (a synchronous write waiting, a role change).
    pub kick: std::sync::Arc<Notify>,
    /// user → highest change-log mark known to be on the replica.
    synced: Mutex<HashMap<Username, u64>>,
    synced_tx: watch::Sender<u64>,
    link_down: AtomicBool,
    degraded: AtomicBool,
    /// After a promotion: ask the partner which users it holds, so users it has and this side
    /// lacks are compared (and rescued) too.
    pub survey: AtomicBool,
    last_error: Mutex<Option<String>>,
    last_sync_ms: AtomicU64,
    synced_users: AtomicU64,
    lags: Mutex<VecDeque<u64>>,
    requests: Mutex<Option<mpsc::Receiver<SyncRequest>>>,
    request_tx: mpsc::Sender<SyncRequest>,
}

impl ReplState {
    /// Loads the persisted role from `data_dir/repl/role.json`, or starts from the config's.
    ///
    /// # Errors
    /// An unreadable or malformed role file.
    pub fn load(data_dir: &Path, cfg: Option<&Replication>) -> anyhow::Result<ReplState> {
        let dir = data_dir.join("repl");
        let path = dir.join(ROLE_FILE);
        let configured = RoleFile { role: cfg.map_or(Role::Primary, |r| r.role), epoch: 0 };
        let role = match std::fs::read(&path) {
            Ok(bytes) => {
                let f: RoleFile = serde_json::from_slice(&bytes).with_context(|| {
                    format!("{}: not a role file (delete it to start from the config)", path.display())
                })?;
                if f.role != configured.role {
                    tracing::warn!(role = ?f.role, epoch = f.epoch, configured = ?configured.role,
                        "role changed by a failover earlier; the persisted role wins over the config");
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => configured,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let (request_tx, rx) = mpsc::channel(16);
        Ok(ReplState {
            apply_gate: std::sync::RwLock::new(()),
            dir,
            replica: AtomicBool::new(role.role == Role::Replica),
            role: Mutex::new(role),
            cfg: cfg.cloned(),
            kick: std::sync::Arc::new(Notify::new()),
            synced: Mutex::new(HashMap::new()),
            synced_tx: watch::channel(0).0,
            link_down: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            survey: AtomicBool::new(false),
            last_error: Mutex::new(None),
            last_sync_ms: AtomicU64::new(0),
            synced_users: AtomicU64::new(0),
            lags: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Some(rx)),
            request_tx,
        })
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Acquire)
    }

    pub fn role(&self) -> RoleFile {
        *self.role.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> Option<&Replication> {
        self.cfg.as_ref()
    }

    fn set(&self, new: RoleFile) -> anyhow::Result<()> {
        let mut cur = self.role.lock().unwrap_or_else(|e| e.into_inner());
        if *cur == new {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("role.json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&new)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(ROLE_FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        *cur = new;
        self.replica.store(new.role == Role::Replica, Ordering::Release);
        drop(cur);
        self.kick.notify_one();
        Ok(())
    }

    /// Becomes the primary with an epoch above every one seen so far (or `epoch`, if higher).
    /// Every user is compared at the next sync: a replica logged nothing of what it applied.
    ///
    /// # Errors
    /// The role file cannot be written (nothing changed then).
    pub fn promote(&self, store: &Store, epoch: Option<u64>) -> anyhow::Result<RoleFile> {
        let _no_applies = self.apply_gate.write().unwrap_or_else(|e| e.into_inner());
        let cur = self.role();
        let new = RoleFile { role: Role::Primary, epoch: epoch.unwrap_or(0).max(cur.epoch + 1) };
        let users = store.users()?;
        for u in &users {
            store.mark_user(u)?;
        }
        self.survey.store(true, Ordering::Release);
        self.set(new)?;
        tracing::warn!(epoch = new.epoch, users = users.len(), "promoted to primary; every user will be compared");
        Ok(new)
    }

    /// Becomes the replica at `epoch` (at least the current one).
    ///
    /// # Errors
    /// The role file cannot be written.
    pub fn demote(&self, epoch: u64) -> anyhow::Result<RoleFile> {
        let cur = self.role();
        let new = RoleFile { role: Role::Replica, epoch: epoch.max(cur.epoch) };
        self.set(new)?;
        if cur.role == Role::Primary {
            tracing::warn!(epoch = new.epoch, "demoted to replica; the partner is the primary");
        }
        Ok(new)
    }

    /// A replica learning the primary's epoch.
    ///
    /// # Errors
    /// The role file cannot be written.
    pub fn follow(&self, epoch: u64) -> anyhow::Result<()> {
        let cur = self.role();
        if epoch > cur.epoch {
            self.set(RoleFile { role: cur.role, epoch })?;
        }
        Ok(())
    }

    pub fn take_requests(&self) -> Option<mpsc::Receiver<SyncRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Asks the worker to sync `user` now; waits for its answer.
    ///
    /// # Errors
    /// A text for the operator.
    pub async fn request_sync(&self, user: Username, full: bool) -> Result<usize, String> {
        if self.is_replica() {
            return Err("this backend is a replica; run the sync on the primary".into());
        }
        if self.cfg.as_ref().is_none_or(|r| r.partner.is_none()) {
            return Err("no replication partner configured".into());
        }
        let (tx, rx) = oneshot::channel();
        self.request_tx
            .send(SyncRequest { user, full, reply: tx, attempts: 0 })
            .await
            .map_err(|_| "the sync worker is not running".to_string())?;
        self.kick.notify_one();
        rx.await.map_err(|_| "the sync worker dropped the request".to_string())?
    }

    // --- the worker reports ---

    pub fn set_link(&self, up: bool, error: Option<String>) {
        self.link_down.store(!up, Ordering::Release);
        if let Some(e) = error {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        if !up {
            // Wake synchronous writers so that they apply the unreachable policy now.
            self.synced_tx.send_modify(|v| *v += 1);
        }
    }

    pub fn link_up(&self) -> bool {
        !self.link_down.load(Ordering::Acquire)
    }

    /// `user` is on the replica up to `mark`; `lag_ms` since its oldest change was logged.
    pub fn synced(&self, user: &Username, mark: u64, lag_ms: Option<u64>) {
        {
            let mut m = self.synced.lock().unwrap_or_else(|e| e.into_inner());
            let e = m.entry(user.clone()).or_insert(0);
            *e = (*e).max(mark);
        }
        self.last_sync_ms.store(mailstore::repl::log::now_ms(), Ordering::Release);
        self.synced_users.fetch_add(1, Ordering::Relaxed);
        if let Some(l) = lag_ms {
            let mut lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
            if lags.len() == LAG_SAMPLES {
                lags.pop_front();
            }
            lags.push_back(l);
        }
        self.synced_tx.send_modify(|v| *v += 1);
    }

    /// Nothing pending and the link up: a degraded synchronous pair is whole again.
    pub fn caught_up(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::warn!("synchronous replication restored: the replica holds every change again");
        }
    }

    // --- synchronous mode, called by LMTP and APPEND ---

    fn sync_mode(&self) -> Option<&Replication> {
        self.cfg.as_ref().filter(|r| r.mode == SyncMode::Sync && r.partner.is_some())
    }

    /// Before storing a write: in synchronous mode with the `tempfail` policy and the replica
    /// known to be down, refuse (nothing stored, the sender retries).
    ///
    /// # Errors
    /// [`NotReplicated::Unreachable`].
    pub fn admit_write(&self) -> Result<(), NotReplicated> {
        match self.sync_mode() {
            Some(r) if r.unreachable == Unreachable::Tempfail && !self.link_up() && !self.is_replica() => {
                Err(NotReplicated::Unreachable)
            }
            _ => Ok(()),
        }
    }

    /// After a write to `user` is durable here: in synchronous mode, waits until the replica
    /// holds it. With the `async` policy a replica that is down or late only degrades the pair
    /// (logged once, visible in the status); with `tempfail` the caller must not acknowledge.
    ///
    /// # Errors
    /// [`NotReplicated`] under the `tempfail` policy.
    pub async fn wait_replicated(&self, store: &Store, user: &Username) -> Result<(), NotReplicated> {
        let Some(r) = self.sync_mode() else {
            return Ok(());
        };
        if self.is_replica() {
            return Ok(());
        }
        let Ok(Some(mark)) = crate::blocking(|| store.mark_of(user)) else {
            return Ok(());
        };
        let mut rx = self.synced_tx.subscribe();
        self.kick.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(r.sync_timeout_ms);
        loop {
            let done = self.synced.lock().unwrap_or_else(|e| e.into_inner()).get(user).is_some_and(|m| *m >= mark);
            if done {
                return Ok(());
            }
            let failed = if !self.link_up() {
                Some(NotReplicated::Unreachable)
            } else {
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(_) => None,
                    Err(_) => Some(NotReplicated::Timeout),
                }
            };
            if let Some(why) = failed {
                return match r.unreachable {
                    Unreachable::Tempfail => Err(why),
                    Unreachable::Async => {
                        if !self.degraded.swap(true, Ordering::AcqRel) {
                            tracing::error!(reason = ?why,
                                "ALERT synchronous replication degraded to asynchronous: acknowledging writes the replica does not hold yet");
                        }
                        Ok(())
                    }
                };
            }
        }
    }

    /// The status `mailctl repl status` shows (JSON).
    pub fn status(&self, store: &Store, name: &str) -> serde_json::Value {
        let role = self.role();
        let pending = store.pending_users().unwrap_or(0);
        let now = mailstore::repl::log::now_ms();
        let oldest = store.oldest_pending_ms().ok().flatten();
        let lag_s = oldest.map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
        let (p50, p99, n) = {
            let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<u64> = lags.iter().copied().collect();
            v.sort_unstable();
            let pct = |p: f64| v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied();
            (pct(0.50), pct(0.99), v.len())
        };
        let cfg = self.cfg.as_ref();
        serde_json::json!({
            "name": name,
            "role": match role.role { Role::Primary => "primary", Role::Replica => "replica" },
            "epoch": role.epoch,
            "partner": cfg.and_then(|r| r.partner.clone()),
            "replicating": cfg.is_some(),
            "mode": match cfg.map(|r| r.mode) { Some(SyncMode::Sync) => "sync", _ => "async" },
            "unreachable_policy": match cfg.map(|r| r.unreachable) { Some(Unreachable::Async) => "async", _ => "tempfail" },
            "link": if role.role == Role::Replica { "n/a" } else if self.link_up() { "up" } else { "down" },
            "pending_users": if role.role == Role::Replica { 0 } else { pending },
            "lag_seconds": if role.role == Role::Replica { 0.0 } else { lag_s },
            "degraded": self.degraded.load(Ordering::Acquire),
            "last_sync_unix_ms": self.last_sync_ms.load(Ordering::Acquire),
            "synced_users_total": self.synced_users.load(Ordering::Relaxed),
            "lag_ms_p50": p50,
            "lag_ms_p99": p99,
            "lag_samples": n,
            "last_error": self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        })
    }

    /// Drops the recorded lag samples (benchmarks measure one phase at a time).
    pub fn reset_lags(&self) {
        self.lags.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
