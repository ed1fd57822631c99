//! `.cloacina` archives: a bzip2-compressed tar with one top-level `<name>-<version>/` directory
//! holding `package.toml` and the package's source.
//!
//! Reading one is reading untrusted input: [`unpack`] refuses paths that leave the package
//! directory (`..`, absolute paths, links pointing outside), device files and FIFOs, a second
//! top-level entry, and an archive that expands past [`Limits`]; it writes into a fresh
//! directory only, so a refused archive leaves nothing behind that is used. [`pack`] writes the
//! same archive for the same files every time (sorted entries, zero timestamps and owners), so
//! a package's content hash changes only when its content does.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::manifest::{Manifest, FILE};
use super::Error;

/// How much an archive may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes the decompressed tar stream may have (headers included). Default
    /// [`Limits::DEFAULT_UNPACKED_BYTES`].
    pub unpacked_bytes: u64,
    /// The most entries (files, directories, links). Default [`Limits::DEFAULT_ENTRIES`].
    pub entries: usize,
}

impl Limits {
    /// 256 MiB.
    pub const DEFAULT_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
    /// 20 000 entries.
    pub const DEFAULT_ENTRIES: usize = 20_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { unpacked_bytes: Self::DEFAULT_UNPACKED_BYTES, entries: Self::DEFAULT_ENTRIES }
    }
}

/// A reader that stops with an error once more than `left` bytes went through, and says so in
/// `exceeded` (how the caller tells the limit from a damaged stream without reading messages).
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => {
                self.exceeded.store(true, Ordering::Relaxed);
                Err(std::io::Error::other("the archive expands past its size limit"))
            }
        }
    }
}

/// Unpacks `archive` (the bytes of a `.cloacina` file) into `into`, which must not exist yet,
/// and returns the package directory in it (`into/<name>-<version>`) with its manifest.
pub fn unpack(archive: &[u8], into: &Path, limits: Limits) -> Result<(PathBuf, Manifest), Error> {
    if !archive.starts_with(b"BZh") {
        return Err(Error::NotAnArchive("not a bzip2-compressed tar (a .cloacina file starts with `BZh`)".to_owned()));
    }
    std::fs::create_dir(into).map_err(|e| Error::Io(format!("{}: {e}", into.display())))?;
    let exceeded = Arc::new(AtomicBool::new(false));
    let stream = Capped {
        inner: bzip2::read::MultiBzDecoder::new(archive),
        left: limits.unpacked_bytes,
        exceeded: exceeded.clone(),
    };
    let damaged = |e: std::io::Error| {
        if exceeded.load(Ordering::Relaxed) {
            Error::TooLarge { limit: limits.unpacked_bytes }
        } else {
            Error::NotAnArchive(format!("the archive is damaged or truncated: {e}"))
        }
    };
    let mut tar = tar::Archive::new(stream);
    let mut top: Option<String> = None;
    let mut count = 0usize;
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            continue;
        }
        count += 1;
        if count > limits.entries {
            return Err(Error::TooLarge { limit: limits.unpacked_bytes });
        }
        let raw = entry.path().map_err(damaged)?.into_owned();
        let parts = inside(&raw)?;
        let Some(first) = parts.first() else { continue };
        match &top {
            None => top = Some(first.clone()),
            Some(t) if t != first => {
                return Err(Error::Layout(format!(
                    "more than one top-level entry (`{t}` and `{first}`): a package archive holds one `<name>-<version>/` directory"
                )))
            }
            Some(_) => {}
        }
        let target = parts.iter().fold(into.to_path_buf(), |p, c| p.join(c));
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", raw.display()));
        match kind {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if parts.len() == 1 {
                    return Err(Error::Layout(format!(
                        "`{}` is a file at the top level, not in a package directory",
                        raw.display()
                    )));
                }
                create_parent(&target).map_err(io)?;
                let mut file = std::fs::File::options().write(true).create_new(true).open(&target).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::Layout(format!("`{}` appears twice in the archive", raw.display()))
                    } else {
                        io(e)
                    }
                })?;
                std::io::copy(&mut entry, &mut file).map_err(damaged)?;
                if entry.header().mode().is_ok_and(|m| m & 0o111 != 0) {
                    executable(&target).map_err(io)?;
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry.link_name().map_err(damaged)?.map(|l| l.into_owned()).unwrap_or_default();
                let resolved = if kind == tar::EntryType::Symlink {
                    // Relative to the link's own directory, and never absolute.
                    let base: PathBuf = parts[..parts.len() - 1].iter().collect();
                    if link.is_absolute() {
                        None
                    } else {
                        lexical(&base.join(&link))
                    }
                } else {
                    lexical(&link)
                };
                let escapes = resolved.as_ref().is_none_or(|r| r.first() != Some(first));
                if escapes {
                    return Err(Error::Unsafe(format!(
                        "`{}` links to `{}`, outside the package directory",
                        raw.display(),
                        link.display()
                    )));
                }
                create_parent(&target).map_err(io)?;
                if kind == tar::EntryType::Symlink {
                    symlink(&link, &target).map_err(io)?;
                } else {
                    let source = resolved.unwrap_or_default().iter().fold(into.to_path_buf(), |p, c| p.join(c));
                    std::fs::copy(&source, &target).map_err(io)?;
                }
            }
            other => {
                return Err(Error::Unsafe(format!(
                    "`{}` is a {} entry; a package holds only files, directories and links",
                    raw.display(),
                    kind_name(other)
                )))
            }
        }
    }
    let top = top.ok_or_else(|| Error::Layout("the archive is empty".to_owned()))?;
    let dir = into.join(&top);
    let manifest = Manifest::read(&dir)?;
    if manifest.top_dir() != top {
        return Err(Error::Layout(format!(
            "the package directory is `{top}/`; its {FILE} says `{}/` (<name>-<version>)",
            manifest.top_dir()
        )));
    }
    Ok((dir, manifest))
}

/// `path`'s components if it stays inside the archive (no `..`, no root, no drive prefix).
fn inside(path: &Path) -> Result<Vec<String>, Error> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::Unsafe(format!("`{}` leaves the package directory", path.display())))
            }
        }
    }
    Ok(parts)
}

/// `path` with `.` and `..` resolved without touching the file system; `None` if it climbs
/// above its start.
fn lexical(path: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special",
    }
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    path.parent().map_or(Ok(()), std::fs::create_dir_all)
}

#[cfg(unix)]
fn executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn symlink(link: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(link, at)
}

#[cfg(not(unix))]
fn symlink(_: &Path, at: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(format!("{}: symbolic links in packages need a Unix host", at.display())))
}

/// What [`pack`] leaves out of a source directory: build output, version control, Python caches.
fn skipped(name: &str) -> bool {
    matches!(name, "target" | ".git" | "__pycache__" | ".venv" | ".mypy_cache" | ".pytest_cache")
        || name.ends_with(".pyc")
        || name.ends_with(".cloacina")
}

/// Packs `dir` (a package source directory) with `manifest` as its `package.toml`: one
/// `<name>-<version>/` directory, entries sorted, timestamps and owners zeroed.
pub fn pack(dir: &Path, manifest: &Manifest) -> Result<Vec<u8>, Error> {
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    files.retain(|(rel, _)| rel != Path::new(FILE));
    files.sort();
    let top = PathBuf::from(manifest.top_dir());
    let encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    let mut tar = tar::Builder::new(encoder);
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let mut add = |rel: &Path, data: &[u8], mode: u32| -> Result<(), Error> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, top.join(rel), data).map_err(io)
    };
    add(Path::new(FILE), manifest.to_toml().as_bytes(), 0o644)?;
    for (rel, mode) in &files {
        let data = std::fs::read(dir.join(rel)).map_err(|e| Error::Io(format!("{}: {e}", rel.display())))?;
        add(rel, &data, *mode)?;
    }
    let encoder = tar.into_inner().map_err(io)?;
    let mut bytes = encoder.finish().map_err(io)?;
    bytes.flush().map_err(io)?;
    Ok(bytes)
}

/// The files under `dir/rel`, with the mode each is packed with.
fn collect(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, u32)>) -> Result<(), Error> {
    let here = root.join(rel);
    let entries = std::fs::read_dir(&here).map_err(|e| Error::Io(format!("{}: {e}", here.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io(format!("{}: {e}", here.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let path = rel.join(&name);
        let kind = entry.file_type().map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push((path, mode_of(&entry)));
        } else {
            return Err(Error::Layout(format!(
                "`{}` is a link or special file: a package is packed from plain files and directories",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn mode_of(entry: &std::fs::DirEntry) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match entry.metadata() {
        Ok(m) if m.permissions().mode() & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

#[cfg(not(unix))]
fn mode_of(_: &std::fs::DirEntry) -> u32 {
    0o644
}

/// The archive's bytes read from `path`, or a clear error naming it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}
