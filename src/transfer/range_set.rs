//! A set of half-open byte ranges, kept merged: the journal's record of what is done. A sparse
//! disk can have tens of thousands of extents and a terabyte download a million flushes, so
//! inserting is a B-tree lookup, not a scan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Stored as a sorted list of `[start, end)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(u64, u64)>", into = "Vec<(u64, u64)>")]
pub struct RangeSet {
    /// start → end; disjoint, not touching.
    map: BTreeMap<u64, u64>,
    /// Read from disk with overlaps or empty ranges (a journal that cannot be trusted).
    malformed: bool,
}

impl From<Vec<(u64, u64)>> for RangeSet {
    fn from(v: Vec<(u64, u64)>) -> Self {
        let mut r = RangeSet::new();
        let mut prev_end = None;
        for (a, b) in v {
            if a >= b || prev_end.is_some_and(|p| a <= p) {
                r.malformed = true;
            }
            prev_end = Some(b);
            r.insert(a, b);
        }
        r
    }
}

impl From<RangeSet> for Vec<(u64, u64)> {
    fn from(r: RangeSet) -> Self {
        r.ranges().collect()
    }
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Adds `[start, end)`, merging with neighbours it overlaps or touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // A range that starts before `s` and reaches it absorbs the new one.
        if let Some((&a, &b)) = self.map.range(..=s).next_back()
            && b >= s
        {
            s = a;
            e = e.max(b);
            self.map.remove(&a);
        }
        // Ranges that start within [s, e] are merged in.
        while let Some((&a, &b)) = self.map.range(s..=e).next() {
            e = e.max(b);
            self.map.remove(&a);
        }
        self.map.insert(s, e);
    }

    /// Removes `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut cut = Vec::new();
        if let Some((&a, &b)) = self.map.range(..start).next_back()
            && b > start
        {
            cut.push((a, b));
        }
        cut.extend(self.map.range(start..end).map(|(&a, &b)| (a, b)));
        for (a, b) in cut {
            self.map.remove(&a);
            if a < start {
                self.map.insert(a, start);
            }
            if b > end {
                self.map.insert(end, b);
            }
        }
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(&a, &b)| (a, b))
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u64 {
        self.map.iter().map(|(a, b)| b - a).sum()
    }

    /// The gaps in `[0, len)`.
    pub fn gaps(&self, len: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut pos = 0;
        for (a, b) in self.ranges() {
            if a >= len {
                break;
            }
            if a > pos {
                gaps.push((pos, a));
            }
            pos = pos.max(b);
        }
        if pos < len {
            gaps.push((pos, len));
        }
        gaps
    }

    /// Whether the ranges, as read, were sorted, disjoint and within `len` (a journal from disk
    /// is checked).
    pub fn is_valid_for(&self, len: u64) -> bool {
        !self.malformed && self.map.iter().next_back().is_none_or(|(_, &b)| b <= len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(r: &RangeSet) -> Vec<(u64, u64)> {
        r.ranges().collect()
    }

    #[test]
    fn merges_and_finds_gaps() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 30);
        assert_eq!(list(&r), vec![(10, 40)]);
        r.insert(50, 60);
        r.insert(0, 5);
        assert_eq!(r.gaps(70), vec![(5, 10), (40, 50), (60, 70)]);
        assert_eq!(r.covered(), 45);
        r.insert(12, 55);
        assert_eq!(list(&r), vec![(0, 5), (10, 60)]);
        r.insert(0, 70);
        assert!(r.gaps(70).is_empty());
        assert!(r.is_valid_for(70));
        assert!(!r.is_valid_for(69));
        let bad: RangeSet = serde_json::from_str("[[5,10],[8,12]]").unwrap();
        assert!(!bad.is_valid_for(20));
        let good: RangeSet = serde_json::from_str("[[5,10],[11,12]]").unwrap();
        assert!(good.is_valid_for(20));
        assert_eq!(serde_json::to_string(&good).unwrap(), "[[5,10],[11,12]]");
    }

    #[test]
    fn removes_across_and_inside_ranges() {
        let mut r = RangeSet::new();
        r.insert(0, 10);
        r.insert(20, 30);
        r.insert(40, 50);
        r.remove(5, 25);
        assert_eq!(list(&r), vec![(0, 5), (25, 30), (40, 50)]);
        r.remove(42, 44);
        assert_eq!(list(&r), vec![(0, 5), (25, 30), (40, 42), (44, 50)]);
        r.remove(0, 100);
        assert_eq!(r.covered(), 0);
    }

    #[test]
    fn many_inserts_stay_fast() {
        // Every other 4 KiB block of 4 GiB, then the gaps: a sparse map's worst case.
        let mut r = RangeSet::new();
        for i in 0..500_000u64 {
            r.insert(i * 8192, i * 8192 + 4096);
        }
        assert_eq!(r.ranges().count(), 500_000);
        for i in 0..500_000u64 {
            r.insert(i * 8192 + 4096, i * 8192 + 8192);
        }
        assert_eq!(list(&r), vec![(0, 500_000 * 8192)]);
    }
}
