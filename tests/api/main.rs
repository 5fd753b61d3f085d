#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The API test suite: every flow through the real HTTP stack, against real
//! PostgreSQL (a database per test) and embedded SQLite, with a real SMTP sink.

mod support;

mod admin;
mod audit;
mod consents;
mod devices;
mod factor_changes;
mod hygiene;
mod idle_timeout;
mod keys;
mod live_sessions;
mod lockout;
mod login;
mod mail_cap;
mod me;
mod metrics;
mod openapi;
mod ops;
mod outage;
mod outbox;
mod pages;
mod password_policy;
mod password_reset;
mod pre_hijacking;
mod privacy;
mod profile_cache;
mod races;
mod rate_limit;
mod rate_limit_fallback;
mod readme;
mod redis_connections;
mod registration;
mod revocation;
mod same_answer;
mod second_factor_limits;
mod sessions;
mod storage_contract;
mod tls;
mod two_factor;
mod verification;
