//! `ournet-relay`: the our-network relay server, an IO adapter around `ournet-proto`.
//!
//! A relay accepts links (PROTOCOL.md §3), answers CREATE cells, peels and forwards RELAY
//! cells, extends circuits to the next relay, and is the *home* of the nodes that register
//! with it (§7.4): it delivers their messages or queues them while they are offline. Every
//! protocol decision (what a cell means, whether a handshake or a tag checks, flow control)
//! is made by `ournet-proto`; this crate only moves bytes and routes cells between links and
//! circuits.
//!
//! Layout (STYLE.md §1, "IO adapters"):
//!
//! * [`core`]: the per-worker [`core::Relay`], a poll-style state machine driven by "bytes
//!   arrived on connection X", "X closed", "timer"; it answers with [`core::Action`]s (flush
//!   X, connect to an address, close X). Both backends drive this one core, so no protocol
//!   handling is duplicated.
//! * [`backend`]: the [`backend::Backend`] trait and the choice made at start; [`uring`] is the
//!   io_uring backend (thread-per-core, one ring per worker), [`epoll`] the tokio fallback.
//! * [`directory`]: the state all workers share on the per-message (not per-cell) path: home
//!   registrations, the offline queue, ACK routes, per-IP limits.
//! * [`cross`]: bounded mailboxes between workers.
//! * [`config`], [`keys`], [`metrics`], [`control`], [`seed`], [`server`]: the binary's parts.
//!
//! Unsafe code: the workspace denies `unsafe_code`; the only module that opts in is
//! `uring/ops.rs` (`relay/src/uring/`), with `#![expect(unsafe_code, reason = ...)]` and a
//! `// SAFETY:` comment on every block. Everything else is safe code.
//!
//! What this crate does not do: choose paths, build circuits for clients, or decide QoS
//! tiers. [`seed`] registers the relay with its seeds (PoW, signed descriptor) and sends
//! signed heartbeats from the control thread, never from a data-plane worker.

pub mod backend;
pub mod config;
pub mod control;
pub mod core;
pub mod cross;
pub mod directory;
pub mod epoll;
pub mod keys;
pub mod metrics;
pub mod seed;
pub mod server;
pub mod uring;
