//! A small set of disjoint byte ranges (relative sequence numbers), kept
//! sorted and merged. The reassembler only needs to know which bytes it has
//! seen, never their contents; the first ranges live inline so an ordinary
//! connection never allocates.

const INLINE: usize = 3;

/// `repr(C)`: an in-order segment reads `len`, `spill`'s length and the
/// last inline range; with one range, the usual case, all in the first 48
/// bytes.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct Ranges {
    len: u8,
    /// Used instead of `inline` once more than `INLINE` ranges are needed.
    spill: Vec<(u64, u64)>,
    inline: [(u64, u64); INLINE],
}

impl Ranges {
    pub fn as_slice(&self) -> &[(u64, u64)] {
        if self.spill.is_empty() {
            &self.inline[..self.len as usize]
        } else {
            &self.spill
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn first(&self) -> Option<(u64, u64)> {
        self.as_slice().first().copied()
    }

    pub fn last(&self) -> Option<(u64, u64)> {
        self.as_slice().last().copied()
    }

    /// Total bytes covered.
    pub fn bytes(&self) -> u64 {
        self.as_slice().iter().map(|(a, b)| b - a).sum()
    }

    /// True if every byte of `[a, b)` is already covered.
    pub fn covers(&self, a: u64, b: u64) -> bool {
        self.as_slice().iter().any(|&(x, y)| x <= a && b <= y)
    }

    /// The range containing `seq`, if any.
    pub fn containing(&self, seq: u64) -> Option<(u64, u64)> {
        self.as_slice()
            .iter()
            .copied()
            .find(|&(a, b)| a <= seq && seq < b)
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    /// Add `[a, b)`, merging with overlapping or adjacent ranges.
    pub fn insert(&mut self, mut a: u64, mut b: u64) {
        if a >= b {
            return;
        }
        // In-order data, nearly every segment: it starts within or right
        // after the last range (the ranges before that one end short of
        // it), or it is the first.
        if self.spill.is_empty() {
            let Some(n) = (self.len as usize).checked_sub(1) else {
                self.inline[0] = (a, b);
                self.len = 1;
                return;
            };
            let last = &mut self.inline[n];
            if last.0 <= a && a <= last.1 {
                last.1 = last.1.max(b);
                return;
            }
        }
        let mut out: [(u64, u64); INLINE + 1] = [(0, 0); INLINE + 1];
        let mut n = 0;
        let mut placed = false;
        let mut spilled: Option<Vec<(u64, u64)>> = None;
        for &(x, y) in self.as_slice() {
            if y < a {
                push(&mut out, &mut n, &mut spilled, (x, y));
            } else if b < x {
                if !placed {
                    push(&mut out, &mut n, &mut spilled, (a, b));
                    placed = true;
                }
                push(&mut out, &mut n, &mut spilled, (x, y));
            } else {
                a = a.min(x);
                b = b.max(y);
            }
        }
        if !placed {
            push(&mut out, &mut n, &mut spilled, (a, b));
        }
        self.store(&out[..n], spilled);
    }

    /// Drop every range that ends at or before `seq` (ranges straddling it stay whole).
    pub fn remove_below(&mut self, seq: u64) {
        if self.spill.is_empty() {
            let mut n = 0;
            for i in 0..self.len as usize {
                if self.inline[i].1 > seq {
                    self.inline[n] = self.inline[i];
                    n += 1;
                }
            }
            self.len = n as u8;
        } else {
            self.spill.retain(|&(_, b)| b > seq);
            if self.spill.len() <= INLINE {
                let v = std::mem::take(&mut self.spill);
                self.store(&v, None);
            }
        }
    }

    fn store(&mut self, small: &[(u64, u64)], spilled: Option<Vec<(u64, u64)>>) {
        match spilled {
            Some(v) => {
                self.len = 0;
                self.spill = v;
            }
            None => {
                self.spill.clear();
                self.inline[..small.len()].copy_from_slice(small);
                self.len = small.len() as u8;
            }
        }
    }
}

/// Append to the inline scratch, moving everything to a vector once it is full.
fn push(
    out: &mut [(u64, u64); INLINE + 1],
    n: &mut usize,
    spilled: &mut Option<Vec<(u64, u64)>>,
    r: (u64, u64),
) {
    if let Some(v) = spilled {
        v.push(r);
    } else if *n < INLINE {
        out[*n] = r;
        *n += 1;
    } else {
        let mut v = out[..*n].to_vec();
        v.push(r);
        *spilled = Some(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_orders() {
        let mut r = Ranges::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(0, 5);
        assert_eq!(r.as_slice(), &[(0, 5), (10, 20), (30, 40)]);
        r.insert(18, 31);
        assert_eq!(r.as_slice(), &[(0, 5), (10, 40)]);
        r.insert(5, 10);
        assert_eq!(r.as_slice(), &[(0, 40)]);
        assert_eq!(r.bytes(), 40);
    }

    #[test]
    fn spills_beyond_inline_and_comes_back() {
        let mut r = Ranges::default();
        for i in 0..6 {
            r.insert(i * 10, i * 10 + 5);
        }
        assert_eq!(r.as_slice().len(), 6);
        assert!(r.covers(21, 24));
        assert!(!r.covers(24, 26));
        r.remove_below(35);
        assert_eq!(r.as_slice(), &[(40, 45), (50, 55)]);
        r.remove_below(100);
        assert!(r.is_empty());
    }

    #[test]
    fn straddling_range_stays() {
        let mut r = Ranges::default();
        r.insert(1, 100);
        r.remove_below(50);
        assert_eq!(r.first(), Some((1, 100)));
        assert_eq!(r.containing(99), Some((1, 100)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The ranges a set of bytes makes: maximal runs.
        fn runs(bytes: &[bool]) -> Vec<(u64, u64)> {
            let mut out: Vec<(u64, u64)> = Vec::new();
            for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b) {
                let i = i as u64;
                match out.last_mut() {
                    Some(last) if last.1 == i => last.1 = i + 1,
                    _ => out.push((i, i + 1)),
                }
            }
            out
        }

        proptest! {
            /// Inserting and trimming agree with a byte-by-byte model
            /// (trimming drops whole runs that end at or before the point).
            #[test]
            fn agrees_with_a_byte_model(
                ops in proptest::collection::vec((0u64..64, 0u64..12, any::<bool>()), 1..40),
            ) {
                let mut r = Ranges::default();
                let mut bytes = vec![false; 80];
                for (a, len, trim) in ops {
                    if trim {
                        r.remove_below(a);
                        for (x, y) in runs(&bytes) {
                            if y <= a {
                                bytes[x as usize..y as usize].fill(false);
                            }
                        }
                    } else {
                        r.insert(a, a + len);
                        bytes[a as usize..(a + len) as usize].fill(true);
                    }
                    let want = runs(&bytes);
                    prop_assert_eq!(r.as_slice(), want.as_slice());
                }
            }
        }
    }
}
