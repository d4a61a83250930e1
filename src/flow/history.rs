//! Zeek's connection history string, kept inline (no allocation per flow).
//!
//! Recording rules (Zeek `Connection::CheckHistory`, `ScaledHistoryEntry`):
//! "once" letters are added the first time their mask bit is seen; scaled
//! letters (C, G, T, W) at the 1st, 10th, 100th ... occurrence. Uppercase is
//! the originator, lowercase the responder, relative to roles at the time.

use std::fmt;

/// Longest history kept; later letters are dropped and counted.
pub const CAPACITY: usize = 46;

#[derive(Clone, Copy)]
pub struct History {
    letters: [u8; CAPACITY],
    len: u8,
    /// Letters that did not fit (never seen on real traffic; hostile input).
    pub dropped: u8,
    /// Mask bits of "once" letters already recorded (responder bits << 16).
    seen: u32,
}

impl Default for History {
    fn default() -> Self {
        History {
            letters: [0; CAPACITY],
            len: 0,
            dropped: 0,
            seen: 0,
        }
    }
}

/// A logarithmically recorded letter's counter and next threshold.
#[derive(Clone, Copy, Debug)]
pub struct Scaled {
    count: u32,
    threshold: u32,
}

impl Default for Scaled {
    fn default() -> Self {
        Scaled {
            count: 0,
            threshold: 1,
        }
    }
}

impl Scaled {
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl History {
    pub fn push(&mut self, code: u8) {
        if (self.len as usize) < CAPACITY {
            self.letters[self.len as usize] = code;
            self.len += 1;
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Zeek's `CheckHistory`: record `code` the first time `mask` is seen.
    /// Returns true if the mask had been seen before.
    pub fn check(&mut self, mask: u32, code: u8) -> bool {
        if self.seen & mask == 0 {
            self.seen |= mask;
            self.push(code);
            false
        } else {
            true
        }
    }

    /// Zeek's `ScaledHistoryEntry` with base 10. Returns true if recorded.
    pub fn scaled(&mut self, code: u8, s: &mut Scaled) -> bool {
        s.count = s.count.wrapping_add(1);
        if s.count == s.threshold {
            self.push(code);
            match s.threshold.checked_mul(10) {
                Some(t) => s.threshold = t,
                None => s.count = 0,
            }
            true
        } else {
            false
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.letters[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and '^' are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replace the whole history (the SYN-ACK-first flip rewrite).
    pub fn set(&mut self, letters: &[u8]) {
        self.len = 0;
        for &l in letters {
            self.push(l);
        }
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_letters() {
        let mut h = History::default();
        assert!(!h.check(1, b'S'));
        assert!(h.check(1, b'S'));
        assert!(!h.check(1 << 16, b's'));
        assert_eq!(h.as_str(), "Ss");
    }

    #[test]
    fn logarithmic_letters() {
        let mut h = History::default();
        let mut s = Scaled::default();
        let mut recorded = Vec::new();
        for _ in 0..1000 {
            if h.scaled(b'T', &mut s) {
                recorded.push(s.count);
            }
        }
        assert_eq!(recorded, vec![1, 10, 100, 1000]);
        assert_eq!(h.as_str(), "TTTT");
    }

    #[test]
    fn overflow_is_counted_not_stored() {
        let mut h = History::default();
        for _ in 0..CAPACITY + 3 {
            h.push(b'F');
        }
        assert_eq!((h.as_bytes().len(), h.dropped), (CAPACITY, 3));
    }
}
