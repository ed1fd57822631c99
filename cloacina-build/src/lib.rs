//! The build-script helper of a Cloacina workflow package, upstream's name and call:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     cloacina_build::configure();
//! }
//! ```
//!
//! [`configure`] tells Cargo to rebuild the package when its `package.toml` changes and checks that
//! the crate is built as a `cdylib` (the form a daemon or server loads), so a package that would
//! build but never load fails here with a message that says why.

use std::path::Path;

/// Configures the build of a workflow package; call it from `build.rs`.
pub fn configure() {
    println!("cargo:rerun-if-changed=package.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else { return };
    let manifest = std::fs::read_to_string(Path::new(&dir).join("Cargo.toml")).unwrap_or_default();
    if let Some(problem) = crate_type_problem(&manifest) {
        println!("cargo:warning={problem}");
    }
}

/// Why `Cargo.toml` text does not build a loadable package, if it does not: its `[lib]` must list
/// `cdylib` in `crate-type`.
fn crate_type_problem(manifest: &str) -> Option<String> {
    let mut in_lib = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lib = line == "[lib]";
            continue;
        }
        if in_lib && line.starts_with("crate-type") {
            return (!line.contains("\"cdylib\"")).then(|| {
                "a Cloacina package is loaded as a shared library: add \"cdylib\" to [lib] crate-type".to_owned()
            });
        }
    }
    Some("a Cloacina package is loaded as a shared library: add `crate-type = [\"cdylib\"]` under [lib]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::crate_type_problem;

    #[test]
    fn a_package_must_be_a_cdylib() {
        assert_eq!(crate_type_problem("[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n"), None);
        assert!(crate_type_problem("[lib]\ncrate-type = [\"rlib\"]\n").is_some());
        assert!(crate_type_problem("[package]\nname = \"x\"\n").is_some());
        assert!(crate_type_problem("[dependencies]\ncrate-type = [\"cdylib\"]\n").is_some(), "only [lib] counts");
    }
}
