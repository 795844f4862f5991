//! `ournet-client`: the library apps link in: discovery, circuits, `send_message`, ACKs,
//! failover, privacy levels.
#![forbid(unsafe_code)]

pub mod directory;
pub mod discovery;
