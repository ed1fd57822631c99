use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "bad_condition")]
pub mod bad_condition {
    use super::*;

    #[task(id = "a", dependencies = [], retry_condition = "sometimes")]
    pub async fn a(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        Ok(())
    }
}

fn main() {}
