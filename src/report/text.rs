//! Fast text formatting for the record writers: integers, fixed-point
//! seconds, Zeek uids and dates, written straight into a byte buffer.

use crate::source::Nanos;

/// "00" to "99": integers are written two digits at a time.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Append an unsigned integer.
///
/// The digits go into a fixed 20-byte buffer that is appended whole and
/// cut back: a fixed-size copy is a few moves, where a copy of the digits'
/// own length was a `memcpy` call for every field of every record.
#[inline]
pub fn uint(out: &mut Vec<u8>, mut v: u64) {
    // Most fields are single digits (flags, small counts).
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    let n = digits(v);
    let mut buf = [b'0'; 20];
    let mut i = n;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        buf[i - 2..i].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        buf[i - 1] = b'0' + v as u8;
    }
    let len = out.len();
    out.extend_from_slice(&buf);
    out.truncate(len + n);
}

/// Append a signed integer.
#[inline]
pub fn int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    uint(out, v.unsigned_abs());
}

/// Decimal digits of `v` (1 for 0): the bit length gives the count or one
/// less (1233 / 4096 is just under log10 2), and a power of ten decides.
#[inline]
fn digits(v: u64) -> usize {
    const POW10: [u64; 20] = {
        let mut p = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            p[i] = p[i - 1] * 10;
            i += 1;
        }
        p
    };
    let bits = (u64::BITS - (v | 1).leading_zeros()) as usize;
    let guess = (bits * 1233) >> 12;
    (guess + usize::from(v >= POW10[guess])).max(1)
}

/// Append nanoseconds as seconds with six decimals (Zeek's `%.6f`), rounded
/// to the nearest microsecond.
#[inline]
pub fn secs6(out: &mut Vec<u8>, ns: Nanos) {
    let us = ns.saturating_add(500).div_euclid(1000);
    if us < 0 {
        out.push(b'-');
    }
    let us = us.unsigned_abs();
    uint(out, us / 1_000_000);
    let frac = (us % 1_000_000) as usize;
    let (a, b, c) = (frac / 10_000 * 2, frac / 100 % 100 * 2, frac % 100 * 2);
    out.extend_from_slice(&[
        b'.',
        PAIRS[a],
        PAIRS[a + 1],
        PAIRS[b],
        PAIRS[b + 1],
        PAIRS[c],
        PAIRS[c + 1],
    ]);
}

/// A Zeek-style connection uid: `C` followed by the low 96 bits of the
/// value in base 62.
pub fn uid(out: &mut Vec<u8>, v: u128) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // 62^8 < 2^48, and 2^96 / 62^8 < 2^64: one 128-bit division splits the
    // value into two halves that 64-bit arithmetic finishes.
    const LOW_DIGITS: u32 = 8;
    const SPLIT: u128 = 62u128.pow(LOW_DIGITS);
    let v = v & ((1u128 << 96) - 1);
    let (mut high, mut low) = ((v / SPLIT) as u64, (v % SPLIT) as u64);
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    for _ in 0..LOW_DIGITS {
        i -= 1;
        buf[i] = ALPHABET[(low % 62) as usize];
        low /= 62;
        if low == 0 && high == 0 {
            break;
        }
    }
    while high != 0 {
        i -= 1;
        buf[i] = ALPHABET[(high % 62) as usize];
        high /= 62;
    }
    out.push(b'C');
    out.extend_from_slice(&buf[i..]);
}

/// An address in its usual text form: IPv4 as a dotted quad, IPv6 in RFC
/// 5952 form (as the standard library writes it, without its formatter).
pub fn addr(out: &mut Vec<u8>, a: crate::decode::Addr) {
    if a.is_v4() {
        for (i, octet) in a.0[12..].iter().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            uint(out, u64::from(*octet));
        }
    } else {
        v6(out, &a.0);
    }
}

/// RFC 5952: lowercase hex groups without leading zeros, the longest run of
/// two or more zero groups (the first, on a tie) written `::`. IPv4-mapped
/// addresses never get here: they are IPv4 addresses to the decoder.
fn v6(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    let group = |i: usize| u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    // The run to compress; none yet (`run` 8 is past the last group).
    let (mut run, mut run_len, mut i) = (8, 1, 0);
    while i < 8 {
        let start = i;
        while i < 8 && group(i) == 0 {
            i += 1;
        }
        if i - start > run_len {
            (run, run_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |out: &mut Vec<u8>, g: u16| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = (16 - g.leading_zeros() as usize).div_ceil(4).max(1);
        for k in (0..n).rev() {
            out.push(HEX[usize::from(g >> (4 * k)) & 0xf]);
        }
    };
    let mut i = 0;
    while i < 8 {
        if i == run {
            out.extend_from_slice(b"::");
            i += run_len;
            continue;
        }
        if i > 0 && i != run + run_len {
            out.push(b':');
        }
        hex(out, group(i));
        i += 1;
    }
}

/// UTC calendar date and time of a timestamp: (year, month, day, h, m, s).
pub fn civil(ns: Nanos) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60)
}

/// Zeek's log header date format: `2011-03-18-13-01-44`.
pub fn zeek_date(ns: Nanos) -> String {
    let (y, mo, d, h, mi, s) = civil(ns);
    format!("{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}")
}

/// ISO 8601 UTC: `2011-03-18T13:01:44.123456Z`.
pub fn iso8601(ns: Nanos) -> String {
    let (y, mo, d, h, mi, s) = civil(ns);
    let us = ns.rem_euclid(1_000_000_000) / 1000;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn seconds_with_six_decimals() {
        assert_eq!(
            s(|o| secs6(o, 1_300_000_000_123_456_000)),
            "1300000000.123456"
        );
        assert_eq!(s(|o| secs6(o, 1_550_793_499)), "1.550793");
        assert_eq!(s(|o| secs6(o, 1_550_793_500)), "1.550794");
        assert_eq!(s(|o| secs6(o, 0)), "0.000000");
        assert_eq!(s(|o| secs6(o, 999_999_999_600)), "1000.000000");
    }

    #[test]
    fn integers_and_uids() {
        assert_eq!(s(|o| uint(o, 0)), "0");
        let mut edges = vec![u64::MAX, u64::MAX - 1];
        for p in 0..20 {
            let t = 10u64.pow(p);
            edges.extend([t - 1, t, t + 1, t.saturating_mul(5).saturating_add(7)]);
        }
        for v in edges {
            assert_eq!(s(|o| uint(o, v)), v.to_string());
            assert_eq!(digits(v), v.to_string().len());
        }
        assert_eq!(s(|o| uint(o, u64::MAX)), "18446744073709551615");
        assert_eq!(s(|o| uid(o, 61)), "Cz");
        assert_eq!(s(|o| uid(o, 0)), "C0");
        assert_eq!(s(|o| uid(o, 62u128.pow(8))), "C100000000");
        assert_eq!(s(|o| uid(o, 62u128.pow(8) - 1)), "Czzzzzzzz");
        // The low 96 bits, in base 62: 2^96 - 1 = 62^16 * 1 + ...
        let max = s(|o| uid(o, u128::MAX));
        let mut want = 0u128;
        for c in max[1..].bytes() {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'A'..=b'Z' => c - b'A' + 10,
                _ => c - b'a' + 36,
            };
            want = want * 62 + u128::from(d);
        }
        assert_eq!(want, (1u128 << 96) - 1);
    }

    #[test]
    fn addresses() {
        use crate::decode::Addr;
        assert_eq!(s(|o| addr(o, Addr::v4([10, 0, 255, 1]))), "10.0.255.1");
        assert_eq!(s(|o| addr(o, Addr::v4([0, 0, 0, 0]))), "0.0.0.0");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[15] = 1;
        assert_eq!(s(|o| addr(o, Addr(v6))), "2001::1");
    }

    /// IPv6 text equals the standard library's for zero runs of every
    /// length and place, and for arbitrary addresses.
    #[test]
    fn ipv6_text_matches_the_standard_library() {
        use crate::decode::Addr;
        let mut cases: Vec<u128> = vec![0, 1, u128::MAX, 1 << 127, 0xffff << 80];
        for mask in 0u32..256 {
            // Each bit of `mask` chooses a zero or a non-zero group.
            let mut v = 0u128;
            for g in 0..8 {
                let group = if (mask >> g) & 1 == 1 {
                    0x1234 >> ((g % 4) * 4)
                } else {
                    0
                };
                v |= (group as u128) << (16 * g);
            }
            cases.push(v);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834_u128;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x);
        }
        for v in cases {
            let ip = std::net::Ipv6Addr::from(v);
            let a = Addr(ip.octets());
            if !a.is_v4() {
                assert_eq!(s(|o| addr(o, a)), ip.to_string(), "{v:#x}");
            }
        }
    }

    #[test]
    fn calendar() {
        assert_eq!(
            zeek_date(1_300_453_304 * 1_000_000_000),
            "2011-03-18-13-01-44"
        );
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            zeek_date(951_782_400 * 1_000_000_000),
            "2000-02-29-00-00-00"
        );
    }
}
