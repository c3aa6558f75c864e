//! A shard `K/N` of a scenario selection (`test --shard`), for CI matrices: a deterministic partition,
//! balanced by expected duration, so that every scenario runs in exactly one shard and the
//! union of all shards is the unsharded run.
//!
//! Why by duration and not by count or hash (nextest's choices): one ISO scenario takes as
//! long as ten kernel ones under TCG, so equal counts give one shard that sets the critical
//! path. Longest-first greedy assignment (LPT) keeps the longest shard within 4/3 of the best
//! possible; it depends only on names and the committed durations file, never on the host.

use std::fmt;
use std::str::FromStr;

/// `K/N`, 1-based like GitLab's `CI_NODE_INDEX`/`CI_NODE_TOTAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=total.
    pub index: usize,
    /// How many shards there are.
    pub total: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid shard {s:?}: expected K/N with 1 <= K <= N (e.g. 2/3)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let total: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || total == 0 || index > total {
            return Err(bad());
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// Which shard (0-based) each item goes to, given each item's name and expected seconds.
/// Longest first (ties by name), each onto the currently lightest shard (ties: lowest index).
/// The result is indexed like `items`.
pub(crate) fn assign(items: &[(&str, f64)], shards: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[b]
            .1
            .total_cmp(&items[a].1)
            .then_with(|| items[a].0.cmp(items[b].0))
    });
    let mut load = vec![0.0_f64; shards.max(1)];
    let mut out = vec![0; items.len()];
    for i in order {
        let lightest = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[lightest] += items[i].1.max(0.0);
        out[i] = lightest;
    }
    out
}

impl Shard {
    /// The indices of `items` (name, expected seconds) in this shard, in their given order.
    pub(crate) fn select(&self, items: &[(&str, f64)]) -> Vec<usize> {
        assign(items, self.total)
            .into_iter()
            .enumerate()
            .filter(|&(_, s)| s + 1 == self.index)
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, f64)> {
        // Durations that are not all equal and not sorted, with repeats.
        (0..n)
            .map(|i| (format!("s{i:02}"), ((i * 37) % 11) as f64 * 10.0 + 5.0))
            .collect()
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, total: 3 }));
        assert_eq!("3/3".parse::<Shard>().unwrap().to_string(), "3/3");
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "", "1/3/4", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_item_in_exactly_one_shard_and_the_union_is_everything() {
        for n in [0, 1, 2, 5, 9, 23] {
            let owned = items(n);
            let it: Vec<(&str, f64)> = owned.iter().map(|(s, d)| (s.as_str(), *d)).collect();
            for total in 1..=(n + 2) {
                let mut seen = vec![0; n];
                for index in 1..=total {
                    for i in (Shard { index, total }).select(&it) {
                        seen[i] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "n={n} total={total}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn deterministic_and_independent_of_input_order() {
        let owned = items(12);
        let it: Vec<(&str, f64)> = owned.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        let mut reversed = it.clone();
        reversed.reverse();
        let by_name = |v: &[(&str, f64)], a: &[usize]| {
            let mut m: Vec<(String, usize)> = v
                .iter()
                .zip(a)
                .map(|((s, _), k)| (s.to_string(), *k))
                .collect();
            m.sort();
            m
        };
        assert_eq!(by_name(&it, &assign(&it, 3)), by_name(&it, &assign(&it, 3)));
        assert_eq!(
            by_name(&it, &assign(&it, 3)),
            by_name(&reversed, &assign(&reversed, 3))
        );
    }

    #[test]
    fn balances_by_duration_not_count() {
        // One long scenario and four short ones over two shards: the long one goes alone.
        let it = [
            ("a", 10.0),
            ("iso", 400.0),
            ("b", 10.0),
            ("c", 10.0),
            ("d", 10.0),
        ];
        let a = assign(&it, 2);
        assert_eq!(a[1], 0);
        assert!([0, 2, 3, 4].iter().all(|&i| a[i] == 1), "{a:?}");
        // Equal durations spread evenly by count.
        let eq = [("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)];
        let a = assign(&eq, 2);
        assert_eq!(a.iter().filter(|&&s| s == 0).count(), 2);
    }

    #[test]
    fn more_shards_than_items_leaves_empty_shards() {
        let it = [("a", 1.0), ("b", 2.0)];
        assert_eq!(
            (Shard { index: 3, total: 5 }).select(&it),
            Vec::<usize>::new()
        );
        assert_eq!((Shard { index: 1, total: 5 }).select(&it), vec![1]);
        assert_eq!((Shard { index: 2, total: 5 }).select(&it), vec![0]);
    }
}
