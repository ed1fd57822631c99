//! Cron schedules: expressions in a time zone ([`CronExpression`]), schedule settings
//! ([`ScheduleConfig`]), the clock the service reads ([`Clock`]), and the service every runner
//! runs, which starts exactly one pipeline per (schedule, fire time) across all runners.

mod expression;

pub use expression::{CronExpression, ScheduleError};
