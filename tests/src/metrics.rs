//! Reading Kiln's `/metrics` exposition in tests.

/// The value of one sample line (`series` is the name with its labels), 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
