//! Owns the pure security policies: lockout window, OTP challenge and fixed-window rate
//! counter. No I/O, no clock reads, no actors: every method takes the time it decides at.

pub mod lockout;
pub mod otp;
pub mod rate;
