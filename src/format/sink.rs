//! Where validators report problems. Each rule of the file format is written
//! once, in `format/`, and reports into a [`Sink`]: opening a file uses
//! [`FirstProblem`] (stop at the first problem, which becomes a
//! `CorruptFile`-kind error), `sharray check` uses [`AllProblems`] (keep
//! going and list them all).

use std::fmt;
use std::ops::ControlFlow;

/// One broken invariant found by a validator (and listed by
/// [`crate::check`]): where (a byte offset in the file, if it has one) and
/// what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the file where the problem is, if it has one.
    pub offset: Option<u64>,
    /// One sentence saying what is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "at byte {o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Receives the problems a validator finds.
pub trait Sink {
    /// Report a problem; `Break` asks the validator to stop.
    fn problem(&mut self, offset: Option<u64>, message: String) -> ControlFlow<()>;
}

/// Keeps the first problem and stops the validator there.
#[derive(Debug, Default)]
pub struct FirstProblem(pub Option<Problem>);

impl Sink for FirstProblem {
    fn problem(&mut self, offset: Option<u64>, message: String) -> ControlFlow<()> {
        self.0.get_or_insert(Problem { offset, message });
        ControlFlow::Break(())
    }
}

/// Collects every problem.
#[derive(Debug, Default)]
pub struct AllProblems(pub Vec<Problem>);

impl Sink for AllProblems {
    fn problem(&mut self, offset: Option<u64>, message: String) -> ControlFlow<()> {
        self.0.push(Problem { offset, message });
        ControlFlow::Continue(())
    }
}
