//! sockscope: captured packets back into the sockets that sent them.
//!
//! Data flows one way: [`source`] (capture files, live interfaces) →
//! [`decode`] (frames into small packet summaries) → [`flow`] (the connection
//! table, Zeek semantics) → connection records → [`report`] (conn.log, CSV,
//! Parquet, fan-in tables, charts). [`analyze`] wires the stages together.
//! Library code never prints; the binary reports errors once.

pub mod analyze;
pub mod capture;
pub mod decode;
pub mod flow;
pub mod report;
pub mod sockets;
pub mod source;
