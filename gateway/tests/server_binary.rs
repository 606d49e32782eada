//! The `wharf-server` binary itself: it starts with flags, serves, and on SIGTERM (and SIGINT)
//! finishes, syncs and exits 0; bad configuration is refused with a message naming the problem.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Starts the server and returns it with the address it logged.
fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args([
            "--native-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listener on ").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(WAIT)
        .expect("the server did not log its listening address");
    (child, addr)
}

fn ping(addr: &str) -> u32 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[4, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    u32::from_le_bytes(head[..4].try_into().unwrap())
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(WAIT)
        .expect("the server did not exit in time")
        .unwrap()
}

#[test]
fn serves_then_stops_cleanly_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-TERM", "-INT"] {
        let (child, addr) = start(dir.path());
        assert_eq!(ping(&addr), 0);
        signal(&child, sig);
        let status = wait_exit(child);
        assert!(status.success(), "exit after {sig}: {status:?}");
    }
    assert!(dir.path().join("catalog").exists() || dir.path().join("users").exists());
}

#[test]
fn bad_configuration_is_refused_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["--native-addr", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[native] address"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .env("WHARF_STORAGE_DEFAULT_DURABILITY", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("default_durability"));
}
