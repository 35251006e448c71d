//! Log lines that a remote packet (or a broken link) can cause, at most one per cause and
//! period, each carrying how many occurrences it stands for. A flood then costs one line per
//! period instead of one per packet, and the operator still sees that it happened and how much.

use std::time::{Duration, Instant};

/// How often a line of one cause may appear by default.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

/// One cause's limiter: counts occurrences, says when a line is due and for how many.
///
/// The clock is passed in, so tests run on a simulated one.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    period: Duration,
    last_line: Option<Instant>,
    /// Occurrences since the last line (the held-back ones).
    pending: u64,
}

impl LogLimiter {
    /// A limiter allowing one line per `period`.
    pub fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period,
            last_line: None,
            pending: 0,
        }
    }

    /// Counts `n` occurrences at `now`. Returns the number to report when a line is due
    /// (everything since the last line, these included), `None` while the line is held back.
    pub fn hit(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.pending = self.pending.saturating_add(n);
        let due = self
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.period);
        if !due || self.pending == 0 {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

impl Default for LogLimiter {
    fn default() -> LogLimiter {
        LogLimiter::new(LOG_PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hit_logs_then_one_line_per_period_with_the_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.hit(at(0), 1), Some(1));
        // A flood inside the period: held back, counted.
        for i in 1..=1000 {
            assert_eq!(l.hit(at(i), 1), None);
        }
        assert_eq!(l.pending, 1000);
        assert_eq!(l.hit(at(9_999), 1), None);
        // The first hit after the period reports everything since the last line.
        assert_eq!(l.hit(at(10_000), 1), Some(1002));
        assert_eq!(l.pending, 0);
        // Quiet for a long time, then one: logged at once.
        assert_eq!(l.hit(at(60_000), 3), Some(3));
        assert_eq!(l.hit(at(60_001), 1), None);
    }

    #[test]
    fn lines_never_come_closer_than_the_period() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let mut lines = Vec::new();
        let mut total = 0;
        // One occurrence every 7 ms for 35 s.
        for i in 0..5_000u64 {
            let now = t0 + Duration::from_millis(i * 7);
            if let Some(n) = l.hit(now, 1) {
                lines.push(now);
                total += n;
            }
        }
        assert_eq!(lines.len(), 4, "at 0, 10, 20 and 30 s");
        for pair in lines.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(10));
        }
        assert_eq!(total + l.pending, 5_000, "nothing lost from the counts");
    }

    #[test]
    fn zero_occurrences_never_log() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        assert_eq!(l.hit(t0, 0), None);
        assert_eq!(l.hit(t0, 1), Some(1));
    }
}
