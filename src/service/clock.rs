//! The core's clock: the wall clock in production, tokio's pausable clock in tests.

use chrono::{DateTime, Utc};

/// Where "now" comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// The wall clock of a host whose clock is off by this much (tests of clock drift).
    Drifting(chrono::Duration),
    /// `start` plus the tokio time elapsed since `base`: follows `tokio::time::pause`/`advance`.
    Tokio {
        start: DateTime<Utc>,
        base: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that moves with tokio's (possibly paused) time, starting at the current wall time.
    pub fn tokio() -> Self {
        Self::Tokio {
            start: Utc::now(),
            base: tokio::time::Instant::now(),
        }
    }

    /// Whether this is a host's wall clock (which drifts from other hosts'), not a test's.
    pub fn is_wall(&self) -> bool {
        matches!(self, Self::System | Self::Drifting(_))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Drifting(by) => Utc::now() + *by,
            Self::Tokio { start, base } => crate::tokens::later(*start, base.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!((clock.now() - t0).num_seconds(), 600);
    }
}
