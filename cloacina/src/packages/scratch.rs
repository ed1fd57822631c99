//! Scratch directories: where archives are unpacked to be checked and built.

use super::Error;

/// A directory that is removed when dropped: where an archive is unpacked to be checked.
#[derive(Debug)]
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A new, empty directory under `parent` (created if needed), named for this process.
    pub fn new(parent: &std::path::Path) -> Result<Self, Error> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(parent).map_err(|e| Error::Io(format!("{}: {e}", parent.display())))?;
        let name = format!("unpack-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = parent.join(name);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(Scratch(dir))
    }

    /// Its path (not created yet: [`unpack`](super::archive::unpack) creates it).
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
