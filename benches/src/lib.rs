//! Benchmark drivers' shared parts: running reference tools and printing
//! side-by-side tables. Timings live here, never in pass/fail tests.

pub mod fio;

/// A markdown table whose rows compare Weir with a reference.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Weir's figure, the reference's (if it ran), and Weir / reference.
    pub fn row(&mut self, what: &str, weir: f64, reference: Option<f64>) {
        let (r, ratio) = match reference {
            Some(r) if r > 0.0 => (format!("{r:.1}"), format!("{:.2}", weir / r)),
            _ => ("n/a".into(), "n/a".into()),
        };
        self.rows.push(vec![what.into(), format!("{weir:.1}"), r, ratio]);
    }

    /// A row that is a ratio in itself.
    pub fn ratio_row(&mut self, what: &str, ratio: f64, note: String) {
        self.rows
            .push(vec![what.into(), note, "-".into(), format!("{ratio:.3}")]);
    }

    pub fn print(&self) {
        println!("| {} |", self.header.join(" | "));
        println!("|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}
