//! On-disk formats, one file per section of FORMAT.md: the `.npy` header
//! (`npy/`), the control block (`control.rs`), the ring section (`ring.rs`)
//! and the queue section (`queue.rs`), plus the one little-endian
//! reader/writer they share (`le.rs`) and the sink validators report into
//! (`sink.rs`). Pure logic without I/O, so all of it can be fuzzed.

pub mod control;
pub mod grow;
pub mod le;
pub mod npy;
pub mod queue;
pub mod ring;
pub mod sink;
