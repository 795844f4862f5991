//! End-to-end tests of our-network that start real processes.
//!
//! [`relay`] builds and starts `ournet-relay` binaries on 127.0.0.1 port 0, reads the JSON
//! ready line each prints and kills them on drop. [`client`] is a minimal blocking test
//! client built on `ournet-proto` alone (link handshake, channel, `ClientCircuit`): enough to
//! drive circuits over real TCP until `client/` exists. [`seed`] starts `ournet-seed` the same
//! way, and [`network`] a seed with registered relays. [`fault`] is a TCP fault proxy (latency, held-back segments, stalls, resets) and
//! [`netns`] makes network namespaces, for runs where nodes and relays sit on different hosts;
//! [`tap`] records what a client's link carries.
//! Test files are in `tests/tests/`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, reason = "test code")]

pub mod client;
pub mod fault;
pub mod netns;
pub mod network;
pub mod relay;
pub mod seed;
pub mod tap;
