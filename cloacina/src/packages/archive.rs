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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packages::source;

    const MANIFEST: &str = "[package]\nname = \"pkg\"\nversion = \"1.0\"\ninterface = \"cloacina-workflow-plugin\"\ninterface_version = 1\nextension = \"cloacina\"\n\n[metadata]\nlanguage = \"python\"\nentry_module = \"pkg.tasks\"\n";

    /// One raw entry: path, type, data, link target. Paths and links are written as given,
    /// bypassing the checks a well-behaved tar writer makes.
    type Entry<'a> = (&'a str, tar::EntryType, &'a [u8], &'a str);

    fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append(&header, *data).unwrap();
        }
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(&tar.into_inner().unwrap()).unwrap();
        encoder.finish().unwrap()
    }

    fn with_manifest<'a>(more: &[Entry<'a>]) -> Vec<Entry<'a>> {
        let mut all: Vec<Entry<'a>> = vec![("pkg-1.0/package.toml", tar::EntryType::Regular, MANIFEST.as_bytes(), "")];
        all.extend_from_slice(more);
        all
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cloacina-archive-test-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn unpacked(bytes: &[u8], limits: Limits) -> (PathBuf, Result<(PathBuf, Manifest), Error>) {
        let root = scratch();
        let result = unpack(bytes, &root.join("into"), limits);
        (root, result)
    }

    #[test]
    fn a_good_archive_unpacks_with_its_manifest_and_links_inside() {
        let bytes = archive(&with_manifest(&[
            ("pkg-1.0/workflow/pkg/__init__.py", tar::EntryType::Regular, b"", ""),
            ("pkg-1.0/workflow/pkg/tasks.py", tar::EntryType::Regular, b"x = 1\n", ""),
            ("pkg-1.0/workflow/alias.py", tar::EntryType::Symlink, b"", "pkg/tasks.py"),
        ]));
        let (root, result) = unpacked(&bytes, Limits::default());
        let (dir, manifest) = result.unwrap();
        assert_eq!(manifest.package.name, "pkg");
        assert_eq!(std::fs::read_to_string(dir.join("workflow/alias.py")).unwrap(), "x = 1\n");
        source::check_layout(&dir, &manifest).unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn what_is_not_an_archive_is_refused() {
        for bytes in [b"PK\x03\x04 a zip".to_vec(), Vec::new()] {
            let (root, result) = unpacked(&bytes, Limits::default());
            assert!(matches!(result, Err(Error::NotAnArchive(_))), "{result:?}");
            std::fs::remove_dir_all(root).unwrap();
        }
        let good =
            archive(&with_manifest(&[("pkg-1.0/workflow/pkg/tasks.py", tar::EntryType::Regular, &[b'x'; 4096], "")]));
        let (root, result) = unpacked(&good[..good.len() / 2], Limits::default());
        assert!(matches!(result, Err(Error::NotAnArchive(ref m)) if m.contains("truncated")), "{result:?}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn entries_that_escape_the_package_are_refused_and_nothing_lands_outside() {
        let cases: Vec<Vec<Entry<'_>>> = vec![
            with_manifest(&[("pkg-1.0/../evil", tar::EntryType::Regular, b"x", "")]),
            with_manifest(&[("/tmp/cloacina-evil", tar::EntryType::Regular, b"x", "")]),
            with_manifest(&[("pkg-1.0/link", tar::EntryType::Symlink, b"", "../../evil")]),
            with_manifest(&[("pkg-1.0/link", tar::EntryType::Symlink, b"", "/etc/passwd")]),
            with_manifest(&[("pkg-1.0/hard", tar::EntryType::Link, b"", "other/evil")]),
            with_manifest(&[("pkg-1.0/hard", tar::EntryType::Link, b"", "../evil")]),
            with_manifest(&[("pkg-1.0/tty", tar::EntryType::Char, b"", "")]),
            with_manifest(&[("pkg-1.0/fifo", tar::EntryType::Fifo, b"", "")]),
        ];
        for entries in cases {
            let (root, result) = unpacked(&archive(&entries), Limits::default());
            assert!(matches!(result, Err(Error::Unsafe(_))), "{:?}: {result:?}", entries[1].0);
            assert!(!root.join("evil").exists());
            std::fs::remove_dir_all(root).unwrap();
        }
    }

    #[test]
    fn layouts_other_than_one_package_directory_are_refused() {
        let cases: Vec<(Vec<Entry<'_>>, &str)> = vec![
            (with_manifest(&[("other-1.0/x", tar::EntryType::Regular, b"x", "")]), "more than one top-level"),
            (vec![("pkg-2.0/package.toml", tar::EntryType::Regular, MANIFEST.as_bytes(), "")], "says `pkg-1.0/`"),
            (vec![("pkg-1.0/README", tar::EntryType::Regular, b"x", "")], "no package.toml"),
            (with_manifest(&[("pkg-1.0/package.toml", tar::EntryType::Regular, b"x", "")]), "appears twice"),
        ];
        for (entries, expected) in cases {
            let (root, result) = unpacked(&archive(&entries), Limits::default());
            let message = result.expect_err("refused").to_string();
            assert!(message.contains(expected), "{message}");
            std::fs::remove_dir_all(root).unwrap();
        }
    }

    #[test]
    fn an_archive_expanding_past_the_limit_is_refused() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let bytes = archive(&with_manifest(&[("pkg-1.0/big", tar::EntryType::Regular, &zeros, "")]));
        assert!(bytes.len() < 10_000, "a bomb: {} bytes packed", bytes.len());
        let limits = Limits { unpacked_bytes: 1024 * 1024, ..Limits::default() };
        let (root, result) = unpacked(&bytes, limits);
        assert!(matches!(result, Err(Error::TooLarge { limit: 1_048_576 })), "{result:?}");
        std::fs::remove_dir_all(root).unwrap();
        let few = Limits { entries: 1, ..Limits::default() };
        let (root, result) = unpacked(&bytes, few);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_python_package_needs_its_workflow_tree_and_entry_module() {
        let (root, result) = unpacked(&archive(&with_manifest(&[])), Limits::default());
        let (dir, manifest) = result.unwrap();
        let e = source::check_layout(&dir, &manifest).expect_err("no workflow/").to_string();
        assert!(e.contains("Missing workflow source directory"), "{e}");
        std::fs::create_dir_all(dir.join("workflow/pkg")).unwrap();
        let e = source::check_layout(&dir, &manifest).expect_err("no entry module").to_string();
        assert!(e.contains("pkg.tasks"), "{e}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn packing_is_reproducible_and_round_trips() {
        let root = scratch();
        let src = root.join("src");
        std::fs::create_dir_all(src.join("workflow/pkg/__pycache__")).unwrap();
        std::fs::write(src.join("workflow/pkg/__init__.py"), "").unwrap();
        std::fs::write(src.join("workflow/pkg/tasks.py"), "x = 1\n").unwrap();
        std::fs::write(src.join("workflow/pkg/__pycache__/tasks.pyc"), "junk").unwrap();
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let once = pack(&src, &manifest).unwrap();
        assert_eq!(once, pack(&src, &manifest).unwrap(), "the same files pack to the same bytes");
        let (dir, back) = unpack(&once, &root.join("into"), Limits::default()).unwrap();
        assert_eq!(back, manifest);
        assert!(dir.join("workflow/pkg/tasks.py").is_file());
        assert!(!dir.join("workflow/pkg/__pycache__").exists(), "caches are not packed");
        std::fs::remove_dir_all(root).unwrap();
    }
}
