//! Upstream Cloacina's computation graphs (reactors, accumulators, `graph_name` packages) are not
//! implemented here. Upstream's workflow packages list this crate among their dependencies without
//! using it; it exists, empty, so that those packages build with only their dependency lines
//! pointed at this repository. A package that uses computation graphs fails to compile against it,
//! and a manifest with `graph_name` is refused with a message saying they are not supported.
