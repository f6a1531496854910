#!/bin/sh
# Install what is missing, then configure and build ntkspec in ./build (incremental).
set -eu
cd "$(dirname "$0")/.."
scripts/setup-debian.sh "$@"
echo "build.sh: configuring and compiling ntkspec in build/ (about a minute the first time)"
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
