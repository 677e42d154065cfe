//! The upload progress bar: one line on stderr, redrawn with `\r` when the percentage moves,
//! with the rate so far; once every byte is sent, a line saying what kilnd does meanwhile.

use std::io::Write;
use std::time::Instant;

use kiln_client::Progress;

use crate::output::size;

const WIDTH: usize = 30;
/// Uploads smaller than this finish too fast for a bar to help.
pub const MIN_BYTES: u64 = 1 << 20;

/// A progress callback that draws on stderr, or does nothing when `visible` is false.
/// `then` is printed when the last byte is sent (kilnd is still working).
pub fn bar(visible: bool, then: &'static str) -> Progress {
    if !visible {
        return Box::new(|_, _| {});
    }
    let mut shown = None;
    let started = Instant::now();
    Box::new(move |sent, total| {
        let percent = percent(sent, total);
        if shown == Some(percent) {
            return;
        }
        shown = Some(percent);
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{}", line(sent, total, (sent as f64 / seconds) as u64));
        if sent >= total {
            let _ = writeln!(stderr);
            let _ = writeln!(stderr, "{then}");
        }
        let _ = stderr.flush();
    })
}

/// `uploading [=========>          ]  33%  1.0 MiB / 3.0 MiB  12.0 MiB/s`
fn line(sent: u64, total: u64, per_second: u64) -> String {
    let percent = percent(sent, total);
    let filled = (percent as usize * WIDTH) / 100;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    format!(
        "uploading [{bar}] {percent:>3}%  {} / {}  {}/s",
        size(sent),
        size(total),
        size(per_second)
    )
}

/// How much of `total` is sent, 0-100; an empty upload is complete.
fn percent(sent: u64, total: u64) -> u64 {
    (sent.min(total) * 100).checked_div(total).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_percentage_and_shows_the_rate() {
        assert_eq!(
            line(0, 2048, 0),
            "uploading [>                             ]   0%  0 B / 2.0 KiB  0 B/s"
        );
        assert_eq!(
            line(1024, 2048, 3 << 20),
            "uploading [===============>              ]  50%  1.0 KiB / 2.0 KiB  3.0 MiB/s"
        );
        assert_eq!(
            line(2048, 2048, 2048),
            "uploading [==============================] 100%  2.0 KiB / 2.0 KiB  2.0 KiB/s"
        );
        assert_eq!(percent(5, 0), 100);
    }
}
