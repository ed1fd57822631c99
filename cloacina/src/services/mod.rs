//! The runner's services, each a loop of its own over the parts of the
//! [`Engine`] it uses (its signature names them):
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
mod keeper;
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

/// Starts every service of `engine`, each given the parts it uses: the completer owns its report
/// queue, the claim loop the hand-over queue the completer feeds and the runner's slots.
pub(crate) fn start(engine: &Engine) -> Services {
    let Engine { store, catalog, claims, runs, signals, shutdown, settings, clock } = engine;
    let config = &settings.config;
    let (completer, reports) = completer::Completer::new();
    let (handoff, handoffs) = tokio::sync::mpsc::unbounded_channel();
    let mut background = vec![
        tokio::spawn(completer::run(Arc::new(completer::Recorder::of(engine)), reports, handoff)),
        tokio::spawn(heartbeat::run(store.clone(), claims.clone(), settings.clone(), clock.clone(), shutdown.clone())),
        tokio::spawn(registry::run(store.clone(), catalog.clone(), settings.clone(), clock.clone(), shutdown.clone())),
        tokio::spawn(listener::run(store.clone(), signals.clone(), shutdown.clone())),
        tokio::spawn(ends::run(store.clone(), runs.clone(), settings.clone(), shutdown.clone())),
    ];
    if config.enable_recovery {
        background.push(tokio::spawn(recovery::run(recovery::Recovery::of(engine), shutdown.clone())));
    }
    if config.enable_cron {
        background.push(tokio::spawn(cron::run(Arc::new(cron::Cron::of(engine)), shutdown.clone())));
    }
    if config.retention.is_some() {
        background.push(tokio::spawn(retention::run(store.clone(), settings.clone(), clock.clone(), shutdown.clone())));
    }
    if config.enable_trigger_scheduling {
        background.push(tokio::spawn(triggers::run(Arc::new(triggers::Poller::of(engine)), shutdown.clone())));
    }
    let claimer = Arc::new(claim::Claimer::of(engine));
    let claim_loop = tokio::spawn(claim::run(claimer, completer, claim::slots(settings), handoffs));
    Services { claim_loop, background }
}
