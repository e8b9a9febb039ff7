//! Flow tracking: canonical keys, bounded stream-start reassembly, and the
//! per-worker flow table that turns segments into handshake summaries.

pub mod key;
pub mod reassembly;
pub mod settled;
pub mod table;

pub use key::{Direction, Endpoint, FlowKey};
pub use reassembly::{StreamLimits, StreamStart};
pub use settled::SettledSet;
pub use table::{FlowTable, SegmentIn, TableLimits, TableStats};
