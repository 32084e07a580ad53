//! The LMDB environment behind [`Roles`], its writer and its readers.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use heed::byteorder::BigEndian;
use heed::types::{SerdeBincode, Str, U64};
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::types::validate_legacy_address;
use crate::{
    validate_backend_name, validate_username, Backend, Change, Result, RolesError, Route, UserRole, UserState,
};

/// Virtual size of the memory map. 1 GiB holds millions of users; the file only grows as used.
/// Writers and readers use the same size, so a reader never meets a map resized under it.
const MAP_SIZE: usize = 1 << 30;

type Users = Database<Str, SerdeBincode<UserRole>>;
type Backends = Database<Str, SerdeBincode<Backend>>;
type Changelog = Database<U64<BigEndian>, SerdeBincode<Change>>;
/// Replication bookkeeping (see `replica.rs`): `last_seq` (kept when the changelog is trimmed or
/// replaced by a snapshot) and `oldest_seq` (the first sequence still in the changelog).
pub(crate) type Meta = Database<Str, U64<BigEndian>>;
pub(crate) const META_LAST_SEQ: &str = "last_seq";
pub(crate) const META_OLDEST_SEQ: &str = "oldest_seq";

/// A handle on the roles database in one directory.
///
/// Cheap to share (`&Roles` from many threads); each lookup is one short read transaction, so a
/// reader sees every change committed before it started, without reopening.
///
/// Processes that fork (nginx: the master forks its workers) must open the database *after* the
/// fork, in the process that uses it (lazily on a worker's first lookup, or in its
/// `init_process`): LMDB environments must not cross a `fork()`. One process opens a given
/// directory once (heed refuses a second concurrent open of the same path).
pub struct Roles {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) users: Users,
    pub(crate) backends: Backends,
    pub(crate) changelog: Changelog,
    /// Absent in a database created before replication existed and opened read-only.
    pub(crate) meta: Option<Meta>,
    pub(crate) read_only: bool,
    dir: PathBuf,
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles").field("dir", &self.dir).field("read_only", &self.read_only).finish()
    }
}

/// Opens the environment: the one place this crate needs `unsafe`.
#[allow(unsafe_code)]
fn open_env(dir: &Path, read_only: bool) -> Result<Env<WithoutTls>> {
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(MAP_SIZE).max_dbs(8).max_readers(4096);
    // SAFETY: (1) READ_ONLY is a safe LMDB flag (no write transaction can be started; LMDB still
    // records readers in lock.mdb). (2) The map stays valid because the files are only changed
    // through LMDB itself (mailctl, the roles follower, this crate), never truncated or rewritten
    // by other means, and live on a local filesystem; callers open after fork() (see `Roles`).
    let env = unsafe {
        if read_only {
            opts.flags(EnvFlags::READ_ONLY);
        }
        opts.open(dir)
    };
    env.map_err(|source| RolesError::Open { dir: dir.display().to_string(), source })
}

impl Roles {
    /// Opens the database for reading and writing, creating the directory and the databases on
    /// first use (files are created mode 0600: run writers as the user that owns them).
    ///
    /// # Errors
    /// [`RolesError::Open`] naming the directory when LMDB cannot open it.
    pub fn open(dir: &Path) -> Result<Roles> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RolesError::Open { dir: dir.display().to_string(), source: heed::Error::Io(e) })?;
        let env = open_env(dir, false)?;
        let mut wtxn = env.write_txn()?;
        let users = env.create_database(&mut wtxn, Some("users"))?;
        let backends = env.create_database(&mut wtxn, Some("backends"))?;
        let changelog = env.create_database(&mut wtxn, Some("changelog"))?;
        let meta = Some(env.create_database(&mut wtxn, Some("meta"))?);
        wtxn.commit()?;
        Ok(Roles { env, users, backends, changelog, meta, read_only: false, dir: dir.to_path_buf() })
    }

    /// Opens an existing database as a pure reader (the nginx module's workers): it never starts a
    /// write transaction. LMDB still registers readers in `lock.mdb`, so that file must be
    /// writable by the reading process.
    ///
    /// # Errors
    /// [`RolesError::Open`] when the directory cannot be opened, [`RolesError::NotInitialised`]
    /// when it holds no roles databases.
    pub fn open_read_only(dir: &Path) -> Result<Roles> {
        let env = open_env(dir, true)?;
        let rtxn = env.read_txn()?;
        let missing = || RolesError::NotInitialised(dir.display().to_string());
        let users = env.open_database(&rtxn, Some("users"))?.ok_or_else(missing)?;
        let backends = env.open_database(&rtxn, Some("backends"))?.ok_or_else(missing)?;
        let changelog = env.open_database(&rtxn, Some("changelog"))?.ok_or_else(missing)?;
        let meta = env.open_database(&rtxn, Some("meta"))?;
        // Committing a read txn makes the opened database handles valid for the whole Env.
        rtxn.commit()?;
        Ok(Roles { env, users, backends, changelog, meta, read_only: true, dir: dir.to_path_buf() })
    }

    /// The id of the last committed write transaction: it changes whenever anything in the
    /// database changes, so a reader may keep what it derived from a lookup for as long as the
    /// generation stays the same. Reads the meta page only (no read transaction). Take it
    /// *before* the lookup whose result is kept, so a commit in between makes it stale, not wrong.
    pub fn generation(&self) -> u64 {
        self.env.info().last_txn_id as u64
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Where does `user` live? The user's role, backend and the backend's partner, read in one
    /// snapshot. `Ok(None)` for a user without a role (or whose backend vanished).
    ///
    /// # Errors
    /// [`RolesError::InvalidUsername`]; LMDB errors.
    pub fn lookup(&self, user: &str) -> Result<Option<Route>> {
        let user = validate_username(user)?;
        let rtxn = self.env.read_txn()?;
        let Some(role) = self.users.get(&rtxn, &user)? else {
            return Ok(None);
        };
        let Some(backend) = self.backends.get(&rtxn, &role.backend)? else {
            return Ok(None);
        };
        let partner = match &backend.partner {
            Some(p) => self.backends.get(&rtxn, p)?,
            None => None,
        };
        Ok(Some(Route { user: role, backend, partner }))
    }

    /// # Errors
    /// [`RolesError::InvalidUsername`]; LMDB errors.
    pub fn get_user(&self, user: &str) -> Result<Option<UserRole>> {
        let user = validate_username(user)?;
        let rtxn = self.env.read_txn()?;
        Ok(self.users.get(&rtxn, &user)?)
    }

    /// Every user with their role, in name order.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn list_users(&self) -> Result<Vec<(String, UserRole)>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.users.iter(&rtxn)? {
            let (name, role) = item?;
            out.push((name.to_string(), role));
        }
        Ok(out)
    }

    /// # Errors
    /// LMDB errors.
    pub fn user_count(&self) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        Ok(self.users.len(&rtxn)?)
    }

    /// # Errors
    /// [`RolesError::InvalidBackendName`]; LMDB errors.
    pub fn get_backend(&self, name: &str) -> Result<Option<Backend>> {
        let name = validate_backend_name(name)?;
        let rtxn = self.env.read_txn()?;
        Ok(self.backends.get(&rtxn, &name)?)
    }

    /// Every backend, in name order.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn list_backends(&self) -> Result<Vec<Backend>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.backends.iter(&rtxn)? {
            out.push(item?.1);
        }
        Ok(out)
    }

    /// Sequence number of the last change, 0 when nothing was ever changed.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn last_seq(&self) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        self.last_seq_in(&rtxn)
    }

    /// The last sequence as `txn` sees it: the changelog's last entry, or the one remembered in
    /// `meta` when trimming or a snapshot left the changelog without it.
    pub(crate) fn last_seq_in(&self, txn: &RoTxn<'_>) -> Result<u64> {
        let logged = self.changelog.last(txn)?.map_or(0, |(seq, _)| seq);
        let remembered = self.meta_get(txn, META_LAST_SEQ)?.unwrap_or(0);
        Ok(logged.max(remembered))
    }

    pub(crate) fn meta_get(&self, txn: &RoTxn<'_>, key: &str) -> Result<Option<u64>> {
        match &self.meta {
            Some(meta) => Ok(meta.get(txn, key)?),
            None => Ok(None),
        }
    }

    /// Up to `limit` changelog entries with a sequence above `after`, oldest first (what a
    /// follower replays).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>> {
        let rtxn = self.env.read_txn()?;
        let range = (Bound::Excluded(after), Bound::Unbounded);
        let mut out = Vec::new();
        for item in self.changelog.range(&rtxn, &range)?.take(limit) {
            out.push(item?);
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction: either all its changes (and their changelog entries)
    /// are committed, or, when `f` or the commit fails, none.
    ///
    /// # Errors
    /// [`RolesError::ReadOnly`] on a read-only handle; whatever `f` returns; LMDB errors.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<R>) -> Result<R> {
        if self.read_only {
            return Err(RolesError::ReadOnly);
        }
        let txn = self.env.write_txn()?;
        let next_seq = self.last_seq_in(&txn)? + 1;
        let mut w = Writer { roles: self, txn, next_seq };
        let out = f(&mut w)?;
        w.txn.commit()?;
        Ok(out)
    }

    /// Puts `user` on `role.backend` (see [`Writer::set_user`]).
    ///
    /// # Errors
    /// As [`Writer::set_user`].
    pub fn set_user(&self, user: &str, role: UserRole) -> Result<()> {
        self.write(|w| w.set_user(user, role))
    }

    /// Removes a user's role; `Ok(false)` when there was none.
    ///
    /// # Errors
    /// As [`Writer::delete_user`].
    pub fn delete_user(&self, user: &str) -> Result<bool> {
        self.write(|w| w.delete_user(user))
    }

    /// Adds or replaces a backend (see [`Writer::set_backend`]).
    ///
    /// # Errors
    /// As [`Writer::set_backend`].
    pub fn set_backend(&self, backend: Backend) -> Result<()> {
        self.write(|w| w.set_backend(backend))
    }

    /// Removes a backend nobody uses; `Ok(false)` when there was none.
    ///
    /// # Errors
    /// As [`Writer::delete_backend`].
    pub fn delete_backend(&self, name: &str) -> Result<bool> {
        self.write(|w| w.delete_backend(name))
    }
}

/// An open write transaction on the roles database; every change it makes is logged.
pub struct Writer<'a> {
    roles: &'a Roles,
    txn: RwTxn<'a>,
    next_seq: u64,
}

impl Writer<'_> {
    fn log(&mut self, change: &Change) -> Result<()> {
        self.roles.changelog.put(&mut self.txn, &self.next_seq, change)?;
        self.next_seq += 1;
        Ok(())
    }

    /// Puts `user` (validated, lower-cased) on `role.backend`.
    ///
    /// # Errors
    /// [`RolesError::InvalidUsername`], [`RolesError::UnknownBackend`] when the backend is not in
    /// the database, [`RolesError::Invalid`] for a bad legacy address; LMDB errors.
    pub fn set_user(&mut self, user: &str, role: UserRole) -> Result<()> {
        let user = validate_username(user)?;
        let backend = validate_backend_name(&role.backend)?;
        if self.roles.backends.get(&self.txn, &backend)?.is_none() {
            return Err(RolesError::UnknownBackend(role.backend));
        }
        if let UserState::Legacy { address } = &role.state {
            validate_legacy_address(address)?;
        }
        let role = UserRole { backend, ..role };
        self.roles.users.put(&mut self.txn, &user, &role)?;
        self.log(&Change::SetUser { user, role })
    }

    /// # Errors
    /// [`RolesError::InvalidUsername`]; LMDB errors.
    pub fn delete_user(&mut self, user: &str) -> Result<bool> {
        let user = validate_username(user)?;
        if !self.roles.users.delete(&mut self.txn, &user)? {
            return Ok(false);
        }
        self.log(&Change::DeleteUser { user })?;
        Ok(true)
    }

    /// # Errors
    /// [`RolesError::InvalidUsername`]; LMDB errors.
    pub fn get_user(&self, user: &str) -> Result<Option<UserRole>> {
        Ok(self.roles.users.get(&self.txn, &validate_username(user)?)?)
    }

    /// Adds or replaces a backend (name validated and lower-cased).
    ///
    /// # Errors
    /// [`RolesError::InvalidBackendName`], [`RolesError::Invalid`] for a zero port or a backend
    /// that is its own partner, [`RolesError::UnknownBackend`] for an unknown partner.
    pub fn set_backend(&mut self, backend: Backend) -> Result<()> {
        let name = validate_backend_name(&backend.name)?;
        for (proto, port) in [("imap", backend.imap), ("pop3", backend.pop3), ("lmtp", backend.lmtp)] {
            if port == 0 {
                return Err(RolesError::Invalid(format!("backend {name}: {proto} port 0")));
            }
        }
        let partner = match &backend.partner {
            None => None,
            Some(p) => {
                let p = validate_backend_name(p)?;
                if p == name {
                    return Err(RolesError::Invalid(format!("backend {name} cannot be its own partner")));
                }
                if self.roles.backends.get(&self.txn, &p)?.is_none() {
                    return Err(RolesError::UnknownBackend(p));
                }
                Some(p)
            }
        };
        let backend = Backend { name, partner, ..backend };
        self.roles.backends.put(&mut self.txn, &backend.name, &backend)?;
        self.log(&Change::SetBackend(backend))
    }

    /// # Errors
    /// [`RolesError::InvalidBackendName`]; LMDB errors.
    pub fn get_backend(&self, name: &str) -> Result<Option<Backend>> {
        Ok(self.roles.backends.get(&self.txn, &validate_backend_name(name)?)?)
    }

    /// Removes a backend that no user lives on and no backend names as partner.
    ///
    /// # Errors
    /// [`RolesError::BackendInUse`]; [`RolesError::InvalidBackendName`]; LMDB errors.
    pub fn delete_backend(&mut self, name: &str) -> Result<bool> {
        let name = validate_backend_name(name)?;
        let mut users = 0;
        for item in self.roles.users.iter(&self.txn)? {
            if item?.1.backend == name {
                users += 1;
            }
        }
        let mut partnered = false;
        for item in self.roles.backends.iter(&self.txn)? {
            partnered |= item?.1.partner.as_deref() == Some(name.as_str());
        }
        if users > 0 || partnered {
            return Err(RolesError::BackendInUse { name, users });
        }
        if !self.roles.backends.delete(&mut self.txn, &name)? {
            return Ok(false);
        }
        self.log(&Change::DeleteBackend { name })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{active, backend};
    use crate::BackendState;

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Roles>();
    }

    #[test]
    fn set_lookup_delete() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        assert_eq!(roles.last_seq().unwrap(), 0);
        roles.set_backend(backend("A2", None)).unwrap();
        roles.set_backend(backend("a1", Some("A2"))).unwrap();
        roles.set_user("Alice@Example.org", active("A1")).unwrap();

        let route = roles.lookup("alice@example.ORG").unwrap().unwrap();
        assert_eq!(route.user, active("a1"));
        assert_eq!(route.backend.name, "a1");
        assert_eq!(route.partner.as_ref().unwrap().name, "a2");
        assert_eq!(route.serving().unwrap().name, "a1");
        assert_eq!(roles.lookup("nobody").unwrap(), None);
        assert!(matches!(roles.lookup("*)(uid=*"), Err(RolesError::InvalidUsername(_))));

        assert_eq!(roles.list_users().unwrap(), vec![("alice@example.org".to_string(), active("a1"))]);
        assert_eq!(roles.list_backends().unwrap().len(), 2);
        assert_eq!(roles.last_seq().unwrap(), 3);

        assert!(roles.delete_user("ALICE@example.org").unwrap());
        assert!(!roles.delete_user("alice@example.org").unwrap());
        assert_eq!(roles.last_seq().unwrap(), 4);
        assert_eq!(roles.get_user("alice@example.org").unwrap(), None);
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        let generation = roles.generation();
        let err = roles.set_user("bob", active("nowhere")).unwrap_err();
        assert_eq!(roles.generation(), generation, "a refused write commits nothing");
        assert!(matches!(&err, RolesError::UnknownBackend(b) if b == "nowhere"), "{err}");
        assert!(err.to_string().contains("nowhere"));
        assert!(matches!(roles.set_backend(backend("a1", Some("zz"))), Err(RolesError::UnknownBackend(_))));
        assert!(matches!(roles.set_backend(backend("a1", Some("a1"))), Err(RolesError::Invalid(_))));
        assert!(matches!(roles.set_backend(Backend { imap: 0, ..backend("a1", None) }), Err(RolesError::Invalid(_))));
        assert_eq!(roles.last_seq().unwrap(), 0);

        // a failing batch rolls back the changes it made before the failure, log included
        roles.set_backend(backend("a1", None)).unwrap();
        let res = roles.write(|w| {
            w.set_user("u1", active("a1"))?;
            w.set_user("u2", active("a9"))
        });
        assert!(res.is_err());
        assert_eq!(roles.get_user("u1").unwrap(), None);
        assert_eq!(roles.last_seq().unwrap(), 1);

        roles.set_user("u1", active("a1")).unwrap();
        assert!(matches!(roles.delete_backend("a1"), Err(RolesError::BackendInUse { users: 1, .. })));
        roles.delete_user("u1").unwrap();
        assert!(roles.delete_backend("a1").unwrap());
    }

    #[test]
    fn changelog_replays_to_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        roles.set_backend(backend("a1", None)).unwrap();
        roles.set_backend(backend("b1", None)).unwrap();
        roles
            .write(|w| {
                for i in 0..100 {
                    w.set_user(&format!("user{i}"), active(if i % 2 == 0 { "a1" } else { "b1" }))?;
                }
                Ok(())
            })
            .unwrap();
        roles.delete_user("user7").unwrap();
        roles.set_backend(Backend { state: BackendState::Down, ..backend("b1", None) }).unwrap();
        assert_eq!(roles.last_seq().unwrap(), 104);

        // replay into a second database, in pages, as a follower would
        let dir2 = tempfile::tempdir().unwrap();
        let copy = Roles::open(dir2.path()).unwrap();
        let mut seq = 0;
        loop {
            let page = roles.changes_since(seq, 30).unwrap();
            if page.is_empty() {
                break;
            }
            for (s, change) in page {
                assert_eq!(s, seq + 1, "sequence numbers are dense and increasing");
                seq = s;
                copy.write(|w| match change {
                    Change::SetUser { user, role } => w.set_user(&user, role),
                    Change::DeleteUser { user } => w.delete_user(&user).map(drop),
                    Change::SetBackend(b) => w.set_backend(b),
                    Change::DeleteBackend { name } => w.delete_backend(&name).map(drop),
                })
                .unwrap();
            }
        }
        assert_eq!(copy.list_users().unwrap(), roles.list_users().unwrap());
        assert_eq!(copy.list_backends().unwrap(), roles.list_backends().unwrap());
        assert_eq!(copy.lookup("user9").unwrap().unwrap().serving(), None, "b1 is down");
    }

    #[test]
    fn failover_routes_to_partner() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        roles.set_backend(backend("a2", None)).unwrap();
        roles.set_backend(Backend { state: BackendState::Failover, ..backend("a1", Some("a2")) }).unwrap();
        roles.set_user("carol", active("a1")).unwrap();
        let generation = roles.generation();
        assert_eq!(roles.lookup("carol").unwrap().unwrap().serving().unwrap().name, "a2");
        assert_eq!(roles.generation(), generation, "a lookup changes nothing");
        roles.set_backend(Backend { state: BackendState::Down, ..backend("a2", None) }).unwrap();
        assert!(roles.generation() > generation, "a commit gives a new generation");
        assert_eq!(roles.lookup("carol").unwrap().unwrap().serving(), None);
    }

    #[test]
    fn read_only_sees_writes_and_refuses_to_write() {
        let dir = tempfile::tempdir().unwrap();
        {
            let roles = Roles::open(dir.path()).unwrap();
            roles.set_backend(backend("a1", None)).unwrap();
            roles.set_user("dave", active("a1")).unwrap();
        }
        let ro = Roles::open_read_only(dir.path()).unwrap();
        assert!(ro.is_read_only());
        assert_eq!(ro.lookup("dave").unwrap().unwrap().backend.name, "a1");
        assert!(matches!(ro.set_user("erin", active("a1")), Err(RolesError::ReadOnly)));
        drop(ro);

        let empty = tempfile::tempdir().unwrap();
        assert!(Roles::open_read_only(empty.path()).is_err());
    }
}
