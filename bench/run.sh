#!/bin/bash
# bench/run.sh: the K-product benchmark of ntkspec against this machine's DGEMM rate and against
# PyTorch, every ratio measured in one run.
#
#   bench/run.sh [--smoke] [--build DIR | --bench EXE] [--reps R]
#
# For each model (784-256-256-10 tanh on 1,000 Fashion-MNIST training images, 784-1024-1024-10 tanh
# on 2,048) it runs bench_kproduct on 2 ranks x 1 BLAS thread and on 1 rank x 2 threads, and
# bench/peer_pytorch.py (float64, 2 threads) on the model file the first run saved, so both tools
# use the same weights and data. The fraction of DGEMM uses PETSc's logged flop count of one
# product (see bench_kproduct.c). --smoke uses a tiny model and skips PyTorch when /usr/bin/python3
# (or $NTK_BENCH_PYTHON) cannot import torch. The last line is machine-readable:
#   RESULT fraction_of_dgemm=<x> speedup_vs_pytorch=<y> peak_mb=<z>
# with x and y the smaller of the two models' values (2 ranks x 1 thread) and z the largest peak
# resident memory of one rank over all runs.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
smoke=0
bench=""
build="$here/../build-bench"
reps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --bench) bench="$2"; shift ;;
    --build) build="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    *) echo "usage: $0 [--smoke] [--build DIR | --bench EXE] [--reps R]" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$bench" ] || bench="$build/bench/bench_kproduct"
[ -x "$bench" ] || { echo "run.sh: no benchmark executable at $bench (build first)" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

if [ $smoke = 1 ]; then
  cases="784,16,10:64"
  reps=${reps:-2}
  common="-bench_dgemm_n 300"
else
  cases="784,256,256,10:1000 784,1024,1024,10:2048"
  reps=${reps:-10}
  common="-bench_dgemm_n 2000"
fi
python=${NTK_BENCH_PYTHON:-/usr/bin/python3}
have_torch=0
if [ -x "$python" ] && "$python" -c "import torch, functorch" 2>/dev/null; then have_torch=1; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# value of key k in a line of key=value pairs
get() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

echo "load average (1, 5, 15 min): $(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)"
min_frac=""
min_speed=""
peak=0
for c in $cases; do
  widths=${c%%:*}
  n=${c##*:}
  model="$tmp/model.safetensors"
  args="-ntk_net_widths $widths -ntk_net_activation tanh -ntk_data fashion-mnist:train"
  args="$args -ntk_data_samples $n -bench_reps $reps $common"
  echo "== model $widths, $n images"

  a=$(OPENBLAS_NUM_THREADS=1 mpiexec -n 2 "$bench" $args -bench_save "$model")
  echo "$a"
  a_line=$(echo "$a" | grep '^kproduct')
  b=$(OPENBLAS_NUM_THREADS=2 mpiexec -n 1 --bind-to none "$bench" $args)
  echo "$b"
  b_line=$(echo "$b" | grep '^kproduct')

  speed=nan
  speed_b=nan
  if [ $have_torch = 1 ]; then
    p_line=$(OMP_NUM_THREADS=2 "$python" "$here/peer_pytorch.py" --model "$model" --samples "$n" \
             --threads 2 --reps "$reps" | grep '^peer')
    echo "$p_line"
    tp=$(get median_s "$p_line")
    speed=$(awk -v p="$tp" -v s="$(get median_s "$a_line")" 'BEGIN { printf "%.2f", p / s }')
    speed_b=$(awk -v p="$tp" -v s="$(get median_s "$b_line")" 'BEGIN { printf "%.2f", p / s }')
    speed_cpu=$(awk -v p="$(get cpu_median_s "$p_line")" -v s="$(get cpu_median_s "$a_line")" \
                'BEGIN { printf "%.2f", p / s }')
    echo "PyTorch / ntkspec (2x1) in CPU seconds per product: $speed_cpu"
    agree=$(awk -v p="$(get kv_norm "$p_line")" -v s="$(get kv_norm "$a_line")" \
            'BEGIN { d = (p - s) / p; printf "%.1e", d < 0 ? -d : d }')
    echo "|K v| of ntkspec and PyTorch differ by $agree (relative)"
  else
    echo "PyTorch not importable by $python: speedup_vs_pytorch=nan"
  fi
  fa=$(get fraction_of_dgemm "$a_line")
  fb=$(get fraction_of_dgemm "$b_line")
  echo "SUMMARY model=$widths N=$n 2x1: fraction_of_dgemm=$fa" \
       "fraction_of_dgemm_cpu=$(get fraction_of_dgemm_cpu "$a_line") speedup_vs_pytorch=$speed" \
       "peak_mb=$(get peak_mb "$a_line") | 1x2: fraction_of_dgemm=$fb speedup_vs_pytorch=$speed_b" \
       "peak_mb=$(get peak_mb "$b_line")"
  min_frac=$(awk -v a="$min_frac" -v b="$fa" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }')
  if [ "$speed" = nan ] || [ "$min_speed" = nan ]; then
    min_speed=nan
  else
    min_speed=$(awk -v a="$min_speed" -v b="$speed" \
                'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }')
  fi
  peak=$(awk -v a="$peak" -v b="$(get peak_mb "$a_line")" -v c="$(get peak_mb "$b_line")" \
         'BEGIN { m = a; if (b + 0 > m) m = b; if (c + 0 > m) m = c; print m }')
done
echo "RESULT fraction_of_dgemm=$min_frac speedup_vs_pytorch=$min_speed peak_mb=$peak"
