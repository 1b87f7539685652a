//! xorshift64*, the random source of the differential tests: a fixed seed makes every run check
//! the same inputs (a failure reproduces from the seed it prints).

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    #[allow(dead_code)] // not every test that includes this file uses it
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
