//! Workflow packages: a workflow written once, packed into a `.cloacina` archive, and run by a
//! process that was not compiled with it (the daemon, `cloacinactl daemon`).
//!
//! The format is upstream Cloacina's: a bzip2-compressed tar with one `<name>-<version>/`
//! directory holding `package.toml` ([`Manifest`]) and the source: a Rust crate (compiled where
//! it is loaded, [`Compiler`]) or a Python module tree under `workflow/`. Loading a Rust package
//! ([`Loader::unpack`], [`Loader::load`]) unpacks it safely ([`archive`]), compiles it (or finds it in the cache by
//! content hash), opens it through the package ABI (ADR 0011) and returns a [`WorkflowSet`]
//! whose task code calls into the package: the runner runs those workflows exactly as it runs
//! compiled-in ones. Every workflow a package defines is versioned with the archive's content
//! hash ([`WorkflowBuilder::source`](crate::workflow::WorkflowBuilder::source)), so a new archive
//! is a new version and a run always finishes on the code it started with.
//!
//! Available with the `packages` feature.

mod abi;
pub mod archive;
pub mod compile;
pub mod daemon;
mod error;
mod load;
pub mod manifest;
pub mod python;
pub mod scaffold;
mod scratch;
pub mod signing;
pub mod source;
#[cfg(test)]
mod tests;
mod upload;

pub use archive::Limits;
pub use compile::{Compiler, Output};
pub use load::{Loaded, Loader, Unpacked};
pub use manifest::{Language, Manifest};

pub use crate::ops::packages::content_hash;
pub use crate::runner::WorkflowSet;
pub use error::Error;
pub use scratch::Scratch;
pub use upload::{upload, Rejected};
