//! Lookup latency of the roles database from the nginx module's read path (bench/roles/run.py).
//!
//! Opens DIR read-only with `mailscale_roles` (as an nginx worker does), takes the user names
//! from the database itself, and times N `Roles::lookup()` calls of users picked at random
//! (xorshift, fixed seed): each call timed on its own with `Instant` (the clock's own cost,
//! measured the same way around no work, is printed next to it and not subtracted), and the same
//! calls again timed in batches of 100 (mean per call, clock cost amortised).
//!
//! usage: roles_lookup DIR [N]     prints `key value` lines
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use mailscale_roles::Roles;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    println!(
        "{name} n={} mean_ns={mean:.0} p50_ns={} p99_ns={} p999_ns={} max_ns={}",
        ns.len(),
        pct(&ns, 0.5),
        pct(&ns, 0.99),
        pct(&ns, 0.999),
        ns[ns.len() - 1]
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: roles_lookup DIR [N]")?);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let roles = Roles::open_read_only(&dir)?;
    let users: Vec<String> = roles.list_users()?.into_iter().map(|(u, _)| u).collect();
    if users.is_empty() {
        return Err("no users in the database".into());
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let picks: Vec<&str> = (0..n).map(|_| users[(rng.next() % users.len() as u64) as usize].as_str()).collect();
    println!("users {}", users.len());

    // warm the map (first touches fault the pages in), as a running worker's would be
    for u in picks.iter().take(users.len().min(n)) {
        black_box(roles.lookup(u)?);
    }

    let mut clock = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        clock.push(black_box(t.elapsed().as_nanos() as u64));
    }
    report("clock_only", clock);

    let mut each = Vec::with_capacity(n);
    let mut missing = 0usize;
    for u in &picks {
        let t = Instant::now();
        let r = roles.lookup(u)?;
        each.push(t.elapsed().as_nanos() as u64);
        missing += usize::from(black_box(r).is_none());
    }
    if missing > 0 {
        return Err(format!("{missing} lookups found no route").into());
    }
    report("lookup_each", each);

    let mut batches = Vec::with_capacity(n / 100);
    for chunk in picks.chunks(100) {
        let t = Instant::now();
        for u in chunk {
            black_box(roles.lookup(u)?);
        }
        batches.push(t.elapsed().as_nanos() as u64 / chunk.len() as u64);
    }
    report("lookup_batch100_per_call", batches);
    Ok(())
}
