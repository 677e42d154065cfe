//! Metric families: one name, fixed label names, one series per combination of label values.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

use crate::text;

/// A monotonically increasing count per label combination.
pub struct CounterFamily {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    series: Mutex<HashMap<String, u64>>,
}

impl CounterFamily {
    pub fn new(name: &'static str, help: &'static str, label_names: &'static [&'static str]) -> Self {
        CounterFamily {
            name,
            help,
            label_names,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `by` to the series named by `labels` (one value per label name, in order).
    pub fn add(&self, labels: &[&str], by: u64) {
        debug_assert_eq!(labels.len(), self.label_names.len(), "{}: label count", self.name);
        *self.series.lock().entry(key(labels)).or_insert(0) += by;
    }

    pub fn get(&self, labels: &[&str]) -> u64 {
        let series = self.series.lock();
        series.get(&key(labels)).copied().unwrap_or(0)
    }

    /// Drops every series whose first label values are `leading`.
    pub fn forget(&self, leading: &[&str]) {
        forget(&mut self.series.lock(), leading);
    }

    pub(crate) fn render(&self, out: &mut String) {
        text::header(out, self.name, "counter", self.help);
        // Copied out, so invocations do not wait while a scrape formats text.
        let series = self.series.lock().clone();
        for (labels, count) in sorted(&series, self.label_names.len()) {
            text::sample(out, self.name, self.label_names, &labels, None, *count as f64);
        }
    }
}

/// Observations of a duration in seconds, counted into fixed cumulative buckets.
pub struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    /// Upper bounds in seconds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    series: Mutex<HashMap<String, Histogram>>,
}

#[derive(Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last entry is `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl HistogramFamily {
    pub fn new(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        debug_assert!(
            bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "{name}: bounds ascend"
        );
        HistogramFamily {
            name,
            help,
            label_names,
            bounds,
            series: Mutex::new(HashMap::new()),
        }
    }

    pub fn observe(&self, labels: &[&str], value: Duration) {
        debug_assert_eq!(labels.len(), self.label_names.len(), "{}: label count", self.name);
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        let mut series = self.series.lock();
        let histogram = series.entry(key(labels)).or_insert_with(|| Histogram {
            buckets: vec![0; self.bounds.len() + 1],
            ..Histogram::default()
        });
        histogram.buckets[bucket] += 1;
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// How many observations the series named by `labels` holds.
    pub fn count(&self, labels: &[&str]) -> u64 {
        let series = self.series.lock();
        series.get(&key(labels)).map_or(0, |histogram| histogram.count)
    }

    /// Drops every series whose first label values are `leading`.
    pub fn forget(&self, leading: &[&str]) {
        forget(&mut self.series.lock(), leading);
    }

    pub(crate) fn render(&self, out: &mut String) {
        text::header(out, self.name, "histogram", self.help);
        // Copied out, so invocations do not wait while a scrape formats text.
        let series = self.series.lock().clone();
        let bucket_name = format!("{}_bucket", self.name);
        for (labels, histogram) in sorted(&series, self.label_names.len()) {
            let mut cumulative = 0;
            for (index, count) in histogram.buckets.iter().enumerate() {
                cumulative += count;
                let bound = self.bounds.get(index).copied().unwrap_or(f64::INFINITY);
                let le = text::number(bound);
                text::sample(
                    out,
                    &bucket_name,
                    self.label_names,
                    &labels,
                    Some(("le", &le)),
                    cumulative as f64,
                );
            }
            text::sample(
                out,
                &format!("{}_sum", self.name),
                self.label_names,
                &labels,
                None,
                histogram.sum,
            );
            text::sample(
                out,
                &format!("{}_count", self.name),
                self.label_names,
                &labels,
                None,
                histogram.count as f64,
            );
        }
    }
}

/// Separates label values inside a series key; it cannot occur in names Kiln accepts.
const SEPARATOR: char = '\u{1f}';

/// One string per label combination: a single allocation per lookup on the hot path.
fn key(labels: &[&str]) -> String {
    labels.join(&SEPARATOR.to_string())
}

/// Removes the series whose keys start with the label values `leading`.
fn forget<V>(series: &mut HashMap<String, V>, leading: &[&str]) {
    let whole = key(leading);
    let prefix = format!("{whole}{SEPARATOR}");
    series.retain(|key, _| *key != whole && !key.starts_with(&prefix));
}

/// Series in a stable order (so scrapes diff well), with their label values split again.
fn sorted<V>(series: &HashMap<String, V>, label_count: usize) -> Vec<(Vec<String>, &V)> {
    let mut entries: Vec<_> = series.iter().collect();
    entries.sort_by(|left, right| left.0.cmp(right.0));
    entries
        .into_iter()
        .map(|(key, value)| {
            let labels = if label_count == 0 {
                Vec::new()
            } else {
                key.split(SEPARATOR).map(str::to_owned).collect()
            };
            (labels, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_per_label_combination() {
        let family = CounterFamily::new("kiln_things_total", "Things.", &["tenant", "status"]);
        family.add(&["a", "200"], 1);
        family.add(&["a", "200"], 2);
        family.add(&["b", "429"], 1);
        assert_eq!(family.get(&["a", "200"]), 3);
        assert_eq!(family.get(&["a", "429"]), 0);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP kiln_things_total Things.\n# TYPE kiln_things_total counter\n\
             kiln_things_total{tenant=\"a\",status=\"200\"} 3\n\
             kiln_things_total{tenant=\"b\",status=\"429\"} 1\n"
        );
    }

    #[test]
    fn forgetting_drops_only_the_series_with_those_leading_labels() {
        let counters = CounterFamily::new("kiln_calls_total", "Calls.", &["tenant", "function", "status"]);
        counters.add(&["a", "f", "200"], 1);
        counters.add(&["a", "f", "500"], 1);
        counters.add(&["a", "fg", "200"], 1);
        counters.add(&["b", "f", "200"], 1);
        counters.forget(&["a", "f"]);
        assert_eq!(counters.get(&["a", "f", "200"]), 0);
        assert_eq!(counters.get(&["a", "f", "500"]), 0);
        assert_eq!(counters.get(&["a", "fg", "200"]), 1);
        assert_eq!(counters.get(&["b", "f", "200"]), 1);
        let histograms = HistogramFamily::new("kiln_call_seconds", "Calls.", &["tenant", "function"], &[1.0]);
        histograms.observe(&["a", "f"], Duration::from_millis(1));
        histograms.observe(&["a", "fg"], Duration::from_millis(1));
        histograms.forget(&["a", "f"]);
        assert_eq!(histograms.count(&["a", "f"]), 0);
        assert_eq!(histograms.count(&["a", "fg"]), 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let family = HistogramFamily::new("kiln_wait_seconds", "Waits.", &[], &[0.25, 1.0]);
        family.observe(&[], Duration::from_millis(125));
        family.observe(&[], Duration::from_millis(500));
        family.observe(&[], Duration::from_millis(500));
        family.observe(&[], Duration::from_secs(2));
        assert_eq!(family.count(&[]), 4);
        let mut out = String::new();
        family.render(&mut out);
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "kiln_wait_seconds_bucket{le=\"0.25\"} 1",
                "kiln_wait_seconds_bucket{le=\"1\"} 3",
                "kiln_wait_seconds_bucket{le=\"+Inf\"} 4",
                "kiln_wait_seconds_sum 3.125",
                "kiln_wait_seconds_count 4",
            ]
        );
    }
}
