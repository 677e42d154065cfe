//! A profile of kilnd read from `perf script`: folded stacks, a flame graph, and Markdown
//! tables of where the samples fell.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use inferno::collapse::Collapse;
use inferno::collapse::perf::{Folder, Options as CollapseOptions};
use inferno::flamegraph;

/// Reads `perf script` output from `perf_script`, writes its folded stacks to `folded` and
/// its flame graph (titled `title`) to `svg`, and prints the `top` leaf frames and the share
/// of samples in each part of kilnd.
pub fn run(perf_script: &Path, folded: &Path, svg: &Path, title: &str, top: usize) -> anyhow::Result<()> {
    let script = File::open(perf_script).with_context(|| format!("opening {}", perf_script.display()))?;
    let mut collapse_options = CollapseOptions::default();
    collapse_options.annotate_kernel = true;
    let mut collapsed = Vec::new();
    Folder::from(collapse_options)
        .collapse(BufReader::new(script), &mut collapsed)
        .with_context(|| format!("collapsing {}", perf_script.display()))?;
    fs::write(folded, &collapsed).with_context(|| format!("writing {}", folded.display()))?;

    let mut options = flamegraph::Options::default();
    options.title = title.to_owned();
    let mut drawing = Vec::new();
    flamegraph::from_reader(&mut options, collapsed.as_slice(), &mut drawing)
        .context("drawing the flame graph")?;
    fs::write(svg, &drawing).with_context(|| format!("writing {}", svg.display()))?;

    let collapsed = String::from_utf8_lossy(&collapsed);
    let stacks = parse(&collapsed)?;
    let total: u64 = stacks.iter().map(|stack| stack.samples).sum();

    let mut own_time: HashMap<&str, u64> = HashMap::new();
    for stack in &stacks {
        *own_time.entry(stack.leaf()).or_default() += stack.samples;
    }
    let mut leaves: Vec<(&str, u64)> = own_time.into_iter().collect();
    leaves.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!("| top frames by own time | share of samples |");
    println!("|---|---|");
    for (frame, samples) in leaves.into_iter().take(top) {
        println!("| `{frame}` | {} |", percent(samples, total));
    }
    println!();

    println!("| where the time goes (a stack may count in several rows) | share of samples |");
    println!("|---|---|");
    for (label, part) in PARTS {
        let samples: u64 = stacks
            .iter()
            .filter(|stack| part.counts(stack))
            .map(|stack| stack.samples)
            .sum();
        println!("| {label} | {} |", percent(samples, total));
    }
    Ok(())
}

/// The rows of "where the time goes".
const PARTS: [(&str, Part); 12] = [
    (
        "front door (caller's HTTP, auth, routing)",
        Part::Any(&["frontdoor::"]),
    ),
    (
        "runtime API (the function's side)",
        Part::Any(&["pool::runtime_api"]),
    ),
    ("token verification", Part::Any(&["auth::"])),
    ("function lookup", Part::Any(&["registry::"])),
    ("metrics", Part::Any(&["telemetry::"])),
    ("tracing spans", Part::Any(&["tracing"])),
    (
        "allocator (malloc, free, realloc)",
        Part::User(&["malloc", "free", "realloc"]),
    ),
    ("in the kernel (syscalls, scheduling, wake-ups)", Part::KernelLeaf),
    (
        "— context switches",
        Part::Kernel(&["finish_task_switch", "schedule"]),
    ),
    (
        "— waking another thread or process",
        Part::Kernel(&["try_to_wake_up"]),
    ),
    ("— TCP", Part::Kernel(&["tcp_"])),
    ("— unix socket", Part::Kernel(&["unix_stream"])),
];

/// Which stacks count in a row of "where the time goes".
enum Part {
    /// Those with a frame whose name contains one of these.
    Any(&'static [&'static str]),
    /// Those with a user-space frame whose name contains one of these.
    User(&'static [&'static str]),
    /// Those with a kernel frame whose name contains one of these.
    Kernel(&'static [&'static str]),
    /// Those whose leaf frame is a kernel frame.
    KernelLeaf,
}

impl Part {
    fn counts(&self, stack: &Stack<'_>) -> bool {
        match self {
            Part::Any(names) => stack.frames.iter().any(|frame| has_name(frame, names)),
            Part::User(names) => stack
                .frames
                .iter()
                .any(|frame| !is_kernel(frame) && has_name(frame, names)),
            Part::Kernel(names) => stack
                .frames
                .iter()
                .any(|frame| is_kernel(frame) && has_name(frame, names)),
            Part::KernelLeaf => is_kernel(stack.leaf()),
        }
    }
}

/// One line of folded stacks.
struct Stack<'a> {
    /// Frame names from the root to the leaf.
    frames: Vec<&'a str>,
    samples: u64,
}

impl Stack<'_> {
    /// The frame that was running when the samples were taken.
    fn leaf(&self) -> &str {
        self.frames.last().copied().unwrap_or_default()
    }
}

/// Folded stacks are lines of `root;...;leaf count`.
fn parse(folded: &str) -> anyhow::Result<Vec<Stack<'_>>> {
    folded
        .lines()
        .map(|line| {
            let (frames, samples) = line
                .rsplit_once(' ')
                .with_context(|| format!("folded stack without a count: {line}"))?;
            Ok(Stack {
                frames: frames.split(';').collect(),
                samples: samples
                    .parse()
                    .with_context(|| format!("folded stack with a bad count: {line}"))?,
            })
        })
        .collect()
}

/// inferno's perf collapser marks kernel frames with `_[k]` (`annotate_kernel`).
fn is_kernel(frame: &str) -> bool {
    frame.ends_with("_[k]")
}

fn has_name(frame: &str, names: &[&str]) -> bool {
    names.iter().any(|name| frame.contains(name))
}

fn percent(part: u64, total: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}
