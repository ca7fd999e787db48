//! A libFuzzer-free fuzz run of the same entry point as the cargo-fuzz target
//! (crates/pyc/fuzz): the sample .pyc files of every version, mutated at
//! random (bit flips, byte writes, insertions, deletions, truncation,
//! splices), for SPYGLASS_FUZZ_SECONDS (default 5) seconds. Any panic fails;
//! so does an input that takes more than 2 seconds.
use std::time::{Duration, Instant};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545f4914f6cdd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = [0, 0xff, 0x7f, 0x80, b'r', b'(', b'c', 0x40][rng.below(8)];
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                data.remove(i);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 => {
                // splice a chunk of another seed
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + rng.below(64)).min(other.len());
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len >= 4 => {
                // overwrite a 32-bit length or index with an extreme value
                let i = rng.below(len - 3);
                let v: u32 = [0, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 2000][rng.below(6)];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let i = rng.below(len + 1);
                data.splice(i..i, std::iter::repeat_n(b')', rng.below(8)).chain([1u8]));
            }
        }
    }
}

#[test]
fn fuzz_for_a_while() {
    let seconds: u64 = std::env::var("SPYGLASS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut seeds: Vec<Vec<u8>> = (6..=14)
        .map(|m| std::fs::read(format!("{DATA}/sample-3.{m}.pyc")).unwrap())
        .collect();
    seeds.push(Vec::new());
    let mut rng = Rng(0x5eed_1234_abcd_ef01 ^ seconds);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let mut data = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut data);
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(|| spyglass_pyc::fuzz::exercise(&data));
        let took = t.elapsed();
        if outcome.is_err() || took > Duration::from_secs(2) {
            let path = std::env::temp_dir().join(format!("spyglass-pyc-fuzz-{runs}.pyc"));
            std::fs::write(&path, &data).unwrap();
            panic!(
                "input saved to {} {}",
                path.display(),
                if outcome.is_err() {
                    "panicked"
                } else {
                    "was too slow"
                }
            );
        }
        runs += 1;
    }
    eprintln!("fuzz harness: {runs} inputs in {seconds} s, no finding");
    assert!(runs > 0);
}
