//! Owns the pure security policies: lockout window and OTP challenge. No I/O, no clock
//! reads, no actors: every method takes the time it decides at.

pub mod lockout;
pub mod otp;
