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

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(1_700_000_000_000_000), "2023-11-14 22:13:20");
    }
}
