//! `ournet-seed`: the our-network discovery service ("phone book").
//!
//! An IO adapter in the sense of STYLE.md §1: axum moves HTTP requests into handlers that call
//! pure policy functions ([`policy`]) and one storage trait ([`store::Store`]); the signed
//! formats (descriptor, PoW, canonical JSON) come from `ournet-proto`. It rebuilds the
//! reference's `SeedNode` (spec §4.1, §4.2, §5.1-§5.9, §6.1, §6.5, §7.1) with the same JSON API
//! and is strict where the reference is insecure (each fix names its weakness, spec §8).
//!
//! It does not route traffic, build circuits or talk to clients beyond HTTP.
//!
//! Table of contents:
//! * [`http::app`]: the service as an axum `Router` (tests need no socket);
//! * [`state::AppState`]: shared state, the `/discover` snapshot, the health loop;
//! * [`policy`]: difficulty, rate limits, reputation, correlation, health, selection;
//! * [`store`]: the storage trait and its SQLite and PostgreSQL backends;
//! * [`config::SeedConfig`]: every setting with its default;
//! * [`listener`]: the accept loop (header timeout, connection cap);
//! * [`client`]: builders for the signed router requests;
//! * [`revocation`]: revocation acceptance and the list file;
//! * [`record`], [`error`], [`metrics`], [`probe`], [`clock`], [`run`].
#![forbid(unsafe_code)]

pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod record;
pub mod revocation;
pub mod run;
pub mod state;
pub mod store;

pub use http::app;
pub use state::AppState;
