//! The authoring rules of Cloacina written once, for the two places that apply them: the
//! `#[workflow]` and `#[trigger]` macros (`cloacina-macros`, at compile time, with each error at
//! its source token) and the run-time model (`cloacina-workflow`, which re-exports all of it at
//! its own paths). No dependencies beyond `thiserror`, so the proc-macro crate can use it.
//!
//! - [`check_name`] and [`MAX_NAME`]: what a workflow or task name may be;
//! - [`check_graph`] over [`GraphNode`]s: empty, invalid or duplicate ids, unknown dependencies
//!   or rule references, cycles ([`Error`]);
//! - [`parse_poll_interval`]: a trigger's poll interval as upstream writes it (`"5s"`).

use std::collections::HashMap;
use std::time::Duration;

/// Why a workflow definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow has no name.
    #[error("a workflow needs a non-empty name")]
    EmptyName,
    /// A workflow or task name holds a control character or is too long.
    #[error("{what} name `{shown}` {reason}")]
    InvalidName {
        /// `workflow` or `task`.
        what: &'static str,
        /// The name, control characters escaped, cut at 80 characters.
        shown: String,
        /// Why it was refused.
        reason: String,
    },
    /// The workflow has no tasks.
    #[error("workflow `{0}` has no tasks")]
    NoTasks(String),
    /// A task has no id.
    #[error("workflow `{0}` has a task with an empty id")]
    EmptyTaskId(String),
    /// Two tasks share an id.
    #[error("workflow `{workflow}`: duplicate task id `{task}`")]
    DuplicateTask {
        /// Workflow name.
        workflow: String,
        /// The repeated id.
        task: String,
    },
    /// A hook is attached to a task the workflow does not have.
    #[error("workflow `{workflow}`: a hook is attached to unknown task `{task}`")]
    UnknownHookTask {
        /// Workflow name.
        workflow: String,
        /// The task named by the hook.
        task: String,
    },
    /// A dependency or trigger rule names a task the workflow does not have.
    #[error("workflow `{workflow}`: task `{task}` refers to unknown task `{unknown}`")]
    UnknownTask {
        /// Workflow name.
        workflow: String,
        /// The referring task.
        task: String,
        /// The missing task.
        unknown: String,
    },
    /// The dependencies form a cycle (listed in order, first task repeated at the end).
    #[error("workflow `{workflow}`: dependency cycle {}", path.join(" -> "))]
    Cycle {
        /// Workflow name.
        workflow: String,
        /// The cycle.
        path: Vec<String>,
    },
}

/// Longest workflow or task name, in characters.
pub const MAX_NAME: usize = 255;

/// The name rule for workflows and tasks: at most [`MAX_NAME`] characters, no control characters
/// (a name is shown in terminals, logs and pages, and stored as text on both backends).
pub fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidName {
        what,
        shown: name.chars().take(80).flat_map(char::escape_debug).collect(),
        reason,
    };
    if name.chars().any(char::is_control) {
        return Err(invalid("holds a control character".to_owned()));
    }
    let len = name.chars().count();
    if len > MAX_NAME {
        return Err(invalid(format!("is {len} characters long; at most {MAX_NAME}")));
    }
    Ok(())
}

/// One task as the graph rules see it: its id, its dependencies, and the tasks its trigger rule
/// names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode<'a> {
    /// Task id.
    pub id: &'a str,
    /// Its dependencies.
    pub dependencies: Vec<&'a str>,
    /// Tasks its trigger rule refers to.
    pub references: Vec<&'a str>,
}

/// The graph rules, in the order they are checked: no empty, invalid ([`check_name`]) or
/// duplicate task id, no dependency or rule reference to an unknown task, no cycle. `WorkflowSpec::new` and `#[workflow]` (at
/// compile time) both apply them.
pub fn check_graph(workflow: &str, nodes: &[GraphNode<'_>]) -> Result<(), Error> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        if n.id.trim().is_empty() {
            return Err(Error::EmptyTaskId(workflow.to_owned()));
        }
        check_name("task", n.id)?;
        if index.insert(n.id, i).is_some() {
            return Err(Error::DuplicateTask { workflow: workflow.to_owned(), task: n.id.to_owned() });
        }
    }
    for n in nodes {
        if let Some(unknown) = n.dependencies.iter().chain(&n.references).find(|r| !index.contains_key(*r)) {
            return Err(Error::UnknownTask {
                workflow: workflow.to_owned(),
                task: n.id.to_owned(),
                unknown: (*unknown).to_owned(),
            });
        }
    }
    match find_cycle(nodes, &index) {
        Some(path) => Err(Error::Cycle { workflow: workflow.to_owned(), path }),
        None => Ok(()),
    }
}

/// The first cycle found by depth-first search, as a path that starts and ends on the same task.
fn find_cycle(nodes: &[GraphNode<'_>], index: &HashMap<&str, usize>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    for start in 0..nodes.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (task, next dependency to visit).
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(dep) = nodes[node].dependencies.get(*next) {
                *next += 1;
                let d = index[dep];
                match marks[d] {
                    Mark::New => {
                        marks[d] = Mark::OnStack;
                        stack.push((d, 0));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|&(n, _)| n == d).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[from..].iter().map(|&(n, _)| nodes[n].id.to_owned()).collect();
                        path.push(nodes[d].id.to_owned());
                        path.reverse(); // dependency edges point backwards: print in run order
                        return Some(path);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
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
}
