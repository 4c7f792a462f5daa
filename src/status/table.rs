//! The terminal view: `bootherd machines` prints the table,
//! `bootherd machines --watch` the cluster strip, the table and failures.

use super::{MachineRow, Overview};

/// "12s ago", "3m ago", … relative to `now`.
pub fn ago(t: Option<u64>, now: u64) -> String {
    match t {
        None => "never".to_string(),
        Some(t) => {
            let s = now.saturating_sub(t);
            match s {
                0..=59 => format!("{s}s ago"),
                60..=3599 => format!("{}m ago", s / 60),
                3600..=86399 => format!("{}h ago", s / 3600),
                _ => format!("{}d ago", s / 86400),
            }
        }
    }
}

/// The machines table; its first line is the header (scripts find columns by it).
pub fn machines_table(rows: &[MachineRow], now: u64) -> String {
    const HEADER: [&str; 8] = [
        "HOSTNAME",
        "MAC",
        "ROLE",
        "IP",
        "STATE",
        "PROGRESS",
        "LAST SEEN",
        "LAST EVENT",
    ];
    let mut table = vec![HEADER.map(String::from).to_vec()];
    for r in rows {
        table.push(vec![
            r.hostname.clone().unwrap_or_else(|| "-".into()),
            r.mac.to_string(),
            r.role.clone().unwrap_or_else(|| "-".into()),
            r.ip.clone().unwrap_or_else(|| "-".into()),
            r.state.to_string(),
            match (&r.failure, &r.progress) {
                (Some(_), _) => "FAILED".to_string(),
                (None, Some(p)) => format!("{}% {}", p.percent, p.phase),
                (None, None) => "-".to_string(),
            },
            ago(r.last_seen, now),
            r.last_event
                .as_ref()
                .map(|e| {
                    // One line per machine: the first line of the message.
                    let first = e.message.lines().next().unwrap_or_default();
                    format!("{}: {first} ({})", e.kind, ago(Some(e.time), now))
                })
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Lines of a failure's log tail shown in the terminal.
const LOG_LINES: usize = 10;

/// The whole operator view as text.
pub fn overview_text(o: &Overview) -> String {
    let mut out = String::new();
    for line in o.cluster.lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&machines_table(&o.machines, o.now));
    for r in &o.machines {
        let Some(f) = &r.failure else { continue };
        let name = r.hostname.clone().unwrap_or_else(|| r.mac.to_string());
        out.push_str(&format!(
            "\n{name} FAILED at {} ({})\n",
            f.step,
            ago(Some(f.time), o.now)
        ));
        if let Some(log) = &f.log_tail {
            let lines: Vec<&str> = log.lines().collect();
            for l in &lines[lines.len().saturating_sub(LOG_LINES)..] {
                out.push_str(&format!("  | {l}\n"));
            }
        }
    }
    out
}
