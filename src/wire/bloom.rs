//! The bloom filter of SDS field 12, bit-compatible with @waku/sds 0.0.8 (itself nim-sds's `hashN`).
//!
//! Written by hand because no crate reproduces the reference exactly: murmur3 x86_32 over the
//! *first UTF-16 code unit of each code point* (as the JS port feeds it), the result read as a
//! signed i32, Kirsch–Mitzenmacher double hashing with `id + " b"`, and 2,344 big-endian u64 words.

/// Capacity the reference sizes the filter for.
pub const BLOOM_CAPACITY: usize = 10_000;
/// Number of hash functions (k).
pub const BLOOM_HASHES: usize = 10;
/// Number of bits (m = capacity × 15 bits per element for error rate 0.001).
pub const BLOOM_BITS: u32 = 150_000;
/// Serialized size: `1 + floor(m / 64)` u64 words.
pub const BLOOM_BYTES: usize = (1 + BLOOM_BITS as usize / 64) * 8;
/// Items per generation of a [`RollingBloom`]: the filter it sends holds the last one to two
/// generations, never more than [`BLOOM_CAPACITY`] items, so its false-positive rate stays at the
/// design rate (0.1 %) at any channel age.
pub const BLOOM_GENERATION: usize = BLOOM_CAPACITY / 2;
/// Percentage of set bits beyond which a received filter is not evidence of anything. A filter of
/// [`BLOOM_CAPACITY`] items has `1 - e^(-k·n/m)` ≈ 48.7 % of its bits set; 60 % leaves a margin for
/// honest peers whose filter outgrew its design (the reference never resets its own), and a filter
/// that full matches an absent id with probability 0.6^10 ≈ 0.6 % (under 1 %).
pub const MAX_HONEST_FILL_PERCENT: u32 = 60;
/// [`MAX_HONEST_FILL_PERCENT`] of [`BLOOM_BITS`], as a number of set bits.
pub const MAX_HONEST_BLOOM_ONES: u32 = BLOOM_BITS / 100 * MAX_HONEST_FILL_PERCENT;

/// The k bit positions of one item; computing them once lets an item be tested against many filters.
pub type BloomPositions = [u32; BLOOM_HASHES];

/// murmur3 x86_32 (seed 0) over a sequence of "code units", exactly as nim's `hashes.murmurHash`
/// compiled to JS: each unit is OR-ed into a 32-bit lane after a left shift by 8, so units above
/// 255 bleed into neighbouring bytes. Over bytes this is standard murmur3 (little-endian blocks).
fn murmur3<U: Copy + Into<u32>>(units: &[U]) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k1: u32| k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let lane = |u: &[U]| u.iter().rev().fold(0u32, |k, &x| (k << 8) | x.into());
    let mut h1: u32 = 0;
    let mut blocks = units.chunks_exact(4);
    for b in &mut blocks {
        h1 ^= mix(lane(b));
        h1 = h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    h1 ^= mix(lane(blocks.remainder()));
    h1 ^= units.len() as u32;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^= h1 >> 16;
    h1 as i32
}

fn murmur3_units(units: &[u32]) -> i32 {
    murmur3(units)
}

/// murmur3 x86_32 of a byte string with seed 0, as a signed i32 (the reference's `hash` of an
/// ASCII string, whose code units are its bytes).
pub fn murmur3_i32(bytes: &[u8]) -> i32 {
    murmur3(bytes)
}

/// The code units the reference hashes for a string: the first UTF-16 unit of every code point.
fn js_units(s: &str, out: &mut Vec<u32>) {
    out.clear();
    out.extend(s.chars().map(|c| {
        let mut buf = [0u16; 2];
        c.encode_utf16(&mut buf)[0] as u32
    }));
}

/// Units of an id kept on the stack: ids on the wire are at most `MAX_ID_BYTES` long.
const STACK_UNITS: usize = 320;

/// spec: sds.bloom.positions — `pos_i = (a + i·b) mod m` with `a = |h(id)| mod m`, `b = |h(id+" b")| mod m`.
pub fn positions(id: &str) -> BloomPositions {
    // Fast path: an ASCII id's code units are its bytes, so byte-wise murmur3 gives the same
    // hashes without widening every byte (ids on the wire are hex or other ASCII in practice).
    if id.is_ascii() && id.len() + 2 <= STACK_UNITS {
        let mut buf = [0u8; STACK_UNITS];
        let n = id.len();
        buf[..n].copy_from_slice(id.as_bytes());
        buf[n] = b' ';
        buf[n + 1] = b'b';
        return positions_of_hashes(murmur3_i32(&buf[..n]), murmur3_i32(&buf[..n + 2]));
    }
    let n = id.chars().count();
    if n + 2 <= STACK_UNITS {
        let mut units = [0u32; STACK_UNITS];
        for (u, c) in units.iter_mut().zip(id.chars()) {
            let mut buf = [0u16; 2];
            *u = c.encode_utf16(&mut buf)[0] as u32;
        }
        positions_of_units(&mut units[..n + 2], n)
    } else {
        let mut units = Vec::with_capacity(n + 2);
        js_units(id, &mut units);
        units.extend([0, 0]);
        positions_of_units(&mut units, n)
    }
}

/// `units` holds the id's `n` units followed by room for two more.
fn positions_of_units(units: &mut [u32], n: usize) -> BloomPositions {
    let a = murmur3_units(&units[..n]);
    units[n] = b' ' as u32;
    units[n + 1] = b'b' as u32;
    positions_of_hashes(a, murmur3_units(&units[..n + 2]))
}

/// Double hashing from `h(id)` and `h(id + " b")`.
fn positions_of_hashes(ha: i32, hb: i32) -> BloomPositions {
    let m = BLOOM_BITS as i64;
    let a = (ha as i64).abs() % m;
    let b = (hb as i64).abs() % m;
    let mut out = [0u32; BLOOM_HASHES];
    for (i, p) in out.iter_mut().enumerate() {
        *p = ((a + i as i64 * b) % m) as u32;
    }
    out
}

#[inline]
fn byte_and_mask(p: u32) -> (usize, u8) {
    // Bit p lives in big-endian word p/64 at bit p%64 from the least significant end.
    let word = (p / 64) as usize;
    let bit = p % 64;
    (word * 8 + 7 - (bit / 8) as usize, 1u8 << (bit % 8))
}

/// The serialized empty filter.
static EMPTY: [u8; BLOOM_BYTES] = [0; BLOOM_BYTES];

/// An owned filter, kept in its serialized (big-endian) form so that encoding is a plain copy.
/// Its 18,752 bytes are allocated on the first insert: an idle channel does not pay for them.
#[derive(Clone)]
pub struct BloomFilter {
    bytes: Option<Box<[u8]>>,
}

impl PartialEq for BloomFilter {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for BloomFilter {}

impl std::fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ones: u32 = self.as_bytes().iter().map(|b| b.count_ones()).sum();
        write!(f, "BloomFilter {{ bits_set: {ones} }}")
    }
}

impl Default for BloomFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl BloomFilter {
    /// An empty filter of the reference's size.
    pub fn new() -> Self {
        BloomFilter { bytes: None }
    }

    /// Inserts an item given its precomputed positions.
    pub fn insert_positions(&mut self, pos: &BloomPositions) {
        let bytes = self.bytes.get_or_insert_with(|| vec![0u8; BLOOM_BYTES].into_boxed_slice());
        for &p in pos {
            let (i, m) = byte_and_mask(p);
            bytes[i] |= m;
        }
    }

    /// Inserts a message id.
    pub fn insert(&mut self, id: &str) {
        self.insert_positions(&positions(id));
    }

    /// True when the id may be in the filter.
    pub fn contains(&self, id: &str) -> bool {
        self.view().contains_positions(&positions(id))
    }

    /// The serialized filter: exactly [`BLOOM_BYTES`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or(&EMPTY)
    }

    /// A borrowed view for lookups.
    pub fn view(&self) -> BloomView<'_> {
        BloomView { bytes: self.as_bytes() }
    }

    /// Parses a serialized filter; `None` unless it is exactly [`BLOOM_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == BLOOM_BYTES).then(|| BloomFilter { bytes: Some(bytes.into()) })
    }

    /// Clears every bit, keeping the allocation.
    fn clear(&mut self) {
        if let Some(b) = self.bytes.as_mut() {
            b.fill(0);
        }
    }
}

/// spec: sds.bloom.window — the filter a participant sends, over a bounded recent window: two
/// generations of [`BLOOM_GENERATION`] items, the current one and the previous one, sent as their
/// bitwise OR. When the current generation is full the previous one is dropped and the current
/// becomes the previous. Same size and hashing as a plain [`BloomFilter`] (what @waku/sds 0.0.8
/// reads); only its contents age. O(1) per insert; a rotation clears 18,752 bytes once per
/// generation.
#[derive(Clone, Debug, Default)]
pub struct RollingBloom {
    /// The current generation alone.
    current: BloomFilter,
    /// Current OR previous: what is sent, kept up to date on every insert.
    sent: BloomFilter,
    in_current: usize,
}

impl RollingBloom {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts an item given its precomputed positions.
    pub fn insert_positions(&mut self, pos: &BloomPositions) {
        if self.in_current >= BLOOM_GENERATION {
            // The new previous generation is the current one; the old previous is forgotten.
            std::mem::swap(&mut self.current, &mut self.sent);
            self.current.clear();
            self.in_current = 0;
        }
        self.current.insert_positions(pos);
        self.sent.insert_positions(pos);
        self.in_current += 1;
    }

    /// Inserts a message id.
    pub fn insert(&mut self, id: &str) {
        self.insert_positions(&positions(id));
    }

    /// Inserts `id` again unless the current generation has it, so that it stays in the window for
    /// another generation (a peer retransmitting it evidently lacks our acknowledgement). True
    /// when it was inserted.
    pub fn renew(&mut self, id: &str) -> bool {
        let pos = positions(id);
        if self.current.view().contains_positions(&pos) {
            return false;
        }
        self.insert_positions(&pos);
        true
    }

    /// True when the id may be in the filter sent.
    pub fn contains(&self, id: &str) -> bool {
        self.sent.contains(id)
    }

    /// The filter sent: the current and previous generations.
    pub fn filter(&self) -> &BloomFilter {
        &self.sent
    }

    /// The serialized filter sent: exactly [`BLOOM_BYTES`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.sent.as_bytes()
    }
}

/// A received filter, borrowed from the message bytes without copying.
#[derive(Clone, Copy, Debug)]
pub struct BloomView<'a> {
    bytes: &'a [u8],
}

impl<'a> BloomView<'a> {
    /// A view of a received filter; `None` for a filter of the wrong size (ignored, never a panic).
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() == BLOOM_BYTES).then_some(BloomView { bytes })
    }

    /// Number of bits set.
    pub fn ones(&self) -> u32 {
        self.bytes.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])).count_ones()).sum()
    }

    /// spec: sds.bloom.plausible — false for a filter with more bits set than an honest one can
    /// have ([`MAX_HONEST_BLOOM_ONES`]): an all-ones or saturated filter "contains" every id, so
    /// it acknowledges nothing.
    pub fn is_plausible(&self) -> bool {
        self.ones() <= MAX_HONEST_BLOOM_ONES
    }

    /// True when every position is set.
    #[inline]
    pub fn contains_positions(&self, pos: &BloomPositions) -> bool {
        pos.iter().all(|&p| {
            let (i, m) = byte_and_mask(p);
            self.bytes[i] & m != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_check_value() {
        assert_eq!(murmur3_i32(b"hello"), 613_153_351);
    }

    #[test]
    fn ascii_fast_path_equals_the_unit_path() {
        for id in ["", "a", "ab", "abc", "abcd", "hello", "sync-abc", &"f".repeat(64), &"x".repeat(300)] {
            let mut units: Vec<u32> = id.bytes().map(u32::from).collect();
            let n = units.len();
            units.extend([0, 0]);
            assert_eq!(positions(id), positions_of_units(&mut units, n), "{id}");
        }
    }

    #[test]
    fn size_matches_reference() {
        assert_eq!(BLOOM_BYTES, 18_752);
    }

    #[test]
    fn non_ascii_units_follow_js() {
        // "é" is one code point whose unit (0xe9) is > 127: hashed as the unit, not as UTF-8 bytes.
        let mut u = Vec::new();
        js_units("é😀", &mut u);
        assert_eq!(u, vec![0xe9, 0xd83d]);
    }

    #[test]
    fn insert_then_contains() {
        let mut f = BloomFilter::new();
        assert!(!f.contains("x"));
        f.insert("x");
        assert!(f.contains("x"));
        assert!(BloomView::new(&[0u8; 10]).is_none());
    }

    #[test]
    fn rolling_filter_keeps_one_to_two_generations() {
        let mut r = RollingBloom::new();
        for i in 0..BLOOM_GENERATION {
            r.insert(&format!("old-{i}"));
        }
        for i in 0..BLOOM_GENERATION {
            r.insert(&format!("mid-{i}"));
        }
        assert!(r.contains("old-0") && r.contains("mid-0"), "two generations");
        r.insert("new-0");
        assert!(!r.contains("old-0") && r.contains("mid-0") && r.contains("new-0"), "the oldest generation goes");
        // Renewing a message of the previous generation keeps it past the next rotation.
        assert!(r.renew("mid-1"));
        assert!(!r.renew("mid-1"), "already in the current generation");
        for i in 1..BLOOM_GENERATION {
            r.insert(&format!("new-{i}"));
        }
        r.insert("newer-0");
        assert!(!r.contains("mid-0") && r.contains("mid-1") && r.contains("new-0"));
        let ones = BloomView::new(r.as_bytes()).unwrap().ones();
        assert!(ones <= MAX_HONEST_BLOOM_ONES, "{ones}");
    }

    #[test]
    fn saturated_filters_are_not_plausible() {
        assert!(!BloomView::new(&[0xff; BLOOM_BYTES]).unwrap().is_plausible());
        assert!(BloomView::new(&[0; BLOOM_BYTES]).unwrap().is_plausible());
        // A filter at design capacity is plausible (with a margin).
        let mut f = BloomFilter::new();
        for i in 0..BLOOM_CAPACITY {
            f.insert(&format!("id-{i}"));
        }
        let v = f.view();
        assert!(v.is_plausible() && v.ones() < MAX_HONEST_BLOOM_ONES * 85 / 100, "{}", v.ones());
    }

    #[test]
    fn empty_filter_serializes_to_zeros_until_the_first_insert() {
        let mut f = BloomFilter::new();
        assert_eq!(f.as_bytes(), &[0u8; BLOOM_BYTES][..]);
        assert_eq!(f, BloomFilter::from_bytes(&[0u8; BLOOM_BYTES]).unwrap());
        f.insert("x");
        assert_eq!(f.as_bytes().len(), BLOOM_BYTES);
        assert_ne!(f, BloomFilter::new());
        assert_eq!(f, BloomFilter::from_bytes(f.as_bytes()).unwrap());
    }
}
