//! The bloom filter of SDS field 12: `BloomView::new` on any bytes, lookups, inserts, and the
//! positions of any id against an independent model of the reference's hashing (murmur3 x86_32
//! over the first UTF-16 unit of each code point, units OR-ed into lanes at 8-bit steps; double
//! hashing with `id + " b"`), written here without the library's fast paths.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reliable_channel::wire::bloom::positions;
use reliable_channel::wire::{BloomFilter, BloomView, BLOOM_BITS, BLOOM_BYTES, BLOOM_HASHES};

#[derive(Debug, Arbitrary)]
enum Filter {
    /// Any bytes (mostly the wrong size).
    Raw(Vec<u8>),
    /// This pattern repeated to the exact size.
    Pattern(Vec<u8>),
    Empty,
    AllOnes,
}

#[derive(Debug, Arbitrary)]
struct Input {
    filter: Filter,
    inserts: Vec<String>,
    probes: Vec<String>,
}

fn model_murmur(units: &[u32]) -> i32 {
    let mix = |k: u32| k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    let lane = |b: &[u32]| b.iter().enumerate().fold(0u32, |k, (j, &u)| k | (u << (8 * j)));
    let mut h: u32 = 0;
    let full = units.len() / 4 * 4;
    for b in units[..full].chunks(4) {
        h ^= mix(lane(b));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    if full < units.len() {
        h ^= mix(lane(&units[full..]));
    }
    h ^= units.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

fn model_positions(id: &str) -> [u32; BLOOM_HASHES] {
    // Every code point's first UTF-16 unit: drop the low surrogates.
    let units: Vec<u32> = id.encode_utf16().filter(|u| !(0xdc00..=0xdfff).contains(u)).map(u32::from).collect();
    let mut with_b = units.clone();
    with_b.extend([b' ' as u32, b'b' as u32]);
    let m = BLOOM_BITS as i64;
    let a = (model_murmur(&units) as i64).abs() % m;
    let b = (model_murmur(&with_b) as i64).abs() % m;
    std::array::from_fn(|i| ((a + i as i64 * b) % m) as u32)
}

/// Where bit `p` lives: big-endian u64 word `p / 64`, bit `p % 64` from its least significant end.
fn model_bit(bytes: &[u8], p: u32) -> bool {
    let word = &bytes[(p / 64) as usize * 8..][..8];
    let w = u64::from_be_bytes(word.try_into().expect("8 bytes"));
    w >> (p % 64) & 1 == 1
}

fuzz_target!(|input: Input| {
    let bytes = match &input.filter {
        Filter::Raw(b) => b.clone(),
        Filter::Pattern(p) if !p.is_empty() => p.iter().copied().cycle().take(BLOOM_BYTES).collect(),
        Filter::Pattern(_) | Filter::Empty => vec![0; BLOOM_BYTES],
        Filter::AllOnes => vec![0xff; BLOOM_BYTES],
    };
    let sized = bytes.len() == BLOOM_BYTES;
    assert_eq!(BloomView::new(&bytes).is_some(), sized);
    assert_eq!(BloomFilter::from_bytes(&bytes).is_some(), sized);
    for id in input.inserts.iter().chain(&input.probes) {
        let pos = positions(id);
        assert_eq!(pos, model_positions(id), "positions of {id:?}");
        assert!(pos.iter().all(|&p| p < BLOOM_BITS));
    }
    let (Some(view), Some(mut filter)) = (BloomView::new(&bytes), BloomFilter::from_bytes(&bytes)) else { return };
    let before: Vec<bool> = input.probes.iter().map(|id| view.contains_positions(&positions(id))).collect();
    for (id, &was) in input.probes.iter().zip(&before) {
        assert_eq!(was, positions(id).iter().all(|&p| model_bit(&bytes, p)), "lookup of {id:?}");
        assert_eq!(was, filter.contains(id));
        match input.filter {
            Filter::AllOnes => assert!(was),
            Filter::Empty => assert!(!was),
            _ => {}
        }
    }
    for id in &input.inserts {
        filter.insert(id);
        assert!(filter.contains(id));
    }
    for (id, &was) in input.probes.iter().zip(&before) {
        assert!(!was || filter.contains(id), "inserting cleared {id:?}");
    }
    let out = filter.as_bytes();
    assert_eq!(out.len(), BLOOM_BYTES);
    for id in &input.inserts {
        assert!(positions(id).iter().all(|&p| model_bit(out, p)));
    }
    assert!(BloomFilter::from_bytes(out).is_some_and(|f| f == filter));
});
