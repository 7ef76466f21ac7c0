//! The spinner of the commands that follow a service's long answer (`rejected replay`,
//! `delete`): elapsed time and a message on stderr, hidden with `--quiet`; indicatif draws
//! it only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

pub fn spinner(quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
        bar.set_style(style);
    }
    if !quiet {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}
