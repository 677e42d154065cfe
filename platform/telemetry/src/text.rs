//! Writing samples in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

/// `# HELP` and `# TYPE` lines of one family.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{a="x",b="y"} value`, with `extra` appended to the labels.
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    label_names: &[&str],
    label_values: &[String],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    let mut labels = label_names
        .iter()
        .zip(label_values)
        .map(|(n, v)| (*n, v.as_str()))
        .chain(extra);
    if let Some((first_name, first_value)) = labels.next() {
        out.push('{');
        push_label(out, first_name, first_value);
        for (label, value) in labels {
            out.push(',');
            push_label(out, label, value);
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

fn push_label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Integers without a fraction, `+Inf` spelled as Prometheus wants it.
pub(crate) fn number(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            &["a"],
            &["x\"y\\z\nw".to_owned()],
            Some(("le", "+Inf")),
            3.0,
        );
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\",le=\"+Inf\"} 3\n");
    }

    #[test]
    fn samples_without_labels() {
        let mut out = String::new();
        sample(&mut out, "m", &[], &[], None, 0.25);
        assert_eq!(out, "m 0.25\n");
    }
}
