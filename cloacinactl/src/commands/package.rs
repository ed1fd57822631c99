//! `cloacinactl package`: scaffold, validate, build, pack and inspect workflow packages
//! (`cloacina::packages`).

use std::path::{Path, PathBuf};

use cloacina::packages::{self, source, Language, Loader, Manifest, Output};

use super::output::{self, table, time, Failure};
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
    },
    /// List the packages daemons recorded in the database: version, status, content hash, error.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an archive's manifest, content hash, workflows, tasks and graph.
    Inspect {
        /// The archive.
        archive: PathBuf,
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
        PackageCommand::List { json } => {
            let all = cloacina::ops::packages::list(&mut target.connect_migrated()?)?;
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
        PackageCommand::Pack { dir, out } => {
            let (manifest, bytes) = source::pack(&dir).map_err(bad)?;
            let out = out.unwrap_or_else(|| PathBuf::from(manifest.file_name()));
            write_atomically(&out, &bytes)?;
            output::line(format!(
                "packed {} {} into {} ({} bytes, sha256 {})",
                manifest.package.name,
                manifest.package.version,
                out.display(),
                bytes.len(),
                packages::content_hash(&bytes)
            ))
        }
        PackageCommand::Inspect { archive } => inspect(&archive),
    }
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

/// A package error: the caller's to fix.
fn bad(e: packages::Error) -> anyhow::Error {
    output::fail(Failure::BadInput, e.to_string())
}
