//! CRC-32 arithmetic: the checksum of two adjacent byte ranges from the
//! checksums of each, in constant time.
//!
//! CRC-32 (the IEEE polynomial, reflected, as `crc32fast` computes it) is
//! linear over GF(2): `crc(A ++ B) = crc(A) * x^(8 |B|) + crc(B)`, modulo
//! the polynomial. `crc32fast`'s `combine` computes the same by squaring a
//! matrix for every bit of the length, about as costly as checksumming
//! 64 KiB; crossing crafted damage asks for it at every few bytes (see
//! `recovery::claimed_crc`). Here `x^(8 n)` comes from three tables of
//! 2048 powers each, so a combination costs three multiplications of 32
//! steps.

use std::sync::OnceLock;

/// The CRC-32 polynomial, reflected: bit 31 is `x^0`.
const POLY: u32 = 0xedb8_8320;
/// `x^0`, reflected.
const ONE: u32 = 1 << 31;
/// Bits of a byte count each table covers.
const BITS: u32 = 11;
const SIZE: usize = 1 << BITS;

/// `a * b` modulo the polynomial (both reflected).
fn mul(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = ONE;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        bit >>= 1;
        // b * x: a shift, reduced when x^31 carries out.
        b = (b >> 1) ^ (POLY & (b & 1).wrapping_neg());
    }
    product
}

/// `x^(8 n)` for `n` below 2^33: `tables[i][j]` is `x^(8 j 2^(11 i))`.
fn pow(n: u64) -> u32 {
    static TABLES: OnceLock<Box<[[u32; SIZE]; 3]>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let mut t = Box::new([[0u32; SIZE]; 3]);
        // x^8, then x^(8 * 2^11) and x^(8 * 2^22): each the previous
        // table's step raised to the 2048th power.
        let mut step = mul(ONE >> 8, ONE);
        for table in t.iter_mut() {
            let mut p = ONE;
            for entry in table.iter_mut() {
                *entry = p;
                p = mul(p, step);
            }
            step = p;
        }
        t
    });
    debug_assert!(n < 1 << (3 * BITS));
    let part = |i: u32| tables[i as usize][((n >> (i * BITS)) as usize) & (SIZE - 1)];
    mul(mul(part(0), part(1)), part(2))
}

/// The CRC of `A ++ B` from `crc_a = crc(A)`, `crc_b = crc(B)` and
/// `len_b = |B|` (below 8 GiB).
pub fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    mul(pow(len_b), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(b: &[u8]) -> u32 {
        crc32fast::hash(b)
    }

    #[test]
    fn combining_gives_the_crc_of_the_whole() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let bytes: Vec<u8> = (0..300_000).map(|_| next() as u8).collect();
        // Lengths across every table's boundaries, and 0.
        let mut cuts = vec![(0, 0), (0, 1), (5, 5), (0, 2047), (0, 2048), (0, 2049)];
        cuts.extend([(7, 4_097), (1, 299_999), (0, 300_000)]);
        for _ in 0..500 {
            let a = (next() % 300_001) as usize;
            let b = (next() % 300_001) as usize;
            cuts.push((a.min(b), a.max(b)));
        }
        for (a, b) in cuts {
            let m = (a + b) / 2;
            let (left, right) = (&bytes[a..m], &bytes[m..b]);
            assert_eq!(
                combine(crc(left), crc(right), right.len() as u64),
                crc(&bytes[a..b]),
                "{a}..{m}..{b}"
            );
        }
    }

    #[test]
    fn powers_agree_with_crc32fast_for_long_lengths() {
        // Lengths beyond any file read here, checked against crc32fast's
        // own combine (the zero-length B isolates the carry).
        for len in [
            1u64 << 11,
            1 << 22,
            (1 << 22) + 12_345,
            (1 << 32) + 7,
            (1 << 33) - 1,
        ] {
            let mut a = crc32fast::Hasher::new_with_initial(0x1234_5678);
            a.combine(&crc32fast::Hasher::new_with_initial_len(0, len));
            assert_eq!(combine(0x1234_5678, 0, len), a.finalize(), "{len}");
        }
    }
}
