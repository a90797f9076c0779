//! Progress: of a sweep, a bar on a terminal and one plain line per run otherwise (logs,
//! CI); of one long run (a simulated point, a `bench sim` size), what its driver reports
//! ([`RunProgress`]: virtual time reached, events, events/s), on that bar on a terminal
//! and as a plain line every [`EVERY_ENV`] seconds otherwise.

use dagwire_runtime::drivers::RunProgress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Environment variable: seconds between two plain progress lines of a long run when
/// stderr is not a terminal (default [`DEFAULT_EVERY`]; 0 prints every report).
pub const EVERY_ENV: &str = "DAGWIRE_PROGRESS_EVERY_S";

/// Plain progress lines of a long run come this often by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(10);

/// A run's progress shows on a terminal once it has run this long.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Reports runs as they finish.
pub struct SweepProgress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
}

impl SweepProgress {
    /// `total` runs, of which `already` were finished by an earlier session.
    pub fn new(total: usize, already: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} runs  {elapsed} elapsed, ~{eta} left  {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(already as u64);
            bar
        });
        if already > 0 {
            eprintln!("resuming: {already} of {total} runs already finished, skipping them");
        }
        SweepProgress { bar, total, done: already }
    }

    /// A run is starting.
    pub fn start(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_string());
        }
    }

    /// What shows the progress of the run `label` while it goes: this sweep's bar.
    pub fn watch(&self, label: &str) -> RunWatch {
        RunWatch::new(label, self.bar.clone(), false)
    }

    /// A run finished; `outcome` is a short result line.
    pub fn finish_one(&mut self, label: &str, outcome: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(format!("{label}: {outcome}"));
            }
            None => eprintln!("[{}/{}] {label}: {outcome}", self.done, self.total),
        }
    }

    /// All runs done.
    pub fn close(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Shows one run's progress reports ([`RunWatch::observe`] is a run's observer): once
/// the run has gone on for a second, on a terminal bar (the sweep's, or a line of its
/// own); without a terminal, a plain line `  LABEL: PROGRESS` every [`EVERY_ENV`]
/// seconds of the run.
pub struct RunWatch {
    label: String,
    bar: Option<ProgressBar>,
    /// The bar is this watch's own (cleared when the run ends), not a sweep's.
    own_bar: bool,
    every: Duration,
    /// Wall time into the run at which the next plain line is due.
    next_line: Mutex<Duration>,
}

impl RunWatch {
    fn new(label: &str, bar: Option<ProgressBar>, own_bar: bool) -> Self {
        let every = every_from_env(std::env::var(EVERY_ENV).ok().as_deref());
        RunWatch { label: label.to_string(), bar, own_bar, every, next_line: Mutex::new(every) }
    }

    /// A watch of its own, for a run outside a sweep (`experiment bench sim`).
    pub fn standalone(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar
        });
        RunWatch::new(label, bar, true)
    }

    /// Takes one report of the run.
    pub fn observe(&self, p: RunProgress) {
        match &self.bar {
            Some(bar) if p.wall >= SHOW_AFTER => bar.set_message(format!("{}  {}", self.label, progress_text(p))),
            Some(_) => {}
            None => {
                let mut next = self.next_line.lock().unwrap_or_else(|e| e.into_inner());
                if p.wall >= *next {
                    eprintln!("  {}: {}", self.label, progress_text(p));
                    *next = p.wall + self.every;
                }
            }
        }
    }

    /// The run ended: clears a bar of its own.
    pub fn close(self) {
        if let (Some(bar), true) = (self.bar, self.own_bar) {
            bar.finish_and_clear();
        }
    }
}

/// The interval of plain progress lines `DAGWIRE_PROGRESS_EVERY_S` asks for (seconds,
/// fractions allowed); unset or not a number: [`DEFAULT_EVERY`].
fn every_from_env(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_EVERY)
}

/// One report as text: `12.3 ms simulated, 4.52 M events, 2.10 M events/s, 2.2 s`.
pub fn progress_text(p: RunProgress) -> String {
    let secs = p.wall.as_secs_f64();
    let rate = if secs > 0.0 { p.events as f64 / secs } else { 0.0 };
    format!(
        "{} simulated, {} events, {} events/s, {secs:.1} s",
        virtual_time(p.virtual_ns),
        count(p.events as f64),
        count(rate)
    )
}

/// Virtual nanoseconds in the largest unit that keeps them at least 1.
fn virtual_time(ns: u64) -> String {
    let ns = ns as f64;
    match ns {
        _ if ns >= 1e9 => format!("{:.3} s", ns * 1e-9),
        _ if ns >= 1e6 => format!("{:.3} ms", ns * 1e-6),
        _ if ns >= 1e3 => format!("{:.3} us", ns * 1e-3),
        _ => format!("{ns:.0} ns"),
    }
}

/// A count with a k or M suffix.
fn count(n: f64) -> String {
    match n {
        _ if n >= 1e6 => format!("{:.2} M", n * 1e-6),
        _ if n >= 1e3 => format!("{:.1} k", n * 1e-3),
        _ => format!("{n:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_as_virtual_time_events_and_rate() {
        let p = RunProgress { virtual_ns: 12_345_678, events: 4_520_000, wall: Duration::from_secs(2) };
        assert_eq!(progress_text(p), "12.346 ms simulated, 4.52 M events, 2.26 M events/s, 2.0 s");
        let early = RunProgress { virtual_ns: 950, events: 999, wall: Duration::ZERO };
        assert_eq!(progress_text(early), "950 ns simulated, 999 events, 0 events/s, 0.0 s");
        assert_eq!(virtual_time(3_500_000_000), "3.500 s");
        assert_eq!(count(65_536.0), "65.5 k");
    }

    #[test]
    fn the_line_interval_comes_from_the_environment_or_defaults() {
        assert_eq!(every_from_env(None), DEFAULT_EVERY);
        assert_eq!(every_from_env(Some("0")), Duration::ZERO);
        assert_eq!(every_from_env(Some(" 2.5 ")), Duration::from_millis(2500));
        assert_eq!(every_from_env(Some("soon")), DEFAULT_EVERY);
        assert_eq!(every_from_env(Some("-1")), DEFAULT_EVERY);
    }

    /// Without a terminal: a line for the first report at or past the interval, then
    /// none until another interval has passed.
    #[test]
    fn plain_lines_come_once_per_interval() {
        let watch = RunWatch {
            label: "x".into(),
            bar: None,
            own_bar: false,
            every: Duration::from_secs(10),
            next_line: Mutex::new(Duration::from_secs(10)),
        };
        let at = |s| RunProgress { virtual_ns: 1, events: 1, wall: Duration::from_secs(s) };
        watch.observe(at(9));
        assert_eq!(*watch.next_line.lock().unwrap(), Duration::from_secs(10), "nothing before the interval");
        watch.observe(at(11));
        assert_eq!(*watch.next_line.lock().unwrap(), Duration::from_secs(21), "a line, the next one due later");
        watch.observe(at(15));
        assert_eq!(*watch.next_line.lock().unwrap(), Duration::from_secs(21));
    }
}
