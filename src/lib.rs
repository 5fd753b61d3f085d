//! suma-auth: the user registration and authentication service of SUMA
//! Finance.
//!
//! A request goes `http` (routes, handlers, errors, middleware) → `services`
//! (use cases) → `domain` (parsed values), `auth` (hashing, tokens, keys),
//! `storage` (Postgres / SQLite), `redis` (shared hot state), `mail`, and the
//! `suma-auth-actors` crate (per-user state). `app` wires them together;
//! `admin` is the operator command line over the same services.

pub mod admin;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod redis;
pub mod security;
pub mod services;
pub mod storage;
pub mod telemetry;

pub use app::{Application, Options};
pub use config::Config;
