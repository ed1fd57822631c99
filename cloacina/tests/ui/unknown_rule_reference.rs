use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "rules")]
mod rules {
    use super::*;

    #[task(id = "a")]
    async fn a(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

    #[task(id = "b", dependencies = ["a"], trigger_rules = task_failed("ghost"))]
    async fn b(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }
}

fn main() {}
