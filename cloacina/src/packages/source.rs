//! A package's source directory: its manifest (read, or inferred where upstream infers it), the
//! layout its language needs, and packing it into an archive.

use std::path::{Path, PathBuf};

use super::archive;
use super::compile::crate_manifest;
use super::manifest::{is_identifier, Language, Manifest, FILE};
use super::Error;

/// The manifest of the package in `dir`, with what can be inferred filled in: a Rust crate
/// without a `package.toml` is described by its `Cargo.toml` (name, version, description, first
/// author); a Python package without `entry_module` imports the one package under `workflow/`.
pub fn manifest(dir: &Path) -> Result<Manifest, Error> {
    let mut manifest = if dir.join(FILE).is_file() {
        Manifest::read(dir)?
    } else if dir.join("Cargo.toml").is_file() {
        from_cargo(dir)?
    } else {
        return Err(Error::Layout(format!("{} has no {FILE} (and no Cargo.toml to infer one from)", dir.display())));
    };
    if manifest.language() == Language::Python && manifest.metadata.entry_module.is_none() {
        manifest.metadata.entry_module = Some(infer_entry_module(dir, &manifest.package.name)?);
    }
    Ok(manifest)
}

fn from_cargo(dir: &Path) -> Result<Manifest, Error> {
    let cargo = crate_manifest(dir)?;
    let package = cargo.get("package").and_then(|p| p.as_table());
    let field = |name: &str| package.and_then(|p| p.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
    let (Some(name), Some(version)) = (field("name"), field("version")) else {
        return Err(Error::Layout("Cargo.toml needs [package] name and version (or write a package.toml)".to_owned()));
    };
    let mut manifest = Manifest::new(&name, &version, Language::Rust);
    manifest.metadata.description = field("description");
    manifest.metadata.author = package
        .and_then(|p| p.get("authors"))
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    Ok(manifest)
}

/// Upstream's rule: the package name in snake case names the module tree under `workflow/`
/// (`data-pipeline` → `workflow/data_pipeline/`), whose `tasks` module is imported if it has one,
/// else the package itself; failing that, the one package under `workflow/`.
fn infer_entry_module(dir: &Path, name: &str) -> Result<String, Error> {
    let tree = workflow_dir(dir)?;
    let snake = name.replace('-', "_");
    if is_identifier(&snake) {
        if tree.join(&snake).join("tasks.py").is_file() {
            return Ok(format!("{snake}.tasks"));
        }
        if tree.join(&snake).join("__init__.py").is_file() || tree.join(format!("{snake}.py")).is_file() {
            return Ok(snake);
        }
    }
    let mut packages: Vec<String> = std::fs::read_dir(&tree)
        .map_err(|e| Error::Io(format!("{}: {e}", tree.display())))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("__init__.py").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_identifier(n))
        .collect();
    packages.sort();
    match packages.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Layout(
            "workflow/ holds no Python package (a directory with __init__.py): add one, or set [metadata] entry_module"
                .to_owned(),
        )),
        many => Err(Error::Layout(format!(
            "workflow/ holds several Python packages ({}): say which to import with [metadata] entry_module",
            many.join(", ")
        ))),
    }
}

/// `dir/workflow`, which a Python package must have.
fn workflow_dir(dir: &Path) -> Result<PathBuf, Error> {
    let tree = dir.join("workflow");
    if tree.is_dir() {
        Ok(tree)
    } else {
        Err(Error::Layout(
            "Missing workflow source directory: a Python package keeps its modules under workflow/".to_owned(),
        ))
    }
}

/// Checks that `dir` is laid out as `manifest`'s language needs: a Rust crate built as a
/// `cdylib` with a library root; a Python `workflow/` tree in which the entry module exists.
pub fn check_layout(dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    match manifest.language() {
        Language::Rust => {
            let cargo = crate_manifest(dir)?;
            let lib = cargo.get("lib").and_then(|l| l.as_table());
            let cdylib = lib
                .and_then(|l| l.get("crate-type"))
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|k| k.as_str() == Some("cdylib")));
            if !cdylib {
                return Err(Error::Layout(
                    "Cargo.toml's [lib] needs crate-type = [\"cdylib\"] (a package is loaded as a shared library)"
                        .to_owned(),
                ));
            }
            let root = lib.and_then(|l| l.get("path")).and_then(|p| p.as_str()).unwrap_or("src/lib.rs");
            if !dir.join(root).is_file() {
                return Err(Error::Layout(format!("the crate's library root {root} is missing")));
            }
            Ok(())
        }
        Language::Python => {
            let tree = workflow_dir(dir)?;
            let module = manifest
                .metadata
                .entry_module
                .clone()
                .map_or_else(|| infer_entry_module(dir, &manifest.package.name), Ok)?;
            let path: PathBuf = module.split('.').collect();
            if tree.join(&path).with_extension("py").is_file() || tree.join(&path).join("__init__.py").is_file() {
                Ok(())
            } else {
                Err(Error::Layout(format!(
                    "the entry module `{module}` is not under workflow/ (no {}.py)",
                    path.display()
                )))
            }
        }
    }
}

/// Validates the package in `dir` (manifest and layout) and packs it: the manifest (as
/// inferred) and the archive's bytes.
pub fn pack(dir: &Path) -> Result<(Manifest, Vec<u8>), Error> {
    let manifest = manifest(dir)?;
    check_layout(dir, &manifest)?;
    let bytes = archive::pack(dir, &manifest)?;
    Ok((manifest, bytes))
}
