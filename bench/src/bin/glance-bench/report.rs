//! The results: one row per figure (all runs kept), rendered as one markdown table with the
//! median, min–max, latency percentiles, the fraction of the matching ceiling and the target,
//! and as JSON. Targets are only printed and marked, never asserted.

use serde_json::{Value, json};

use crate::cpu::Usage;

/// A ceiling a figure is compared with.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// Short name shown in the table.
    pub name: String,
    /// Median of its runs.
    pub value: f64,
    /// How many of the ceiling's units one unit of the figure costs (2 for create+delete
    /// pairs against the trivial handler's single requests).
    pub per_unit: f64,
}

/// One figure.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// `sqlite`, `mariadb`, `endpoint` or `—` for machine ceilings.
    pub backend: String,
    /// Unit of `values`.
    pub unit: &'static str,
    /// One value per run.
    pub values: Vec<f64>,
    /// Per-run p50 latency, ms (rate figures only).
    pub p50_ms: Vec<f64>,
    /// Per-run p99 latency, ms (rate figures only).
    pub p99_ms: Vec<f64>,
    /// The matching ceiling, when there is one.
    pub ceiling: Option<Ceiling>,
    /// The target, in words.
    pub target: String,
    /// Whether the median meets the target (None: no target).
    pub met: Option<bool>,
    /// Anything the reader must know (errors, growth, VmHWM).
    pub note: String,
    /// Requests that failed while measuring this figure.
    pub failed: u64,
    /// CPU of the accounted processes in each run, with the run's units of the figure.
    pub cpu: Vec<CpuRun>,
    /// What one unit of `cpu` is: `req`, `pair` or `MB`.
    pub cpu_unit: &'static str,
}

/// The work directory's disk over a figure's runs (medians of the runs).
#[derive(Debug, Clone)]
pub struct DiskPerUnit {
    /// Device name.
    pub name: String,
    /// Share of the window with I/O in flight.
    pub busy: f64,
    /// KB (10^3 bytes) written per unit of the figure.
    pub kb_written: f64,
    /// KB read per unit.
    pub kb_read: f64,
}

/// The CPU the processes used in one run of a figure, and how many units the run did.
#[derive(Debug, Clone)]
pub struct CpuRun {
    /// CPU seconds per process over the run's measured window.
    pub usage: Usage,
    /// Requests, pairs or MB done in that window.
    pub units: f64,
}

/// Median (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        f64::midpoint(s[m - 1], s[m])
    }
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// A number as people read it: thousands separated, fewer decimals as it grows.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 100.0 {
        let s = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl Row {
    /// Per process, the median over the runs of its CPU µs per unit, in the order the
    /// processes were accounted; and the median of the cores they kept busy together.
    pub fn cpu_per_unit(&self) -> (Vec<(String, f64)>, f64) {
        let mut names: Vec<&str> = Vec::new();
        for run in &self.cpu {
            for (name, _) in &run.usage.secs {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        let per_proc = names
            .iter()
            .map(|&name| {
                let v: Vec<f64> = self
                    .cpu
                    .iter()
                    .filter(|r| r.units > 0.0)
                    .filter_map(|r| {
                        let (_, s) = r.usage.secs.iter().find(|(n, _)| n == name)?;
                        Some(s * 1e6 / r.units)
                    })
                    .collect();
                (name.to_string(), median(&v))
            })
            .collect();
        let cores: Vec<f64> = self.cpu.iter().map(|r| r.usage.cores()).collect();
        (per_proc, median(&cores))
    }

    fn cpu_cell(&self) -> String {
        if self.cpu.is_empty() {
            return String::new();
        }
        let (per_proc, cores) = self.cpu_per_unit();
        let procs: Vec<String> = per_proc
            .iter()
            .map(|(name, us)| format!("{name} {}", num(*us)))
            .collect();
        let mut cell = format!(
            "{} µs/{}; {} cores busy",
            procs.join(", "),
            self.cpu_unit,
            num(cores)
        );
        if let Some(d) = self.disk_per_unit() {
            cell.push_str(&format!(
                "; disk {} {:.0}% busy, {} KB written and {} KB read/{}",
                d.name,
                d.busy * 100.0,
                num(d.kb_written),
                num(d.kb_read),
                self.cpu_unit
            ));
        }
        cell
    }

    /// The disk over the runs (medians): `None` when no run saw it.
    pub fn disk_per_unit(&self) -> Option<DiskPerUnit> {
        let runs: Vec<(&crate::cpu::DiskUse, f64)> = self
            .cpu
            .iter()
            .filter(|r| r.units > 0.0)
            .filter_map(|r| Some((r.usage.disk.as_ref()?, r.units)))
            .collect();
        let (first, _) = runs.first()?;
        let per_unit = |mb: fn(&crate::cpu::DiskUse) -> f64| {
            median(
                &runs
                    .iter()
                    .map(|(d, u)| mb(d) * 1000.0 / u)
                    .collect::<Vec<_>>(),
            )
        };
        Some(DiskPerUnit {
            name: first.name.clone(),
            busy: median(&runs.iter().map(|(d, _)| d.busy).collect::<Vec<_>>()),
            kb_written: per_unit(|d| d.written_mb),
            kb_read: per_unit(|d| d.read_mb),
        })
    }

    /// Median of the runs.
    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    /// The median as a fraction of the ceiling.
    pub fn ratio(&self) -> Option<f64> {
        self.ceiling
            .as_ref()
            .map(|c| self.median() * c.per_unit / c.value)
    }

    /// The "met" cell. A quick run (small sizes, 1 s runs, 1,000 images) is a smoke test of
    /// the benchmark: its figures are not what the targets are set for, so a row with a
    /// target says it was not judged rather than a verdict of "no".
    fn met_cell(&self, judged: bool) -> &'static str {
        match (self.met, judged) {
            (None, _) => "",
            (Some(_), false) => "n/a (quick)",
            (Some(true), true) => "yes",
            (Some(false), true) => "**no**",
        }
    }

    fn cells(&self, judged: bool) -> Vec<String> {
        let lat = |v: &[f64]| {
            if v.is_empty() {
                String::new()
            } else {
                num(median(v))
            }
        };
        let ceiling = match (&self.ceiling, self.ratio()) {
            (Some(c), Some(r)) if r < 0.1 => format!("{:.1}% of {}", r * 100.0, c.name),
            (Some(c), Some(r)) => format!("{:.0}% of {}", r * 100.0, c.name),
            _ => String::new(),
        };
        vec![
            self.figure.clone(),
            self.backend.clone(),
            format!("{} {}", num(self.median()), self.unit),
            format!("{}–{}", num(min(&self.values)), num(max(&self.values))),
            lat(&self.p50_ms),
            lat(&self.p99_ms),
            ceiling,
            self.target.clone(),
            self.met_cell(judged).into(),
            self.note.clone(),
            self.cpu_cell(),
        ]
    }

    fn json(&self, judged: bool) -> Value {
        let (cpu_us, cores) = self.cpu_per_unit();
        json!({
            "figure": self.figure,
            "backend": self.backend,
            "unit": self.unit,
            "median": self.median(),
            "min": min(&self.values),
            "max": max(&self.values),
            "runs": self.values,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "ceiling": self.ceiling.as_ref().map(|c| json!({"name": c.name, "value": c.value})),
            "ratio": self.ratio(),
            "target": self.target,
            // Not judged (a quick run): null, as for a row without a target.
            "met": self.met.filter(|_| judged),
            "note": self.note,
            "cpu_unit": self.cpu_unit,
            "cpu_us_per_unit": cpu_us
                .into_iter()
                .map(|(name, us)| (name, Value::from(us)))
                .collect::<serde_json::Map<_, _>>(),
            "cpu_cores_busy": cores,
            "disk": self.disk_per_unit().map(|d| json!({
                "device": d.name,
                "busy": d.busy,
                "kb_written_per_unit": d.kb_written,
                "kb_read_per_unit": d.kb_read,
            })),
        })
    }
}

/// The markdown table of all rows; with `judged` false (a quick run) no row is marked as
/// meeting or missing its target.
pub fn table(rows: &[Row], judged: bool) -> String {
    let head = [
        "figure",
        "db",
        "median",
        "min–max",
        "p50 ms",
        "p99 ms",
        "of ceiling",
        "target",
        "met",
        "note",
        "CPU per unit",
    ];
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.cells(judged).join(" | ")));
    }
    out
}

/// All rows and the run's context as JSON (`met` is null in every row when not `judged`).
pub fn json_doc(rows: &[Row], context: Value, judged: bool) -> Value {
    json!({
        "context": context,
        "rows": rows.iter().map(|r| r.json(judged)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::{Row, json_doc, table};

    fn rows() -> Vec<Row> {
        let row = |figure: &str, met: Option<bool>| Row {
            figure: figure.into(),
            backend: "sqlite".into(),
            unit: "req/s",
            values: vec![1.0],
            target: if met.is_some() {
                "≥ 2 req/s".into()
            } else {
                String::new()
            },
            met,
            ..Row::default()
        };
        vec![
            row("missed", Some(false)),
            row("met", Some(true)),
            row("untargeted", None),
        ]
    }

    /// The met cell of each row, in order.
    fn verdicts(table: &str) -> Vec<String> {
        table
            .lines()
            .skip(2)
            .map(|l| l.split(" | ").nth(8).unwrap_or("?").to_string())
            .collect()
    }

    #[test]
    fn a_judged_run_marks_each_target() {
        assert_eq!(verdicts(&table(&rows(), true)), ["**no**", "yes", ""]);
        let doc = json_doc(&rows(), serde_json::Value::Null, true);
        assert_eq!(doc["rows"][0]["met"], false);
        assert_eq!(doc["rows"][1]["met"], true);
    }

    #[test]
    fn a_quick_run_judges_no_target() {
        let t = table(&rows(), false);
        assert!(!t.contains("**no**"), "{t}");
        assert_eq!(verdicts(&t), ["n/a (quick)", "n/a (quick)", ""]);
        let doc = json_doc(&rows(), serde_json::Value::Null, false);
        assert!(doc["rows"][0]["met"].is_null());
        assert!(doc["rows"][1]["met"].is_null());
    }
}
