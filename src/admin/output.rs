//! How commands print: a short human table by default, the JSON document
//! with `--json` (one document on stdout; errors also on stderr).

use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// One record: aligned `field  value` lines, or `value` as JSON.
    pub fn record(&self, value: &impl Serialize, rows: &[(&str, String)]) {
        if self.json {
            return self.print_json(value);
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (field, v) in rows {
            println!("{field:<width$}  {v}");
        }
    }

    /// A table: a header line and aligned columns, or `value` as JSON.
    pub fn table(&self, value: &impl Serialize, headers: &[&str], rows: &[Vec<String>]) {
        if self.json {
            return self.print_json(value);
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("{}", text.join("  ").trim_end());
        };
        line(headers.to_vec());
        for row in rows {
            line(row.iter().map(String::as_str).collect());
        }
    }

    /// A failure: one line on stderr, and `{"error", "detail"}` on stdout with `--json`.
    pub fn error(&self, code: &str, detail: &str) {
        eprintln!("suma-auth admin: {detail}");
        if self.json {
            self.print_json(&serde_json::json!({"error": code, "detail": detail}));
        }
    }

    fn print_json(&self, value: &impl Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("suma-auth admin: {e}"),
        }
    }
}

/// An optional value for a table cell.
pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}
