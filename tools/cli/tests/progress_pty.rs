//! The progress bar as a person sees it: `eye check` runs under a pseudo-terminal on a
//! file large enough for several frames, and the screen's bytes are read back. The bar
//! (its block characters and its events/s) is there on a terminal, and absent with
//! `--quiet` or when stderr is not the terminal.

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const EVENTS: usize = 200_000;

fn big_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("big.ndjson");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..EVENTS {
        writeln!(
            w,
            r#"{{"session_id":"s-{}","category":"page_interaction","name":"page_view","timestamp":1714557600,"data":{{"host":"example.com","path":"/p/{i}"}}}}"#,
            i % 97
        )
        .expect("write");
    }
    w.flush().expect("flush");
    path
}

/// Runs `program args` on a new pseudo-terminal; returns everything it wrote to the screen
/// and its exit code.
fn on_terminal(program: &str, args: &[&str]) -> (String, u32) {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(program);
    cmd.args(args);
    cmd.cwd(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).expect("spawned");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut buf = [0u8; 8192];
        // Linux answers EIO once the child side is closed: that is the end.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(screen);
    });
    let status = child.wait().expect("exit status");
    drop(pty.master);
    let screen = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the screen is read to its end");
    (
        String::from_utf8_lossy(&screen).into_owned(),
        status.exit_code(),
    )
}

const BAR: [&str; 2] = ["events/s", "█"];

#[test]
fn the_bar_shows_on_a_terminal_and_not_with_quiet_or_a_piped_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = big_file(dir.path());
    let file = file.to_str().expect("UTF-8 path");
    let eye = env!("CARGO_BIN_EXE_eye");
    let summary = format!("checked {EVENTS}, valid {EVENTS}, rejected 0");

    let (screen, code) = on_terminal(eye, &["check", file]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains(&summary), "{screen}");
    for part in BAR {
        assert!(screen.contains(part), "no {part:?} on the screen: {screen}");
    }
    assert!(
        screen.contains(&format!("{EVENTS} events · ")),
        "the final frame counts every event: {screen}"
    );
    assert!(
        screen.contains(&format!("{EVENTS} valid · 0 rejected")),
        "{screen}"
    );
    // The summary starts its own line, after the bar's last frame.
    assert!(screen.contains(&format!("\n{summary}")), "{screen}");

    let (screen, code) = on_terminal(eye, &["check", "--quiet", file]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains(&summary), "{screen}");
    for part in BAR {
        assert!(!screen.contains(part), "{part:?} with --quiet: {screen}");
    }

    let stderr = dir.path().join("stderr.txt");
    let (screen, code) = on_terminal(
        "/bin/sh",
        &[
            "-c",
            r#"exec "$0" check "$1" 2>"$2""#,
            eye,
            file,
            stderr.to_str().expect("UTF-8 path"),
        ],
    );
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains(&summary), "{screen}");
    let piped = std::fs::read_to_string(&stderr).expect("stderr file");
    for part in BAR {
        assert!(!screen.contains(part), "{part:?} on the screen: {screen}");
        assert!(
            !piped.contains(part),
            "{part:?} in the piped stderr: {piped}"
        );
    }
}
