//! Keccak-256 of a message given in parts (the SDS message id): the run-time selected
//! permutation (AVX-512 where the CPU has it, unsafe code) against `keccak-asm` over the
//! concatenation, for every split of the input across block boundaries.
#![no_main]

use keccak_asm::Keccak256;
use libfuzzer_sys::fuzz_target;
use reliable_channel::wire::keccak::keccak256;

fuzz_target!(|parts: Vec<Vec<u8>>| {
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let want: [u8; 32] = Keccak256::digest(parts.concat()).into();
    assert_eq!(keccak256(&refs), want);
});
