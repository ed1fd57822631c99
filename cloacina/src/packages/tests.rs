//! Archives as untrusted input: what `archive::unpack` refuses, and packing round trips.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use super::archive::{pack, unpack, Limits};
use super::{source, Error, Manifest};

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
