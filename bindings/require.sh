# Sourced by bindings/*/run_tests.sh: `require_toolchain NAME TOOL PACKAGE` checks that TOOL is
# installed (without it: says so loudly and skips, exit 0, except under CI=true, where it fails)
# and that the library to test exists in $LIBDIR.
require_toolchain() {
  local name="$1" tool="$2" package="$3"
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
      echo "$name: FAIL: $tool is not installed (CI=true; apt-get install $package)" >&2
      exit 1
    fi
    local line="## $name: SKIPPED: $tool is not installed (apt-get install $package) ##"
    local bar
    bar="$(printf '%*s' "${#line}" '' | tr ' ' '#')"
    printf '%s\n%s\n%s\n' "$bar" "$line" "$bar" >&2
    exit 0
  fi
  if [ ! -e "$LIBDIR/libreliable_channel.so" ]; then
    echo "$name: $LIBDIR/libreliable_channel.so is missing (make lib)" >&2
    exit 1
  fi
}
