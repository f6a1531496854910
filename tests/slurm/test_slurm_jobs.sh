#!/bin/bash
# Every batch script in jobs/ runs under a real SLURM: on a private single-node cluster, each
# script whose ntkspec command exists is submitted at two tasks with small sizes, finishes with
# exit status 0 and leaves a valid JSON result (with the command's own keys, 2 ranks) and a
# -log_view file in its output folder. The width sweep runs as an array job followed by its
# summary job (afterok dependency).
#
#   tests/slurm/test_slurm_jobs.sh NTKSPEC SOURCE_DIR
set -u
NTKSPEC=$(realpath "$1")
NTK_REPO=$(realpath "$2")
. "$NTK_REPO/tests/slurm/lib.sh"
slurm_up

small="-ntk_data fashion-mnist:train -ntk_data_samples 40 -ntk_net_widths 784,16,10"
small="$small -ntk_op_microbatch 10"
declare -A args keys
args[info]="$small -ntk_info_selfcheck"
keys[info]="d['P'] == 12730 and d['N'] == 40"
args[spectrum]="$small -ntk_spectrum_nev 3 -ntk_spectrum_tail 2 -ntk_spectrum_tol 1e-6"
keys[spectrum]="len(d['leading']) == 3 and d['matvecs'] > 0"
args[estimate]="$small -ntk_estimate_matvecs 100"
keys[estimate]="d['trace']['value'] > 0 and 'entropy' in d"
args[position]="$small -ntk_loss xent"
keys[position]="0 <= d['rho'] and 'alignment' in d"
args[dense]="$small"
keys[dense]="len(d['eigenvalues']) == 400 and d['trace'] > 0"
train="-ntk_train_steps 20 -ntk_train_batch 10 -ntk_train_track_every 10"
train="$train -ntk_train_test_samples 100"
args[train]="$small $train"
keys[train]="d['steps_done'] == 20 and d['final']['train_loss'] > 0"

# Submit every single-job workflow whose command exists; they queue one after another.
declare -A ids
for wf in info spectrum estimate position dense train; do
  if [ ! -f "$NTK_REPO/jobs/$wf.sbatch" ]; then
    fail "jobs/$wf.sbatch is missing"
  elif ! has_command "$wf"; then
    echo "SKIP: jobs/$wf.sbatch: this ntkspec has no '$wf' command yet"
  else
    ids[$wf]=$(submit "jobs/$wf.sbatch" -- ${args[$wf]}) || fail "sbatch jobs/$wf.sbatch"
    echo "submitted jobs/$wf.sbatch as job ${ids[$wf]}"
  fi
done

# The width sweep: an array job, then the summary once every task has succeeded.
sweep_ids=""
if ! has_command sweep; then
  echo "SKIP: jobs/sweep-array.sbatch: this ntkspec has no 'sweep' command yet"
else
  sweep_ids=$(cd "$NTK_REPO" && jobs/submit-sweep.sh --ntasks=2 --time=5 \
    --output="$T/out/%x-%A_%a.out" -- $small $train -ntk_sweep_widths 8,16,32) ||
    fail "jobs/submit-sweep.sh"
  echo "submitted the sweep as jobs $sweep_ids (array, summary)"
fi

all="${ids[*]} $sweep_ids"
if [ -n "${all// /}" ]; then
  wait_jobs 240 $all || fail "timed out"
fi

for wf in "${!ids[@]}"; do
  id=${ids[$wf]}
  out=$NTK_RUNS/$wf-$id
  state=$(job_exit "$id")
  ok=1
  [ "$state" = "COMPLETED|0:0" ] || { fail "jobs/$wf.sbatch (job $id) ended $state"; ok=0; }
  check_json "$out/$wf.json" "d['command'] == '$wf' and d['ranks'] == 2 and ${keys[$wf]}" \
    "jobs/$wf.sbatch" || ok=0
  [ -s "$out/log_view.$id.txt" ] || { fail "jobs/$wf.sbatch: no $out/log_view.$id.txt"; ok=0; }
  grep -q "^command: .*srun --mpi=pmix" "$out/job.txt" ||
    { fail "jobs/$wf.sbatch: job.txt does not record the command"; ok=0; }
  if [ $ok = 1 ]; then echo "ok: jobs/$wf.sbatch (job $id)"; else show_job "$id"; fi
done

if [ -n "$sweep_ids" ]; then
  set -- $sweep_ids
  array=$1 summary=$2
  state=$(job_exit "$summary")
  if [ "$state" = "COMPLETED|0:0" ] &&
    check_json "$NTK_RUNS/sweep-$array/sweep.json" \
      "[r['width'] for r in d['widths']] == [8, 16, 32]" "jobs/sweep-summary.sbatch"; then
    echo "ok: jobs/submit-sweep.sh (array $array, summary $summary)"
  else
    fail "the sweep summary (job $summary) ended $state"
    show_job "$array"
    show_job "$summary"
  fi
fi

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all submitted job scripts passed"
