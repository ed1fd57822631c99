//! Procedural macros for Cloacina's authoring model (`#[task]`, `#[workflow]`).
//!
//! FIXME: the macros arrive with the workflow engine; until then this crate is an empty placeholder
//! so the workspace layout is stable.
