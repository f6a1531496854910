#!/bin/sh
# Run one libFuzzer harness for a fixed time from its seed corpus, with the sanitiser settings of
# the project; exit status non-zero when the fuzzer found a crash, a leak or undefined behaviour.
#
#   tests/fuzz/run.sh HARNESS SEED_DIR SECONDS [WORK_DIR]
#
# New interesting inputs are kept in WORK_DIR/corpus (default: a folder beside the harness) and a
# crashing input is saved as WORK_DIR/crash-*; copy it into SEED_DIR as a regression input once
# the bug is fixed.
#
# NTK_FUZZ_SEED fixes libFuzzer's random seed (0, the default, draws one). With a fixed seed and a
# fresh WORK_DIR a run repeats the same inputs in the same order, so a short run is a prefix of a
# longer one: scripts/test.sh fixes it, so that CI is repeatable; long hunting runs leave it unset.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 HARNESS SEED_DIR SECONDS [WORK_DIR]" >&2; exit 2; }
harness=$1 seeds=$2 seconds=$3
work=${4:-$(dirname "$harness")/work-$(basename "$harness")}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work/corpus"
# Leaks are checked after every input (the check at exit would only see what Open MPI keeps);
# PETSc is built without frame pointers, so stacks are unwound the slow way to see past it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:leak_check_at_exit=0:fast_unwind_on_malloc=0:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/../asan/lsan.supp:print_suppressions=0}"
export TMPDIR="$work"
# -rss_limit_mb and -malloc_limit_mb make an input that asks for gigabytes a finding too.
exec "$harness" -seed="${NTK_FUZZ_SEED:-0}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds"
