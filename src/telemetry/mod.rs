//! Logs and metrics: `tracing` (JSON in production, readable in development)
//! and DogStatsD through the [`metrics`] catalogue.

pub mod banner;
pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global log subscriber. Safe to call more than once (tests):
/// later calls keep the first subscriber.
pub fn init_logging(config: &Config) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(&config.log_level))
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

/// Where actix's HTTP/1 connection handling logs what a client did wrong: a
/// request that does not parse ("stream error: request parse error"), a
/// connection closed mid-body. It logs them at ERROR, one line per request,
/// so any client could fill the logs and page whoever watches their errors.
/// A request that does not parse is still answered 400.
const CLIENT_FAULTS: &str = "actix_http::h1::dispatcher";

/// `LOG_LEVEL` as a filter (`info` when it does not parse), with
/// [`CLIENT_FAULTS`] off unless `LOG_LEVEL` names that target itself.
fn log_filter(log_level: &str) -> EnvFilter {
    let filter = EnvFilter::try_new(log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    if log_level.contains(CLIENT_FAULTS) {
        return filter;
    }
    match format!("{CLIENT_FAULTS}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The lines a subscriber with `log_filter(log_level)` writes for one
    /// error of each target.
    fn written(log_level: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(log_level))
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error");
            tracing::error!(target: "suma_auth::storage", "the database is unreachable");
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_clients_malformed_request_logs_nothing_unless_asked_for() {
        let logs = written("warn");
        assert!(logs.contains("the database is unreachable"), "{logs}");
        assert!(!logs.contains("request parse error"), "{logs}");
        let asked = written("warn,actix_http::h1::dispatcher=error");
        assert!(asked.contains("request parse error"), "{asked}");
    }
}
