//! The upload progress bar: one line on stderr, redrawn with `\r` when the percentage moves.

use std::io::Write;

use kiln_client::Progress;

use crate::output::size;

const WIDTH: usize = 30;

/// A progress callback that draws on stderr, or does nothing when `visible` is false.
pub fn bar(visible: bool) -> Progress {
    if !visible {
        return Box::new(|_, _| {});
    }
    let mut shown = None;
    Box::new(move |sent, total| {
        let percent = percent(sent, total);
        if shown == Some(percent) {
            return;
        }
        shown = Some(percent);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{}", line(sent, total));
        if sent >= total {
            let _ = writeln!(stderr);
        }
        let _ = stderr.flush();
    })
}

/// `uploading [=========>          ]  33%  1.0 MiB / 3.0 MiB`
fn line(sent: u64, total: u64) -> String {
    let percent = percent(sent, total);
    let filled = (percent as usize * WIDTH) / 100;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    format!(
        "uploading [{bar}] {percent:>3}%  {} / {}",
        size(sent),
        size(total)
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
    fn the_bar_fills_with_the_percentage() {
        assert_eq!(
            line(0, 2048),
            "uploading [>                             ]   0%  0 B / 2.0 KiB"
        );
        assert_eq!(
            line(1024, 2048),
            "uploading [===============>              ]  50%  1.0 KiB / 2.0 KiB"
        );
        assert_eq!(
            line(2048, 2048),
            "uploading [==============================] 100%  2.0 KiB / 2.0 KiB"
        );
        assert_eq!(percent(5, 0), 100);
    }
}
