#!/bin/sh
# The whole test suite: install what is missing, build, run every test, print the tally.
# Extra arguments go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."
scripts/setup-debian.sh --slurm
[ -f build/build.ninja ] || meson setup build --buildtype=release -Dwerror=true >/dev/null
ninja -C build
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
passed=$(grep -c '"result": "OK"' build/meson-logs/testlog.json || true)
failed=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR)"' build/meson-logs/testlog.json || true)
echo "$passed passed, $failed failed"
exit $status
