use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "dup")]
mod dup {
    use super::*;

    #[task(id = "same")]
    async fn first(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

    #[task(id = "same")]
    async fn second(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }
}

fn main() {}
