//! How far long work has got, told to whichever face asked: a bar on the
//! terminal (the CLI, with indicatif), progress notifications (MCP, when the
//! request carries a progress token), or nobody.
//!
//! Work reports every step it likes; [`Progress`] passes on at most one
//! step per [`INTERVAL`] (and always the last), so no face is flooded and a
//! tight loop pays a clock read per step at most.
//!
//! It also carries the asker's wish to stop: long work calls
//! [`Progress::check`] where stopping is safe (inside its transaction,
//! which the error then rolls back), and a cancelled request stops there.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The least time between two steps passed on.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// One report: `done` units of `what`, of `total` when it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub done: u64,
    pub total: Option<u64>,
    pub what: &'static str,
}

type Report = Box<dyn Fn(&Step) + Send + Sync>;

struct Sink {
    report: Report,
    last: Mutex<Option<Instant>>,
}

type Cancelled = Arc<dyn Fn() -> bool + Send + Sync>;

/// Where long work reports its steps, and whether it should stop; cheap to
/// clone. The default tells nobody and never stops.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Sink>>, Option<Cancelled>);

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reporting)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    /// Nobody is told.
    pub fn none() -> Progress {
        Progress(None, None)
    }

    /// Steps go to `report` (thinned to one per [`INTERVAL`]).
    pub fn to(report: impl Fn(&Step) + Send + Sync + 'static) -> Progress {
        Progress(
            Some(Arc::new(Sink {
                report: Box::new(report),
                last: Mutex::new(None),
            })),
            None,
        )
    }

    /// The same, and the work stops at its next [`Progress::check`] once
    /// `cancelled` answers true.
    pub fn cancelled_by(self, cancelled: impl Fn() -> bool + Send + Sync + 'static) -> Progress {
        Progress(self.0, Some(Arc::new(cancelled)))
    }

    /// Whether the asker wants the work stopped.
    pub fn is_cancelled(&self) -> bool {
        self.1.as_ref().is_some_and(|c| c())
    }

    /// Stop here if the asker cancelled: [`Error::Cancelled`], which rolls
    /// back the transaction the work is in.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// `done` units of `what` (of `total`, if known) are done; passed on
    /// unless a step was passed on less than [`INTERVAL`] ago.
    pub fn step(&self, done: u64, total: Option<u64>, what: &'static str) {
        let Some(sink) = &self.0 else { return };
        let now = Instant::now();
        {
            let mut last = sink.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        (sink.report)(&Step { done, total, what });
    }

    /// The last step of a stage: always passed on.
    pub fn done(&self, done: u64, total: Option<u64>, what: &'static str) {
        let Some(sink) = &self.0 else { return };
        *sink.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        (sink.report)(&Step { done, total, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_thinned_and_the_last_always_told() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let p = Progress::to(move |s| into.lock().unwrap().push(s.done));
        for n in 0..10_000 {
            p.step(n, Some(10_000), "things");
        }
        p.done(10_000, Some(10_000), "things");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.first(), Some(&0), "the first step is told");
        assert_eq!(seen.last(), Some(&10_000), "the last step is told");
        assert!(seen.len() < 100, "{} steps told of 10,001", seen.len());
        Progress::none().step(1, None, "nothing happens");
    }

    #[test]
    fn a_cancelled_asker_stops_the_work_at_its_next_check() {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let p = Progress::none().cancelled_by(move || flag.load(std::sync::atomic::Ordering::Relaxed));
        assert!(p.check().is_ok());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            matches!(p.clone().check(), Err(Error::Cancelled)),
            "clones share the wish"
        );
        assert!(Progress::none().check().is_ok(), "nobody asks to stop");
    }
}
