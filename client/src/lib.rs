//! The our-network client library: discovery, circuits, send_message, ACKs, failover.
//!
//! Not built yet: this crate is filled by issue 6. It is a workspace member now so that the
//! layout of the design exists from the start; it holds no code that pretends to work.
#![forbid(unsafe_code)]
