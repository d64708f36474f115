//! Latency statistics and the lines the benchmarks print.

use std::time::Duration;

/// Latency statistics of one measured thing.
pub struct Stats {
    pub median: Duration,
    pub p99: Duration,
    pub n: usize,
}

pub fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let n = v.len();
    let p99 = v[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
    Stats {
        median: v[n / 2],
        p99,
        n,
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub fn row(what: &str, s: &Stats) {
    println!(
        "  {what:<44} median {:>12}   p99 {:>12}   (n={})",
        ms(s.median),
        ms(s.p99),
        s.n
    );
}

pub fn verdict(what: &str, ok: bool, detail: String) {
    println!(
        "  => {what}: {detail} [{}]",
        if ok {
            "meets the target"
        } else {
            "MISSES the target"
        }
    );
}

/// The median of `slow[i] - fast[i]`, taken round by round (zero if negative).
pub fn paired_overhead(slow: &[Duration], fast: &[Duration]) -> Duration {
    let mut diffs: Vec<i128> = slow
        .iter()
        .zip(fast)
        .map(|(s, f)| s.as_nanos() as i128 - f.as_nanos() as i128)
        .collect();
    diffs.sort_unstable();
    let median = diffs.get(diffs.len() / 2).copied().unwrap_or(0);
    Duration::from_nanos(median.max(0) as u64)
}
