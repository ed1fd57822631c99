//! Domain types shared by the DAL and the engine: typed ids, statuses, and the records the DAL
//! returns. They carry no Diesel types; the DAL converts its row structs into them explicitly.

mod ids;
#[cfg(feature = "openapi")]
pub mod openapi;
mod records;

pub use cloacina_workflow::status::{PipelineStatus, TaskStatus, UnknownStatus};
pub use ids::*;
pub use records::*;
