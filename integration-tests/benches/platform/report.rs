//! The one table the bench prints: section | figure | value | baseline |
//! ratio | target | met?. Each row is also printed as soon as it is
//! measured, so a long run shows progress.

use std::fmt::Write as _;

/// A goal a figure is reported against (never asserted).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The ratio value / baseline is at least this.
    RatioAtLeast(f64),
    /// The value is at most this.
    AtMost(f64),
}

impl Target {
    fn describe(self, unit: &str) -> String {
        match self {
            Self::RatioAtLeast(x) => format!("ratio ≥ {x}"),
            Self::AtMost(x) => format!("≤ {} {unit}", number(x)),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Row {
    section: &'static str,
    figure: String,
    value: f64,
    unit: &'static str,
    baseline: Option<f64>,
    target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline
            .filter(|b| *b != 0.0)
            .map(|baseline| self.value / baseline)
    }

    fn met(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Target::AtMost(x) => Some(self.value <= x),
        }
    }

    fn cells(&self) -> [String; 7] {
        let with_unit = |v: f64| format!("{} {}", number(v), self.unit);
        [
            self.section.to_owned(),
            self.figure.clone(),
            with_unit(self.value),
            self.baseline.map(with_unit).unwrap_or_default(),
            self.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
            self.target
                .map(|t| t.describe(self.unit))
                .unwrap_or_default(),
            match self.met() {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None => String::new(),
            },
        ]
    }
}

/// Every row measured so far.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Records a figure with no baseline or target.
    pub fn value(&mut self, section: &'static str, figure: &str, value: f64, unit: &'static str) {
        self.push(section, figure, value, unit, None, None);
    }

    /// Records a figure next to its baseline, with an optional target.
    pub fn push(
        &mut self,
        section: &'static str,
        figure: &str,
        value: f64,
        unit: &'static str,
        baseline: Option<f64>,
        target: Option<Target>,
    ) {
        let row = Row {
            section,
            figure: figure.to_owned(),
            value,
            unit,
            baseline,
            target,
        };
        eprintln!("  {}", row.cells().join(" | "));
        self.rows.push(row);
    }

    /// A note in place of figures a section could not measure.
    pub fn failed(&mut self, section: &'static str, error: &str) {
        eprintln!("  {section}: FAILED: {error}");
        self.rows.push(Row {
            section,
            figure: format!("FAILED: {error}"),
            value: f64::NAN,
            unit: "",
            baseline: None,
            target: None,
        });
    }

    /// The table as Markdown (GitHub-flavoured), ready for docs/benchmarks.md.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let header = [
            "section", "figure", "value", "baseline", "ratio", "target", "met?",
        ];
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.cells().join(" | "));
        }
        out
    }
}

/// A figure with sensible precision: whole numbers from 100 up, else three
/// significant digits.
fn number(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
