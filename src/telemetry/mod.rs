//! Logs and metrics: `tracing` (JSON in production, readable in development)
//! and DogStatsD through the [`metrics`] catalogue.

pub mod banner;
pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global log subscriber. Safe to call more than once (tests):
/// later calls keep the first subscriber.
pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let result = if config.environment.is_production_like() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // An error only means a subscriber is already installed.
    let _ = result;
}
