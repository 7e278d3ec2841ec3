#!/usr/bin/env bash
# Builds edgecount._core with AddressSanitizer or ThreadSanitizer and runs the
# ring buffer tests against that build.
#
#   tools/sanitize.sh address|thread [extra pytest arguments]
#
# The sanitized extension is built out of tree, into a temporary copy of the
# package, and imported from there: the normal build in edgecount/ is never
# replaced, so other test runs in this work tree are not disturbed and there is
# nothing to restore. Sanitizer reports (which pytest's output capture would
# hide) are written to files and printed at the end; the script fails if a
# test fails or a sanitizer reports an error.
set -euo pipefail

san=${1:-}
case "$san" in
    address)
        runtime=libasan.so
        # CPython's own allocations live until exit: leak reports are noise.
        options=ASAN_OPTIONS
        settings="detect_leaks=0:halt_on_error=1"
        # Route Python objects through malloc too, so ASan sees numpy arrays.
        export PYTHONMALLOC=malloc
        ;;
    thread)
        runtime=libtsan.so
        options=TSAN_OPTIONS
        settings="halt_on_error=0:exitcode=66:second_deadlock_stack=1"
        ;;
    *)
        echo "usage: $0 address|thread [pytest arguments]" >&2
        exit 2
        ;;
esac
shift

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/edgecount-$san.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A copy of the Python package without the normal extension; the sanitized
# extension is built into it.
mkdir "$work/lib"
cp -r "$repo/edgecount" "$work/lib/"
rm -f "$work"/lib/edgecount/_core*.so
echo "building the $san-sanitized extension in $work" >&2
if ! (cd "$repo" && EDGECOUNT_SANITIZE=$san "$python" setup.py -q build_ext \
    --build-lib "$work/lib" --build-temp "$work/build" --force) >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    exit 1
fi

# The sanitizer runtime must be loaded first. libstdc++ too: python does not
# link it, and ASan can only intercept C++ throws if it is there at start-up.
preload="$(g++ -print-file-name="$runtime") $(g++ -print-file-name=libstdc++.so)"
cd "$work/lib"  # first on sys.path: the copy shadows the work tree's package
LD_PRELOAD=$preload "$python" -c "
import edgecount._core as c, sys
assert c.__file__.startswith('$work/'), c.__file__
print('testing', c.__file__, 'under $san sanitizer', file=sys.stderr)"
export "$options=$settings:log_path=$work/report${!options:+:${!options}}"
tests=$repo/tests/test_ring_buffer.py
args=()
if [ "$san" = thread ]; then
    # This test makes the producer lap the consumer while it copies frames: a
    # race by design (a seqlock read, which the consumer detects and discards).
    # ThreadSanitizer would report every overwritten 8-byte word of it, 131072
    # per lapped 1 MiB slot, at ~30 s per slot. All other tests, including the
    # concurrent one without laps, run without any suppression.
    args=(--deselect tests/test_ring_buffer.py::test_threaded_large_frames_with_laps)
fi
status=0
LD_PRELOAD=$preload "$python" -m pytest "$tests" --rootdir="$repo" -c "$repo/pyproject.toml" \
    -p no:cacheprovider "${args[@]}" "$@" || status=$?

shopt -s nullglob
reports=("$work"/report.*)
[ ${#reports[@]} -eq 0 ] || cat "${reports[@]}" >&2
if grep -qE '(WARNING|ERROR): [A-Za-z]*Sanitizer|Sanitizer: CHECK failed' /dev/null "${reports[@]}"; then
    echo "$san sanitizer: errors reported (above)" >&2
    [ "$status" -ne 0 ] || status=1
else
    echo "$san sanitizer: no errors reported" >&2
fi
exit "$status"
