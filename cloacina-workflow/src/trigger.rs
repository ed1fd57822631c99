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

/// The shortest poll interval a trigger may have.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The longest poll interval a trigger may have (one week).
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A trigger definition that cannot work (empty name, no workflow, interval out of range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTrigger(pub String);

/// Parses a poll interval as upstream writes it: a whole number with `ms`, `s`, `m` or `h`
/// (`"100ms"`, `"5s"`, `"2m"`, `"1h"`), within [`MIN_POLL_INTERVAL`] ..= [`MAX_POLL_INTERVAL`].
pub fn parse_poll_interval(text: &str) -> Result<Duration, InvalidTrigger> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad =
        || InvalidTrigger(format!("poll interval `{text}`: expected a whole number and ms, s, m or h, like `5s`"));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let interval = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if interval < MIN_POLL_INTERVAL || interval > MAX_POLL_INTERVAL {
        return Err(InvalidTrigger(format!(
            "poll interval `{text}` is outside {MIN_POLL_INTERVAL:?} ..= {MAX_POLL_INTERVAL:?}"
        )));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_intervals_parse_like_upstreams() {
        assert_eq!(parse_poll_interval("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_poll_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_poll_interval("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_poll_interval("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "5", "s", "5 s", "5d", "-1s", "1.5s"] {
            assert!(parse_poll_interval(bad).is_err(), "{bad:?}");
        }
        assert!(parse_poll_interval("1ms").expect_err("too short").to_string().contains("outside"));
        assert!(parse_poll_interval("200h").is_err(), "longer than a week");
    }

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
