//! What the server's integration tests share: capturing everything the server logs.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

/// Collects what the server logs (installed for the whole test process by [`capture_logs`]).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every line logged at INFO and above, process-wide, into the returned buffer. Once per
/// test process: a test binary that uses it holds one test, so its lines are its own.
pub fn capture_logs() -> Captured {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    captured
}
