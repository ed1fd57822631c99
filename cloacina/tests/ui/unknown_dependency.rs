use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "typo")]
mod typo {
    use super::*;

    #[task(id = "extract")]
    async fn extract(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

    #[task(id = "load", dependencies = ["extrct"])]
    async fn load(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }
}

fn main() {}
