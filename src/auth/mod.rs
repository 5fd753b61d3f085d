//! Credentials: the Argon2id hashing pool, random tokens and their hashes,
//! and the RS256 keys that sign and verify access tokens.

pub mod hashing;
pub mod jwt;
pub mod keys;
pub mod tokens;
pub mod totp;
