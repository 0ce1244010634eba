//! A small seeded generator (splitmix64) for message ids, tokens, retransmission jitter and
//! connection tokens. Not cryptographic: CoAP tokens over plain UDP are not secrets anyway
//! (RFC 7252 §5.3.1 asks for enough randomness to resist off-path spoofing, which a per-peer
//! seed from the driver gives).

/// Splitmix64: small, fast, and good enough for ids and jitter.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
