//! Printing results: aligned tables for people, JSON for scripts.

use serde_json::Value;

/// A table printed with aligned columns.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths.get(i).copied().unwrap_or(0);
                if i + 1 == cells.len() {
                    out.push_str(c);
                } else {
                    out.push_str(&format!("{c:<pad$}  "));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.clone());
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// Key/value pairs shown as a two-column table.
pub fn properties(pairs: &[(&'static str, String)]) -> String {
    let mut t = Table::new(&["PROPERTY", "VALUE"]);
    for (k, v) in pairs {
        t.row(vec![(*k).to_string(), v.clone()]);
    }
    t.render()
}

/// The most characters of one name (group id, topic, stream) shown in a table: Kafka's topic
/// names (249) fit whole; a group id may be up to 64 KiB, which would widen every row.
pub const NAME_CHARS: usize = 255;

/// A name from the server (a group id any Kafka client chose, a topic name made before the
/// naming rule) made safe to print for people: control characters, which a terminal would
/// obey (clear the screen, move the cursor, end the line), and the bidirectional overrides,
/// which reorder what is shown, are printed escaped (`\u{1b}`); text that would show more than
/// `max` characters (escapes counted as shown) is cut and ends with `…`. JSON output keeps names as they are (its strings are escaped).
pub fn shown(text: &str, max: usize) -> String {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut out = String::with_capacity(text.len().min(max));
    let mut width = 0;
    for c in text.chars() {
        let piece: String = if unsafe_char(c) {
            c.escape_unicode().collect()
        } else {
            c.into()
        };
        let w = piece.chars().count();
        if width + w > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        width += w;
    }
    out
}

pub fn json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// µs since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn timestamp(us: u64) -> String {
    let secs = us / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["ID", "NAME"]);
        t.row(vec!["1".into(), "shop".into()]);
        t.row(vec!["10".into(), "a".into()]);
        assert_eq!(t.render(), "ID  NAME\n1   shop\n10  a");
    }

    /// Bound: a name is at most NAME_CHARS characters on screen (a 64 KiB group id is cut)
    /// and carries no character a terminal obeys: escape sequences, line ends, bidi overrides.
    #[test]
    fn names_are_shown_without_terminal_controls_and_cut() {
        assert_eq!(shown("orders", NAME_CHARS), "orders");
        assert_eq!(
            shown("a\u{1b}[2Jb\nc\u{202e}d\u{7f}", NAME_CHARS),
            "a\\u{1b}[2Jb\\u{a}c\\u{202e}d\\u{7f}"
        );
        let huge = "g".repeat(65_535);
        let cut = shown(&huge, NAME_CHARS);
        assert_eq!(cut.chars().count(), NAME_CHARS + 1);
        assert!(cut.ends_with("g…"), "{cut}");
        assert_eq!(shown("日本語", 2), "日本…");
        // Escapes count as what they show: `\u{1b}` is 6 characters.
        assert_eq!(shown("a\u{1b}", 6), "a…");
        assert_eq!(shown("日本", 2), "日本");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(1_700_000_000_000_000), "2023-11-14 22:13:20");
    }
}
