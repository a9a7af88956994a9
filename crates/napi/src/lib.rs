//! N-API glue over nodebpf-core, one module per concern. No logic lives here: arguments
//! are checked and converted, the core is called, and its errors become JS errors with
//! their code and subject as properties (`errors.rs`). The TypeScript facade takes its
//! types of this boundary from the `index.d.ts` napi-rs generates from these modules.

pub mod attach;
pub mod errors;
pub mod events;
mod external;
pub mod features;
pub mod global_data;
pub mod iter;
pub mod link;
pub mod map;
pub mod map_batch;
pub mod object;
pub mod options;
pub mod profile;
pub mod test_run;
