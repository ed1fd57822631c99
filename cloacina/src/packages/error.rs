//! Why a package cannot be read, built or loaded.

/// Why a package cannot be read, built or loaded. Every message names the problem; none holds
/// a secret (a package's content is not echoed beyond the compiler's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a `.cloacina` archive: not bzip2, a damaged or truncated stream, not a tar.
    #[error("not a package archive: {0}")]
    NotAnArchive(String),
    /// An entry would land outside the package directory, or is a device file.
    #[error("unsafe archive: {0}")]
    Unsafe(String),
    /// The archive expands past the size limit.
    #[error("the archive expands past its limit of {limit} bytes (raise it with --max-unpacked-bytes)")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The files are not laid out as a package.
    #[error("bad package layout: {0}")]
    Layout(String),
    /// `package.toml` is not a valid manifest.
    #[error("bad package.toml: {0}")]
    Manifest(String),
    /// The package was built for another ABI version than this host speaks.
    #[error("the package speaks interface version {package}; this host speaks version {host}")]
    InterfaceVersion {
        /// The package's version.
        package: u32,
        /// The host's.
        host: u32,
    },
    /// The archive's signature is missing, unreadable, by a key not trusted, or does not match.
    #[error("{0}")]
    Signature(String),
    /// Something this host does not support.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Compiling the package failed; the compiler's first errors.
    #[error("the package did not compile:\n{0}")]
    Build(String),
    /// The compiled package could not be opened or described.
    #[error("the package could not be loaded: {0}")]
    Load(String),
    /// What the package defines is not a valid workflow (a cycle, an unknown dependency, …).
    #[error("the package's workflows are invalid: {0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(String),
}
