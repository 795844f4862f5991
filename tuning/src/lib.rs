//! ournet-tune: host tuning for relay servers, with a checker.
//!
//! Not built yet: this crate is filled by issue 7. It is a workspace member now so that the
//! layout of the design exists from the start; it holds no code that pretends to work.
#![forbid(unsafe_code)]
