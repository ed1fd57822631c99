use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "sig")]
mod sig {
    use super::*;

    #[task(id = "owned")]
    async fn owned(_ctx: Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }
}

fn main() {}
