//! Metric families: one name, fixed label names, one series per combination of label
//! values, held by prometheus-client. Kiln adds what it lacks: dropping every series whose
//! leading label values match (a deleted function's), for which each family keeps the
//! combinations it has seen.

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A series' labels as prometheus-client encodes them: names in the family's order.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// A family's name and help as written, and the series combinations it holds.
struct Described {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    /// Every combination of label values added since it was last forgotten.
    seen: Mutex<HashSet<Vec<String>>>,
}

impl Described {
    fn labels(&self, values: &[&str]) -> Labels {
        debug_assert_eq!(values.len(), self.label_names.len(), "{}: label count", self.name);
        self.label_names
            .iter()
            .zip(values)
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect()
    }

    fn note(&self, labels: &Labels) {
        let values: Vec<String> = labels.iter().map(|(_, value)| value.clone()).collect();
        self.seen.lock().insert(values);
    }

    /// Takes out of `seen` the combinations whose first values are `leading`.
    fn take_matching(&self, leading: &[&str]) -> Vec<Labels> {
        let mut seen = self.seen.lock();
        let matching: Vec<Vec<String>> = seen
            .iter()
            .filter(|values| values.iter().zip(leading).all(|(have, want)| have == want))
            .cloned()
            .collect();
        matching
            .into_iter()
            .map(|values| {
                seen.remove(&values);
                self.label_names.iter().copied().zip(values).collect()
            })
            .collect()
    }

    /// The name prometheus-client registers: it writes a counter's `_total` itself, and the
    /// help's full stop.
    fn register_as(&self) -> (&'static str, &'static str) {
        (
            self.name.strip_suffix("_total").unwrap_or(self.name),
            self.help.strip_suffix('.').unwrap_or(self.help),
        )
    }
}

/// A family's series with the combinations it holds, whatever metric each series is.
struct Series<M, C> {
    described: Described,
    family: Family<Labels, M, C>,
}

impl<M, C> Series<M, C>
where
    M: EncodeMetric + TypedMetric + Clone + std::fmt::Debug + Send + Sync + 'static,
    C: MetricConstructor<M> + Clone + Send + Sync + 'static,
{
    fn new(name: &'static str, help: &'static str, label_names: &'static [&'static str], make: C) -> Self {
        Series {
            described: Described {
                name,
                help,
                label_names,
                seen: Mutex::default(),
            },
            family: Family::new_with_constructor(make),
        }
    }

    /// The series named by `values`, made (and remembered) when it is new: one lookup when
    /// it exists, as it does on every call but the first.
    fn series(&self, values: &[&str]) -> M {
        let labels = self.described.labels(values);
        if let Some(series) = self.family.get(&labels) {
            return series.clone();
        }
        self.described.note(&labels);
        self.family.get_or_create_owned(&labels)
    }

    fn existing(&self, values: &[&str]) -> Option<M> {
        self.family
            .get(&self.described.labels(values))
            .map(|series| series.clone())
    }

    fn forget(&self, leading: &[&str]) {
        for labels in self.described.take_matching(leading) {
            self.family.remove(&labels);
        }
    }

    fn register(&self, registry: &mut Registry) {
        let (name, help) = self.described.register_as();
        // Without labels, the one series itself (a family would write `name{}`).
        if self.described.label_names.is_empty() {
            registry.register(name, help, self.series(&[]));
        } else {
            registry.register(name, help, self.family.clone());
        }
    }
}

/// Makes a counter series.
#[derive(Clone)]
struct NewCounter;

impl MetricConstructor<Counter> for NewCounter {
    fn new_metric(&self) -> Counter {
        Counter::default()
    }
}

/// A monotonically increasing count per label combination.
pub struct CounterFamily(Series<Counter, NewCounter>);

impl CounterFamily {
    pub fn new(name: &'static str, help: &'static str, label_names: &'static [&'static str]) -> Self {
        CounterFamily(Series::new(name, help, label_names, NewCounter))
    }

    /// Adds `by` to the series named by `labels` (one value per label name, in order).
    pub fn add(&self, labels: &[&str], by: u64) {
        self.0.series(labels).inc_by(by);
    }

    pub fn get(&self, labels: &[&str]) -> u64 {
        self.0.existing(labels).map_or(0, |counter| counter.get())
    }

    /// Drops every series whose first label values are `leading`.
    pub fn forget(&self, leading: &[&str]) {
        self.0.forget(leading);
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        self.0.register(registry);
    }
}

/// Makes a family's histograms with its bucket bounds.
#[derive(Clone)]
struct Bounds(&'static [f64]);

impl MetricConstructor<Histogram> for Bounds {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Observations of a duration in seconds, counted into fixed cumulative buckets.
pub struct HistogramFamily(Series<Histogram, Bounds>);

impl HistogramFamily {
    /// `bounds`: upper bounds in seconds, ascending; `+Inf` is implied.
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
        HistogramFamily(Series::new(name, help, label_names, Bounds(bounds)))
    }

    pub fn observe(&self, labels: &[&str], value: Duration) {
        self.0.series(labels).observe(value.as_secs_f64());
    }

    /// Drops every series whose first label values are `leading`.
    pub fn forget(&self, leading: &[&str]) {
        self.0.forget(leading);
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        self.0.register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(register: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn counters_add_per_label_combination() {
        let family = CounterFamily::new("kiln_things_total", "Things.", &["tenant", "status"]);
        family.add(&["a", "200"], 1);
        family.add(&["a", "200"], 2);
        family.add(&["b", "429"], 1);
        assert_eq!(family.get(&["a", "200"]), 3);
        assert_eq!(family.get(&["a", "429"]), 0);
        let out = exposition(|registry| family.register(registry));
        assert!(
            out.starts_with("# HELP kiln_things Things.\n# TYPE kiln_things counter\n"),
            "{out}"
        );
        assert!(
            out.contains("kiln_things_total{tenant=\"a\",status=\"200\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("kiln_things_total{tenant=\"b\",status=\"429\"} 1\n"),
            "{out}"
        );
        assert!(out.ends_with("# EOF\n"), "{out}");
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
        let out = exposition(|registry| counters.register(registry));
        assert!(!out.contains("function=\"f\",status=\"500\""), "{out}");
        // A forgotten series counts again from zero.
        counters.add(&["a", "f", "200"], 1);
        assert_eq!(counters.get(&["a", "f", "200"]), 1);
        let histograms = HistogramFamily::new("kiln_call_seconds", "Calls.", &["tenant", "function"], &[1.0]);
        histograms.observe(&["a", "f"], Duration::from_millis(1));
        histograms.observe(&["a", "fg"], Duration::from_millis(1));
        histograms.forget(&["a", "f"]);
        let out = exposition(|registry| histograms.register(registry));
        assert!(!out.contains("function=\"f\""), "{out}");
        assert!(
            out.contains("kiln_call_seconds_count{tenant=\"a\",function=\"fg\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let family = HistogramFamily::new("kiln_wait_seconds", "Waits.", &[], &[0.25, 1.0]);
        family.observe(&[], Duration::from_millis(125));
        family.observe(&[], Duration::from_millis(500));
        family.observe(&[], Duration::from_millis(500));
        family.observe(&[], Duration::from_secs(2));
        let out = exposition(|registry| family.register(registry));
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "kiln_wait_seconds_sum 3.125",
                "kiln_wait_seconds_count 4",
                "kiln_wait_seconds_bucket{le=\"0.25\"} 1",
                "kiln_wait_seconds_bucket{le=\"1.0\"} 3",
                "kiln_wait_seconds_bucket{le=\"+Inf\"} 4",
                "# EOF",
            ]
        );
    }
}
