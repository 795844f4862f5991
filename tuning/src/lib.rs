//! ournet-tune: checks (and on request tunes) a Linux host for an our-network relay.
//!
//! Operators run relays on dedicated servers with saturated NICs; this crate tells them which
//! kernel, limit, CPU and NIC settings stand between their host and the relay's measured speed,
//! and why. It is stand-alone (STYLE.md §1): it depends on no crate of ours and reads the few
//! relay settings it judges from the relay's TOML file itself.
//!
//! The parts, in the order data flows:
//! * [`read`]: the one module that reads the host (`/proc`, `/sys`, an io_uring probe) into a
//!   [`snapshot::HostSnapshot`] of plain values;
//! * [`relay_config`]: workers, pinning and backend from the relay's config file;
//! * [`judge`]: a pure function from a snapshot to findings (current, wanted, why, fix),
//!   tested on recorded snapshots in `tests/snapshots/`;
//! * [`plan`]: a pure function from a snapshot to the file writes `apply` would make;
//! * [`apply`]: the only code that changes the host, and only when asked;
//! * [`report`]: the table and JSON forms.
//!
//! It does not change anything unless `ournet-tune apply` is run without `--dry-run`.
#![forbid(unsafe_code)]

pub mod apply;
pub mod judge;
pub mod plan;
pub mod read;
pub mod relay_config;
pub mod report;
pub mod snapshot;
