#!/bin/sh
# Install every Debian package ntkspec needs to build, test and run. Idempotent: packages already
# present are left alone, and nothing is fetched when all are installed.
#
#   scripts/setup-debian.sh          build, run and test dependencies
#   scripts/setup-debian.sh --torch  also PyTorch, used only to regenerate fixtures and by the benchmark
#   scripts/setup-debian.sh --fuzz   also clang and its runtime (libFuzzer, sanitisers) for tests/fuzz
set -eu

pkgs="build-essential pkg-config meson ninja-build
      petsc-dev slepc-dev libopenmpi-dev openmpi-bin
      libopenblas-dev libscalapack-openmpi-dev
      libjson-c-dev zlib1g-dev
      dataset-fashion-mnist gnuplot-nox python3"

for arg in "$@"; do
  case "$arg" in
    --torch) pkgs="$pkgs python3-torch" ;;
    --slurm) pkgs="$pkgs slurm-wlm munge" ;;
    --fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
    *) echo "setup-debian.sh: unknown argument '$arg' (known: --torch, --slurm, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "setup-debian.sh: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
