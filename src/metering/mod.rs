//! What a request cost and who made it: the usage row and its columns, token counts, prices and costs, the
//! usage report and per-request listing queries, and the tally of throttled refusals.
pub mod columns;
pub mod pricing;
pub mod refused;
pub mod report;
pub mod request_log;
pub mod usage;
