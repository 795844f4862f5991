//! Unit tests of the core: no sockets, a simulated clock.
