//! Work created by one runner is taken by another without waiting for a poll. The creating runner
//! cannot run it (its only slot is busy); the taking runner polls once an hour on PostgreSQL, so
//! only the work announcement (`LISTEN`/`NOTIFY`) can wake it there. SQLite has no announcements:
//! there the taker polls every 50 ms.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use crate::engine::{config, engine_test};
use cloacina::dal::task_executions as tasks;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::{Backend, Context, TaskError};

fn ping() -> Workflow {
    let ok = |ctx: Context<Value>| std::future::ready(Ok::<_, TaskError>(ctx));
    Workflow::builder("ping").simple_task("only", &[], ok).build().expect("ping")
}

engine_test!(work_created_by_another_runner_is_taken_without_a_poll, |t| {
    let (started, mut hold_running) = mpsc::unbounded_channel::<()>();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let hold = Workflow::builder("hold")
        .simple_task("only", &[], move |ctx: Context<Value>| {
            let (g, started) = (g.clone(), started.clone());
            async move {
                let _ = started.send(());
                let _permit = g.acquire().await.map_err(|e| TaskError::fatal(e.to_string()))?;
                Ok(ctx)
            }
        })
        .build()
        .expect("hold");
    let creator = DefaultRunner::builder(t.url.clone())
        .config(DefaultRunnerConfig { max_concurrent_tasks: 1, runner_name: Some("creator".into()), ..config(&t) })
        .workflow(hold)
        .workflow(ping())
        .build()
        .await
        .expect("creator");
    creator.execute_async("hold", Context::new()).await.expect("hold");
    hold_running.recv().await.expect("the hold task started");

    let poll = if t.db.backend() == Backend::Postgres { Duration::from_secs(3_600) } else { Duration::from_millis(50) };
    let taker = DefaultRunner::builder(t.url.clone())
        .config(DefaultRunnerConfig { poll_interval: poll, runner_name: Some("taker".into()), ..config(&t) })
        .workflow(ping())
        .build()
        .await
        .expect("taker");
    // One after the other, each created after the taker last looked for work, so only an
    // announcement (or a poll) can wake it. (The taker also looks once when its listening session
    // connects, which could catch one of them.)
    for _ in 0..3 {
        let handle = creator.execute_async("ping", Context::new()).await.expect("ping");
        let id = handle.execution_id();
        let result = tokio::time::timeout(Duration::from_secs(60), handle.wait_for_completion())
            .await
            .expect("the taker ran the work long before its next poll")
            .expect("result");
        assert_eq!(result.status, WorkflowStatus::Completed);
        let rows = creator.database().run(move |c| tasks::list_for_pipeline(c, id)).await.expect("rows");
        assert_eq!(rows[0].claimed_by.as_deref(), Some("taker"));
    }

    gate.add_permits(1);
    creator.shutdown().await.expect("shutdown");
    taker.shutdown().await.expect("shutdown");
});
