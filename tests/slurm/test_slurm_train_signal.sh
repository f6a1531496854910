#!/bin/bash
# A training job stopped by SLURM's signals resumes to the same end: on a private single-node
# cluster, jobs/train.sbatch at two tasks is sent SIGTERM through its batch shell (the path of
# `#SBATCH --signal=B:TERM@...`) and must exit with status 3 leaving a checkpoint; resubmitted,
# it is sent SIGUSR1 straight to its ranks and stops again; resubmitted once more it finishes,
# and its final training loss equals that of an uninterrupted job on the same ranks to 1e-10.
#
#   tests/slurm/test_slurm_train_signal.sh NTKSPEC SOURCE_DIR
set -u
NTKSPEC=$(realpath "$1")
NTK_REPO=$(realpath "$2")
. "$NTK_REPO/tests/slurm/lib.sh"

if ! has_command train; then
  echo "SKIP: this ntkspec has no 'train' command yet"
  exit 77
fi
slurm_up

steps=200
train="-ntk_data fashion-mnist:train -ntk_data_samples 200 -ntk_net_widths 784,32,10"
train="$train -ntk_train_steps $steps -ntk_train_batch 50 -ntk_train_track_every 20"
train="$train -ntk_train_test_samples 100"

# csv_last_step FILE: the step of the last row of a training CSV (-1 before the first row).
csv_last_step() {
  [ -f "$1" ] || { echo -1; return; }
  awk -F, 'NR > 1 && $1 ~ /^[0-9]+$/ { s = $1 } END { print (s == "" ? -1 : s) }' "$1"
}

# stop_midway ID HOW SIGNAL AFTER: once job ID's CSV shows a step beyond AFTER (so the signal
# lands mid-run), signal it (HOW: --batch for the batch shell, nothing for the ranks).
stop_midway() {
  local id=$1 how=$2 sig=$3 after=$4 csv=$NTK_RUNS/train-$1/train.csv t=0
  while [ "$(csv_last_step "$csv")" -le "$after" ]; do
    t=$((t + 1))
    if [ $t -gt 600 ] || [ -z "$(squeue -h -j "$id" -o %i 2>/dev/null)" ]; then
      fail "job $id ended or made no progress past step $after before the signal"
      show_job "$id"
      exit 1
    fi
    sleep 0.2
  done
  scancel $how --signal="$sig" "$id"
  echo "sent SIG$sig to job $id ${how:-(its ranks)} at step $(csv_last_step "$csv")"
}

# expect_stopped ID: the job exited with status 3 and a checkpoint; prints the step it reached.
expect_stopped() {
  local id=$1 state
  state=$(job_exit "$id")
  if [ "${state#*|}" != "3:0" ]; then
    fail "job $id ended $state, not with exit status 3"
    show_job "$id"
  fi
  [ -f "$T/ck/manifest.json" ] || { fail "job $id left no checkpoint in $T/ck"; show_job "$id"; }
  check_json "$NTK_RUNS/train-$id/train.json" "d['interrupted'] and 0 < d['steps_done'] < $steps" \
    "stopped job $id" || show_job "$id"
}

# The uninterrupted reference, then the run that is stopped twice, on the same two ranks.
ref=$(NTK_CHECKPOINT=$T/ck-ref submit jobs/train.sbatch --job-name=ref -- $train)
# the stopped runs pause after every step (test hook), so the signals land mid-run however fast
# the machine is; sbatch passes the environment on to the ranks
export NTK_TEST_STEP_PAUSE=0.05
run1=$(NTK_CHECKPOINT=$T/ck submit jobs/train.sbatch --job-name=stopped -- $train)
stop_midway "$run1" --batch TERM 0
wait_jobs 300 "$ref" "$run1" || fail "timed out"
expect_stopped "$run1"

run2=$(NTK_CHECKPOINT=$T/ck submit jobs/train.sbatch --job-name=stopped -- $train)
at1=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["steps_done"])' \
  "$NTK_RUNS/train-$run1/train.json" 2>/dev/null || echo 0)
stop_midway "$run2" "" USR1 "$at1"
wait_jobs 300 "$run2" || fail "timed out"
expect_stopped "$run2"

run3=$(NTK_CHECKPOINT=$T/ck submit jobs/train.sbatch --job-name=stopped -- $train)
wait_jobs 300 "$run3" || fail "timed out"
state=$(job_exit "$run3")
[ "$state" = "COMPLETED|0:0" ] || { fail "resumed job $run3 ended $state"; show_job "$run3"; }
[ "$(job_exit "$ref")" = "COMPLETED|0:0" ] || { fail "reference job $ref failed"; show_job "$ref"; }

# The resumed run ends where the uninterrupted one does.
python3 - "$NTK_RUNS/train-$ref/train.json" "$NTK_RUNS/train-$run3/train.json" $steps <<'EOF' ||
import json, sys
ref, res = (json.load(open(p)) for p in sys.argv[1:3])
steps = int(sys.argv[3])
a, b = ref["final"]["train_loss"], res["final"]["train_loss"]
print(f"final train loss: uninterrupted {a:.17g}, stopped twice and resumed {b:.17g}")
ok = (ref["steps_done"] == steps and res["steps_done"] == steps and res["resumed_from"]
      and abs(a - b) <= 1e-10 * abs(a))
sys.exit(0 if ok else 1)
EOF
  fail "the resumed run does not end where the uninterrupted one does"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "stopped by SIGTERM (batch shell) and SIGUSR1 (ranks), resumed twice: same final loss"
