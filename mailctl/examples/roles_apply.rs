//! Apply rate of roles changes through the `mailscale_roles` write API, in one process
//! (bench/roles/run.py): what a follower's apply step costs without the network.
//!
//! In a scratch copy of nothing (a fresh DIR): two backends, then N user changes
//! (`set_user` moving users between the backends)
//!   - one write transaction (= one LMDB commit, one fsync) per change,
//!   - in transactions of B changes, for each B given,
//!   - and a replay: the changelog of the batched run read back with `changes_since` in pages of
//!     1,000 and applied to a second database one page per transaction, as a follower would.
//!
//! usage: roles_apply DIR N B...      prints `key value` lines (changes/s)
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mailscale_roles::{Backend, BackendState, Change, Roles, UserRole, UserState};

fn backend(name: &str, port: u16) -> Backend {
    Backend {
        name: name.into(),
        ip: "127.0.0.1".parse::<IpAddr>().unwrap(),
        imap: port,
        pop3: port + 1,
        lmtp: port + 2,
        partner: None,
        state: BackendState::Up,
    }
}

fn fresh(dir: &Path) -> Result<Roles, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let roles = Roles::open(dir)?;
    roles.set_backend(backend("a1", 1000))?;
    roles.set_backend(backend("b1", 2000))?;
    Ok(roles)
}

fn role(i: usize) -> UserRole {
    UserRole { backend: if i % 2 == 1 { "b1" } else { "a1" }.into(), state: UserState::Active }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: roles_apply DIR N B...")?);
    let n: usize = args.next().ok_or("N")?.parse()?;
    let batches: Vec<usize> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let users: Vec<String> = (0..n).map(|i| format!("user{i:07}@example.org")).collect();

    let roles = fresh(&dir.join("single"))?;
    let t = Instant::now();
    for (i, u) in users.iter().enumerate() {
        roles.set_user(u, role(i))?;
    }
    let s = t.elapsed().as_secs_f64();
    println!("txn_per_change n={n} secs={s:.3} per_s={:.0}", n as f64 / s);
    drop(roles);

    let mut last = None;
    for b in batches {
        let path = dir.join(format!("batch{b}"));
        let roles = fresh(&path)?;
        let t = Instant::now();
        for (c, chunk) in users.chunks(b).enumerate() {
            roles.write(|w| {
                for (j, u) in chunk.iter().enumerate() {
                    w.set_user(u, role(c * b + j))?;
                }
                Ok(())
            })?;
        }
        let s = t.elapsed().as_secs_f64();
        println!("txn_per_{b} n={n} secs={s:.3} per_s={:.0}", n as f64 / s);
        last = Some(roles);
    }

    if let Some(primary) = last {
        let copy = fresh(&dir.join("replay"))?;
        let from = copy.last_seq()?;
        let t = Instant::now();
        let mut seq = from;
        let mut applied = 0usize;
        loop {
            let page = primary.changes_since(seq, 1000)?;
            let Some(&(end, _)) = page.last() else { break };
            copy.write(|w| {
                for (_, change) in page {
                    match change {
                        Change::SetUser { user, role } => w.set_user(&user, role)?,
                        Change::DeleteUser { user } => drop(w.delete_user(&user)?),
                        Change::SetBackend(b) => w.set_backend(b)?,
                        Change::DeleteBackend { name } => drop(w.delete_backend(&name)?),
                    }
                    applied += 1;
                }
                Ok(())
            })?;
            seq = end;
        }
        let s = t.elapsed().as_secs_f64();
        println!("replay_pages_of_1000 n={applied} secs={s:.3} per_s={:.0}", applied as f64 / s);
        if copy.list_users()? != primary.list_users()? {
            return Err("replayed copy differs from the primary".into());
        }
    }
    Ok(())
}
