//! Immutable message files under `mail/<user>/<aa>/<guid>`, named by the SHA-256 of their
//! content, written temp + fsync + rename + fsync(dir) so a file that exists is complete.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;

/// Content id of a message: SHA-256 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Guid(pub [u8; 32]);

impl Guid {
    pub fn of(bytes: &[u8]) -> Guid {
        Guid(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// # Errors
    /// [`Error::Corrupt`] when `s` is not 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Guid, Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| Error::Corrupt(format!("bad guid {s:?}")))?;
        Ok(Guid(out))
    }
}

/// One user's message files.
#[derive(Debug)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    pub fn new(root: PathBuf) -> Self {
        BlobDir { root }
    }

    pub fn path(&self, guid: &Guid) -> PathBuf {
        let hex = guid.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Stores `bytes` durably and returns its GUID. Writing content that is already there is a
    /// no-op (same name, same bytes).
    ///
    /// # Errors
    /// I/O errors from create, write, fsync or rename.
    pub fn put(&self, bytes: &[u8]) -> Result<Guid, Error> {
        let guid = Guid::of(bytes);
        let path = self.path(&guid);
        if path.exists() {
            return Ok(guid);
        }
        let dir = path.parent().expect("blob path has a parent");
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            sync_dir(dir.parent().unwrap_or(dir))?;
        }
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), guid.to_hex()));
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(guid)
    }

    /// # Errors
    /// [`Error::Io`] when the file is missing or unreadable.
    pub fn get(&self, guid: &Guid) -> Result<Vec<u8>, Error> {
        let mut f = File::open(self.path(guid))?;
        let mut buf = Vec::with_capacity(f.metadata().map(|m| m.len() as usize).unwrap_or(0));
        f.read_to_end(&mut buf)?;
        Ok(buf)
    }

    pub fn exists(&self, guid: &Guid) -> bool {
        self.path(guid).exists()
    }

    /// Removes a file whose last index reference is gone.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn remove(&self, guid: &Guid) -> Result<(), Error> {
        match fs::remove_file(self.path(guid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// fsync a directory so that a rename or create inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
