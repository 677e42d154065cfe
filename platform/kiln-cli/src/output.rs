//! Output for people (aligned tables, `key: value` blocks, short digests, sizes) and for
//! scripts (`--json`: the server's JSON, pretty-printed).

use serde::Serialize;
use serde_json::{Map, Value};

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row; columns are left-aligned and two spaces apart.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|header| header.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(&format!("{cell:<width$}  "));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// `key: value` lines with the values aligned; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// The first 12 hex digits of a sha256 digest, as `git` shortens commits.
pub fn short_digest(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Settings on one line, sorted: `env=A=1,B=2 memory_mb=64 timeout_ms=500`; empty and null
/// ones are left out.
pub fn settings(settings: &Map<String, Value>) -> String {
    let mut sorted: Vec<(&String, &Value)> = settings.iter().collect();
    sorted.sort_by_key(|(key, _)| *key);
    sorted
        .into_iter()
        .filter_map(|(key, value)| match value {
            Value::Null => None,
            Value::Object(map) if map.is_empty() => None,
            Value::Object(map) => {
                let pairs: Vec<String> = map
                    .iter()
                    .map(|(name, value)| format!("{name}={}", text(value)))
                    .collect();
                Some(format!("{key}={}", pairs.join(",")))
            }
            other => Some(format!("{key}={}", text(other))),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON value as text: strings without quotes, the rest as compact JSON, null as nothing.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// An optional value as text, nothing when absent.
pub fn optional(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut table = Table::new(&["NAME", "VERSION", "DIGEST"]);
        table.row(vec!["hello".into(), "12".into(), "abc".into()]);
        table.row(vec!["order-workflow".into(), "1".into(), "".into()]);
        assert_eq!(
            table.render(),
            "NAME            VERSION  DIGEST\n\
             hello           12       abc\n\
             order-workflow  1\n"
        );
        assert_eq!(Table::new(&["ID"]).render(), "ID\n");
    }

    #[test]
    fn fields_align_and_skip_empty_values() {
        let text = fields(&[
            ("id", "x1".into()),
            ("status", "completed".into()),
            ("error", "".into()),
        ]);
        assert_eq!(text, "id:     x1\nstatus: completed\n");
    }

    #[test]
    fn digests_sizes_and_settings_are_short() {
        assert_eq!(short_digest(&"ab".repeat(32)), "abababababab");
        assert_eq!(short_digest("abc"), "abc");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024 + 300 * 1024), "3.3 MiB");
        let map = json!({"memory_mb": 64, "cpu_millicores": null, "network": false,
                         "env": {"A": "1", "B": "x y"}, "extra": {}});
        assert_eq!(
            settings(map.as_object().unwrap()),
            "env=A=1,B=x y memory_mb=64 network=false"
        );
        assert_eq!(text(&json!("plain")), "plain");
        assert_eq!(text(&json!({"a": [1]})), "{\"a\":[1]}");
    }
}
