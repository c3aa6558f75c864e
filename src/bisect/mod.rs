//! Bisect and patchcheck: find the commit or the series patch that broke a scenario, with
//! VM verdicts. The search is pure (`search`, `verdict`); `git` builds the worktree command
//! lines, `prefix` writes the project roots of series prefixes, `step` builds and boots one
//! step through the stage cache and the runner; `own_harness` judges a step with the
//! commit's own harness (`--each-harness`). Printing is `app/bisect.rs`'s.

pub(crate) mod git;
pub(crate) mod own_harness;
pub(crate) mod prefix;
pub(crate) mod search;
pub(crate) mod step;
pub(crate) mod verdict;
