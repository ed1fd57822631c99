//! The runner's services, each a loop of its own over the shared [`Engine`](crate::engine::Engine):
//!
//! - [`claim`]: claims Ready tasks into free slots and starts an [`attempt`] for each;
//! - [`attempt`]: runs one task's code (timeout, panic containment, cancellation at the shutdown
//!   deadline) and reports its outcome;
//! - [`completer`]: records outcomes in batches, each batch in one transaction together with what
//!   follows from it (the [`scheduler`](crate::scheduler) decides dependents and the pipeline's end);
//! - [`heartbeat`]: renews the leases of held claims;
//! - [`recovery`]: hands on tasks whose lease expired and settles pipelines that stand still
//!   (unless `enable_recovery` is off);
//! - [`registry`]: keeps this runner's workflow versions marked live;
//! - [`listener`]: wakes the claim loop when another runner announces Ready work (PostgreSQL);
//! - [`ends`]: tells this process's waiters about pipelines that ended elsewhere;
//! - [`cron`]: starts one pipeline per schedule and fire time across all runners;
//! - [`triggers`]: polls each event trigger once per interval across all runners and starts the
//!   runs they fire;
//! - [`retention`]: deletes finished runs older than `retention` (when set).
//!
//! Data flows one way: claim → attempt → completer → scheduler → waiters. Each service stops on
//! the engine's shutdown signals and is awaited, never aborted.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::engine::Engine;

pub(crate) mod attempt;
pub(crate) mod claim;
pub(crate) mod completer;
pub(crate) mod cron;
pub(crate) mod ends;
pub(crate) mod heartbeat;
pub(crate) mod listener;
pub(crate) mod recovery;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod triggers;

/// The running services: the claim loop (which owns the attempts) apart, because shutdown waits
/// for it first; the others stop on `stop_services` and are awaited after it.
pub(crate) struct Services {
    pub(crate) claim_loop: JoinHandle<()>,
    pub(crate) background: Vec<JoinHandle<()>>,
}

/// Starts every service of `engine`, each owning its loop: the completer its report queue, the
/// claim loop the hand-over queue the completer feeds and the runner's slots.
pub(crate) fn start(engine: &Arc<Engine>) -> Services {
    let (completer, reports) = completer::Completer::new();
    let (handoff, handoffs) = tokio::sync::mpsc::unbounded_channel();
    let mut background = vec![
        tokio::spawn(completer::run(engine.clone(), reports, handoff)),
        tokio::spawn(heartbeat::run(engine.clone())),
        tokio::spawn(registry::run(engine.clone())),
        tokio::spawn(listener::run(engine.clone())),
        tokio::spawn(ends::run(engine.clone())),
    ];
    if engine.config.enable_recovery {
        background.push(tokio::spawn(recovery::run(engine.clone())));
    }
    if engine.config.enable_cron {
        background.push(tokio::spawn(cron::run(engine.clone())));
    }
    if engine.config.retention.is_some() {
        background.push(tokio::spawn(retention::run(engine.clone())));
    }
    if engine.config.enable_trigger_scheduling && !engine.triggers.is_empty() {
        background.push(tokio::spawn(triggers::run(engine.clone())));
    }
    let claim_loop = tokio::spawn(claim::run(engine.clone(), completer, claim::slots(engine), handoffs));
    Services { claim_loop, background }
}
