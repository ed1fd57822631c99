use cloacina::{task, Context, TaskError};

#[task(id = "sync")]
fn sync_task(_ctx: &mut Context<serde_json::Value>) -> Result<(), TaskError> { Ok(()) }

fn main() {}
