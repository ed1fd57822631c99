//! Domain types shared by the DAL and the engine: typed ids, statuses, and the records the DAL
//! returns. They carry no Diesel types; the DAL converts its row structs into them explicitly.

mod ids;
mod records;
mod status;

pub use ids::*;
pub use records::*;
pub use status::{PipelineStatus, TaskStatus, UnknownStatus};
