//! `cloacinactl package`: scaffold, validate, build, pack and inspect workflow packages
//! (`cloacina::packages`), and upload, publish, list, inspect and delete them on a server
//! (`--server`, see [`super::remote`]).

use std::path::{Path, PathBuf};

use cloacina::models::WorkflowPackage;
use cloacina::packages::{self, source, Language, Loader, Manifest, Output};
use reqwest::Method;

use super::output::{self, table, time, Failure};
use super::remote::Server;
use super::Target;

/// `package` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PackageCommand {
    /// Create a package that packs, loads and runs as it is.
    New {
        /// The package (and workflow) name; the directory created.
        name: String,
        /// `rust` or `python`.
        #[arg(long, visible_alias = "lang", value_enum, default_value_t = Lang::Rust)]
        language: Lang,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a package source directory or a `.cloacina` archive: manifest, layout, graph.
    Validate {
        /// A source directory or an archive.
        path: PathBuf,
    },
    /// Compile a Rust package (cargo's output shown as it is); nothing to do for Python.
    Build {
        /// The package source directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Pack a source directory into a `.cloacina` archive (source, not a compiled library).
    Pack {
        /// The package source directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The archive to write (default: NAME-VERSION.cloacina in the current directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Sign the archive with this private key file (`cloacinactl signing-key generate`): the
        /// signature goes beside the archive, in ARCHIVE.sig.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// List the packages in the database (or on `--server`): version, status, content hash, error.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Ask this server instead of the database.
        #[arg(long, env = "CLOACINA_SERVER")]
        server: Option<String>,
    },
    /// Show an archive's manifest, content hash, workflows, tasks and graph; with `--server`, a
    /// stored package's record by id.
    Inspect {
        /// The archive (or, with `--server`, the package id).
        archive: String,
        /// Ask this server about a package id.
        #[arg(long, env = "CLOACINA_SERVER")]
        server: Option<String>,
        /// Print JSON (with `--server`).
        #[arg(long)]
        json: bool,
    },
    /// Upload an archive to a server, whose workers load and run it (needs CLOACINA_TOKEN when
    /// the server has a token). ARCHIVE.sig, if it exists, is sent as its signature.
    Upload {
        /// The `.cloacina` archive.
        archive: PathBuf,
        /// The server (`http://host:port`).
        #[arg(long, env = "CLOACINA_SERVER")]
        server: String,
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Validate and pack a source directory, then upload it to a server.
    Publish {
        /// The package source directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Sign the archive with this private key file.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// The server (`http://host:port`).
        #[arg(long, env = "CLOACINA_SERVER")]
        server: String,
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Delete a package on a server: no new runs of its workflows; runs in flight finish.
    Delete {
        /// The package id.
        id: String,
        /// The server (`http://host:port`).
        #[arg(long, env = "CLOACINA_SERVER")]
        server: String,
    },
}

/// A package language on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
}

pub(crate) fn run(target: &Target, cmd: PackageCommand) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::List { json, server } => {
            let all = match server {
                Some(url) => {
                    let answer = Server::at(&url)?.call(Method::GET, "packages", None)?;
                    serde_json::from_value::<Vec<WorkflowPackage>>(answer["packages"].clone())?
                }
                None => cloacina::ops::packages::list(&mut target.connect_migrated()?)?,
            };
            if json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|p| {
                    vec![
                        p.package_name.clone(),
                        p.version.clone(),
                        p.status.as_str().to_owned(),
                        p.content_sha256.chars().take(16).collect(),
                        cloacina::ops::packages::workflows_of(p).join(", "),
                        time(p.updated_at),
                        p.error.as_deref().and_then(|e| e.lines().next()).unwrap_or_default().to_owned(),
                    ]
                })
                .collect();
            table(&["PACKAGE", "VERSION", "STATUS", "SHA256", "WORKFLOWS", "UPDATED", "ERROR"], &rows)
        }
        PackageCommand::New { name, language, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let language = match language {
                Lang::Rust => Language::Rust,
                Lang::Python => Language::Python,
            };
            packages::scaffold::create(&dir, &name, language).map_err(bad)?;
            output::line(format!("created {language} package {name} in {}", dir.display()))
        }
        PackageCommand::Validate { path } => {
            let loader = Loader::from_env();
            let manifest = if path.is_dir() {
                let manifest = source::manifest(&path).map_err(bad)?;
                source::check_layout(&path, &manifest).map_err(bad)?;
                manifest
            } else {
                loader.unpack(&read(&path)?).map_err(bad)?.manifest
            };
            let p = &manifest.package;
            output::line(format!(
                "{}: {} {} ({}) is a valid package",
                path.display(),
                p.name,
                p.version,
                manifest.language()
            ))
        }
        PackageCommand::Build { dir } => {
            let manifest = source::manifest(&dir).map_err(bad)?;
            source::check_layout(&dir, &manifest).map_err(bad)?;
            if manifest.language() == Language::Python {
                return output::line("a Python package has nothing to compile");
            }
            let built = Loader::from_env().compiler.build(&dir, Output::Shown).map_err(bad)?;
            output::line(format!("built {}", built.display()))
        }
        PackageCommand::Pack { dir, out, sign } => {
            let (manifest, bytes) = source::pack(&dir).map_err(bad)?;
            let out = out.unwrap_or_else(|| PathBuf::from(manifest.file_name()));
            let signature = sign.map(|key| signed(&key, &bytes)).transpose()?;
            write_atomically(&out, &bytes)?;
            if let Some(signature) = signature {
                let path = signature_path(&out);
                write_atomically(&path, signature.as_bytes())?;
                let by = packages::signing::signer(&signature).map_err(bad)?.fingerprint();
                output::line(format!("signed by key {by} into {}", path.display()))?;
            }
            output::line(format!(
                "packed {} {} into {} ({} bytes, sha256 {})",
                manifest.package.name,
                manifest.package.version,
                out.display(),
                bytes.len(),
                packages::content_hash(&bytes)
            ))
        }
        PackageCommand::Inspect { archive, server: None, .. } => inspect(Path::new(&archive)),
        PackageCommand::Inspect { archive: id, server: Some(url), json } => {
            let answer = Server::at(&url)?.call(Method::GET, &format!("packages/{}", escaped(&id)), None)?;
            let package: WorkflowPackage = serde_json::from_value(answer["package"].clone())?;
            if json {
                return output::json(&answer);
            }
            output::line(format!("package:   {} {} ({})", package.package_name, package.version, package.id))?;
            output::line(format!("status:    {}", package.status.as_str()))?;
            output::line(format!("sha256:    {}", package.content_sha256))?;
            output::line(format!("workflows: {}", cloacina::ops::packages::workflows_of(&package).join(", ")))?;
            output::line(format!("updated:   {}", time(package.updated_at)))?;
            if let Some(error) = &package.error {
                output::line(format!("error:     {error}"))?;
            }
            let workers: Vec<cloacina::ops::packages::WorkerLoad> = serde_json::from_value(answer["workers"].clone())?;
            for w in &workers {
                output::line(format!("worker {} on {}: {}", w.runner, w.host, w.state))?;
            }
            Ok(())
        }
        PackageCommand::Upload { archive, server, json } => {
            let sig = signature_path(&archive);
            let signature = if sig.is_file() { Some(String::from_utf8_lossy(&read(&sig)?).into_owned()) } else { None };
            upload(&Server::at(&server)?, read(&archive)?, signature, json)
        }
        PackageCommand::Publish { dir, sign, server, json } => {
            let server = Server::at(&server)?;
            let (_, bytes) = source::pack(&dir).map_err(bad)?;
            let signature = sign.map(|key| signed(&key, &bytes)).transpose()?;
            upload(&server, bytes, signature, json)
        }
        PackageCommand::Delete { id, server } => {
            let answer = Server::at(&server)?.call(Method::DELETE, &format!("packages/{}", escaped(&id)), None)?;
            let package: WorkflowPackage = serde_json::from_value(answer["package"].clone())?;
            output::line(format!(
                "deleted {} {} ({}): its workflows start no new runs; runs in flight finish",
                package.package_name, package.version, package.id
            ))
        }
    }
}

/// Uploads `bytes` (with its signature file's text, if signed) and says what the server stored.
fn upload(server: &Server, bytes: Vec<u8>, signature: Option<String>, json: bool) -> anyhow::Result<()> {
    let answer = server.upload(bytes, signature)?;
    if json {
        return output::json(&answer);
    }
    let package: WorkflowPackage = serde_json::from_value(answer["package"].clone())?;
    let what = if answer["created"] == true { "uploaded" } else { "already stored:" };
    output::line(format!(
        "{what} {} {} as {} (status {}; the workers load it)",
        package.package_name,
        package.version,
        package.id,
        package.status.as_str()
    ))
}

/// `text` as one URL path segment (an id is a UUID; anything else is the server's to refuse).
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    let bytes = read(path)?;
    let loader = Loader::from_env();
    let unpacked = loader.unpack(&bytes).map_err(bad)?;
    let m: &Manifest = &unpacked.manifest;
    output::line(format!("package:   {} {}", m.package.name, m.package.version))?;
    output::line(format!("language:  {}", m.language()))?;
    output::line(format!("interface: {} v{}", m.package.interface, m.package.interface_version))?;
    output::line(format!("sha256:    {}", unpacked.sha256))?;
    for (label, value) in [
        ("workflow:  ", &m.metadata.workflow_name),
        ("entry:     ", &m.metadata.entry_module),
        ("python:    ", &m.metadata.requires_python),
        ("about:     ", &m.metadata.description),
        ("author:    ", &m.metadata.author),
    ] {
        if let Some(v) = value {
            output::line(format!("{label}{v}"))?;
        }
    }
    if m.language() == Language::Python {
        return Ok(());
    }
    let loaded = loader.load(&unpacked, Output::Captured).map_err(bad)?;
    for wf in &loaded.set.workflows {
        output::line(format!("workflow {} (version {})", wf.name(), wf.version()))?;
        for task in wf.spec().tasks() {
            let after = if task.dependencies.is_empty() {
                String::new()
            } else {
                format!(" after {}", task.dependencies.join(", "))
            };
            output::line(format!("  task {}{after} ({} attempts)", task.id, task.retry.max_attempts))?;
        }
    }
    for t in &loaded.description.triggers {
        output::line(format!("trigger {} starts {} every {} ms", t.name, t.workflow, t.poll_interval_ms))?;
    }
    for c in &loaded.description.cron_triggers {
        output::line(format!("cron {} starts {} at `{}` ({})", c.name, c.workflow, c.expression, c.timezone))?;
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| output::fail(Failure::NotFound, format!("{}: {e}", path.display())))
}

/// Writes beside `path` and renames: a daemon watching the directory never reads half an archive.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// `cloacinactl signing-key`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SigningKeyCommand {
    /// Make a new Ed25519 signing key: KEY (private, mode 0600; keep it secret) and KEY.pub.
    Generate {
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn signing_key(cmd: SigningKeyCommand) -> anyhow::Result<()> {
    let SigningKeyCommand::Generate { out } = cmd;
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    if out.exists() || public_path.exists() {
        return Err(output::fail(Failure::BadInput, format!("{} or its .pub exists: not overwritten", out.display())));
    }
    let (private, public) = packages::signing::generate().map_err(bad)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&out)?, private.as_bytes())?;
    std::fs::write(&public_path, public.to_text())?;
    output::line(format!(
        "signing key {} written to {} (private: keep it secret) and {} (public: give it to servers with --trusted-key)",
        public.fingerprint(),
        out.display(),
        public_path.display()
    ))
}

/// The signature file beside `archive`: `<archive>.sig`.
fn signature_path(archive: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", archive.display()))
}

/// The signature file's text for `bytes` signed with the private key file `key`.
fn signed(key: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(key)
        .map_err(|e| output::fail(Failure::BadInput, format!("cannot read the signing key {}: {e}", key.display())))?;
    packages::signing::sign(&text, bytes).map_err(bad)
}

/// A package error: the caller's to fix.
fn bad(e: packages::Error) -> anyhow::Error {
    output::fail(Failure::BadInput, e.to_string())
}
