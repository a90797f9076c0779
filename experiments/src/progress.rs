//! Progress of a sweep: a bar on a terminal, one plain line per run otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

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
