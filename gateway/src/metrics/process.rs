//! This process as the kernel sees it, read from `/proc` at the moment of asking (a scrape, a
//! stats command): CPU time, memory, open files, disk I/O, threads; CPU use as a percentage
//! ([`CpuMeter`]) and the free space of the data directory's disk. Off Linux every figure is 0.

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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

/// (free, total) bytes of the file system holding `dir`; free is what an unprivileged process
/// may still use (`f_bavail`), as `df` shows it.
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let v = rustix::fs::statvfs(dir).ok()?;
    Some((
        v.f_bavail.saturating_mul(v.f_frsize),
        v.f_blocks.saturating_mul(v.f_frsize),
    ))
}

/// The shortest window a [`CpuMeter`] measures over: shorter ones hold too few clock ticks
/// (10 ms each) to mean anything.
pub const CPU_MIN_WINDOW: Duration = Duration::from_secs(1);

/// CPU use in percent: this process's (of one core, as `top` shows it, so up to 100 times the
/// cores) and the whole machine's (0..=100).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUsage {
    pub process_percent: f32,
    pub machine_percent: f32,
}

/// One reading of the CPU clocks.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    at: Instant,
    /// This process's CPU seconds and its age in seconds, both since it started.
    process: Option<(f64, f64)>,
    /// The machine's (busy, total) ticks since boot.
    machine: Option<(u64, u64)>,
}

impl CpuReading {
    fn now() -> CpuReading {
        CpuReading {
            at: Instant::now(),
            process: process_cpu_and_age(),
            machine: machine_cpu_ticks(),
        }
    }
}

/// CPU use between two readings: over the window from the previous reading when it is at
/// least [`CPU_MIN_WINDOW`] old (the previous reading then moves up), else averaged since the
/// process started (the machine: since boot), so the first answer is already a measurement.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Mutex<Option<CpuReading>>,
}

/// The process-wide meter: CPU use is a fact of the process, whichever server in it asks.
pub fn cpu_meter() -> &'static CpuMeter {
    static METER: LazyLock<CpuMeter> = LazyLock::new(CpuMeter::default);
    &METER
}

impl CpuMeter {
    /// CPU use now (see the type).
    pub fn usage(&self) -> CpuUsage {
        self.usage_at(CpuReading::now())
    }

    fn usage_at(&self, now: CpuReading) -> CpuUsage {
        let mut last = self.last.lock();
        match *last {
            Some(prev) if now.at.duration_since(prev.at) >= CPU_MIN_WINDOW => {
                *last = Some(now);
                window_usage(&prev, &now)
            }
            Some(_) => since_start(&now),
            None => {
                *last = Some(now);
                since_start(&now)
            }
        }
    }
}

fn percent(part: f64, whole: f64) -> f32 {
    if whole > 0.0 {
        (100.0 * part / whole).max(0.0) as f32
    } else {
        0.0
    }
}

fn since_start(now: &CpuReading) -> CpuUsage {
    CpuUsage {
        process_percent: now.process.map_or(0.0, |(cpu, age)| percent(cpu, age)),
        machine_percent: now
            .machine
            .map_or(0.0, |(busy, total)| percent(busy as f64, total as f64)),
    }
}

fn window_usage(prev: &CpuReading, now: &CpuReading) -> CpuUsage {
    let wall = now.at.duration_since(prev.at).as_secs_f64();
    let process = match (prev.process, now.process) {
        (Some((a, _)), Some((b, _))) => percent(b - a, wall),
        _ => 0.0,
    };
    let machine = match (prev.machine, now.machine) {
        (Some((busy_a, total_a)), Some((busy_b, total_b))) => percent(
            busy_b.saturating_sub(busy_a) as f64,
            total_b.saturating_sub(total_a) as f64,
        ),
        _ => 0.0,
    };
    CpuUsage {
        process_percent: process,
        machine_percent: machine,
    }
}

/// This process's CPU seconds and age in seconds: `/proc/self/stat` (utime, stime, starttime
/// in ticks since boot) against `/proc/uptime`.
fn process_cpu_and_age() -> Option<(f64, f64)> {
    let text = read("/proc/self/stat")?;
    let (cpu, _, _) = stat(&text)?;
    let started = stat_field(&text, 22)? as f64 / USER_HZ;
    let uptime: f64 = read("/proc/uptime")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((cpu, (uptime - started).max(0.0)))
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// (cpu seconds, threads, virtual bytes) from `/proc/self/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted from the last `)`.
fn stat(text: &str) -> Option<(f64, u64, u64)> {
    let field = |n: usize| stat_field(text, n);
    let cpu = (field(14)? + field(15)?) as f64 / USER_HZ;
    Some((cpu, field(20)?, field(23)?))
}

/// Field `n` (1-based, as `man 5 proc` numbers them; `n >= 3`) of a `/proc/<pid>/stat` line.
fn stat_field(text: &str, n: usize) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, so field n is the (n - 3)th.
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
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

    fn reading(at: Instant, cpu: f64, age: f64, busy: u64, total: u64) -> CpuReading {
        CpuReading {
            at,
            process: Some((cpu, age)),
            machine: Some((busy, total)),
        }
    }

    /// The first answer is the average since start; a later one at least CPU_MIN_WINDOW after
    /// the previous reading is the window's; one sooner is the average since start again and
    /// leaves the window's start where it was.
    #[test]
    fn cpu_meter_measures_windows_of_at_least_the_minimum() {
        let t0 = Instant::now();
        let meter = CpuMeter::default();
        // 2 CPU seconds in a 10-second-old process, machine 25 % busy since boot.
        let u = meter.usage_at(reading(t0, 2.0, 10.0, 250, 1000));
        assert_eq!((u.process_percent, u.machine_percent), (20.0, 25.0));
        // 0.5 s later: too short a window, so the since-start average.
        let u = meter.usage_at(reading(
            t0 + Duration::from_millis(500),
            2.4,
            10.5,
            300,
            1100,
        ));
        assert!(
            (u.process_percent - 2.4 / 10.5 * 100.0).abs() < 1e-3,
            "{u:?}"
        );
        // 2 s after the first reading: 1.5 CPU seconds in 2 s, 100 of 200 ticks busy.
        let u = meter.usage_at(reading(t0 + Duration::from_secs(2), 3.5, 12.0, 350, 1200));
        assert_eq!((u.process_percent, u.machine_percent), (75.0, 50.0));
        // Clocks that went backwards (a reading cut short) give 0, never a negative.
        let u = meter.usage_at(reading(t0 + Duration::from_secs(4), 3.0, 14.0, 300, 1100));
        assert_eq!((u.process_percent, u.machine_percent), (0.0, 0.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_and_disk_of_this_process() {
        // Some CPU time to see: work until the kernel has counted a tick (bounded).
        let mut x = 0u64;
        for i in 0..2_000_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            if i % 1_000_000 == 0 && process_cpu_and_age().is_some_and(|(cpu, _)| cpu > 0.0) {
                break;
            }
        }
        std::hint::black_box(x);
        let (cpu, age) = process_cpu_and_age().expect("read /proc/self/stat");
        assert!(cpu > 0.0 && age > 0.0, "{cpu} {age}");
        let u = CpuMeter::default().usage();
        assert!(u.process_percent > 0.0 && u.machine_percent > 0.0, "{u:?}");
        let dir = tempfile::tempdir().expect("temp dir");
        let (free, total) = disk_space(dir.path()).expect("statvfs");
        assert!(free > 0 && total >= free, "{free} {total}");
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
