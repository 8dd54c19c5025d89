//! The key hash: 32 bits from a seeded folded-multiply hash.
//!
//! Every put and get hashes its key once, and the hash is stored in hint
//! files, so it must be fast and fixed by the format (docs/FORMAT.md,
//! "The seed and the key hash"), not by a library version. It follows the
//! wyhash/foldhash design: the key is read as 64-bit little-endian words,
//! two at a time, each pair combined with the seed by one 64x64->128-bit
//! multiply whose halves are xored ("folded"). About 30 instructions for a
//! 16-byte key, against about 190 for SipHash-2-4, the hash of hint
//! versions up to 3. The seed is random per database, so keys crafted
//! without it do not pile into one probe run.

/// The odd constants of wyhash (its `_wyp` primes).
const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// The 128-bit product of `a` and `b`, its halves xored.
#[inline(always)]
pub(crate) fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[inline(always)]
fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

/// The top 32 bits of the 64-bit hash of `key` under `(k0, k1)`.
#[inline]
pub fn hash(k0: u64, k1: u64, key: &[u8]) -> u32 {
    let len = key.len();
    let mut acc = k0 ^ P0;
    // The last (up to) 16 bytes as two words; together with the length
    // they determine a key of up to 16 bytes, so such keys differ here.
    let (a, b) = if len > 16 {
        // Whole 16-byte blocks before the last 16 bytes, each folded
        // into the accumulator.
        let mut at = 0;
        while len - at > 16 {
            acc = fold(le64(key, at) ^ k1 ^ P1, le64(key, at + 8) ^ acc);
            at += 16;
        }
        (le64(key, len - 16), le64(key, len - 8))
    } else if len >= 8 {
        (le64(key, 0), le64(key, len - 8))
    } else if len >= 4 {
        (le32(key, 0), le32(key, len - 4))
    } else if len > 0 {
        let (x, y, z) = (key[0] as u64, key[len / 2] as u64, key[len - 1] as u64);
        ((x << 16) | (y << 8) | z, 0)
    } else {
        (0, 0)
    };
    let h = fold(a ^ k1 ^ P1, b ^ acc);
    (fold(h ^ P2, k1 ^ (len as u64) ^ P0) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::hash;
    use std::collections::HashSet;

    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

    /// The check values of docs/FORMAT.md (and c-tests/test_hints.c): the
    /// hash of bytes 00 01 02 .. of each length under the seed above.
    /// Every length class of the function is here: 0, 1-3, 4-7, 8-16,
    /// one block and the tail, several blocks.
    const VECTORS: [(usize, u32); 12] = [
        (0, 0x70cc5405),
        (1, 0xe2a93d3b),
        (3, 0xf646da5f),
        (4, 0xd86ef7a8),
        (7, 0x9370b96a),
        (8, 0x1fb960fe),
        (15, 0xd104582d),
        (16, 0xe6197fe8),
        (17, 0x6b05fab8),
        (32, 0x50441af0),
        (33, 0xf2eb8fe6),
        (100, 0x38926609),
    ];

    #[test]
    fn check_values() {
        let msg: Vec<u8> = (0..=255).collect();
        for (len, want) in VECTORS {
            assert_eq!(hash(K0, K1, &msg[..len]), want, "{len} bytes");
        }
    }

    /// 32-bit hashes of `keys` distinct keys collide about keys^2 / 2^33
    /// times if the hash is as good as random.
    fn collisions(keys: impl Iterator<Item = Vec<u8>>) -> (usize, usize) {
        let (mut n, mut seen) = (0, HashSet::new());
        for k in keys {
            n += 1;
            seen.insert(hash(K0, K1, &k));
        }
        (n, n - seen.len())
    }

    #[test]
    fn keys_spread_like_random() {
        // db_bench's keys: 16 decimal digits, differing in few bytes.
        let (n, c) = collisions((0..1_000_000u64).map(|i| format!("{i:016}").into_bytes()));
        // Expected 116 (sd ~11).
        assert!((60..=180).contains(&c), "{c} collisions of {n} digit keys");
        // Every key of 1 and 2 bytes: expected 0.5.
        let short = (0..256u32).map(|i| vec![i as u8]);
        let two = (0..65536u32).map(|i| (i as u16).to_le_bytes().to_vec());
        let (n, c) = collisions(short.chain(two));
        assert!(c <= 4, "{c} collisions of {n} short keys");
        // Keys over one block that differ only in their first block, and
        // keys of several lengths with the same bytes.
        let long = (0..200_000u32).map(|i| {
            let mut k = vec![b'x'; 40];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        });
        let lens = (1..=64).flat_map(|len| {
            (0..1000u32).map(move |i| {
                let mut k = vec![0u8; len.max(4)];
                k[len.max(4) - 4..].copy_from_slice(&i.to_le_bytes());
                k.truncate(len);
                k
            })
        });
        let unique: HashSet<Vec<u8>> = lens.collect();
        let (n, c) = collisions(long.chain(unique));
        // Expected about 15.
        assert!(c <= 45, "{c} collisions of {n} long and mixed-length keys");
    }

    #[test]
    fn shards_and_home_slots_fill_evenly() {
        // The top 6 bits pick the shard; the next ones the home slot.
        let mut shard = [0u32; 64];
        let mut below = [0u32; 64];
        let n = 640_000u64;
        for i in 0..n {
            let h = hash(K0, K1, format!("{i:016}").as_bytes());
            shard[(h >> 26) as usize] += 1;
            below[((h >> 20) & 63) as usize] += 1;
        }
        // 10,000 expected in each; sd 100.
        for counts in [shard, below] {
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(*lo > 9_500 && *hi < 10_500, "{counts:?}");
        }
    }

    #[test]
    fn every_input_and_seed_bit_changes_half_the_output() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for len in [3usize, 5, 8, 16, 17, 40] {
            let key = &base[..len];
            let h = hash(K0, K1, key);
            for bit in 0..len * 8 {
                let mut k = key.to_vec();
                k[bit / 8] ^= 1 << (bit % 8);
                let flips = (hash(K0, K1, &k) ^ h).count_ones();
                assert!(
                    (4..=28).contains(&flips),
                    "{len} bytes, bit {bit}: {flips} bits"
                );
            }
            // Over all bits of a key, close to 16 on average.
            let total: u32 = (0..len * 8)
                .map(|bit| {
                    let mut k = key.to_vec();
                    k[bit / 8] ^= 1 << (bit % 8);
                    (hash(K0, K1, &k) ^ h).count_ones()
                })
                .sum();
            let mean = total as f64 / (len * 8) as f64;
            assert!((14.0..=18.0).contains(&mean), "{len} bytes: mean {mean}");
            for bit in 0..128 {
                let (k0, k1) = if bit < 64 {
                    (K0 ^ 1 << bit, K1)
                } else {
                    (K0, K1 ^ 1 << (bit - 64))
                };
                let flips = (hash(k0, k1, key) ^ h).count_ones();
                assert!((4..=28).contains(&flips), "seed bit {bit}: {flips} bits");
            }
        }
    }
}
