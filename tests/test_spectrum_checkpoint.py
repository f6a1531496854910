#!/usr/bin/env python3
"""A spectrum solve stopped and resumed ends with the eigenvalues of an uninterrupted one, in
fewer products than the uninterrupted run: ntkspec spectrum with -ntk_spectrum_checkpoint is
stopped by the -ntk_spectrum_stop_after hook (which raises the same flag as SIGTERM), once inside
the tail solve and once inside the leading solve, each time exiting with status 3 and leaving the
checkpoint and no temporary file; run again, it reports checkpoint.read, the leading and tail
eigenvalues equal the uninterrupted ones to 1e-10 relative, and a run resumed inside the tail
computes fewer products than the whole uninterrupted run. A checkpoint written with other
settings is refused with a message naming both. Periodic checkpoints
(-ntk_spectrum_checkpoint_every) leave the eigenvalues bit for bit those of a run without them
and leave one vector file, the one the JSON's generation names; a run killed with SIGKILL at
whatever moment after its first periodic write resumes to the uninterrupted eigenvalues, and
one killed inside a tail basis as wide as the kernel (no restart to stop at) resumes without
solving the leading phase again, which was saved as soon as it was done.
Damaged checkpoints (another kernel scale, values out of range, members of the wrong JSON type,
truncated or foreign vector files) are refused with a message naming the problem, never used and
never crashing.

    test_spectrum_checkpoint.py NTKSPEC MPIEXEC RANKS
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ntkspec, mpiexec, ranks = sys.argv[1:4]
# NC = 600 on the output side; a tail basis of 100 makes the tail restart about a dozen times,
# and -eps_ncv 11 makes the leading solve restart, so both phases have points to stop at
common = ["-ntk_data", "fashion-mnist:train", "-ntk_data_samples", "60",
          "-ntk_net_widths", "784,16,10", "-ntk_net_activation", "tanh",
          "-ntk_spectrum_nev", "5", "-ntk_spectrum_tail", "3", "-ntk_spectrum_tail_ncv", "100",
          "-eps_ncv", "11", "-ntk_quiet"]
failures = []


def run(out, *extra):
    cmd = [mpiexec, "-n", ranks, ntkspec, "spectrum"] + common + ["-ntk_output", out]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def vector_file(ck, saved):
    """The vector file a checkpoint names: <ck>.<generation mod 2>.vec (<ck>.vec for 0)."""
    g = saved.get("generation", 0)
    return f"{ck}.vec" if g == 0 else f"{ck}.{g % 2}.vec"


def kill_once_written(cmd, ck):
    """Start cmd and SIGKILL the whole job as soon as the checkpoint ck exists (or let it end)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and not os.path.exists(ck) and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def values(doc):
    return [p["value"] for p in doc["leading"]] + [p["value"] for p in doc["tail"]]


with tempfile.TemporaryDirectory() as tmp:
    path = lambda name: os.path.join(tmp, name)
    rc, log = run(path("ref.json"))
    if rc != 0:
        sys.exit(f"uninterrupted run failed ({rc}):\n{log}")
    ref = json.load(open(path("ref.json")))
    total = ref["checkpoint"]["products_this_run"]
    lead_cost = ref["matvecs_by_phase"]["leading"]

    # (stop after this many products, phase expected in the checkpoint)
    for stop, phase in [(lead_cost + 400, "tail"), (5, "leading")]:
        ck = path(f"ck_{phase}.json")
        rc, log = run(path("r1.json"), "-ntk_spectrum_checkpoint", ck,
                      "-ntk_spectrum_stop_after", str(stop))
        if rc != 3:
            failures.append(f"{phase}: stopped run exited with {rc}, expected 3:\n{log}")
            continue
        saved = json.load(open(ck))
        left = [f for f in os.listdir(tmp) if ".tmp" in f or f.endswith(".info")]
        if saved["phase"] != phase or not os.path.exists(vector_file(ck, saved)) or left:
            failures.append(f"{phase}: checkpoint phase {saved['phase']}, files {left}")
        first = json.load(open(path("r1.json")))["checkpoint"]["products_this_run"]
        rc, log = run(path("r2.json"), "-ntk_spectrum_checkpoint", ck)
        if rc != 0:
            failures.append(f"{phase}: resumed run exited with {rc}:\n{log}")
            continue
        res = json.load(open(path("r2.json")))
        again = res["checkpoint"]["products_this_run"]
        print(f"{phase}: uninterrupted {total} products; stopped after {first}, "
              f"resumed with {again} ({res['matvecs_by_phase']})")
        if not res["checkpoint"]["read"]:
            failures.append(f"{phase}: the resumed run did not read the checkpoint")
        a, b = values(ref), values(res)
        if len(a) != len(b):
            failures.append(f"{phase}: {len(b)} pairs after resume, {len(a)} uninterrupted")
        for x, y in zip(a, b):
            if abs(x - y) > 1e-10 * abs(x):
                failures.append(f"{phase}: eigenvalue {y!r} differs from {x!r}")
        if phase == "tail" and not again < total:
            failures.append(f"tail: resumed run took {again} products, uninterrupted {total}")
        if phase == "tail" and res["matvecs_by_phase"]["leading"] != 0:
            failures.append("tail: the finished leading phase was solved again")

    # other settings must not continue this state
    rc, log = run(path("bad.json"), "-ntk_spectrum_checkpoint", path("ck_tail.json"),
                  "-ntk_spectrum_nev", "4")
    if rc == 0 or "was written with" not in log or "nev 4" not in log:
        failures.append(f"a checkpoint of other settings was not refused clearly:\n{log}")

    # damaged checkpoints: (what, change to the JSON, change to the vector file, message)
    def damage(doc, key, value):
        doc = dict(doc)
        doc[key] = value
        return doc

    good = json.load(open(path("ck_tail.json")))
    vec = vector_file(path("ck_tail.json"), good)
    size = os.path.getsize(vec)
    cases = [
        ("scale", None, None, "was written with", ["-ntk_kernel_scale", "2"]),
        ("negative value", damage(good, "leading", [-5.0] + good["leading"][1:]), None,
         "leading value 1", []),
        ("lambda_max", damage(good, "lambda_max", -1), None, "lambda_max > 0", []),
        ("leading type", damage(good, "leading", "x"), None,
         "leading must be an array, not string", []),
        ("ritz type", damage(good, "ritz_vectors", "x"), None,
         "ritz_vectors must be an integer, not string", []),
        ("ritz count", damage(good, "ritz_vectors", 10**12), None, "Ritz vectors (0 to", []),
        ("phase", damage(good, "phase", 7), None, "phase must be a string, not int", []),
        ("truncated vectors", good, size // 2, "is incomplete", []),
        ("foreign vectors", good, -1, "is not a vector of length", []),
        ("not-a-number vectors", good, -2, "has norm nan", []),
    ]
    for what, doc, cut, message, extra in cases:
        bad = path("bad.json")
        for f in os.listdir(tmp):
            if f.startswith("bad.json"):
                os.remove(path(f))
        json.dump(doc or good, open(bad, "w"))
        badvec = vector_file(bad, doc or good)
        shutil.copy(vec, badvec)
        if cut is not None and cut >= 0:
            os.truncate(badvec, cut)
        elif cut == -1:  # the headers overwritten
            with open(badvec, "r+b") as f:
                f.write(b"\x01" * 64)
        elif cut == -2:  # the entries of the first vector made NaN, its header kept
            with open(badvec, "r+b") as f:
                f.seek(8)
                f.write(b"\x7f\xf8" + b"\x00" * 6)
        rc, log = run(path("bad-out.json"), "-ntk_spectrum_checkpoint", bad, *extra)
        if rc in (0, 134, -6, -11) or message not in log or "PETSC ERROR" in log:
            failures.append(f"damaged checkpoint ({what}): exit {rc}, expected '{message}':\n{log}")

    # periodic writes do not touch the solve, and leave one vector file
    ck = path("ck_every.json")
    rc, log = run(path("every.json"), "-ntk_spectrum_checkpoint", ck,
                  "-ntk_spectrum_checkpoint_every", "40")
    if rc != 0:
        failures.append(f"periodic: run exited with {rc}:\n{log}")
    else:
        saved, res = json.load(open(ck)), json.load(open(path("every.json")))
        vecs = sorted(f for f in os.listdir(tmp) if f.startswith("ck_every.json."))
        print(f"periodic: generation {saved.get('generation')}, files {vecs}")
        if values(res) != values(ref):
            failures.append(f"periodic: eigenvalues {values(res)} differ from {values(ref)}")
        if res["checkpoint"]["writes_this_run"] != saved.get("generation"):
            failures.append(f"periodic: writes_this_run {res['checkpoint']['writes_this_run']}")
        if saved.get("generation", 0) < 2 or vecs != [os.path.basename(vector_file(ck, saved))]:
            failures.append(f"periodic: generation {saved.get('generation')}, files {vecs}")

    # periodic writes without a file are refused, naming the option
    rc, log = run(path("nofile.json"), "-ntk_spectrum_checkpoint_every", "5")
    if rc == 0 or "-ntk_spectrum_checkpoint_every needs a checkpoint file" not in log:
        failures.append(f"-ntk_spectrum_checkpoint_every without a file was not refused:\n{log}")

    # killed without warning after a periodic write: the same command resumes
    ck = path("ck_kill.json")
    cmd = [mpiexec, "-n", ranks, ntkspec, "spectrum"] + common + [
        "-ntk_output", path("k1.json"), "-ntk_spectrum_checkpoint", ck,
        "-ntk_spectrum_checkpoint_every", "20"]
    kill_once_written(cmd, ck)
    if not os.path.exists(ck):
        failures.append("kill: no periodic checkpoint was written")
    else:
        rc, log = run(path("k2.json"), "-ntk_spectrum_checkpoint", ck)
        res = json.load(open(path("k2.json"))) if rc == 0 else None
        if rc != 0 or not res["checkpoint"]["read"]:
            failures.append(f"kill: resumed run exited with {rc}:\n{log}")
        else:
            print(f"kill: resumed with {res['checkpoint']['products_this_run']} products")
            for x, y in zip(values(ref), values(res)):
                if abs(x - y) > 1e-10 * abs(x):
                    failures.append(f"kill: eigenvalue {y!r} differs from {x!r}")
            if len(values(res)) != len(values(ref)):
                failures.append("kill: the resumed run has another number of pairs")

    # killed inside a single-restart tail: the leading phase was saved when it ended
    ck = path("ck_wide.json")
    wide = [a if a != "100" else "600" for a in common]  # tail basis = the kernel dimension
    cmd = [mpiexec, "-n", ranks, ntkspec, "spectrum"] + wide + [
        "-ntk_output", path("w1.json"), "-ntk_spectrum_checkpoint", ck]
    kill_once_written(cmd, ck)
    p = subprocess.run([mpiexec, "-n", ranks, ntkspec, "spectrum"] + wide + [
        "-ntk_output", path("w2.json"), "-ntk_spectrum_checkpoint", ck],
        capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        failures.append(f"wide tail: resumed run exited with {p.returncode}:\n{p.stderr}")
    else:
        res = json.load(open(path("w2.json")))
        print(f"wide tail: resumed with {res['matvecs_by_phase']}")
        if not res["checkpoint"]["read"] or res["matvecs_by_phase"]["leading"] != 0:
            failures.append(f"wide tail: the leading phase was not taken from the checkpoint")
        for x, y in zip(values(ref)[:5], values(res)[:5]):
            if abs(x - y) > 1e-10 * abs(x):
                failures.append(f"wide tail: leading eigenvalue {y!r} differs from {x!r}")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
