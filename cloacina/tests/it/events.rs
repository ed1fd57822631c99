//! `ops::events::Follower`, on both backends: a run's and its tasks' state changes arrive in
//! order, each once; a follower resumed from a cursor gets only what came after it; a follower of
//! one run sees nothing of another.

use crate::engine::{engine_test, first_then_second, runner};
use cloacina::executor::WorkflowExecutor;
use cloacina::ops::events::{Event, Follower};
use cloacina::Context;

fn poll(t: &crate::harness::TestDb, follower: &mut Follower) -> Vec<Event> {
    follower.poll(&mut t.conn()).expect("poll")
}

/// Polls until `done` holds for what arrived so far (the runner works meanwhile).
async fn until(
    t: &crate::harness::TestDb,
    follower: &mut Follower,
    seen: &mut Vec<Event>,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done(seen) {
        assert!(std::time::Instant::now() < deadline, "timed out; events so far: {seen:#?}");
        seen.extend(poll(t, follower));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

engine_test!(a_runs_changes_arrive_in_order_once_and_resume_from_a_cursor, |t| {
    let (wf, gate) = first_then_second("followed");
    let runner = runner(&t, vec![wf]).await;
    let start = cloacina::clock::Clock::now(&cloacina::clock::SystemClock) - chrono::Duration::seconds(1);
    let mut all = Follower::new(None, start);
    let handle = runner.execute_async("followed", Context::new()).await.expect("start");
    let id = handle.execution_id();
    let mut one = Follower::new(Some(id), start);
    let (other_wf, other_gate) = first_then_second("unrelated");
    let other_runner = crate::engine::runner(&t, vec![other_wf]).await;
    let other = other_runner.execute_async("unrelated", Context::new()).await.expect("other");

    let mut seen = Vec::new();
    until(&t, &mut one, &mut seen, |s| s.iter().any(|e| e.task.as_deref() == Some("first") && e.status == "Running"))
        .await;
    let cursor = seen.last().expect("events").cursor.clone();
    gate.add_permits(1);
    until(&t, &mut one, &mut seen, |s| s.iter().any(|e| e.kind == "run" && e.status == "Completed")).await;
    assert!(seen.iter().all(|e| e.run_id == id), "one run's stream has only its events: {seen:#?}");
    let (end, changes) = seen.split_last().expect("events");
    assert!((end.kind.as_str(), end.status.as_str()) == ("run", "Completed"), "the run's end comes last: {seen:#?}");
    assert!(changes.windows(2).all(|w| w[0].at <= w[1].at), "in order: {seen:#?}");
    let second: Vec<&str> =
        seen.iter().filter(|e| e.task.as_deref() == Some("second")).map(|e| e.status.as_str()).collect();
    assert_eq!(second.last(), Some(&"Completed"), "{seen:#?}");
    let mut keys: Vec<(String, Option<String>, String, chrono::DateTime<chrono::Utc>)> =
        seen.iter().map(|e| (e.kind.clone(), e.task.clone(), e.status.clone(), e.at)).collect();
    let count = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), count, "no change delivered twice");
    assert!(poll(&t, &mut one).is_empty(), "nothing new, nothing again");

    // Resumed from a cursor: only what came after it.
    let from = Follower::resume_point(&cursor).expect("a cursor is a resume point");
    let mut resumed = Follower::new(Some(id), from);
    let after = poll(&t, &mut resumed);
    assert!(after.iter().all(|e| e.at > from), "{after:#?}");
    assert!(after.iter().any(|e| e.kind == "run" && e.status == "Completed"), "{after:#?}");
    assert!(Follower::resume_point("not a cursor").is_none());

    // The stream of every run has both runs.
    let everything = poll(&t, &mut all);
    assert!(everything.iter().any(|e| e.run_id == id) && everything.iter().any(|e| e.run_id == other.execution_id()));
    other_gate.add_permits(1);
    other.wait_for_completion().await.expect("other done");
    runner.shutdown().await.expect("shutdown");
    other_runner.shutdown().await.expect("shutdown");
});

engine_test!(a_follower_resumed_far_back_reads_every_runs_tasks, |t| {
    // More runs than one read binds: every run's task is still delivered.
    let wf = cloacina::workflow::Workflow::builder("many_small")
        .simple_task("only", &[], |ctx: Context<serde_json::Value>| async move { Ok(ctx) })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let start = cloacina::clock::Clock::now(&cloacina::clock::SystemClock) - chrono::Duration::seconds(1);
    let mut handles = Vec::new();
    for _ in 0..520 {
        handles.push(runner.execute_async("many_small", Context::new()).await.expect("start"));
    }
    for h in handles {
        h.wait_for_completion().await.expect("done");
    }
    let mut follower = Follower::new(None, start);
    let events = poll(&t, &mut follower);
    let tasks_done = events.iter().filter(|e| e.kind == "task" && e.status == "Completed").count();
    let runs_done = events.iter().filter(|e| e.kind == "run" && e.status == "Completed").count();
    assert_eq!((tasks_done, runs_done), (520, 520));
    runner.shutdown().await.expect("shutdown");
});
