//! Median, minimum and maximum of a set of measured durations, and a plain text table.

use std::time::Duration;

/// Median / min / max of some samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Median (mean of the middle two for an even count).
    pub median: Duration,
    /// Smallest.
    pub min: Duration,
    /// Largest.
    pub max: Duration,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2,
        };
        Some(Summary {
            median,
            min: s[0],
            max: s[n - 1],
        })
    }

    /// `0.337 [0.301–0.352]` in seconds.
    pub fn cell(&self) -> String {
        format!(
            "{} [{}–{}]",
            secs(self.median),
            secs(self.min),
            secs(self.max)
        )
    }
}

/// Seconds with millisecond precision.
pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Prints rows as left-aligned columns, a rule under the first row.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
            println!("{}", "-".repeat(total));
        }
    }
}
