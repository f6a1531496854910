# shellcheck shell=bash
# Shared by the SLURM tests (sourced): a private cluster that is stopped however the test ends,
# job submission from the checkout, waiting with a time limit, and checks of the results.
#
# The calling script sets NTKSPEC (the built executable) and NTK_REPO (the source checkout)
# before sourcing this file, then calls slurm_up.

SLURM_SH=$NTK_REPO/tests/slurm/local-slurm.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/ntk-slurm-test.XXXXXX")
chmod 0711 "$T" # munged wants every folder above its socket searchable by all
export NTK_RUNS=$T/runs NTKSPEC NTK_REPO
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Stop the daemons however the test ends; keep the folder only when asked (NTK_KEEP_SLURM_TEST).
slurm_cleanup() {
  "$SLURM_SH" stop "$T/state" || true
  if [ -n "${NTK_KEEP_SLURM_TEST:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}

slurm_up() {
  trap slurm_cleanup EXIT
  trap 'exit 130' INT TERM
  if ! "$SLURM_SH" start "$T/state"; then
    echo "FAIL: the local SLURM did not start (are slurm-wlm and munge installed?" \
      "scripts/setup-debian.sh --slurm installs them)"
    exit 1
  fi
  export SLURM_CONF=$T/state/slurm.conf
  mkdir -p "$T/out" "$NTK_RUNS"
}

# has_command NAME: whether this ntkspec build has the command.
has_command() { "$NTKSPEC" -help 2>/dev/null | grep -q "^  $1 "; }

# submit SCRIPT [SBATCH OPTIONS...] -- [SCRIPT ARGUMENTS...]: submit from the checkout at two
# tasks; print the job id.
submit() {
  local script=$1 opts=""
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    opts="$opts $1"
    shift
  done
  [ $# -gt 0 ] && shift
  (cd "$NTK_REPO" && sbatch --parsable --ntasks=2 --time=5 --output="$T/out/%x-%j.out" \
    $opts "$script" "$@")
}

# wait_jobs SECONDS ID...: wait until none of the jobs is queued or running (a job whose
# dependency failed counts as ended: it will never run).
wait_jobs() {
  local limit=$1 t=0 ids
  shift
  ids=$(echo "$@" | tr ' ' ',')
  while squeue -h -j "$ids" -o %r 2>/dev/null | grep -qv DependencyNeverSatisfied; do
    t=$((t + 1))
    if [ $t -gt "$limit" ]; then
      echo "FAIL: jobs $ids still queued or running after ${limit}s:"
      squeue
      return 1
    fi
    sleep 1
  done
}

# job_exit ID: the job's final state and exit code as reported by sacct from the completion log,
# e.g. COMPLETED|0:0.
job_exit() { sacct -c -n -P -j "$1" -o state,exitcode 2>/dev/null | head -n 1; }

# show_job ID: the job's standard output, for the log of a failed test.
show_job() {
  for f in "$T"/out/*-"$1".out "$T"/out/*-"$1"_*.out; do
    [ -f "$f" ] || continue
    echo "---- $f"
    cat "$f"
  done
}

# check_json FILE PYTHON-EXPRESSION DESCRIPTION: FILE is valid JSON and the expression, with the
# document as `d`, is true.
check_json() {
  if [ ! -f "$1" ]; then
    fail "$3: no result file $1"
    return 1
  fi
  if ! python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; then
    fail "$3: $1 is not valid JSON or does not satisfy: $2"
    return 1
  fi
}
