//! Where each part starts and ends: the cut is made as a part starts, not up front, so the sizes
//! can follow what is left.

/// Cuts the bytes still missing into parts as they are started (guided self-scheduling): each
/// new part takes its share of what no part has taken yet, spread over the parts in flight,
/// between `unit` and `largest`, ending on a `unit` boundary or at the end of its gap. A large file is fetched in few, long requests (each request pays a round trip and the
/// link's latency before its first byte); the parts shrink towards the end, so the last ones
/// finish close together instead of one long part running alone.
pub(crate) struct Parts {
    gaps: std::collections::VecDeque<(u64, u64)>,
    left: u64,
    unit: u64,
    largest: u64,
    /// The parts the share is spread over.
    width: usize,
}

impl Parts {
    pub(crate) fn new(gaps: Vec<(u64, u64)>, unit: u64, largest: u64, width: usize) -> Parts {
        let unit = unit.max(1);
        Parts {
            left: gaps.iter().map(|(a, b)| b - a).sum(),
            gaps: gaps.into(),
            unit,
            largest: largest.max(unit),
            width: width.max(1),
        }
    }

    /// The parts of a file, as the options and the source allow: between `part_size` (at least
    /// the source's smallest part) and `max_part_size` (at most its largest), spread over the
    /// most parts that may run (`max_parts_in_flight`), not the count at the start. Spread over
    /// the start's 16, the first 16 parts of a 1 GiB file would take 64 MiB each, all of it,
    /// before the part-count controller adds a connection; new connections would have nothing
    /// left to fetch.
    pub(crate) fn for_file(
        gaps: Vec<(u64, u64)>,
        opts: &crate::transfer::TransferOptions,
        min_part: u64,
        max_part: u64,
    ) -> Parts {
        Parts::new(
            gaps,
            opts.part_size.min(max_part).max(min_part).max(1),
            opts.max_part_size.min(max_part),
            opts.parts_in_flight.max(opts.max_parts_in_flight),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// The size the next part would have.
    pub(crate) fn typical(&self) -> u64 {
        (self.left / self.width as u64).clamp(self.unit, self.largest)
    }

    /// The next part.
    pub(crate) fn next(&mut self) -> Option<(u64, u64)> {
        let (a, b) = *self.gaps.front()?;
        let len = self.typical();
        // `len` ≥ unit, so the rounded-down end is still past `a`.
        let e = ((a + len) / self.unit * self.unit).min(b);
        if e == b {
            self.gaps.pop_front();
        } else {
            self.gaps[0].0 = e;
        }
        self.left -= e - a;
        Some((a, e))
    }
}

#[cfg(test)]
mod tests {
    use super::Parts;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    /// Cuts everything with `width` parts in flight; checks each part against the rules.
    fn cut(gaps: &[(u64, u64)], unit: u64, largest: u64, width: usize) -> Vec<(u64, u64)> {
        let mut p = Parts::new(gaps.to_vec(), unit, largest, width);
        let mut out = Vec::new();
        while let Some((a, b)) = p.next() {
            assert!(a < b, "empty part {a}..{b}");
            let gap_end = gaps.iter().find(|(s, e)| *s <= a && a < *e).unwrap().1;
            assert!(b <= gap_end, "{a}..{b} runs past its gap");
            assert!(b - a <= largest.max(unit), "{a}..{b} larger than {largest}");
            assert!(
                b == gap_end || b.is_multiple_of(unit),
                "{a}..{b} does not end on a {unit} boundary"
            );
            out.push((a, b));
        }
        assert!(p.is_empty());
        out
    }

    #[test]
    fn a_large_file_starts_with_large_parts_and_ends_with_small_ones() {
        let parts = cut(&[(0, 2048 * MIB)], 8 * MIB, 64 * MIB, 16);
        assert_eq!(parts[0], (0, 64 * MIB));
        let last = parts[parts.len() - 1];
        assert_eq!(last.1 - last.0, 8 * MIB, "{parts:?}");
        // Far fewer requests than 8 MiB parts (256), the sizes never grow back.
        assert!(parts.len() < 80, "{} parts", parts.len());
        assert!(parts.windows(2).all(|w| w[1].1 - w[1].0 <= w[0].1 - w[0].0));
        // The last 16 parts in flight together hold little: they finish close together.
        let tail: u64 = parts[parts.len() - 16..].iter().map(|(a, b)| b - a).sum();
        assert!(tail <= 256 * MIB, "the last 16 parts hold {tail} bytes");
    }

    #[test]
    fn fixed_parts_when_the_largest_is_the_unit() {
        let parts = cut(&[(0, 20 * MIB + 5)], 8 * MIB, 8 * MIB, 8);
        assert_eq!(
            parts,
            [(0, 8 * MIB), (8 * MIB, 16 * MIB), (16 * MIB, 20 * MIB + 5)]
        );
        // A source that caps requests below the unit (Azure's MD5 ranges) gets capped parts.
        let parts = cut(&[(0, 9 * MIB)], 4 * MIB, 4 * MIB, 8);
        assert_eq!(
            parts,
            [(0, 4 * MIB), (4 * MIB, 8 * MIB), (8 * MIB, 9 * MIB)]
        );
    }

    #[test]
    fn parts_leave_room_for_the_connections_that_may_come() {
        // Defaults: 16 parts at the start, up to 64. The first 16 parts of a 1 GiB file must
        // leave most of it for the connections the controller adds (with the share spread over
        // 16 they took all of it: 16 × 64 MiB).
        let o = crate::transfer::TransferOptions::default();
        let mut p = Parts::for_file(vec![(0, 1024 * MIB)], &o, 1, u64::MAX);
        let first: u64 = (0..16).map(|_| p.next().map_or(0, |(a, b)| b - a)).sum();
        assert!(
            first <= 300 * MIB,
            "the first 16 parts take {} MiB",
            first / MIB
        );
        // A source's own limits still win.
        let mut p = Parts::for_file(vec![(0, 1024 * MIB)], &o, 1, 4 * MIB);
        assert_eq!(p.next(), Some((0, 4 * MIB)));
        // A fixed count (max below the start) spreads over the start.
        let o = crate::transfer::TransferOptions {
            parts_in_flight: 4,
            max_parts_in_flight: 1,
            ..o
        };
        let p = Parts::for_file(vec![(0, 1024 * MIB)], &o, 1, u64::MAX);
        assert_eq!(p.typical(), 64 * MIB);
    }

    proptest! {
        /// Whatever the gaps (a resumed file), the parts cover exactly them, in order, once.
        #[test]
        fn parts_cover_the_gaps_exactly_once(
            raw in prop::collection::vec((0u64..64, 1u64..64), 0..8),
            unit_k in 1u64..5,
            largest_k in 1u64..20,
            width in 1usize..40,
        ) {
            let unit = unit_k * 65536;
            let mut gaps = Vec::new();
            let mut at = 0;
            for (skip, len) in raw {
                let a = at + skip * 40_000;
                gaps.push((a, a + len * 50_000));
                at = a + len * 50_000 + 1;
            }
            let parts = cut(&gaps, unit, largest_k * 65536, width);
            let mut got: Vec<u64> = Vec::new();
            for (a, b) in parts {
                if got.last() == Some(&a) { got.pop(); } else { got.push(a); }
                got.push(b);
            }
            // Adjacent gaps never touch (at + 1), so merged parts give back the gaps.
            prop_assert_eq!(got, gaps.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>());
        }
    }
}
