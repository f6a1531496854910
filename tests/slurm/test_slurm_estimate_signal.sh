#!/bin/bash
# An estimate job stopped by SLURM's SIGTERM resumes to the uninterrupted estimate: on a private
# single-node cluster, jobs/estimate.sbatch at two tasks is sent SIGTERM through its batch shell
# (the path of `#SBATCH --signal=B:TERM@...`) once it has finished some probes, and must exit
# with status 3 leaving its checkpoint; resubmitted, it finishes having read the finished probes
# back, and every estimate equals that of an uninterrupted job on the same ranks to 1e-12.
#
#   tests/slurm/test_slurm_estimate_signal.sh NTKSPEC SOURCE_DIR
set -u
NTKSPEC=$(realpath "$1")
NTK_REPO=$(realpath "$2")
. "$NTK_REPO/tests/slurm/lib.sh"
slurm_up

est="-ntk_data fashion-mnist:train -ntk_data_samples 200 -ntk_net_widths 784,32,10"
est="$est -ntk_estimate_matvecs -1 -ntk_estimate_probes 40 -ntk_estimate_lanczos_steps 20"
est="$est -ntk_estimate_deflate 4 -ntk_estimate_deflate_steps 20 -ntk_estimate_checkpoint_every 1"

# probes_done FILE: trace plus SLQ probes in a checkpoint (0 before the first write).
probes_done() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(len(d["trace"]["samples"]) + len((d.get("slq") or {}).get("probes", [])))' "$1" \
    2>/dev/null || echo 0
}

ref=$(NTK_CHECKPOINT=$T/ck-ref.json submit jobs/estimate.sbatch --job-name=ref -- $est)
# the stopped run pauses at every probe (test hook), so the signal lands mid-run however fast the
# machine is; sbatch passes the environment on to the ranks
export NTK_TEST_STEP_PAUSE=0.1
run1=$(NTK_CHECKPOINT=$T/ck.json submit jobs/estimate.sbatch --job-name=stopped -- $est)
t=0
while [ "$(probes_done "$T/ck.json")" -lt 5 ]; do
  t=$((t + 1))
  if [ $t -gt 1500 ] || [ -z "$(squeue -h -j "$run1" -o %i 2>/dev/null)" ]; then
    fail "job $run1 ended or wrote no checkpoint before the signal"
    show_job "$run1"
    exit 1
  fi
  sleep 0.2
done
scancel --batch --signal=TERM "$run1"
echo "sent SIGTERM to the batch shell of job $run1 after $(probes_done "$T/ck.json") probes"
wait_jobs 300 "$ref" "$run1" || fail "timed out"
state=$(job_exit "$run1")
if [ "${state#*|}" != "3:0" ]; then
  fail "job $run1 ended $state, not with exit status 3"
  show_job "$run1"
fi
check_json "$NTK_RUNS/estimate-$run1/estimate.json" "d['interrupted']" "stopped job $run1" ||
  show_job "$run1"

run2=$(NTK_CHECKPOINT=$T/ck.json submit jobs/estimate.sbatch --job-name=stopped -- $est)
wait_jobs 300 "$run2" || fail "timed out"
[ "$(job_exit "$run2")" = "COMPLETED|0:0" ] || {
  fail "resumed job $run2 failed"
  show_job "$run2"
}
[ "$(job_exit "$ref")" = "COMPLETED|0:0" ] || {
  fail "reference job $ref failed"
  show_job "$ref"
}

python3 - "$NTK_RUNS/estimate-$ref/estimate.json" "$NTK_RUNS/estimate-$run1/estimate.json" \
  "$NTK_RUNS/estimate-$run2/estimate.json" <<'PYEOF' ||
import json, sys
ref, stop, res = (json.load(open(p)) for p in sys.argv[1:4])
c1, c2 = stop["checkpoint"], res["checkpoint"]
read = c2["resumed_trace_probes"] + c2["resumed_slq_probes"]
print(f"products: uninterrupted {ref['matvecs']}, stopped run {c1['matvecs_this_run']}, "
      f"resumed run {c2['matvecs_this_run']} ({read} probes read back)")
ok = read >= 5 and c2["matvecs_this_run"] < ref["matvecs"]
for k in ["trace", "frobenius", "effective_rank", "entropy"]:
    a, b = ref[k]["value"], res[k]["value"]
    print(f"{k}: uninterrupted {a:.17g}, stopped and resumed {b:.17g}")
    ok = ok and abs(a - b) <= 1e-12 * abs(a)
sys.exit(0 if ok else 1)
PYEOF
  fail "the resumed estimate differs from the uninterrupted one or redid finished probes"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "stopped by SIGTERM (batch shell), resumed: same estimates, finished probes not redone"
