//! The runner's services, each a loop of its own over the shared [`Engine`](crate::engine::Engine):
//!
//! - [`claim`]: claims Ready tasks into free slots and starts an [`attempt`] for each;
//! - [`attempt`]: runs one task's code (timeout, panic containment, cancellation at the shutdown
//!   deadline) and reports its outcome;
//! - [`completer`]: records outcomes in batches, each batch in one transaction together with what
//!   follows from it (the [`scheduler`](crate::scheduler) decides dependents and the pipeline's end);
//! - [`heartbeat`]: renews the leases of held claims;
//! - [`recovery`]: hands on tasks whose lease expired and settles pipelines that stand still;
//! - [`registry`]: keeps this runner's workflow versions marked live;
//! - [`listener`]: wakes the claim loop when another runner announces Ready work (PostgreSQL).
//!
//! Data flows one way: claim → attempt → completer → scheduler → waiters. Each service stops on
//! the engine's shutdown signals and is awaited, never aborted.

pub(crate) mod attempt;
pub(crate) mod claim;
pub(crate) mod completer;
pub(crate) mod heartbeat;
pub(crate) mod listener;
pub(crate) mod recovery;
pub(crate) mod registry;
