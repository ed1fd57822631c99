//! Where a SQLite file may live: not on a network or FUSE file system (NFS, SMB/CIFS, sshfs and
//! other FUSE, 9p, …), whose locking SQLite cannot rely on (two hosts writing one file through it
//! corrupt the database). Read from `/proc/self/mountinfo` on Linux; elsewhere nothing is known
//! and nothing is refused. `CLOACINA_SQLITE_ALLOW_NETWORK_FS=1` lets a file system through.

use std::path::{Path, PathBuf};

use super::{Error, Result};

/// The environment variable that lets a SQLite database live on a network or FUSE file system.
pub const ALLOW_NETWORK_FS: &str = "CLOACINA_SQLITE_ALLOW_NETWORK_FS";

/// Refuses a SQLite database file on a network or FUSE file system, unless
/// [`ALLOW_NETWORK_FS`] is set to `1`.
pub(crate) fn check_sqlite_location(file: &Path) -> Result<()> {
    if std::env::var(ALLOW_NETWORK_FS).is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return Ok(()) };
    let Some(dir) = existing_dir(file) else { return Ok(()) };
    check_in(&mountinfo, &dir, file)
}

/// Refuses `file`, in the resolved directory `dir`, when `mountinfo` puts `dir` on a network or
/// FUSE file system.
fn check_in(mountinfo: &str, dir: &Path, file: &Path) -> Result<()> {
    match mount_of(mountinfo, dir) {
        Some((mount, fstype)) if is_network(&fstype) => Err(Error::NetworkFilesystem {
            path: file.display().to_string(),
            fstype,
            mount: mount.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// The file's directory (or the file itself), resolved: the file may not exist yet.
fn existing_dir(file: &Path) -> Option<PathBuf> {
    if let Ok(found) = file.canonicalize() {
        return Some(found);
    }
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.canonicalize().ok()
}

/// The mount point and file-system type holding `path` (absolute, resolved): the mount whose
/// point is the longest prefix of it; the last one listed wins among equals (it is on top).
fn mount_of(mountinfo: &str, path: &Path) -> Option<(PathBuf, String)> {
    let mut best: Option<(PathBuf, String)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let (Some(point), Some(fstype)) = (left.split(' ').nth(4), right.split(' ').next()) else { continue };
        let point = PathBuf::from(unescape(point));
        if path.starts_with(&point)
            && best.as_ref().is_none_or(|(b, _)| point.components().count() >= b.components().count())
        {
            best = Some((point, fstype.to_owned()));
        }
    }
    best
}

/// mountinfo escapes space, tab, newline and backslash as three octal digits (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Network and FUSE file systems (by their mountinfo type).
fn is_network(fstype: &str) -> bool {
    const NETWORK: [&str; 14] = [
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "fuse",
        "fuseblk",
        "afs",
        "ncpfs",
        "ceph",
        "glusterfs",
        "lustre",
        "virtiofs",
    ];
    NETWORK.contains(&fstype) || fstype.starts_with("fuse.")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /home rw,relatime shared:2 - ext4 /dev/sda2 rw
41 30 0:40 / /home/alice/shared rw,relatime shared:3 - nfs4 server:/export rw,vers=4.2
42 22 0:41 / /mnt/ssh\\040box rw,nosuid - fuse.sshfs alice@box:/data rw
43 22 0:42 / /srv/smb rw - cifs //nas/share rw
44 22 0:43 / /tmp rw - tmpfs tmpfs rw";

    fn fstype(path: &str) -> String {
        mount_of(MOUNTINFO, Path::new(path)).expect("a mount").1
    }

    #[test]
    fn the_longest_mount_point_holding_the_path_wins() {
        assert_eq!(fstype("/home/alice/shared/app.db"), "nfs4");
        assert_eq!(fstype("/home/alice/app.db"), "ext4");
        assert_eq!(fstype("/home/alice/sharedness/app.db"), "ext4", "a prefix of a name is not a parent");
        assert_eq!(fstype("/mnt/ssh box/app.db"), "fuse.sshfs", "escaped spaces");
        assert_eq!(fstype("/srv/smb/app.db"), "cifs");
        assert_eq!(fstype("/tmp/app.db"), "tmpfs");
    }

    #[test]
    fn network_and_fuse_file_systems_are_refused_local_ones_are_not() {
        for fs in ["nfs", "nfs4", "cifs", "smb3", "9p", "fuse.sshfs", "fuse", "ceph"] {
            assert!(is_network(fs), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"] {
            assert!(!is_network(fs), "{fs}");
        }
    }

    #[test]
    fn the_refusal_names_the_file_system_and_the_way_out() {
        let file = Path::new("/home/alice/shared/app.db");
        let err = check_in(MOUNTINFO, Path::new("/home/alice/shared"), file).expect_err("nfs4 is refused");
        let text = err.to_string();
        assert!(text.contains("/home/alice/shared/app.db is on a nfs4 file system"), "{text}");
        assert!(text.contains("PostgreSQL") && text.contains("db copy") && text.contains(ALLOW_NETWORK_FS), "{text}");
        assert_eq!(err.kind(), crate::database::ErrorKind::Configuration);
        check_in(MOUNTINFO, Path::new("/home/alice"), Path::new("/home/alice/app.db")).expect("ext4 is fine");
    }

    #[test]
    fn this_machine_s_scratch_directory_is_allowed() {
        let file = std::env::temp_dir().join("cloacina-fs-check.db");
        check_sqlite_location(&file).expect("a local directory");
    }
}
