//! The Fenwick-tree partition of spec §2, by integer bit arithmetic only.

/// Number of bits of `x` (`bitlen(0) = 0`, `bitlen(1) = 1`, `bitlen(4) = 3`).
#[inline]
pub fn bitlen(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Index of the lowest set bit of `t > 0` (number of trailing zeros).
#[inline]
pub fn lssb(t: u64) -> u32 {
    debug_assert!(t > 0, "lssb(0) is undefined");
    t.trailing_zeros()
}

/// Level of source `s` for query `t` (spec §2.1); `None` when `s > t` (masked).
#[inline]
pub fn level(t: u64, s: u64) -> Option<u32> {
    if s > t {
        None
    } else {
        Some(bitlen(t ^ s))
    }
}

/// Number of levels a length-`t` sequence uses: `bitlen(T − 1) + 1` (`1` for `T ≤ 1`).
#[inline]
pub fn num_levels(t: usize) -> usize {
    if t <= 1 {
        1
    } else {
        bitlen(t as u64 - 1) as usize + 1
    }
}

/// `log2` of a power-of-two chunk size; `None` when `c` is zero or not a power of two.
#[inline]
pub fn chunk_log2(c: usize) -> Option<u32> {
    if c == 0 || !c.is_power_of_two() {
        None
    } else {
        Some(c.trailing_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_rows() {
        // Spec §2.3, rows t = 6, 7, 11.
        let row = |t: u64| (0..=t).map(|s| level(t, s).unwrap()).collect::<Vec<_>>();
        assert_eq!(row(6), vec![3, 3, 3, 3, 2, 2, 0]);
        assert_eq!(row(7), vec![3, 3, 3, 3, 2, 2, 1, 0]);
        assert_eq!(row(11), vec![4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 1, 0]);
        assert_eq!(level(3, 4), None);
    }

    #[test]
    fn bucket_structure() {
        // Spec §11.2: popcount(t)+1 distinct levels, contiguous buckets of size 2^(l-1).
        for t in 0u64..300 {
            let mut seen = std::collections::BTreeMap::<u32, Vec<u64>>::new();
            for s in 0..=t {
                seen.entry(level(t, s).unwrap()).or_default().push(s);
            }
            assert_eq!(seen.len() as u32, t.count_ones() + 1, "t = {t}");
            for (l, ss) in seen {
                let expect = if l == 0 { 1 } else { 1u64 << (l - 1) };
                assert_eq!(ss.len() as u64, expect, "t = {t}, level {l}");
                assert_eq!(ss.last().unwrap() - ss[0] + 1, expect, "contiguous");
                if l > 0 {
                    assert_eq!(ss[0], (t >> l) << l, "bucket base");
                }
            }
        }
    }

    #[test]
    fn level_counts() {
        assert_eq!(num_levels(1), 1);
        assert_eq!(num_levels(2), 2);
        assert_eq!(num_levels(5), 4);
        assert_eq!(num_levels(8), 4);
        assert_eq!(num_levels(16384), 15);
        assert_eq!(chunk_log2(64), Some(6));
        assert_eq!(chunk_log2(0), None);
        assert_eq!(chunk_log2(12), None);
    }

    #[test]
    fn chunk_property() {
        // Spec §2.5: off-diagonal chunk blocks have a single level c + bitlen(i ^ j).
        for c in 0..4u32 {
            let cs = 1u64 << c;
            for t in 0..100u64 {
                for s in 0..=t {
                    let (i, j) = (t / cs, s / cs);
                    let l = level(t, s).unwrap();
                    if i == j {
                        assert_eq!(l, bitlen((t % cs) ^ (s % cs)));
                    } else {
                        assert_eq!(l, c + bitlen(i ^ j));
                    }
                }
            }
        }
    }
}
