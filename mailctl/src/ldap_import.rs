//! `mailctl roles import-ldap`: users and their backend read from an LDAP attribute (e.g.
//! `mailHost`), applied in one roles transaction.
//!
//! Everything is read and checked before anything is written; the write itself is one
//! transaction, so the first bad entry (missing or multi-valued attribute, invalid user name,
//! unknown backend, one user with two different backends) is named by its DN and nothing changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};
use mailscale_roles::{validate_backend_name, validate_username, Roles, RolesError, UserRole, UserState};

use crate::args::Args;

/// Page size of the search (RFC 2696 paged results): stays below slapd's default size limit
/// (500) so that directories of any size are read whole.
const PAGE_SIZE: i32 = 400;

/// LDAP result code sizeLimitExceeded (RFC 4511 §4.1.9).
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// What the command line asked for.
pub struct Options {
    pub url: String,
    pub base: String,
    pub filter: Option<String>,
    pub bind: Option<(String, PathBuf)>,
    pub user_attr: String,
    pub backend_attr: String,
    pub timeout: Duration,
    pub dry_run: bool,
}

impl Options {
    /// Takes the `import-ldap` options from `args` and refuses leftovers (`--dry-run` is taken by the caller, which
    /// needs it to decide how to open the database).
    pub fn parse(mut args: Args, dry_run: bool) -> Result<Options> {
        let url = args.option("url")?.context("--url ldap://HOST:PORT is required")?;
        let base = args.option("base")?.context("--base DN is required")?;
        let filter = args.option("filter")?;
        let bind_dn = args.option("bind-dn")?;
        let bind_pw = args.option("bind-password-file")?;
        let bind = match (bind_dn, bind_pw) {
            (None, None) => None,
            (Some(dn), Some(f)) => Some((dn, PathBuf::from(f))),
            _ => bail!("--bind-dn and --bind-password-file go together"),
        };
        let user_attr = args.option("user-attr")?.unwrap_or_else(|| "uid".into());
        let backend_attr = args.option("backend-attr")?.unwrap_or_else(|| "mailHost".into());
        let timeout = Duration::from_secs(args.parsed::<u64>("timeout")?.unwrap_or(30));
        args.finish()?;
        for (flag, attr) in [("--user-attr", &user_attr), ("--backend-attr", &backend_attr)] {
            if attr.is_empty() || !attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                bail!("{flag} {attr:?}: want an attribute name or OID");
            }
        }
        Ok(Options { url, base, filter, bind, user_attr, backend_attr, timeout, dry_run })
    }
}

/// One directory entry, mapped to a role.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapped {
    pub dn: String,
    pub user: String,
    pub backend: String,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: usize,
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
}

/// Reads the directory and applies it to `roles` (checks only, on a read-only handle, when
/// `opts.dry_run`).
///
/// # Errors
/// LDAP failures (connect, bind, search) with the URL; the first bad entry by its DN; the
/// database's own errors. Nothing is written on any error.
pub fn run(roles: &Roles, opts: &Options) -> Result<Summary> {
    let entries = search(opts)?;
    let mapped = map_entries(&entries, &opts.user_attr, &opts.backend_attr)?;
    if opts.dry_run {
        return check(roles, &mapped);
    }
    apply(roles, &mapped)
}

fn search(opts: &Options) -> Result<Vec<SearchEntry>> {
    let settings = LdapConnSettings::new().set_conn_timeout(opts.timeout);
    let mut ldap = LdapConn::with_settings(settings, &opts.url).with_context(|| format!("LDAP {}", opts.url))?;
    if let Some((dn, file)) = &opts.bind {
        let pw = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let pw = pw.trim_end_matches(['\r', '\n']);
        ldap.with_timeout(opts.timeout)
            .simple_bind(dn, pw)
            .and_then(|r| r.success())
            .with_context(|| format!("LDAP {}: bind as {dn:?}", opts.url))?;
    }
    let filter = opts.filter.clone().unwrap_or_else(|| format!("({}=*)", opts.user_attr));
    let attrs = vec![opts.user_attr.clone(), opts.backend_attr.clone()];
    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> =
        vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(PAGE_SIZE))];
    let what = || format!("LDAP {}: search base {:?} filter {filter:?}", opts.url, opts.base);
    let mut stream = ldap
        .with_timeout(opts.timeout)
        .streaming_search_with(adapters, &opts.base, Scope::Subtree, &filter, attrs)
        .with_context(what)?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next().with_context(what)? {
        out.push(SearchEntry::construct(entry));
    }
    let done = stream.result();
    if done.rc == SIZE_LIMIT_EXCEEDED {
        bail!(
            "{}: the server stopped after {} entries (sizeLimitExceeded): let this bind DN read the whole \
             directory (slapd: limits ... size.prtotal=unlimited) or narrow --base/--filter; nothing imported",
            what(),
            out.len()
        );
    }
    done.success().with_context(what)?;
    let _ = ldap.unbind();
    Ok(out)
}

/// The single value of `attr` in `entry` (attribute names are case-insensitive, RFC 4512 §2.5).
fn single_value<'e>(entry: &'e SearchEntry, attr: &str) -> Result<&'e str> {
    let dn = &entry.dn;
    if entry.bin_attrs.keys().any(|k| k.eq_ignore_ascii_case(attr)) {
        bail!("entry {dn:?}: attribute {attr} is not UTF-8 text");
    }
    let values = entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v);
    match values.map(Vec::as_slice) {
        None | Some([]) => bail!("entry {dn:?} has no {attr} attribute"),
        Some([v]) => Ok(v.trim()),
        Some(vs) => bail!("entry {dn:?} has {} values of {attr} ({}), want one", vs.len(), vs.join(", ")),
    }
}

/// Maps every entry to `user,backend`, validating names; stops at the first bad entry.
///
/// # Errors
/// The first entry with a missing, multi-valued or invalid attribute, or a user that a previous
/// entry already put on another backend, named by its DN.
pub fn map_entries(entries: &[SearchEntry], user_attr: &str, backend_attr: &str) -> Result<Vec<Mapped>> {
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    let mut out: Vec<Mapped> = Vec::with_capacity(entries.len());
    for entry in entries {
        let dn = &entry.dn;
        let user = validate_username(single_value(entry, user_attr)?).map_err(|e| anyhow!("entry {dn:?}: {e}"))?;
        let backend =
            validate_backend_name(single_value(entry, backend_attr)?).map_err(|e| anyhow!("entry {dn:?}: {e}"))?;
        if let Some(&i) = seen.get(&user) {
            if out[i].backend != backend {
                bail!(
                    "entry {dn:?}: user {user:?} is also in entry {:?} with backend {:?} (here {backend:?})",
                    out[i].dn,
                    out[i].backend
                );
            }
            continue;
        }
        seen.insert(user.clone(), out.len());
        out.push(Mapped { dn: dn.clone(), user, backend });
    }
    Ok(out)
}

/// Counts what [`apply`] would change, with the same checks, without writing.
fn check(roles: &Roles, mapped: &[Mapped]) -> Result<Summary> {
    let mut known: HashMap<&str, bool> = HashMap::new();
    let mut s = Summary { entries: mapped.len(), ..Summary::default() };
    for m in mapped {
        let exists = match known.get(m.backend.as_str()) {
            Some(&e) => e,
            None => *known.entry(&m.backend).or_insert(roles.get_backend(&m.backend)?.is_some()),
        };
        if !exists {
            bail!("entry {:?}: {}; nothing imported", m.dn, RolesError::UnknownBackend(m.backend.clone()));
        }
        count(&mut s, roles.get_user(&m.user)?, &m.backend);
    }
    Ok(s)
}

fn count(s: &mut Summary, old: Option<UserRole>, backend: &str) {
    match old {
        None => s.new += 1,
        Some(r) if r.backend == backend && r.state == UserState::Active => s.unchanged += 1,
        Some(_) => s.changed += 1,
    }
}

/// Applies every mapping in one transaction; unchanged users are not rewritten (no changelog
/// entry for them), so re-running an import only logs what changed.
fn apply(roles: &Roles, mapped: &[Mapped]) -> Result<Summary> {
    let mut bad = None;
    let mut s = Summary { entries: mapped.len(), ..Summary::default() };
    let result = roles.write(|w| {
        for m in mapped {
            let old = w.get_user(&m.user)?;
            let unchanged = matches!(&old, Some(r) if r.backend == m.backend && r.state == UserState::Active);
            count(&mut s, old, &m.backend);
            if unchanged {
                continue;
            }
            w.set_user(&m.user, UserRole { backend: m.backend.clone(), state: UserState::Active })
                .inspect_err(|e| bad = Some(format!("entry {:?}: {e}", m.dn)))?;
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(s),
        Err(e) => Err(anyhow!("{}; nothing imported", bad.unwrap_or_else(|| e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use mailscale_roles::{Backend, BackendState};

    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: dn.into(),
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
            bin_attrs: HashMap::new(),
        }
    }

    fn roles_with(backends: &[&str]) -> (tempfile::TempDir, Roles) {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(dir.path()).unwrap();
        for b in backends {
            roles
                .set_backend(Backend {
                    name: b.to_string(),
                    ip: "127.0.0.1".parse::<IpAddr>().unwrap(),
                    imap: 143,
                    pop3: 110,
                    lmtp: 24,
                    partner: None,
                    state: BackendState::Up,
                })
                .unwrap();
        }
        (dir, roles)
    }

    #[test]
    fn maps_case_insensitive_attributes() {
        let e = [
            entry("uid=Al,dc=x", &[("UID", &["Al"]), ("mailhost", &["A1"])]),
            entry("uid=bo,dc=x", &[("uid", &["bo"]), ("mailHost", &[" b1 "])]),
        ];
        let m = map_entries(&e, "uid", "mailHost").unwrap();
        assert_eq!(m[0], Mapped { dn: "uid=Al,dc=x".into(), user: "al".into(), backend: "a1".into() });
        assert_eq!(m[1].backend, "b1");
    }

    #[test]
    fn bad_entries_are_named() {
        let cases: [(SearchEntry, &str); 4] = [
            (entry("uid=a,dc=x", &[("uid", &["a"])]), "has no mailHost"),
            (entry("uid=b,dc=x", &[("uid", &["b"]), ("mailHost", &["a1", "b1"])]), "2 values"),
            (entry("uid=c,dc=x", &[("uid", &["c d"]), ("mailHost", &["a1"])]), "invalid user name"),
            (entry("uid=e,dc=x", &[("uid", &["e"]), ("mailHost", &["a/1"])]), "invalid backend name"),
        ];
        for (e, want) in cases {
            let err = map_entries(std::slice::from_ref(&e), "uid", "mailHost").unwrap_err().to_string();
            assert!(err.contains(&e.dn) && err.contains(want), "{err}");
        }
        let dup = [
            entry("uid=f,ou=1", &[("uid", &["f"]), ("mailHost", &["a1"])]),
            entry("uid=f,ou=2", &[("uid", &["F"]), ("mailHost", &["b1"])]),
        ];
        let err = map_entries(&dup, "uid", "mailHost").unwrap_err().to_string();
        assert!(err.contains("uid=f,ou=2") && err.contains("uid=f,ou=1"), "{err}");
    }

    #[test]
    fn apply_is_all_or_nothing_and_counts() {
        let (_d, roles) = roles_with(&["a1", "b1"]);
        let ok = vec![
            Mapped { dn: "d1".into(), user: "u1".into(), backend: "a1".into() },
            Mapped { dn: "d2".into(), user: "u2".into(), backend: "b1".into() },
        ];
        assert_eq!(check(&roles, &ok).unwrap(), Summary { entries: 2, new: 2, changed: 0, unchanged: 0 });
        assert_eq!(roles.user_count().unwrap(), 0, "a dry run writes nothing");
        apply(&roles, &ok).unwrap();
        let seq = roles.last_seq().unwrap();

        let mut bad = vec![Mapped { dn: "d1".into(), user: "u1".into(), backend: "b1".into() }];
        bad.push(Mapped { dn: "uid=z,dc=x".into(), user: "z".into(), backend: "nowhere".into() });
        for err in [check(&roles, &bad).unwrap_err(), apply(&roles, &bad).unwrap_err()] {
            let err = err.to_string();
            assert!(err.contains("uid=z,dc=x") && err.contains("nowhere") && err.contains("nothing imported"), "{err}");
        }
        assert_eq!(roles.get_user("u1").unwrap().unwrap().backend, "a1", "u1 was not moved");
        assert_eq!(roles.last_seq().unwrap(), seq);

        let again = apply(&roles, &[ok[0].clone_moved("b1"), ok[1].clone_moved("b1")]).unwrap();
        assert_eq!(again, Summary { entries: 2, new: 0, changed: 1, unchanged: 1 });
        assert_eq!(roles.last_seq().unwrap(), seq + 1, "only the change is logged");
    }

    impl Mapped {
        fn clone_moved(&self, backend: &str) -> Mapped {
            Mapped { dn: self.dn.clone(), user: self.user.clone(), backend: backend.into() }
        }
    }
}
