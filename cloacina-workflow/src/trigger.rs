//! Event triggers: a poll function the runners call every `poll_interval`; when it returns
//! [`TriggerResult::Fire`], a run of its workflow starts with the context it gives. The engine
//! (`cloacina`'s trigger service) polls each trigger once per interval across all runners and
//! deduplicates fires by the context's hash ([`TriggerResult::context_hash`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use cloacina_rules::{parse_poll_interval, InvalidTrigger, MAX_POLL_INTERVAL, MIN_POLL_INTERVAL};

use crate::Context;

/// What one poll decided.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerResult {
    /// Nothing to do; poll again next interval.
    Skip,
    /// Start a run, with this context as its input (an empty one for `None`).
    Fire(Option<Context<Value>>),
}

impl TriggerResult {
    /// True for [`TriggerResult::Fire`].
    pub fn should_fire(&self) -> bool {
        matches!(self, TriggerResult::Fire(_))
    }

    /// The context of a fire (`None` for a skip or a fire without one).
    pub fn into_context(self) -> Option<Context<Value>> {
        match self {
            TriggerResult::Fire(context) => context,
            TriggerResult::Skip => None,
        }
    }

    /// The fire's identity for deduplication: a SHA-256 of the context's JSON (keys are sorted, so
    /// equal contexts hash equally in every process and version), first 16 hex digits;
    /// `fire_no_context` for a fire without a context and `skip` for a skip.
    pub fn context_hash(&self) -> String {
        match self {
            TriggerResult::Skip => "skip".to_owned(),
            TriggerResult::Fire(None) => "fire_no_context".to_owned(),
            TriggerResult::Fire(Some(context)) => {
                let text = serde_json::to_vec(context.data()).unwrap_or_default();
                Sha256::digest(&text).iter().take(8).map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

/// Why a poll failed: logged by the runner, which polls again next interval.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The poll could not tell.
    #[error("Trigger poll error: {message}")]
    PollError {
        /// What went wrong.
        message: String,
    },
    /// Building the fire's context failed.
    #[error("Context error: {0}")]
    ContextError(#[from] crate::context::Error),
}

/// The future a poll function returns.
pub type PollFuture = Pin<Box<dyn Future<Output = Result<TriggerResult, TriggerError>> + Send + 'static>>;

/// An event trigger: a named poll function bound to a workflow (`#[trigger(on = …)]` builds one;
/// [`Trigger::new`] builds one at run time).
#[derive(Clone)]
pub struct Trigger {
    name: String,
    workflow: String,
    poll_interval: Duration,
    allow_concurrent: bool,
    poll: Arc<dyn Fn() -> PollFuture + Send + Sync>,
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trigger")
            .field("name", &self.name)
            .field("workflow", &self.workflow)
            .field("poll_interval", &self.poll_interval)
            .field("allow_concurrent", &self.allow_concurrent)
            .finish_non_exhaustive()
    }
}

impl Trigger {
    /// Trigger `name` starts `workflow` when `poll`, called every `poll_interval`, fires. By
    /// default a fire is dropped while a run it started with the same context hash is unfinished
    /// ([`Trigger::allow_concurrent`] lifts that).
    pub fn new<F, Fut>(
        name: impl Into<String>,
        workflow: impl Into<String>,
        poll_interval: Duration,
        poll: F,
    ) -> Result<Self, InvalidTrigger>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TriggerResult, TriggerError>> + Send + 'static,
    {
        let (name, workflow) = (name.into(), workflow.into());
        if name.trim().is_empty() {
            return Err(InvalidTrigger("a trigger needs a non-empty name".to_owned()));
        }
        if workflow.trim().is_empty() {
            return Err(InvalidTrigger(format!("trigger `{name}` names no workflow (`on`)")));
        }
        if poll_interval < MIN_POLL_INTERVAL || poll_interval > MAX_POLL_INTERVAL {
            return Err(InvalidTrigger(format!(
                "trigger `{name}`: poll_interval {poll_interval:?} is outside {MIN_POLL_INTERVAL:?} ..= {MAX_POLL_INTERVAL:?}"
            )));
        }
        let poll = Arc::new(move || -> PollFuture { Box::pin(poll()) });
        Ok(Self { name, workflow, poll_interval, allow_concurrent: false, poll })
    }

    /// Whether a fire may start a run while one with the same context hash is unfinished.
    pub fn allow_concurrent(mut self, allow: bool) -> Self {
        self.allow_concurrent = allow;
        self
    }

    /// The trigger's name (unique among triggers).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The workflow it starts.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// How often it is polled (once per interval across all runners).
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// See [`Trigger::allow_concurrent`].
    pub fn allows_concurrent(&self) -> bool {
        self.allow_concurrent
    }

    /// Calls the poll function once.
    pub fn poll(&self) -> PollFuture {
        (self.poll)()
    }
}

/// A poll trigger that registers itself when linked: `#[trigger(poll_interval = …)]` submits one
/// per function. A runner polls every registered trigger whose workflow it has; a package's host
/// polls the ones the package registered.
pub struct Registration(pub fn() -> Trigger);

inventory::collect!(Registration);

/// Every poll trigger registered in this binary (or package) by `#[trigger]`, sorted by name.
pub fn registered() -> Vec<Trigger> {
    let mut all: Vec<Trigger> = inventory::iter::<Registration>.into_iter().map(|r| (r.0)()).collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// A cron schedule declared in code (`#[trigger(on = "…", cron = "…")]`, upstream's form): runners
/// that have `workflow` create the schedule once, keyed by `name`, and never change it after (an
/// operator may edit, pause or delete it like any other schedule).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CronTrigger {
    /// The declaration's name (the function's name unless `name = …`): the schedule's identity.
    pub name: String,
    /// The workflow it starts.
    pub workflow: String,
    /// The cron expression (5 fields, or 6 with seconds).
    pub expression: String,
    /// The IANA time zone the expression is read in (`UTC` unless `timezone = …`).
    pub timezone: String,
}

/// A cron trigger that registers itself when linked: `#[trigger(cron = …)]` submits one.
pub struct CronRegistration(pub fn() -> CronTrigger);

inventory::collect!(CronRegistration);

/// Every cron trigger registered in this binary (or package) by `#[trigger]`, sorted by name.
pub fn cron_triggers() -> Vec<CronTrigger> {
    let mut all: Vec<CronTrigger> = inventory::iter::<CronRegistration>.into_iter().map(|r| (r.0)()).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_contexts_hash_equally_whatever_the_insertion_order() {
        let mut a = Context::new();
        a.insert("file", serde_json::json!("x.csv")).expect("a");
        a.insert("size", serde_json::json!(3)).expect("a");
        let mut b = Context::new();
        b.insert("size", serde_json::json!(3)).expect("b");
        b.insert("file", serde_json::json!("x.csv")).expect("b");
        let (fa, fb) = (TriggerResult::Fire(Some(a)), TriggerResult::Fire(Some(b)));
        assert_eq!(fa.context_hash(), fb.context_hash());
        assert_eq!(fa.context_hash().len(), 16);
        let mut c = Context::new();
        c.insert("file", serde_json::json!("y.csv")).expect("c");
        assert_ne!(fa.context_hash(), TriggerResult::Fire(Some(c)).context_hash());
        assert_eq!(TriggerResult::Fire(None).context_hash(), "fire_no_context");
        assert!(!TriggerResult::Skip.should_fire() && fa.should_fire());
    }

    #[test]
    fn bad_definitions_are_refused() {
        let poll = || async { Ok(TriggerResult::Skip) };
        assert!(Trigger::new("t", "wf", Duration::from_secs(1), poll).is_ok());
        assert!(Trigger::new(" ", "wf", Duration::from_secs(1), poll).is_err());
        assert!(Trigger::new("t", "", Duration::from_secs(1), poll).is_err());
        assert!(Trigger::new("t", "wf", Duration::ZERO, poll).is_err());
        let t = Trigger::new("t", "wf", Duration::from_secs(1), poll).expect("t").allow_concurrent(true);
        assert!(t.allows_concurrent());
        assert!(format!("{t:?}").contains("wf"));
    }
}
