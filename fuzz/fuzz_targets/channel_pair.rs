//! Two honest channels over a fuzzer-controlled network with an adversary (see `src/pair.rs`):
//! per-channel invariants, integrity, and liveness after a healing phase.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliable_channel_fuzz::pair::{Pair, PairInput};

fuzz_target!(|input: PairInput| Pair::run(&input));
