use cloacina::trigger::{TriggerError, TriggerResult};

#[cloacina::trigger(on = "inbox", poll_interval = "5 days")]
async fn slow() -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::Skip)
}

#[cloacina::trigger(poll_interval = "5s")]
async fn nowhere() -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::Skip)
}

#[cloacina::trigger(on = "inbox", poll_interval = "5s")]
async fn takes_input(_n: u32) -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::Skip)
}

#[cloacina::trigger(on = "inbox", cron = "0 * * * *", poll_interval = "5s")]
async fn both() -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::Skip)
}

#[cloacina::trigger(on = "inbox", poll_interval = "5s", timezone = "UTC")]
async fn zoned_poll() -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::Skip)
}

fn main() {}
