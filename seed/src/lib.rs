//! The our-network seed service: PoW registration, anti-Sybil rules, signed router lists.
//!
//! Not built yet: this crate is filled by issue 4. It is a workspace member now so that the
//! layout of the design exists from the start; it holds no code that pretends to work.
#![forbid(unsafe_code)]
