#!/usr/bin/env bash
# Runs the Nim binding's tests against the library in $LIBDIR (default: target/release of
# this repository; `make lib` first), once with ORC and once with refc.
# Without nim: says so and skips (exit 0), except under CI (CI=true), where it fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
LIBDIR="${LIBDIR:-$root/target/release}"

# shellcheck source=../require.sh
. "$here/../require.sh"
require_toolchain test-nim nim nim

build="$root/build/nim"
mkdir -p "$build"
echo "test-nim: $(nim --version 2>/dev/null | head -1)"
passed=0
failed=0
for mm in orc refc; do
  log="$build/test-$mm.log"
  echo "test-nim: --threads:on --mm:$mm"
  set +e
  nim c --threads:on --mm:"$mm" --hints:off --verbosity:0 -d:rcLibDir="$LIBDIR" \
    --passL:"-L$LIBDIR -lreliable_channel -Wl,-rpath,$LIBDIR" \
    --nimcache:"$build/cache-$mm" -o:"$build/test_reliable_channel_$mm" \
    -r "$here/tests/test_reliable_channel.nim" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  ok=$(grep -c '\[OK\]' "$log" || true)
  bad=$(grep -c '\[FAILED\]' "$log" || true)
  passed=$((passed + ok))
  failed=$((failed + bad))
  if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then failed=$((failed + 1)); fi
done
echo "test-nim: examples/hello.nim (the README program)"
if nim c --threads:on --mm:orc --hints:off --verbosity:0 -d:rcLibDir="$LIBDIR" \
     --nimcache:"$build/cache-hello" -o:"$build/hello" -r "$here/examples/hello.nim"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
echo "nim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
