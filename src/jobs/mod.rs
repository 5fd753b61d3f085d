//! Periodic jobs, one file each. Every job is safe to run on several
//! instances at once.

pub mod sweep;

use crate::services::Parts;

/// Starts the periodic jobs on the current runtime.
pub fn spawn(services: Parts) {
    tokio::spawn(sweep::run(services));
}
