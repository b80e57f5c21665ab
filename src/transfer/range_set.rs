//! A set of half-open byte ranges, kept sorted and merged: the journal's record of what is done.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn new() -> Self {
        RangeSet(Vec::new())
    }

    /// Adds `[start, end)`, merging with neighbours it touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.0 {
            if b < s {
                out.push((a, b));
            } else if a > e {
                if !placed {
                    out.push((s, e));
                    placed = true;
                }
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        if !placed {
            out.push((s, e));
        }
        self.0 = out;
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    /// The gaps in `[0, len)`.
    pub fn gaps(&self, len: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut pos = 0;
        for &(a, b) in &self.0 {
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

    /// Whether the ranges are sorted, disjoint and within `len` (a journal from disk is checked).
    pub fn is_valid_for(&self, len: u64) -> bool {
        let mut prev_end = None;
        for &(a, b) in &self.0 {
            if a >= b || b > len || prev_end.is_some_and(|p| a <= p) {
                return false;
            }
            prev_end = Some(b);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_finds_gaps() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 30);
        assert_eq!(r.0, vec![(10, 40)]);
        r.insert(50, 60);
        r.insert(0, 5);
        assert_eq!(r.gaps(70), vec![(5, 10), (40, 50), (60, 70)]);
        assert_eq!(r.covered(), 45);
        r.insert(0, 70);
        assert!(r.gaps(70).is_empty());
        assert!(r.is_valid_for(70));
        assert!(!r.is_valid_for(69));
        assert!(!RangeSet(vec![(5, 10), (8, 12)]).is_valid_for(20));
    }
}
