//! Integration tests of the persistence foundation. Every DAL test runs on SQLite and on
//! PostgreSQL (see `harness::backend_test!`); each test gets its own database.

#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

mod admin;
mod harness;
#[path = "../support/processes.rs"]
mod processes;
#[path = "../support/workflows.rs"]
mod workflows;

mod clock;
mod concurrency;
mod copy;
mod crash;
mod crash_loop;
mod cron;
mod daemon_faults;
mod dal_cron;
mod dal_pipelines;
mod dal_registry;
mod dal_tasks;
mod engine;
mod events;
mod faults;
mod hosts;
mod logging;
mod macros;
mod migrations;
mod multiprocess;
mod pickup;
mod retention;
mod schema_parity;
mod soak;
mod tenants;
mod triggers;
mod universal_types;
mod upstream_api;
mod upstream_defaults;
mod url_selection;
mod versioning;
