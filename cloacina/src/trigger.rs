//! Event triggers (upstream's `cloacina::trigger`): [`Trigger`], [`TriggerResult`] and
//! [`TriggerError`] from `cloacina-workflow`, and the registry `#[trigger]` adds to. Runners poll
//! every registered trigger whose workflow they have (the trigger service, see
//! `DefaultRunnerConfig::enable_trigger_scheduling`).

pub use cloacina_workflow::trigger::*;
