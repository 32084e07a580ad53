//! Sieve redirects that were acknowledged but not yet handed to the relay (`data_dir/outbox/`).
//!
//! A message whose script redirects it is acknowledged (LMTP 250) before the relay takes it; if
//! it is stored nowhere else, the outbox entry is its only copy. So the entry is written and
//! fsynced *before* the 250, removed only once every redirect went out (or the message was kept
//! in INBOX instead), and sent again by the next start after a crash. An entry is two files,
//! `<id>.msg` (the message) and `<id>.json` (the envelope), the JSON written last: an entry
//! without its JSON was never acknowledged and is discarded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What to do with an outbox message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub user: String,
    /// The original envelope sender and recipient.
    pub from: String,
    pub rcpt: String,
    pub redirects: Vec<String>,
    /// Whether a copy was also stored (then a refused redirect does not need the INBOX fallback).
    pub stored_elsewhere: bool,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox")
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Stores an entry durably; returns its id.
///
/// # Errors
/// I/O errors (the caller must not acknowledge then).
pub fn put(dir: &Path, entry: &Entry, message: &[u8]) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let id =
        format!("{nanos:x}-{}-{:x}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    write_synced(&dir.join(format!("{id}.msg")), message)?;
    write_synced(&dir.join(format!("{id}.json")), &serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(id)
}

/// Removes a handled entry.
pub fn remove(dir: &Path, id: &str) {
    for ext in ["json", "msg"] {
        if let Err(e) = std::fs::remove_file(dir.join(format!("{id}.{ext}"))) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(id, error = %e, "outbox: cannot remove a sent entry; it will be sent again");
            }
        }
    }
}

/// Every complete entry (oldest first); incomplete ones (no JSON: never acknowledged) are
/// deleted.
pub fn pending(dir: &Path) -> Vec<(String, Entry, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".msg")).map(str::to_string))
        .collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let entry =
            std::fs::read(dir.join(format!("{id}.json"))).ok().and_then(|j| serde_json::from_slice::<Entry>(&j).ok());
        match (entry, std::fs::read(dir.join(format!("{id}.msg")))) {
            (Some(e), Ok(m)) => out.push((id, e, m)),
            _ => {
                tracing::warn!(id, "outbox: incomplete entry (never acknowledged) discarded");
                remove(dir, &id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_until_removed_and_incomplete_ones_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let dir = dir(d.path());
        let e = Entry {
            user: "u".into(),
            from: "a@x".into(),
            rcpt: "u@y".into(),
            redirects: vec!["b@z".into()],
            stored_elsewhere: false,
        };
        let id = put(&dir, &e, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        std::fs::write(dir.join("zzz.msg"), b"half written").unwrap();
        let p = pending(&dir);
        assert_eq!(p, vec![(id.clone(), e, b"Subject: x\r\n\r\nbody\r\n".to_vec())]);
        assert!(!dir.join("zzz.msg").exists());
        remove(&dir, &id);
        assert!(pending(&dir).is_empty());
    }
}
