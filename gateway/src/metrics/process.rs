//! This process as the kernel sees it, read from `/proc` at the moment of asking (a scrape, a
//! stats command): CPU time, memory, open files, disk I/O, threads. Off Linux every figure is 0.

use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, fixed at 100 by the kernel's
/// user-space ABI whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// One reading of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time since the process started, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// File descriptors open now.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (0 when unlimited or unknown).
    pub max_fds: u64,
    /// Bytes this process caused to be read from and written to storage (`/proc/self/io`).
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub threads: u64,
}

impl ProcessSample {
    /// Reads `/proc/self` now.
    pub fn now() -> ProcessSample {
        let mut s = ProcessSample::default();
        if let Some((cpu, threads, vsize)) = read("/proc/self/stat").as_deref().and_then(stat) {
            s.cpu_seconds = cpu;
            s.threads = threads;
            s.virtual_bytes = vsize;
        }
        if let Some(status) = read("/proc/self/status") {
            s.resident_bytes = kib_field(&status, "VmRSS:");
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            s.open_fds = (dir.count() as u64).saturating_sub(1);
        }
        if let Some(limits) = read("/proc/self/limits") {
            s.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        if let Some(io) = read("/proc/self/io") {
            s.read_bytes = plain_field(&io, "read_bytes:");
            s.written_bytes = plain_field(&io, "write_bytes:");
        }
        s
    }
}

/// CPU time of the whole machine, from `/proc/stat`'s first line: (busy, total) in ticks.
pub fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = read("/proc/stat")?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Bytes of the files under `dir` (the data directory), walked now. Symbolic links are not
/// followed; unreadable entries count as 0.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => pending.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// (cpu seconds, threads, virtual bytes) from `/proc/self/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted from the last `)`.
fn stat(text: &str) -> Option<(f64, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field n is f[n - 3].
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu = (field(14)? + field(15)?) as f64 / USER_HZ;
    Some((cpu, field(20)?, field(23)?))
}

fn kib_field(text: &str, key: &str) -> u64 {
    plain_field(text, key) * 1024
}

fn plain_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel writes it.
        let line = "4242 (wharf (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 7 0 100 \
                    123456789 300 18446744073709551615";
        let (cpu, threads, vsize) = stat(line).expect("parsed");
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert_eq!(threads, 7);
        assert_eq!(vsize, 123_456_789);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_seen() {
        let s = ProcessSample::now();
        assert!(
            s.resident_bytes > 0 && s.open_fds > 0 && s.threads >= 1,
            "{s:?}"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/f"), [0u8; 1000]).expect("write");
        std::fs::write(dir.path().join("g"), [0u8; 24]).expect("write");
        assert_eq!(dir_bytes(dir.path()), 1024);
    }
}
