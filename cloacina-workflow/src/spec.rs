//! [`WorkflowSpec`]: a validated DAG of task specifications with its deterministic order and
//! structural version. The graph rules it applies ([`check_graph`]) live in `cloacina-rules`,
//! which `#[workflow]` applies at compile time.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cloacina_rules::{check_graph, check_name, Error, GraphNode, MAX_NAME};

use crate::retry::RetryPolicy;
use crate::task::TriggerRule;

/// One task as the engine stores and schedules it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task id, unique within the workflow.
    pub id: String,
    /// Dependencies, in declared order (their outputs merge into the input in this order).
    pub dependencies: Vec<String>,
    /// When the task runs once its dependencies are terminal.
    pub trigger_rule: TriggerRule,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Per-attempt timeout; `None` uses the runner's default.
    pub timeout: Option<Duration>,
}

impl TaskSpec {
    /// A task with the default rule, no retries and the runner's timeout.
    pub fn new(id: impl Into<String>, dependencies: &[&str]) -> Self {
        Self {
            id: id.into(),
            dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
            trigger_rule: TriggerRule::default(),
            retry: RetryPolicy::default(),
            timeout: None,
        }
    }
}

/// A validated workflow structure.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    name: String,
    description: Option<String>,
    author: Option<String>,
    /// The package content hash the code came from (part of the version), if packaged.
    source: Option<String>,
    /// Tasks in a deterministic topological order (declared order among independent tasks).
    tasks: Vec<TaskSpec>,
    /// Position in `tasks` of each task id.
    index: HashMap<String, usize>,
    /// Positions in `tasks` of each task's dependents, in topological order.
    dependents: Vec<Vec<usize>>,
    version: String,
}

impl WorkflowSpec {
    /// Validates `tasks` as a DAG and computes the workflow's version.
    pub fn new(name: impl Into<String>, description: Option<String>, tasks: Vec<TaskSpec>) -> Result<Self, Error> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::EmptyName);
        }
        check_name("workflow", &name)?;
        if tasks.is_empty() {
            return Err(Error::NoTasks(name));
        }
        let nodes: Vec<GraphNode<'_>> = tasks
            .iter()
            .map(|t| GraphNode {
                id: &t.id,
                dependencies: t.dependencies.iter().map(String::as_str).collect(),
                references: t.trigger_rule.referenced_tasks(),
            })
            .collect();
        check_graph(&name, &nodes)?;
        let tasks = topological_order(tasks);
        let version = structural_version(&name, &tasks, None);
        let index: HashMap<String, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.clone(), i)).collect();
        let mut dependents = vec![Vec::new(); tasks.len()];
        for (i, t) in tasks.iter().enumerate() {
            for d in &t.dependencies {
                dependents[index[d]].push(i);
            }
        }
        Ok(Self { name, description, author: None, source: None, tasks, index, dependents, version })
    }

    /// Workflow name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free-text description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The author, if given.
    pub fn author(&self) -> Option<&str> {
        self.author.as_deref()
    }

    /// The same structure with an author (not part of the version).
    pub fn with_author(mut self, author: Option<String>) -> Self {
        self.author = author;
        self
    }

    /// The package content hash the code came from, if packaged.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The same structure from a package with content hash `source`: the hash becomes part of
    /// the version (and of the recorded graph, so the registry's entry hashes to it again).
    pub fn with_source(mut self, source: Option<String>) -> Self {
        self.version = structural_version(&self.name, &self.tasks, source.as_deref());
        self.source = source;
        self
    }

    /// Tasks in topological order.
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// The task with this id (a hash lookup: the scheduler calls it per task outcome).
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }

    /// Tasks that list `id` as a dependency, in topological order (precomputed adjacency).
    pub fn dependents(&self, id: &str) -> impl Iterator<Item = &TaskSpec> + '_ {
        self.index.get(id).into_iter().flat_map(move |&i| self.dependents[i].iter().map(move |&d| &self.tasks[d]))
    }

    /// The tasks whose outputs make a finished run's final context, in the order they merge over
    /// the run's input. When no task failed: the run's ends (completed tasks no completed task
    /// depends on), in topological order; each end's output already holds what flowed into it.
    /// After a failure: the task that completed last (upstream Cloacina's choice), if any.
    /// The engine and `cloacina-testing`'s `TestRunner` both follow this rule.
    pub fn final_context_sources(
        &self,
        failed: bool,
        completed: impl Fn(&str) -> bool,
        last_completed: Option<&str>,
    ) -> Vec<String> {
        if failed {
            return last_completed.map(str::to_owned).into_iter().collect();
        }
        self.tasks
            .iter()
            .filter(|t| completed(&t.id))
            .filter(|t| !self.dependents(&t.id).any(|d| completed(&d.id)))
            .map(|t| t.id.clone())
            .collect()
    }

    /// Structural version: a SHA-256 over task ids, dependencies, rules, retry and timeout
    /// settings (first 16 hex digits), and the package's content hash for packaged code.
    /// Independent of the order tasks were declared in.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The task graph as JSON, as recorded in `workflow_registry`.
    pub fn graph_json(&self) -> serde_json::Value {
        serde_json::to_value(self.graph()).unwrap_or(serde_json::Value::Null)
    }

    /// [`graph_json`](Self::graph_json) as text, written without building a JSON value (which
    /// takes kilobytes per task).
    pub fn graph_text(&self) -> String {
        serde_json::to_string(&self.graph()).unwrap_or_else(|_| "null".to_owned())
    }

    fn graph(&self) -> Graph<'_> {
        Graph { name: &self.name, tasks: sorted_tasks(&self.tasks), source: self.source.as_deref() }
    }
}

/// What `workflow_registry` records of a workflow: its name and its tasks, sorted by id.
#[derive(serde::Serialize)]
struct Graph<'a> {
    name: &'a str,
    tasks: Vec<&'a TaskSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

fn sorted_tasks(tasks: &[TaskSpec]) -> Vec<&TaskSpec> {
    let mut sorted: Vec<&TaskSpec> = tasks.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
}

fn structural_version(name: &str, tasks: &[TaskSpec], source: Option<&str>) -> String {
    let mut canonical = serde_json::to_vec(&(name, sorted_tasks(tasks))).unwrap_or_default();
    if let Some(source) = source {
        canonical.extend_from_slice(b"\0source:");
        canonical.extend_from_slice(source.as_bytes());
    }
    Sha256::digest(&canonical).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Kahn's algorithm in O(tasks + edges); among ready tasks the earliest declared goes first, so
/// the order is deterministic. Called only on an acyclic graph with known dependencies.
fn topological_order(tasks: Vec<TaskSpec>) -> Vec<TaskSpec> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let index: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    let mut waiting_on: Vec<usize> = tasks.iter().map(|t| t.dependencies.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for d in &t.dependencies {
            dependents[index[d.as_str()]].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..tasks.len()).filter(|&i| waiting_on[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &next in &dependents[i] {
            waiting_on[next] -= 1;
            if waiting_on[next] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    let mut slots: Vec<Option<TaskSpec>> = tasks.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tasks: Vec<TaskSpec>) -> Result<WorkflowSpec, Error> {
        WorkflowSpec::new("etl", None, tasks)
    }

    #[test]
    fn orders_a_diamond_topologically() {
        let w = spec(vec![
            TaskSpec::new("load", &["left", "right"]),
            TaskSpec::new("right", &["extract"]),
            TaskSpec::new("left", &["extract"]),
            TaskSpec::new("extract", &[]),
        ])
        .expect("valid");
        let order: Vec<_> = w.tasks().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(order, ["extract", "right", "left", "load"]);
        assert_eq!(w.dependents("extract").map(|t| t.id.as_str()).collect::<Vec<_>>(), ["right", "left"]);
    }

    #[test]
    fn rejects_bad_graphs_with_clear_errors() {
        let dup = spec(vec![TaskSpec::new("a", &[]), TaskSpec::new("a", &[])]).expect_err("dup");
        assert_eq!(dup.to_string(), "workflow `etl`: duplicate task id `a`");
        let unknown = spec(vec![TaskSpec::new("a", &["ghost"])]).expect_err("unknown");
        assert_eq!(unknown.to_string(), "workflow `etl`: task `a` refers to unknown task `ghost`");
        let cycle = spec(vec![TaskSpec::new("a", &["c"]), TaskSpec::new("b", &["a"]), TaskSpec::new("c", &["b"])])
            .expect_err("cycle");
        assert_eq!(cycle.to_string(), "workflow `etl`: dependency cycle a -> b -> c -> a");
        let selfish = spec(vec![TaskSpec::new("a", &["a"])]).expect_err("self");
        assert!(matches!(selfish, Error::Cycle { ref path, .. } if path == &["a", "a"]), "{selfish}");
        let mut rule_ref = TaskSpec::new("a", &[]);
        rule_ref.trigger_rule = TriggerRule::TaskFailed { task: "nope".into() };
        assert!(matches!(spec(vec![rule_ref]), Err(Error::UnknownTask { .. })));
        assert_eq!(spec(vec![]), Err(Error::NoTasks("etl".into())));
        assert_eq!(WorkflowSpec::new(" ", None, vec![TaskSpec::new("a", &[])]), Err(Error::EmptyName));
    }

    #[test]
    fn version_tracks_structure_not_declaration_order() {
        let a = spec(vec![TaskSpec::new("x", &[]), TaskSpec::new("y", &["x"])]).expect("a");
        let b = spec(vec![TaskSpec::new("y", &["x"]), TaskSpec::new("x", &[])]).expect("b");
        assert_eq!(a.version(), b.version());
        assert_eq!(a.version().len(), 16);
        let mut retried = TaskSpec::new("y", &["x"]);
        retried.retry.max_attempts = 5;
        let c = spec(vec![TaskSpec::new("x", &[]), retried]).expect("c");
        assert_ne!(a.version(), c.version());
        let mut timed = TaskSpec::new("y", &["x"]);
        timed.timeout = Some(Duration::from_secs(5));
        assert_ne!(a.version(), spec(vec![TaskSpec::new("x", &[]), timed]).expect("d").version());
        assert_eq!(a.graph_json()["tasks"][1]["dependencies"], serde_json::json!(["x"]));
        let text: serde_json::Value = serde_json::from_str(&a.graph_text()).expect("graph text is JSON");
        assert_eq!(text, a.graph_json(), "text and value say the same");
    }

    #[test]
    fn long_chains_validate_quickly() {
        let tasks: Vec<TaskSpec> = (0..10_000)
            .map(|i| {
                let dep = format!("t{}", i.max(1) - 1);
                if i == 0 {
                    TaskSpec::new("t0", &[])
                } else {
                    TaskSpec::new(format!("t{i}"), &[dep.as_str()])
                }
            })
            .collect();
        let reversed: Vec<TaskSpec> = tasks.iter().rev().cloned().collect();
        let w = spec(tasks).expect("chain");
        assert_eq!(w.tasks().last().map(|t| t.id.as_str()), Some("t9999"));
        let r = spec(reversed).expect("reversed chain");
        assert_eq!(r.tasks().first().map(|t| t.id.as_str()), Some("t0"));
        assert_eq!(r.version(), w.version());
    }

    #[test]
    fn the_final_context_comes_from_the_ends_or_the_last_completed_task() {
        let diamond = spec(vec![
            TaskSpec::new("a", &[]),
            TaskSpec::new("b", &["a"]),
            TaskSpec::new("c", &["a"]),
            TaskSpec::new("d", &["b", "c"]),
        ])
        .expect("diamond");
        let done = |names: &'static [&'static str]| move |t: &str| names.contains(&t);
        assert_eq!(diamond.final_context_sources(false, done(&["a", "b", "c", "d"]), Some("d")), ["d"]);
        // d skipped: b and c are the ends, in topological order.
        assert_eq!(diamond.final_context_sources(false, done(&["a", "b", "c"]), Some("c")), ["b", "c"]);
        // A failure: only the task that completed last.
        assert_eq!(diamond.final_context_sources(true, done(&["a", "c"]), Some("c")), ["c"]);
        assert!(diamond.final_context_sources(true, done(&[]), None).is_empty());
    }
}
