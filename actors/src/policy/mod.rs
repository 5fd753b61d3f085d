//! Owns the pure security policies: the lockout window. No I/O, no clock
//! reads, no actors: every method takes the time it decides at.

pub mod lockout;
