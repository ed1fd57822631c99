use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "cyclic")]
mod cyclic {
    use super::*;

    #[task(id = "a", dependencies = ["c"])]
    async fn a(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

    #[task(id = "b", dependencies = ["a"])]
    async fn b(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

    #[task(id = "c", dependencies = ["b"])]
    async fn c(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }
}

fn main() {}
