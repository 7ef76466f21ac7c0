//! Progress of a long run on stderr (indicatif): a bar over the input's bytes when its
//! length is known, else a spinner, with the events per second and the counts of events
//! that passed and were rejected. Hidden with `--quiet` and when stderr is not a terminal,
//! so scripts and pipes never see it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Events between two updates of the bar: updating it on every event would cost more than
/// checking the event.
const UPDATE_EVERY: u64 = 1024;

/// Whether to draw: not with `--quiet`, and only on a terminal.
pub fn visible(quiet: bool, stderr_is_terminal: bool) -> bool {
    !quiet && stderr_is_terminal
}

/// The bar's text: `N events · R events/s · A <ok_label> · J rejected`.
pub fn message(events: u64, elapsed: Duration, ok: u64, rejected: u64, ok_label: &str) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        (events as f64 / secs).round() as u64
    } else {
        0
    };
    format!("{events} events · {rate} events/s · {ok} {ok_label} · {rejected} rejected")
}

/// A progress reporter. Cheap when hidden.
pub struct Progress {
    bar: ProgressBar,
    ok_label: &'static str,
    start: Instant,
    ok: u64,
    rejected: u64,
    position: u64,
}

impl Progress {
    /// `total_bytes` makes it a bar over the input, else a spinner; `ok_label` names the
    /// events that passed (`valid`, `accepted`).
    pub fn new(total_bytes: Option<u64>, show: bool, ok_label: &'static str) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(total_bytes, target);
        let style = match total_bytes {
            Some(_) => ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}% {msg}",
            )
            .map(|s| s.progress_chars("█▉▊▋▌▍▎▏ ")),
            None => ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}"),
        };
        if let Ok(style) = style {
            bar.set_style(style);
        }
        if show {
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        let p = Self {
            bar,
            ok_label,
            start: Instant::now(),
            ok: 0,
            rejected: 0,
            position: 0,
        };
        p.draw();
        p
    }

    /// For this process's stderr.
    pub fn for_stderr(total_bytes: Option<u64>, quiet: bool, ok_label: &'static str) -> Self {
        Self::new(
            total_bytes,
            visible(quiet, std::io::stderr().is_terminal()),
            ok_label,
        )
    }

    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Counts events that passed and were rejected; `position` is the input's bytes
    /// consumed so far.
    pub fn record(&mut self, ok: u64, rejected: u64, position: u64) {
        let before = self.ok + self.rejected;
        self.ok += ok;
        self.rejected += rejected;
        self.position = position;
        if (before / UPDATE_EVERY) != ((self.ok + self.rejected) / UPDATE_EVERY) {
            self.draw();
        }
    }

    fn draw(&self) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_position(self.position);
        self.bar.set_message(message(
            self.ok + self.rejected,
            self.start.elapsed(),
            self.ok,
            self.rejected,
            self.ok_label,
        ));
    }

    /// Prints a line above the bar (or on stderr when hidden) without breaking it.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Runs `f` (which writes to the terminal) with the bar cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.bar.is_hidden() {
            f()
        } else {
            self.bar.suspend(f)
        }
    }

    /// Draws the final counts and leaves the bar on the screen.
    pub fn finish(self) {
        if self.bar.is_hidden() {
            return;
        }
        self.draw();
        self.bar.finish();
        // The cursor stays at the end of the bar: what is printed next starts a new line.
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_only_on_a_terminal_without_quiet() {
        let cases = [
            (false, true, true),
            (true, true, false),
            (false, false, false),
            (true, false, false),
        ];
        for (quiet, terminal, want) in cases {
            assert_eq!(
                visible(quiet, terminal),
                want,
                "quiet {quiet}, terminal {terminal}"
            );
        }
        assert!(Progress::new(Some(10), false, "valid").is_hidden());
    }

    #[test]
    fn the_message_has_the_rate_and_the_counts() {
        let cases = [
            (
                2000,
                Duration::from_secs(2),
                1990,
                10,
                "valid",
                "2000 events · 1000 events/s · 1990 valid · 10 rejected",
            ),
            (
                0,
                Duration::ZERO,
                0,
                0,
                "accepted",
                "0 events · 0 events/s · 0 accepted · 0 rejected",
            ),
            (
                3,
                Duration::from_millis(1500),
                3,
                0,
                "accepted",
                "3 events · 2 events/s · 3 accepted · 0 rejected",
            ),
        ];
        for (n, elapsed, ok, rejected, label, want) in cases {
            assert_eq!(message(n, elapsed, ok, rejected, label), want);
        }
    }

    #[test]
    fn a_hidden_reporter_counts_without_drawing() {
        let mut p = Progress::new(None, false, "valid");
        for _ in 0..3000 {
            p.record(1, 0, 10);
        }
        p.record(0, 5, 20);
        assert_eq!((p.ok, p.rejected, p.position), (3000, 5, 20));
        p.finish();
    }
}
