//! ournet-bench: the local network with a live report, and load generators.
//!
//! * [`localnet`]: the main job (issue 6): a seed, relays and client nodes as processes on
//!   loopback, with a live terminal report.
//! * [`node`]: one client node of a local network (`ournet-bench node`), which `localnet`
//!   starts as a process of its own.
//! * [`load`]: the relay load generator (issue 5), with the same workloads through a private
//!   Tor network for ratios.
#![forbid(unsafe_code)]

pub mod load;
pub mod localnet;
pub mod node;
