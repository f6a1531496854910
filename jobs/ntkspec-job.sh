# shellcheck shell=bash
# Shared by the batch scripts in jobs/ (sourced, not run): find ntkspec and the workflow's
# options file, make the job's output folder, print the job's metadata and the exact command,
# then run the command under srun and pass on the signals SLURM sends before a time limit.
#
# Submit from the top of the ntkspec checkout (the scripts find everything from
# $SLURM_SUBMIT_DIR), or point these variables elsewhere:
#   NTK_REPO     the ntkspec checkout          (default: $SLURM_SUBMIT_DIR)
#   NTKSPEC      the ntkspec executable        (default: $NTK_REPO/build/apps/ntkspec)
#   NTK_RUNS     where output folders go       (default: $NTK_REPO/runs)
#   NTK_OPTIONS  the options file              (default: $NTK_REPO/jobs/options/<workflow>.opts)
#   NTK_LAUNCH   the parallel launcher         (default: srun --mpi=pmix)
# Arguments given after the script name on the sbatch line are appended to the ntkspec command
# and override the options file, e.g. `sbatch jobs/spectrum.sbatch -ntk_spectrum_nev 20`.
#
# Launchers: `srun --mpi=pmix` starts one ntkspec rank per task through PMIx. Open MPI's
# `mpirun` works inside the allocation as well (it reads the task layout from SLURM):
#   NTK_LAUNCH=mpirun sbatch jobs/spectrum.sbatch
#
# Signals: ntkspec train checkpoints at the end of its current step on SIGTERM or SIGUSR1 and
# exits with status 3. Neither launcher may be sent SIGTERM itself: srun answers it by killing
# the step at once, mpirun by aborting the ranks. So a signal that reaches the batch shell
# (`scancel --batch --signal=TERM`, `#SBATCH --signal=B:TERM@120`) is passed on to the ranks
# through SLURM (`scancel --signal=TERM <job>` reaches every step but not the batch shell) under
# srun, and as SIGUSR1, which mpirun forwards, under mpirun. `#SBATCH --signal=TERM@120` (no B:)
# reaches the ranks directly and works as well; `scancel --full` does not, since it also hits srun.

# ntk_job_setup WORKFLOW: set NTK_OUT, NTK_JOBID, NTKSPEC and NTK_OPTIONS; print the metadata.
ntk_job_setup() {
  NTK_WORKFLOW=$1
  NTK_REPO=${NTK_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
  NTKSPEC=${NTKSPEC:-$NTK_REPO/build/apps/ntkspec}
  NTK_RUNS=${NTK_RUNS:-$NTK_REPO/runs}
  NTK_OPTIONS=${NTK_OPTIONS:-$NTK_REPO/jobs/options/$NTK_WORKFLOW.opts}
  NTK_LAUNCH=${NTK_LAUNCH:-srun --mpi=pmix}
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    NTK_JOBID=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
  else
    NTK_JOBID=${SLURM_JOB_ID:-interactive-$$}
  fi
  NTK_OUT=${NTK_OUT:-$NTK_RUNS/$NTK_WORKFLOW-$NTK_JOBID}
  # One BLAS thread per rank: the ranks already fill the cores SLURM gave the job.
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}

  if [ ! -x "$NTKSPEC" ]; then
    echo "ntkspec-job: no executable ntkspec at '$NTKSPEC' (build it, or set NTKSPEC)" >&2
    exit 2
  fi
  if [ ! -r "$NTK_OPTIONS" ]; then
    echo "ntkspec-job: cannot read the options file '$NTK_OPTIONS' (set NTK_OPTIONS)" >&2
    exit 2
  fi
  mkdir -p "$NTK_OUT"
  cp "$NTK_OPTIONS" "$NTK_OUT/"

  local rev="unknown"
  if command -v git >/dev/null 2>&1 && git -C "$NTK_REPO" rev-parse HEAD >/dev/null 2>&1; then
    rev=$(git -C "$NTK_REPO" rev-parse HEAD)
    git -C "$NTK_REPO" diff --quiet HEAD -- 2>/dev/null || rev="$rev (with local changes)"
  fi
  {
    echo "workflow:     $NTK_WORKFLOW"
    echo "job id:       $NTK_JOBID (name ${SLURM_JOB_NAME:-none})"
    echo "nodes:        ${SLURM_JOB_NUM_NODES:-1} (${SLURM_JOB_NODELIST:-$(hostname -s)})"
    echo "tasks:        ${SLURM_NTASKS:-1}, cpus per task ${SLURM_CPUS_PER_TASK:-1}"
    echo "start:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git revision: $rev"
    echo "ntkspec:      $NTKSPEC"
    echo "options file: $NTK_OPTIONS"
    echo "output:       $NTK_OUT"
  } | tee "$NTK_OUT/job.txt"
}

# ntk_job_forward SIGNAL: pass a signal the batch shell received on to the ntkspec ranks.
ntk_job_forward() {
  echo "signal:       SIG$1 at $(date -u +%Y-%m-%dT%H:%M:%SZ), passed on to the ranks" |
    tee -a "$NTK_OUT/job.txt"
  case "$NTK_LAUNCH" in
    srun*) scancel --signal="$1" "$SLURM_JOB_ID" ;;
    *) kill -USR1 "$NTK_LAUNCH_PID" 2>/dev/null ;;
  esac
}

# ntk_job_run COMMAND [OPTIONS...]: run `ntkspec COMMAND -options_file ... OPTIONS...` with the
# launcher, logging to $NTK_OUT/log_view.<jobid>.txt. SIGTERM, SIGUSR1 and SIGINT sent to the
# batch shell are passed on to the ranks (see above); the shell then waits for them to finish
# their step and exit. Returns ntkspec's exit status (3: checkpointed after a signal).
ntk_job_run() {
  local cmd=$1 pid rc
  shift
  set -- $NTK_LAUNCH "$NTKSPEC" "$cmd" -options_file "$NTK_OPTIONS" \
    -log_view ":$NTK_OUT/log_view.$NTK_JOBID.txt" "$@"
  echo "command:      $*" | tee -a "$NTK_OUT/job.txt"
  "$@" &
  pid=$!
  NTK_LAUNCH_PID=$pid
  trap 'ntk_job_forward TERM' TERM
  trap 'ntk_job_forward USR1' USR1
  trap 'ntk_job_forward INT' INT
  wait $pid
  rc=$?
  # A trapped signal ends `wait` early (status > 128) while the ranks are still finishing.
  while [ $rc -gt 128 ] && kill -0 $pid 2>/dev/null; do
    wait $pid
    rc=$?
  done
  trap - TERM USR1 INT
  echo "end:          $(date -u +%Y-%m-%dT%H:%M:%SZ), exit status $rc" | tee -a "$NTK_OUT/job.txt"
  return $rc
}
