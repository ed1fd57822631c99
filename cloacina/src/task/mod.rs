//! The authoring model of one task: its error type and its trigger rules. Pure: no database.

mod trigger;

pub use trigger::{TaskOutcomes, TriggerRule, ValueOperator};

/// Why a task did not succeed. Retryable errors use the task's retry policy; fatal ones fail the
/// task at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A transient failure (a timeout, an unavailable service): another attempt may succeed.
    #[error("{0}")]
    Retryable(String),
    /// A permanent failure (bad input, a bug): retrying will not help.
    #[error("{0}")]
    Fatal(String),
    /// The attempt exceeded its timeout (retryable).
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl TaskError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::Retryable(message.into())
    }

    /// A failure not worth retrying.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::Fatal(message.into())
    }

    /// True when the retry policy applies.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskError::Retryable(_) | TaskError::Timeout(_))
    }
}

/// A context error inside a task (a missing key, a wrong type) is a bug in the workflow: fatal.
impl From<crate::context::Error> for TaskError {
    fn from(e: crate::context::Error) -> Self {
        TaskError::Fatal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(TaskError::retryable("x").is_retryable());
        assert!(TaskError::Timeout(std::time::Duration::from_secs(1)).is_retryable());
        assert!(!TaskError::fatal("x").is_retryable());
        fn uses_question_mark() -> Result<(), TaskError> {
            let mut ctx = crate::Context::new();
            ctx.insert("k", serde_json::json!(1))?;
            ctx.insert("k", serde_json::json!(2))?;
            Ok(())
        }
        assert_eq!(
            uses_question_mark(),
            Err(TaskError::Fatal("context key `k` already exists (use update or insert_or_update)".into()))
        );
    }
}
