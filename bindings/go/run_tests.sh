#!/usr/bin/env bash
# Runs the Go binding's checks against the library in $LIBDIR (default: target/release of this
# repository; `make lib` first): go vet, then go test -race with GODEBUG=cgocheck=2 (every
# pointer passed to C checked), offline.
# Without go: says so and skips (exit 0), except under CI (CI=true), where it fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
LIBDIR="${LIBDIR:-$root/target/release}"

# shellcheck source=../require.sh
. "$here/../require.sh"
require_toolchain test-go go golang-go

# Offline, standard library only; caches under build/ when HOME is not writable.
export GOPROXY=off GOFLAGS= GO111MODULE=on GONOSUMDB= GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=1
if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
  export GOCACHE="${GOCACHE:-$root/build/go/cache}" GOPATH="${GOPATH:-$root/build/go/path}"
  mkdir -p "$GOCACHE" "$GOPATH"
fi
# $LIBDIR first: CGO_* flags come before the package's own #cgo flags.
export CGO_CFLAGS="-I$root/include ${CGO_CFLAGS:-}"
export CGO_LDFLAGS="-L$LIBDIR -Wl,-rpath,$LIBDIR ${CGO_LDFLAGS:-}"
export GODEBUG="cgocheck=2${GODEBUG:+,$GODEBUG}"

cd "$here"
echo "test-go: $(go version)"
echo "test-go: go vet ./..."
go vet ./...
echo "test-go: go test -race -count=1 ./... (GODEBUG=$GODEBUG)"
go test -race -count=1 -v ./... 2>&1 | tee "${TMPDIR:-/tmp}/rc-go-test.$$.log" | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test\.go)' || true
status=${PIPESTATUS[0]}
passed=$(grep -c -- '^--- PASS' "${TMPDIR:-/tmp}/rc-go-test.$$.log" || true)
failed=$(grep -c -- '^--- FAIL' "${TMPDIR:-/tmp}/rc-go-test.$$.log" || true)
if [ "$status" -ne 0 ]; then
  cat "${TMPDIR:-/tmp}/rc-go-test.$$.log" | tail -100
fi
rm -f "${TMPDIR:-/tmp}/rc-go-test.$$.log"
if [ "$status" -eq 0 ]; then
  echo "test-go: go run ./examples/hello (the README program)"
  if go run ./examples/hello; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi
echo "go: $passed passed, $failed failed"
exit "$status"
