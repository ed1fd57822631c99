//! Trigger rules: whether a task whose dependencies are all terminal runs (Ready) or is Skipped.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Context, TaskStatus};

/// Comparison used by [`TriggerRule::ContextValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueOperator {
    /// The value equals the operand.
    Equals,
    /// The value differs from the operand (a missing key differs from everything).
    NotEquals,
    /// Both are numbers and the value is greater.
    GreaterThan,
    /// Both are numbers and the value is smaller.
    LessThan,
    /// A string containing the operand string, or an array containing the operand.
    Contains,
    /// The key is present.
    Exists,
    /// The key is absent.
    NotExists,
}

/// When a task runs, decided once every dependency has ended (Completed, Failed or Skipped). The
/// default, [`TriggerRule::Always`], runs it whatever its dependencies did, as upstream Cloacina
/// does; a pipeline with a failed task still ends Failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every dependency completed.
    AllDependenciesCompleted,
    /// Always run, whatever the dependencies did (the default).
    #[default]
    Always,
    /// Every inner rule holds.
    All {
        /// The rules.
        rules: Vec<TriggerRule>,
    },
    /// At least one inner rule holds.
    Any {
        /// The rules.
        rules: Vec<TriggerRule>,
    },
    /// No inner rule holds.
    None {
        /// The rules.
        rules: Vec<TriggerRule>,
    },
    /// The named task completed.
    TaskSuccess {
        /// Task id.
        task: String,
    },
    /// The named task failed.
    TaskFailed {
        /// Task id.
        task: String,
    },
    /// The named task was skipped.
    TaskSkipped {
        /// Task id.
        task: String,
    },
    /// A context value satisfies `op` against `value`.
    ContextValue {
        /// Context key.
        key: String,
        /// Comparison.
        op: ValueOperator,
        /// Operand (ignored by `exists` / `not_exists`).
        #[serde(default)]
        value: Value,
    },
}

/// What the rule sees: the final status of each task it may name.
pub type TaskOutcomes = HashMap<String, TaskStatus>;

impl TriggerRule {
    /// Whether the rule holds, given the task's dependencies, the outcomes so far and the task's
    /// input context.
    pub fn evaluate(&self, dependencies: &[String], outcomes: &TaskOutcomes, context: &Context<Value>) -> bool {
        let status_is = |task: &str, want: TaskStatus| outcomes.get(task) == Some(&want);
        match self {
            TriggerRule::AllDependenciesCompleted => dependencies.iter().all(|d| status_is(d, TaskStatus::Completed)),
            TriggerRule::Always => true,
            TriggerRule::All { rules } => rules.iter().all(|r| r.evaluate(dependencies, outcomes, context)),
            TriggerRule::Any { rules } => rules.iter().any(|r| r.evaluate(dependencies, outcomes, context)),
            TriggerRule::None { rules } => !rules.iter().any(|r| r.evaluate(dependencies, outcomes, context)),
            TriggerRule::TaskSuccess { task } => status_is(task, TaskStatus::Completed),
            TriggerRule::TaskFailed { task } => status_is(task, TaskStatus::Failed),
            TriggerRule::TaskSkipped { task } => status_is(task, TaskStatus::Skipped),
            TriggerRule::ContextValue { key, op, value } => compare(context.get(key), *op, value),
        }
    }

    /// Every task id the rule names (checked against the workflow when it is built).
    pub fn referenced_tasks(&self) -> Vec<&str> {
        match self {
            TriggerRule::All { rules } | TriggerRule::Any { rules } | TriggerRule::None { rules } => {
                rules.iter().flat_map(TriggerRule::referenced_tasks).collect()
            }
            TriggerRule::TaskSuccess { task }
            | TriggerRule::TaskFailed { task }
            | TriggerRule::TaskSkipped { task } => {
                vec![task.as_str()]
            }
            _ => Vec::new(),
        }
    }
}

fn compare(actual: Option<&Value>, op: ValueOperator, operand: &Value) -> bool {
    match (op, actual) {
        (ValueOperator::Exists, a) => a.is_some(),
        (ValueOperator::NotExists, a) => a.is_none(),
        (ValueOperator::NotEquals, a) => a != Some(operand),
        (_, None) => false,
        (ValueOperator::Equals, Some(a)) => a == operand,
        (ValueOperator::GreaterThan, Some(a)) => matches!((a.as_f64(), operand.as_f64()), (Some(x), Some(y)) if x > y),
        (ValueOperator::LessThan, Some(a)) => matches!((a.as_f64(), operand.as_f64()), (Some(x), Some(y)) if x < y),
        (ValueOperator::Contains, Some(Value::String(s))) => operand.as_str().is_some_and(|o| s.contains(o)),
        (ValueOperator::Contains, Some(Value::Array(items))) => items.contains(operand),
        (ValueOperator::Contains, Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcomes(pairs: &[(&str, TaskStatus)]) -> TaskOutcomes {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn the_default_rule_runs_whatever_the_dependencies_did() {
        let deps = vec!["a".to_owned(), "b".to_owned()];
        let rule = TriggerRule::default();
        assert_eq!(rule, TriggerRule::Always);
        let failed = outcomes(&[("a", TaskStatus::Failed), ("b", TaskStatus::Skipped)]);
        assert!(rule.evaluate(&deps, &failed, &Context::new()));
    }

    #[test]
    fn all_dependencies_completed_needs_every_dependency_completed() {
        let deps = vec!["a".to_owned(), "b".to_owned()];
        let ctx = Context::new();
        let rule = TriggerRule::AllDependenciesCompleted;
        assert!(rule.evaluate(&deps, &outcomes(&[("a", TaskStatus::Completed), ("b", TaskStatus::Completed)]), &ctx));
        assert!(!rule.evaluate(&deps, &outcomes(&[("a", TaskStatus::Completed), ("b", TaskStatus::Skipped)]), &ctx));
    }

    #[test]
    fn composite_and_status_rules() {
        let ctx = Context::new();
        let seen = outcomes(&[("a", TaskStatus::Failed), ("b", TaskStatus::Skipped)]);
        let failed_a = TriggerRule::TaskFailed { task: "a".into() };
        let ok_a = TriggerRule::TaskSuccess { task: "a".into() };
        let skipped_b = TriggerRule::TaskSkipped { task: "b".into() };
        assert!(TriggerRule::All { rules: vec![failed_a.clone(), skipped_b.clone()] }.evaluate(&[], &seen, &ctx));
        assert!(TriggerRule::Any { rules: vec![ok_a.clone(), skipped_b] }.evaluate(&[], &seen, &ctx));
        assert!(TriggerRule::None { rules: vec![ok_a] }.evaluate(&[], &seen, &ctx));
        assert!(!TriggerRule::None { rules: vec![failed_a] }.evaluate(&[], &seen, &ctx));
        assert!(TriggerRule::Always.evaluate(&[], &seen, &ctx));
    }

    #[test]
    fn context_value_operators() {
        let ctx = Context::from_value(json!({"n": 5, "s": "hello world", "list": [1, 2], "flag": true})).expect("ctx");
        let check = |key: &str, op, value| {
            TriggerRule::ContextValue { key: key.into(), op, value }.evaluate(&[], &TaskOutcomes::new(), &ctx)
        };
        assert!(check("n", ValueOperator::Equals, json!(5)));
        assert!(check("n", ValueOperator::GreaterThan, json!(4.5)));
        assert!(!check("n", ValueOperator::LessThan, json!(5)));
        assert!(check("s", ValueOperator::Contains, json!("world")));
        assert!(check("list", ValueOperator::Contains, json!(2)));
        assert!(check("flag", ValueOperator::NotEquals, json!(false)));
        assert!(check("missing", ValueOperator::NotEquals, json!(1)));
        assert!(!check("missing", ValueOperator::Equals, json!(null)));
        assert!(check("missing", ValueOperator::NotExists, json!(null)));
        assert!(check("n", ValueOperator::Exists, json!(null)));
        assert!(!check("s", ValueOperator::GreaterThan, json!(1)));
    }

    #[test]
    fn rules_serialise_for_the_task_row() {
        let rule = TriggerRule::Any {
            rules: vec![
                TriggerRule::TaskSuccess { task: "a".into() },
                TriggerRule::ContextValue { key: "k".into(), op: ValueOperator::Exists, value: Value::Null },
            ],
        };
        let json = serde_json::to_value(&rule).expect("ser");
        assert_eq!(json["rule"], "any");
        assert_eq!(serde_json::from_value::<TriggerRule>(json).expect("de"), rule);
        assert_eq!(rule.referenced_tasks(), vec!["a"]);
    }
}
