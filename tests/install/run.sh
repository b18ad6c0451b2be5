#!/usr/bin/env bash
# The installed copy of libreliable_channel: `make install` into a temporary PREFIX, then
#  - the layout (shared library with its SONAME, static library, header, pkg-config file);
#  - a C program (examples-c/chat.c when present, else tests/install/smoke.c) built with
#    `pkg-config --cflags --libs reliable_channel` against the installed copy, and run;
#  - the static library linked into a C program (`pkg-config --static`), and run;
#  - DESTDIR staging and `make uninstall`;
#  - the Go and Nim bindings built against the installed copy (when go / nim are installed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
CC="${CC:-cc}"
MAKE="${MAKE:-make}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/rc-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
PREFIX="$tmp/prefix"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "install: ok   $*"; }
fail() { failed=$((failed + 1)); echo "install: FAIL $*" >&2; }
# check DESCRIPTION COMMAND...: runs the command, output to a log shown on failure.
check() {
  local what="$1"; shift
  if "$@" >"$tmp/log" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' "$tmp/log" >&2; fi
}

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
major="${version%%.*}"
soname="libreliable_channel.so.$major"

echo "install: make install PREFIX=$PREFIX"
"$MAKE" --no-print-directory install PREFIX="$PREFIX" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; exit 1; }

# Layout.
for f in "lib/$soname" lib/libreliable_channel.so lib/libreliable_channel.a include/reliable_channel.h \
         lib/pkgconfig/reliable_channel.pc; do
  check "installed $f" test -e "$PREFIX/$f"
done
check "lib/libreliable_channel.so -> $soname" test "$(readlink "$PREFIX/lib/libreliable_channel.so")" = "$soname"
check "SONAME of the installed library is $soname" \
  sh -c "readelf -d '$PREFIX/lib/$soname' | grep -F 'Library soname: [$soname]'"
check "the installed library exports only rc_* functions" \
  sh -c "! nm -D --defined-only '$PREFIX/lib/$soname' | awk '\$2 ~ /^[TDBR]\$/ {print \$3}' | grep -v '^rc_'"
check "installed header is the generated one" cmp include/reliable_channel.h "$PREFIX/include/reliable_channel.h"

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
check "pkg-config --modversion = $version" test "$(pkg-config --modversion reliable_channel)" = "$version"
check "pkg-config --cflags names the installed include dir" \
  sh -c "pkg-config --cflags reliable_channel | grep -F -- '-I$PREFIX/include'"
check "pkg-config --libs names the installed lib dir" \
  sh -c "pkg-config --libs reliable_channel | grep -F -- '-L$PREFIX/lib'"

# A C program against the installed shared library, through pkg-config.
if [ -f examples-c/chat.c ]; then prog=examples-c/chat.c; else prog=tests/install/smoke.c; fi
name="$(basename "$prog" .c)"
# shellcheck disable=SC2046
check "build $prog with pkg-config (shared)" \
  "$CC" -std=c11 -Wall -O2 $(pkg-config --cflags reliable_channel) -o "$tmp/$name" "$prog" \
  $(pkg-config --libs reliable_channel) -Wl,-rpath,"$PREFIX/lib"
check "$name resolves libreliable_channel from PREFIX" \
  sh -c "ldd '$tmp/$name' | grep -F '$soname => $PREFIX/lib/$soname'"
check "run $name (shared)" timeout 180 "$tmp/$name" </dev/null

# The static library: no libreliable_channel.so needed at run time.
static_libs="$(pkg-config --static --libs reliable_channel | tr ' ' '\n' | grep -v -x -- '-lreliable_channel' | grep -v -- '^-L' | tr '\n' ' ')"
# shellcheck disable=SC2086
check "build tests/install/smoke.c with the static library ($static_libs)" \
  "$CC" -std=c11 -Wall -Wextra -Werror -O2 $(pkg-config --cflags reliable_channel) -o "$tmp/smoke-static" \
  tests/install/smoke.c "$PREFIX/lib/libreliable_channel.a" $static_libs
check "smoke-static does not need libreliable_channel.so" \
  sh -c "! readelf -d '$tmp/smoke-static' | grep -F 'libreliable_channel'"
check "smoke-static has a non-executable stack" \
  sh -c "readelf -lW '$tmp/smoke-static' | grep GNU_STACK | grep -v RWE"
check "run smoke-static" timeout 120 "$tmp/smoke-static"

# DESTDIR staging: files under DESTDIR, paths in the .pc without it.
stage="$tmp/stage"
check "make install DESTDIR=... PREFIX=/usr" "$MAKE" --no-print-directory install DESTDIR="$stage" PREFIX=/usr
check "staged layout under DESTDIR" test -e "$stage/usr/lib/$soname" -a -e "$stage/usr/include/reliable_channel.h"
check "staged .pc says prefix=/usr" grep -x 'prefix=/usr' "$stage/usr/lib/pkgconfig/reliable_channel.pc"

# The bindings against the installed copy (their own tests use the in-tree build).
if command -v go >/dev/null 2>&1; then
  export GOPROXY=off GOFLAGS= GO111MODULE=on CGO_ENABLED=1
  if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
    export GOCACHE="${GOCACHE:-$root/build/go/cache}" GOPATH="${GOPATH:-$root/build/go/path}"
  fi
  check "go build -tags rc_pkgconfig (bindings/go/examples/hello)" \
    sh -c "cd bindings/go && CGO_LDFLAGS='-Wl,-rpath,$PREFIX/lib' go build -tags rc_pkgconfig -o '$tmp/hello-go' ./examples/hello"
  check "hello-go resolves libreliable_channel from PREFIX" \
    sh -c "ldd '$tmp/hello-go' | grep -F '$soname => $PREFIX/lib/$soname'"
  check "run hello-go" timeout 120 "$tmp/hello-go"
elif [ "${CI:-}" = "true" ]; then
  fail "go is not installed (CI=true)"
else
  echo "install: SKIPPED the Go binding against the installed copy: go is not installed" >&2
fi
if command -v nim >/dev/null 2>&1; then
  check "nim c -d:rcPkgConfig (bindings/nim/examples/hello.nim)" \
    nim c --threads:on --mm:orc --hints:off --verbosity:0 -d:rcPkgConfig --passL:"-Wl,-rpath,$PREFIX/lib" \
      --nimcache:"$tmp/nimcache" -o:"$tmp/hello-nim" bindings/nim/examples/hello.nim
  check "hello-nim resolves libreliable_channel from PREFIX" \
    sh -c "ldd '$tmp/hello-nim' | grep -F '$soname => $PREFIX/lib/$soname'"
  check "run hello-nim" timeout 120 "$tmp/hello-nim"
elif [ "${CI:-}" = "true" ]; then
  fail "nim is not installed (CI=true)"
else
  echo "install: SKIPPED the Nim binding against the installed copy: nim is not installed" >&2
fi

# Uninstall leaves nothing of ours behind.
check "make uninstall PREFIX=..." "$MAKE" --no-print-directory uninstall PREFIX="$PREFIX"
check "nothing left after uninstall" \
  sh -c "test -z \"\$(find '$PREFIX' -type f -o -type l)\""

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
