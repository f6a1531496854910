#!/usr/bin/env python3
"""Killing a run with SIGKILL while it writes its result leaves the previous result file intact
(or no file, if there was none), never a partial one.

The run is stopped half-way through writing its temporary file: NTK_TEST_WRITE_PAUSE makes
NtkWriteFileAtomic pause after writing half of the bytes. The test waits until the temporary file
appears, kills every process of the job with SIGKILL, and checks the target: unchanged and valid
JSON when a previous result existed, absent otherwise. A run without the pause must then replace
the file with a complete new result.

Usage: atomic_kill.py --ntkspec PATH [--mpiexec PATH] [--np N]
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ARGS = ["info", "-ntk_data", "teacher", "-ntk_data_samples", "20", "-ntk_net_widths", "16,8,1"]


def environment(pause):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")
    env.pop("NTK_TEST_WRITE_PAUSE", None)
    if pause:
        env["NTK_TEST_WRITE_PAUSE"] = str(pause)
    return env


def run(cmd, pause=0):
    return subprocess.run(cmd, env=environment(pause), capture_output=True, text=True, timeout=120)


def kill_mid_write(cmd, target):
    """Start the run with a long pause, wait for its temporary file, SIGKILL the whole job."""
    p = subprocess.Popen(cmd, env=environment(60), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    try:
        while not glob.glob(target + ".tmp.*"):
            if p.poll() is not None:
                return "the run ended (status %s) before writing" % p.returncode
            if time.time() > deadline:
                return "no temporary file appeared within 90 s"
            time.sleep(0.05)
        time.sleep(0.2)
        partial = os.path.getsize(glob.glob(target + ".tmp.*")[0])
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the job's own process group: mpiexec and its ranks
        p.wait()
    return None if partial > 0 else "the temporary file was empty when the job was killed"


def check(ntkspec, mpiexec, np):
    failures = []
    with tempfile.TemporaryDirectory(prefix="ntk-atomic-") as folder:
        target = os.path.join(folder, "result.json")
        cmd = [mpiexec, "-n", str(np), ntkspec] + ARGS + ["-ntk_output", target]

        # 1. no previous file: a killed run leaves none
        why = kill_mid_write(cmd, target)
        if why:
            failures.append("first kill: " + why)
        if os.path.exists(target):
            failures.append("a killed first run left %s behind" % target)

        # 2. a complete result, then a killed rewrite: the old bytes must survive
        r = run(cmd)
        if r.returncode != 0:
            return failures + ["a normal run failed:\n" + r.stderr]
        with open(target, "rb") as f:
            before = f.read()
        json.loads(before)
        why = kill_mid_write(cmd, target)
        if why:
            failures.append("second kill: " + why)
        with open(target, "rb") as f:
            after = f.read()
        if after != before:
            failures.append("the killed rewrite changed %s (%d bytes, was %d)"
                            % (target, len(after), len(before)))
        json.loads(after)

        # 3. a run to the end replaces the file with a complete, different result
        r = run(cmd)
        if r.returncode != 0:
            failures.append("the final run failed:\n" + r.stderr)
        with open(target, "rb") as f:
            doc = json.loads(f.read())
        if "model" not in doc:
            failures.append("the final result lacks its 'model' entry")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ntkspec", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--np", type=int, default=2)
    args = ap.parse_args()
    failures = check(args.ntkspec, args.mpiexec, args.np)
    for f in failures:
        print("FAILED: " + f)
    if not failures:
        print("ok: a run killed in mid-write left the previous result or none")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
