//! sockscope: captured packets back into the sockets that sent them.
//!
//! Data flows one way: [`source`] (capture files, live interfaces) →
//! [`decode`] (frames into small packet summaries) → [`flow`] (the connection
//! table, Zeek semantics) → connection records → [`report`] (conn.log, CSV,
//! Parquet, fan-in tables, charts). [`analyze`] wires the stages together.
//! Library code never prints; the binary reports errors once.
//!
//! The `reports` feature (on by default) brings polars and plotters and the
//! modules that need them; without it the crate is the engine alone
//! (source, decode, flow), which is what the fuzz targets build.

#[cfg(feature = "reports")]
pub mod analyze;
pub mod base64;
#[cfg(feature = "reports")]
pub mod capture;
pub mod decode;
pub mod flow;
pub mod generate;
#[cfg(feature = "reports")]
pub mod report;
#[cfg(feature = "reports")]
pub mod sockets;
pub mod source;
