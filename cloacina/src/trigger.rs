//! Event triggers (upstream's `cloacina::trigger`): [`Trigger`], [`TriggerResult`] and
//! [`TriggerError`] from `cloacina-workflow`, and the registry `#[trigger]` adds to. Runners poll
//! every registered trigger whose workflow they have (the trigger service, see
//! `DefaultRunnerConfig::enable_trigger_scheduling`).

pub use cloacina_workflow::trigger::*;

/// A trigger that registers itself when linked: `#[trigger]` submits one per function.
pub struct Registration(pub fn() -> Trigger);

inventory::collect!(Registration);

/// Every trigger registered in this binary by `#[trigger]`, sorted by name.
pub fn registered() -> Vec<Trigger> {
    let mut all: Vec<Trigger> = inventory::iter::<Registration>.into_iter().map(|r| (r.0)()).collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}
