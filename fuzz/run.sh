#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer instrumentation and runs each for a fixed time.
#
#   fuzz/run.sh [TARGET...]        (default: every target; `make fuzz` / `make fuzz-ci` call it)
#
# FUZZ_SECONDS        time per target (default 600)
# FUZZ_SANITIZER      address (default) or none
# FUZZ_CODEGEN_UNITS  codegen units of the instrumented build (default 1, as cargo-fuzz: faster
#                     fuzzing, slower build; CI uses more)
# FUZZ_ARGS           extra libFuzzer flags (e.g. "-jobs=2 -workers=2")
#
# No cargo-fuzz needed: this is the build `cargo fuzz build` (0.13) runs, with the same RUSTFLAGS,
# and `cargo fuzz run`'s libFuzzer invocation. The stable toolchain takes the one nightly flag
# (-Zsanitizer) under RUSTC_BOOTSTRAP=1. Inputs that crash are written to artifacts/TARGET/ and
# make the script fail; they belong in regressions/TARGET/, which every run replays first.
set -euo pipefail
cd "$(dirname "$0")"

all_targets=(waku_message sds_message message_chunk bloom keccak config_json channel_ingest channel_pair)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
seconds=${FUZZ_SECONDS:-600}
sanitizer=${FUZZ_SANITIZER:-address}
triple=$(rustc -vV | sed -n 's/^host: //p')

rustflags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
rustflags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
rustflags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
rustflags+=" -Cllvm-args=-sanitizer-coverage-stack-depth -Cdebug-assertions -Ccodegen-units=${FUZZ_CODEGEN_UNITS:-1}"
if [ "$sanitizer" != none ]; then rustflags+=" -Zsanitizer=$sanitizer"; fi

# --target keeps build scripts and proc macros uninstrumented.
echo "fuzz: building (sanitizer $sanitizer)"
RUSTC_BOOTSTRAP=1 RUSTFLAGS="$rustflags" cargo build --locked --release --target "$triple" --target-dir target \
  --config 'profile.release.debug="line-tables-only"' $(printf -- '--bin %s ' seed "${targets[@]}")

bin=target/$triple/release
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
"$bin/seed" corpus
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  dirs=("corpus/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  flags=(-max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="artifacts/$t/")
  [ -f "dict/$t.dict" ] && flags+=(-dict="dict/$t.dict")
  # Operation sequences: long inputs from the start (deeper sequences beat more executions:
  # +5 % coverage, +40 % features in 90 s here, at a tenth of the executions).
  case $t in channel_*) flags+=(-len_control=0 -max_len=2048) ;; esac
  echo "fuzz: $t for ${seconds}s"
  # shellcheck disable=SC2086
  if ! "$bin/$t" "${flags[@]}" ${FUZZ_ARGS:-} "${dirs[@]}" > "artifacts/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "artifacts/$t.log"
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "artifacts/$t.log" | tr '\n' ' ' || true
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/artifacts/*.log)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
