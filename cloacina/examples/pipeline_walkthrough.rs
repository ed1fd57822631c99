//! A four-task pipeline (fan-out and join) driven step by step through the persistence layer.
//!
//! Runs on the embedded SQLite default; set `DATABASE_URL=postgres://…` to run it on PostgreSQL.
//! It shows what the engine builds on: one transaction creates the run, claims are batched and
//! leased, completion is fenced on the claim and stores the task's output context atomically.
//!
//! ```text
//! cargo run -p cloacina --example pipeline_walkthrough
//! ```

use std::time::Duration;

use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::dal::{contexts, task_execution_metadata as outputs};
use cloacina::database::{AnyConnection, Database, UniversalTimestamp};
use cloacina::models::{PipelineStatus, TaskStatus};
use serde_json::{json, Map, Value};

/// The workflow: task id and its dependencies, in declared order.
const DAG: [(&str, &[&str]); 4] = [
    ("extract", &[]),
    ("clean_orders", &["extract"]),
    ("clean_customers", &["extract"]),
    ("load", &["clean_orders", "clean_customers"]),
];

/// What each task does with its input context.
fn run_task(name: &str, input: &Map<String, Value>) -> Value {
    match name {
        "extract" => json!({"orders": [12, 7, 30], "customers": ["ada", "linus", "grace"]}),
        "clean_orders" => {
            json!({"order_total": input["orders"].as_array().map_or(0, |o| o.iter().filter_map(Value::as_i64).sum::<i64>())})
        }
        "clean_customers" => json!({"customer_count": input["customers"].as_array().map_or(0, Vec::len)}),
        "load" => json!({"report": format!("{} customers, total {}", input["customer_count"], input["order_total"])}),
        _ => json!({}),
    }
}

/// Input of a task: the pipeline input, then each dependency's output in declared order.
fn input_for(conn: &mut AnyConnection, run: &cloacina::models::PipelineExecution, deps: &[&str]) -> Map<String, Value> {
    let mut ctx = match run.context_id.map(|id| contexts::get(conn, id)) {
        Some(Ok(Some(Value::Object(m)))) => m,
        _ => Map::new(),
    };
    let done = outputs::outputs_for_pipeline(conn, run.id).unwrap_or_default();
    for dep in deps {
        if let Some((_, Value::Object(out))) = done.iter().find(|(n, _)| n == dep) {
            ctx.extend(out.clone());
        }
    }
    ctx
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://cloacina-walkthrough.db".to_owned());
    let db = Database::connect(&url)?;
    println!("database: {} ({})", db.url(), db.backend());
    let mut conn = db.get()?;
    let runner = format!("walkthrough-{}", std::process::id());

    let new = NewPipeline {
        workflow_name: "orders_report".into(),
        workflow_version: "example".into(),
        input: json!({"requested_by": "walkthrough"}),
        tasks: DAG
            .iter()
            .map(|(name, deps)| NewTask {
                name: (*name).into(),
                max_attempts: 3,
                ready: deps.is_empty(),
                trigger_rules: json!({"all_completed": deps}),
                configuration: json!({}),
            })
            .collect(),
    };
    let id = pipelines::create(&mut conn, &new, UniversalTimestamp::now())?;
    println!("created pipeline {id} with {} tasks", DAG.len());
    let _ = pipelines::transition(
        &mut conn,
        id,
        PipelineStatus::Pending,
        PipelineStatus::Running,
        None,
        UniversalTimestamp::now(),
    )?;
    let run = pipelines::get(&mut conn, id)?.ok_or("pipeline vanished")?;

    loop {
        let (claimed, foreign): (Vec<_>, Vec<_>) =
            tasks::claim_ready(&mut conn, &runner, 8, Duration::from_secs(30), UniversalTimestamp::now())?
                .into_iter()
                .partition(|t| t.pipeline_execution_id == id);
        // Tasks of other runs in a shared database go back untouched (no attempt spent).
        for task in foreign {
            let _ = tasks::release(&mut conn, task.id, &runner, UniversalTimestamp::now())?;
        }
        for task in &claimed {
            let deps = DAG.iter().find(|(n, _)| *n == task.task_name).map_or(&[][..], |(_, d)| *d);
            let output = run_task(&task.task_name, &input_for(&mut conn, &run, deps));
            let stored = tasks::complete(&mut conn, task.id, &runner, &output, UniversalTimestamp::now())?;
            println!(
                "  {:<16} attempt {} -> {output}{}",
                task.task_name,
                task.attempt,
                if stored { "" } else { " (claim lost)" }
            );
        }
        // Promote tasks whose dependencies have all completed.
        let rows = tasks::list_for_pipeline(&mut conn, id)?;
        let completed = |name: &str| rows.iter().any(|r| r.task_name == name && r.status == TaskStatus::Completed);
        let promotable: Vec<_> = rows
            .iter()
            .filter(|r| r.status == TaskStatus::NotStarted)
            .filter(|r| DAG.iter().any(|(n, deps)| *n == r.task_name && deps.iter().all(|d| completed(d))))
            .map(|r| r.id)
            .collect();
        tasks::resolve_not_started(&mut conn, &promotable, TaskStatus::Ready, UniversalTimestamp::now())?;
        if rows.iter().all(|r| r.status.is_terminal()) {
            break;
        }
        if claimed.is_empty() && promotable.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let final_context = Value::Object(input_for(&mut conn, &run, &["load"]));
    let _ = pipelines::complete(&mut conn, id, &final_context, UniversalTimestamp::now())?;
    let done = pipelines::get(&mut conn, id)?.ok_or("pipeline vanished")?;
    println!("pipeline {id}: {}", done.status);
    println!("result: {}", final_context["report"]);
    Ok(())
}
