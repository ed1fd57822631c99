//! Compiling a Rust package: `cargo build --release --lib` on its unpacked source, the library
//! kept in a cache keyed by the archive's content hash, the host's target and the ABI version,
//! so the same archive is compiled once per machine (a restart, a second daemon on the host, a
//! reload all find it there).
//!
//! The package's `cloacina-*` dependencies are version requirements (`cloacina-workflow = "0.1"`,
//! as upstream's and `cloacinactl package new`'s packages say); while those crates are not on
//! crates.io, the build patches them to the sources in [`Compiler::crates_dir`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Error;
use cloacina_workflow::plugin::ABI_VERSION;

/// The crates of this repository a package may depend on (`cloacina` as upstream's packages do,
/// for their tests), patched in by name.
const OUR_CRATES: &[&str] = &[
    "cloacina",
    "cloacina-workflow",
    "cloacina-workflow-plugin",
    "cloacina-macros",
    "cloacina-rules",
    "cloacina-build",
    "cloacina-computation-graph",
];

/// The lines of the compiler's output a build failure reports: its first errors.
const REPORTED_LINES: usize = 30;

/// Where and how Rust packages are compiled.
#[derive(Debug, Clone)]
pub struct Compiler {
    /// The cache: compiled libraries under `lib/`, cargo's shared target directory under
    /// `target/` (dependencies common to packages are compiled once).
    pub cache_dir: PathBuf,
    /// The directory holding this repository's crates (`cloacina-workflow/`, …).
    pub crates_dir: PathBuf,
    /// The `cargo` to run.
    pub cargo: PathBuf,
}

/// Where cargo's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To this process's terminal, as it is (`cloacinactl package build`).
    Shown,
    /// Captured; a failure reports its first errors (the daemon).
    Captured,
}

impl Compiler {
    /// The compiler configured by the environment: `CLOACINA_PACKAGE_CACHE` (default
    /// `~/.cloacina/cache`), `CLOACINA_CRATES_DIR` (default: the workspace this binary was built
    /// from) and `CARGO` (default `cargo` on the `PATH`).
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Compiler {
            cache_dir: var("CLOACINA_PACKAGE_CACHE").unwrap_or_else(|| home.join(".cloacina").join("cache")),
            crates_dir: var("CLOACINA_CRATES_DIR").unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
            }),
            cargo: var("CARGO").unwrap_or_else(|| PathBuf::from("cargo")),
        }
    }

    /// Where the library of the archive with content hash `sha256` is cached: the key is the
    /// hash, the host's target, the ABI version and a fingerprint of the crate sources it is
    /// built against (a host built from other sources compiles again).
    pub fn cached(&self, sha256: &str) -> PathBuf {
        let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
        self.cache_dir.join("lib").join(format!(
            "{}{sha256}-abi{ABI_VERSION}-{target}-{}{}",
            std::env::consts::DLL_PREFIX,
            self.crates_fingerprint(),
            std::env::consts::DLL_SUFFIX
        ))
    }

    /// A short hash of the names, sizes and modification times of the files of the crates the
    /// build patches in.
    fn crates_fingerprint(&self) -> String {
        let mut files = Vec::new();
        // `cloacina` itself is patched in for packages' dev-dependencies only: it is never part of
        // a package's library.
        for name in OUR_CRATES.iter().filter(|n| **n != "cloacina") {
            list_files(&self.crates_dir.join(name), &mut files);
        }
        files.sort();
        let mut text = String::from(env!("CARGO_PKG_VERSION"));
        for (path, len, modified) in files {
            text.push_str(&format!("\n{}:{len}:{modified}", path.display()));
        }
        super::content_hash(text.as_bytes())[..16].to_owned()
    }

    /// The compiled library of the package in `dir` whose archive hash is `sha256`: the cached
    /// one, or a new build put in the cache.
    pub fn library(&self, dir: &Path, sha256: &str, output: Output) -> Result<PathBuf, Error> {
        let cached = self.cached(sha256);
        if cached.is_file() {
            return Ok(cached);
        }
        let _lock = self.lock()?;
        // Built by another thread or process while this one waited.
        if cached.is_file() {
            return Ok(cached);
        }
        let built = self.cargo_build(dir, output)?;
        let parent = cached.parent().unwrap_or(&self.cache_dir);
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", parent.display()));
        std::fs::create_dir_all(parent).map_err(io)?;
        // Copied beside, then renamed: a reader (a process that loads it without the lock) never
        // sees half a library.
        let partial = parent.join(format!(".{sha256}.{}.partial", std::process::id()));
        let copied = std::fs::copy(&built, &partial).and_then(|_| std::fs::rename(&partial, &cached));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(io(e));
        }
        Ok(cached)
    }

    /// Holds the cache's build lock until dropped. Cargo's shared target directory has one
    /// `lib<name>.so` per library name, so two packages of one name (two versions of one package)
    /// built at once would overwrite each other's library between cargo's end and the copy into
    /// the cache: a build and its copy are one step per cache, across threads and processes (an
    /// advisory lock on `build.lock`, released when the holder ends, even by SIGKILL).
    fn lock(&self) -> Result<std::fs::File, Error> {
        let path = self.cache_dir.join("build.lock");
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(&self.cache_dir).map_err(io)?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    /// Runs `cargo build --release --lib` on the package in `dir` and returns the library it made
    /// (in the shared target directory, where the next build of a package of the same name
    /// replaces it).
    pub fn build(&self, dir: &Path, output: Output) -> Result<PathBuf, Error> {
        let _lock = self.lock()?;
        self.cargo_build(dir, output)
    }

    fn cargo_build(&self, dir: &Path, output: Output) -> Result<PathBuf, Error> {
        let lib_name = lib_name(dir)?;
        let target_dir = self.cache_dir.join("target");
        let mut cargo = Command::new(&self.cargo);
        cargo
            .arg("build")
            .args(["--release", "--lib", "--color", "never"])
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            // A panic in a task must unwind to the package's boundary, whatever the package's
            // own profile says.
            .args(["--config", "profile.release.panic=\"unwind\""])
            .current_dir(dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        for name in OUR_CRATES {
            let path = self.crates_dir.join(name);
            if path.join("Cargo.toml").is_file() {
                let value = toml_string(&path.to_string_lossy());
                cargo.args(["--config", &format!("patch.crates-io.{name}.path={value}")]);
            }
        }
        let status = match output {
            Output::Shown => cargo.status().map(|s| (s, String::new())),
            Output::Captured => cargo.stdout(Stdio::null()).stderr(Stdio::piped()).output().map(|o| {
                let text = String::from_utf8_lossy(&o.stderr).into_owned();
                (o.status, text)
            }),
        };
        let (status, stderr) =
            status.map_err(|e| Error::Build(format!("could not run `{}`: {e}", self.cargo.display())))?;
        if !status.success() {
            return Err(Error::Build(first_errors(&stderr)));
        }
        let built = target_dir.join("release").join(format!(
            "{}{lib_name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        if !built.is_file() {
            return Err(Error::Build(format!(
                "cargo made no {}: the package's [lib] needs crate-type = [\"cdylib\"]",
                built.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
            )));
        }
        Ok(built)
    }
}

/// The files under `dir` (skipping build output) with their sizes and modification times.
fn list_files(dir: &Path, out: &mut Vec<(PathBuf, u64, u128)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if entry.file_name() != "target" {
                list_files(&path, out);
            }
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push((path, meta.len(), modified));
        }
    }
}

/// The library name of the crate in `dir` (`[lib] name`, or the package name with `-` as `_`).
fn lib_name(dir: &Path) -> Result<String, Error> {
    let cargo = crate_manifest(dir)?;
    let lib = cargo.get("lib").and_then(|l| l.get("name")).and_then(|n| n.as_str());
    let package = cargo.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    lib.or(package)
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| Error::Layout("Cargo.toml has no [package] name".to_owned()))
}

/// `dir/Cargo.toml`, parsed.
pub(crate) fn crate_manifest(dir: &Path) -> Result<toml::Table, Error> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Layout(format!("a Rust package needs a Cargo.toml ({} has none)", dir.display()))
        }
        _ => Error::Io(format!("{}: {e}", path.display())),
    })?;
    text.parse::<toml::Table>().map_err(|e| Error::Layout(format!("Cargo.toml: {}", e.message())))
}

/// `s` as a TOML string literal.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The compiler's first errors: the lines from the first `error` on, at most [`REPORTED_LINES`].
fn first_errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("error")).unwrap_or(0);
    let shown: Vec<&str> = lines[start..].iter().copied().take(REPORTED_LINES).collect();
    if shown.is_empty() {
        "cargo failed without saying why".to_owned()
    } else {
        shown.join("\n")
    }
}
