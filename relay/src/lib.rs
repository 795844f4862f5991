//! The our-network relay server: thread-per-core io_uring data plane.
//!
//! Not built yet: this crate is filled by issue 5. It is a workspace member now so that the
//! layout of the design exists from the start; it holds no code that pretends to work.
