//! Kiln's metrics, held in a value that every part is given explicitly (no global
//! recorder, so two Kilns embedded in one process keep their own figures), held and
//! rendered by prometheus-client in the OpenMetrics text format for `GET /metrics`.
//!
//! **Invariant:** telemetry knows nothing of HTTP, PostgreSQL or containers; callers hand
//! it names, label values and durations.

mod family;
mod kiln_metrics;

pub use family::{CounterFamily, HistogramFamily};
pub use kiln_metrics::{Gauges, Metrics};
