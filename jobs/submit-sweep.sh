#!/bin/sh
# Submit a width sweep: jobs/sweep-array.sbatch as an array with one task per width, then
# jobs/sweep-summary.sbatch, which starts only when every task has succeeded (afterok).
# Prints the two job ids. Run from the ntkspec checkout:
#
#   jobs/submit-sweep.sh [sbatch options] [-- ntkspec options]
#   jobs/submit-sweep.sh --ntasks=4 -- -ntk_sweep_widths 64,256,1024 -ntk_train_steps 500
#
# The widths come from -ntk_sweep_widths after `--`, else from jobs/options/sweep.opts (or the
# NTK_OPTIONS file). The sbatch options apply to both jobs.
set -eu
sb=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  sb="$sb $1"
  shift
done
[ $# -gt 0 ] && shift

widths=$(awk '$1 == "-ntk_sweep_widths" { print $2 }' "${NTK_OPTIONS:-jobs/options/sweep.opts}")
prev=""
for a in "$@"; do
  [ "$prev" = "-ntk_sweep_widths" ] && widths=$a
  prev=$a
done
n=$(echo "$widths" | tr ',' '\n' | grep -c .)
if [ "$n" -lt 1 ]; then
  echo "submit-sweep.sh: no widths (give -ntk_sweep_widths after --)" >&2
  exit 2
fi

export NTK_SWEEP_WIDTHS="$widths"
array=$(sbatch --parsable --array=0-$((n - 1)) $sb jobs/sweep-array.sbatch "$@")
array=${array%%;*}
export NTK_SWEEP_JOB="$array"
summary=$(sbatch --parsable --dependency=afterok:"$array" $sb jobs/sweep-summary.sbatch "$@")
echo "$array ${summary%%;*}"
