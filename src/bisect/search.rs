//! The search of a bisect as pure data: an ordered list of steps (commits oldest first, or
//! series prefixes shortest first), the first said to be good, the last bad. The endpoints
//! are tested first; then each next step is the untested one nearest the middle of the
//! range between the last good step and the first failing one. Skipped steps (cannot test,
//! flaky) are stepped around; when only skips are left between the last good and the
//! first failing step, the answer is that range instead of one step.

use crate::bisect::verdict::Verdict;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Test the step at this index.
    Test(usize),
    /// The search is over.
    Done(Outcome),
}

/// How a search ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This step is the first that fails; the one before it is good.
    FirstBad(usize),
    /// The first failing step is one of `first..=last`: `last` fails, `first - 1` is good
    /// and every step between could not be tested.
    Range {
        /// The first step that could be the culprit (skipped).
        first: usize,
        /// The failing step that closes the range.
        last: usize,
    },
    /// The step said to be good did not pass (it failed or could not be tested).
    GoodEndpoint(Verdict),
    /// The step said to be bad did not fail (it passed or could not be tested).
    BadEndpoint(Verdict),
}

/// The verdicts known so far, by step index.
#[derive(Clone, Debug)]
pub(crate) struct Search {
    verdicts: Vec<Option<Verdict>>,
}

impl Search {
    /// A search over `steps` steps (at least 2: the good and the bad endpoint).
    pub(crate) fn new(steps: usize) -> Search {
        assert!(steps >= 2, "a bisect needs a good and a bad endpoint");
        Search {
            verdicts: vec![None; steps],
        }
    }

    /// Records the verdict of step `i`.
    pub(crate) fn record(&mut self, i: usize, verdict: Verdict) {
        self.verdicts[i] = Some(verdict);
    }

    /// The next step to test, or the outcome.
    pub(crate) fn next(&self) -> Next {
        let last = self.verdicts.len() - 1;
        match &self.verdicts[0] {
            None => return Next::Test(0),
            Some(Verdict::Good) => {}
            Some(v) => return Next::Done(Outcome::GoodEndpoint(v.clone())),
        }
        match &self.verdicts[last] {
            None => return Next::Test(last),
            Some(Verdict::Fails) => {}
            Some(v) => return Next::Done(Outcome::BadEndpoint(v.clone())),
        }
        let hi = (0..=last)
            .find(|&i| self.verdicts[i] == Some(Verdict::Fails))
            .expect("the bad endpoint fails");
        let lo = (0..hi)
            .rev()
            .find(|&i| self.verdicts[i] == Some(Verdict::Good))
            .expect("the good endpoint is good");
        let mid = lo + (hi - lo) / 2;
        let pick = (lo + 1..hi)
            .filter(|&i| self.verdicts[i].is_none())
            .min_by_key(|&i| (i.abs_diff(mid), i));
        match pick {
            Some(i) => Next::Test(i),
            None if hi == lo + 1 => Next::Done(Outcome::FirstBad(hi)),
            None => Next::Done(Outcome::Range {
                first: lo + 1,
                last: hi,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a whole search against `truth` (the verdict of every step), returning the
    /// outcome and the steps tested in order.
    fn drive(truth: &[Verdict]) -> (Outcome, Vec<usize>) {
        let mut s = Search::new(truth.len());
        let mut tested = Vec::new();
        loop {
            match s.next() {
                Next::Test(i) => {
                    assert!(!tested.contains(&i), "step {i} tested twice");
                    tested.push(i);
                    s.record(i, truth[i].clone());
                }
                Next::Done(o) => return (o, tested),
            }
        }
    }

    fn skip() -> Verdict {
        Verdict::Skip("build failed".into())
    }

    /// `g` good, `f` fails, `s` skip.
    fn steps(pattern: &str) -> Vec<Verdict> {
        pattern
            .chars()
            .map(|c| match c {
                'g' => Verdict::Good,
                'f' => Verdict::Fails,
                _ => skip(),
            })
            .collect()
    }

    #[test]
    fn endpoints_are_checked_first_and_stop_the_search() {
        let (o, tested) = drive(&steps("ggggf"));
        assert_eq!(&tested[..2], &[0, 4]);
        assert_eq!(o, Outcome::FirstBad(4));
        assert_eq!(
            drive(&steps("fgggf")),
            (Outcome::GoodEndpoint(Verdict::Fails), vec![0])
        );
        assert_eq!(
            drive(&steps("sgggf")),
            (Outcome::GoodEndpoint(skip()), vec![0])
        );
        assert_eq!(
            drive(&steps("ggggg")),
            (Outcome::BadEndpoint(Verdict::Good), vec![0, 4])
        );
        assert_eq!(
            drive(&steps("gfffs")),
            (Outcome::BadEndpoint(skip()), vec![0, 4])
        );
    }

    #[test]
    fn every_position_of_the_first_bad_step_is_found_in_log_steps() {
        for n in 2..40 {
            for bad in 1..n {
                let truth: Vec<Verdict> = (0..n)
                    .map(|i| {
                        if i < bad {
                            Verdict::Good
                        } else {
                            Verdict::Fails
                        }
                    })
                    .collect();
                let (o, tested) = drive(&truth);
                assert_eq!(o, Outcome::FirstBad(bad), "n={n} bad={bad}");
                // Two endpoints plus ceil(log2(n - 1)) halvings.
                let bound = 2 + (usize::BITS - (n - 1).leading_zeros()) as usize;
                assert!(tested.len() <= bound, "n={n} bad={bad}: {tested:?}");
            }
        }
    }

    #[test]
    fn skips_are_stepped_around() {
        // The step in the middle cannot be tested; its neighbours decide.
        let (o, tested) = drive(&steps("ggsggfff"));
        assert_eq!(o, Outcome::FirstBad(5));
        assert!(tested.contains(&3), "{tested:?}");
        let (o, _) = drive(&steps("ggsgff"));
        assert_eq!(o, Outcome::FirstBad(4));
    }

    #[test]
    fn skips_bordering_the_first_failure_make_a_range() {
        assert_eq!(
            drive(&steps("gggsfff")).0,
            Outcome::Range { first: 3, last: 4 }
        );
        assert_eq!(
            drive(&steps("ggsf")).0,
            Outcome::Range { first: 2, last: 3 }
        );
        assert_eq!(
            drive(&steps("gssff")).0,
            Outcome::Range { first: 1, last: 3 }
        );
        // A skip after the first failure does not widen it.
        assert_eq!(drive(&steps("ggfsf")).0, Outcome::FirstBad(2));
    }

    #[test]
    fn a_good_step_after_a_failing_one_narrows_to_the_first_failure_after_it() {
        // Not monotonic (a fix, then a second break): the search still ends at a step
        // whose predecessor is good, like git bisect.
        let (o, _) = drive(&steps("gfgff"));
        match o {
            Outcome::FirstBad(i) => assert!(i == 1 || i == 3, "{i}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_steps_need_only_the_endpoints() {
        assert_eq!(drive(&steps("gf")), (Outcome::FirstBad(1), vec![0, 1]));
    }
}
