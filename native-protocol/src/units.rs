//! Human-readable sizes and durations (`1 GiB`, `500 ms`, `7 days`), as configuration files and
//! the command line take them and show them. Durations on the wire are µs and sizes bytes.

use std::time::Duration;

/// Parses a size such as `1 GiB`, `512MiB`, `64 KB` or `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (for example 512 MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses a duration such as `500 ms`, `1 s`, `5 m`, `2 h` or `7 days`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (for example 1 s)"))?;
    let ms: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "" => return Err(format!("'{s}' needs a unit (ms, s, m, h or days)")),
        other => return Err(format!("unknown duration unit '{other}' in '{s}'")),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// Formats bytes for people: `0 B`, `512 B`, `1.2 KiB`, `3.0 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Formats a duration for people in its largest whole unit: `3 days`, `2 h`, `90 s`, `250 ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let (n, unit) = if ms >= 86_400_000 && ms.is_multiple_of(86_400_000) {
        (
            ms / 86_400_000,
            if ms == 86_400_000 { "day" } else { "days" },
        )
    } else if ms >= 3_600_000 && ms.is_multiple_of(3_600_000) {
        (ms / 3_600_000, "h")
    } else if ms >= 60_000 && ms.is_multiple_of(60_000) {
        (ms / 60_000, "m")
    } else if ms >= 1000 && ms.is_multiple_of(1000) {
        (ms / 1000, "s")
    } else {
        (ms, "ms")
    };
    format!("{n} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_round_trip() {
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("12"), Ok(12));
        assert!(parse_size("x").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(
            parse_duration("7 days"),
            Ok(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").is_err());
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1_258_291), "1.2 MiB");
        assert_eq!(format_duration(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(format_duration(Duration::from_secs(90)), "90 s");
        for s in ["3 days", "2 h", "5 m", "90 s", "250 ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
