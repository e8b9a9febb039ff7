//! Flow tracking: canonical keys ([`key`]), bounded stream-start reassembly
//! ([`reassembly`]), the per-worker flow table that turns segments into
//! handshake summaries ([`table`]), what the mirror failed to show
//! ([`mirror`]: upstream loss and one-sided flows), and the settled-flow set the workers share
//! with the capture thread ([`settled`]).

pub mod key;
pub mod mirror;
pub mod reassembly;
pub mod segment;
pub mod session;
pub mod settled;
pub mod stats;
pub mod table;

pub use key::{Direction, Endpoint, FlowKey};
pub use reassembly::{StreamLimits, StreamStart};
pub use session::{Session, StreamEvent, StreamView};
pub use settled::SettledSet;
pub use table::{FlowTable, Segment, SegmentIn, Span, TableLimits, TableStats};
