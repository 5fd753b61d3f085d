//! Credentials and secrets: the Argon2id hashing pool, random tokens and their
//! hashes, the RS256 keys that sign and verify access tokens, TOTP, and the
//! sealing of data at rest (TOTP secrets, outbox payloads), and the keyed
//! hashes of one-time and recovery codes.

pub mod codes;
pub mod hashing;
pub mod jwt;
pub mod keys;
pub mod seal;
pub mod tokens;
pub mod totp;
mod verified;
