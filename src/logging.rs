//! Log set-up: a filter that never lets rmcp log whole JSON-RPC messages, and the stderr writer.

use tracing::Level;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// The log filter for `spec` (an `EnvFilter` directive list such as `info` or
/// `tokenwarden=debug`; an invalid one falls back to `fallback`), with two libraries held down
/// whatever `spec` says: rmcp at `info` at most (at `debug` and below it logs whole JSON-RPC
/// messages, which carry reveal links, confirmation codes and, in `inline` mode, secrets), and
/// tungstenite at `debug` at most (at `trace` it logs every WebSocket frame in hex, the gateway
/// IDENTIFY with the Discord bot token among them). A quieter `spec` stays quieter.
pub fn filter<S>(spec: &str, fallback: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let wanted = EnvFilter::try_new(spec)
        .or_else(|_| EnvFilter::try_new(fallback))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let held_down = Targets::new()
        .with_default(Level::TRACE)
        .with_target("rmcp", Level::INFO)
        .with_target("tungstenite", Level::DEBUG);
    wanted.and(held_down)
}

/// Whether log lines are plain text or JSON objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Sends logs at `spec` (see [`filter`]) to stderr.
pub fn init(spec: &str, fallback: &str, format: Format) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let layer = match format {
        Format::Text => text.with_filter(filter(spec, fallback)).boxed(),
        Format::Json => text.json().with_filter(filter(spec, fallback)).boxed(),
    };
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// Which of a set of events pass `spec`.
    fn passed(spec: &str) -> String {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&buf);
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || Writer(Arc::clone(&sink)))
            .with_ansi(false)
            .without_time()
            .with_filter(filter(spec, "warn"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rmcp::service", "rmcp-error");
            tracing::info!(target: "rmcp::service", "rmcp-info");
            tracing::debug!(target: "rmcp::service", "rmcp-debug");
            tracing::info!(target: "tokenwarden::mcp", "ours-info");
            tracing::debug!(target: "tokenwarden::mcp", "ours-debug");
            tracing::debug!(target: "tungstenite::protocol", "ws-debug");
            tracing::trace!(target: "tungstenite::protocol::frame", "ws-trace");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        [
            "rmcp-error",
            "rmcp-info",
            "rmcp-debug",
            "ours-info",
            "ours-debug",
            "ws-debug",
            "ws-trace",
        ]
        .into_iter()
        .filter(|m| text.contains(m))
        .collect::<Vec<_>>()
        .join(" ")
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rmcp_never_logs_below_info() {
        assert_eq!(
            passed("trace"),
            "rmcp-error rmcp-info ours-info ours-debug ws-debug"
        );
        assert_eq!(
            passed("rmcp=trace,tokenwarden=info"),
            "rmcp-error rmcp-info ours-info"
        );
    }

    #[test]
    fn websocket_frames_are_never_logged() {
        assert_eq!(passed("tungstenite=trace"), "ws-debug");
    }

    #[test]
    fn a_quiet_level_keeps_rmcp_quiet() {
        assert_eq!(passed("error"), "rmcp-error");
        assert_eq!(passed("tokenwarden=debug"), "ours-info ours-debug");
    }

    #[test]
    fn an_invalid_spec_falls_back() {
        assert_eq!(passed("not a [valid spec"), "rmcp-error");
    }
}
