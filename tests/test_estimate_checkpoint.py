#!/usr/bin/env python3
"""An estimate stopped and resumed ends with the estimate of an uninterrupted run, without
redoing the probes it had finished: ntkspec estimate with -ntk_estimate_checkpoint is stopped
twice by the -ntk_estimate_stop_after hook (which raises the same flag as SIGTERM), once in the
trace phase and once in SLQ, each time exiting with status 3; run again it finishes, and every
estimate equals the uninterrupted one to 1e-12 relative. The products computed over the three
runs are the uninterrupted count plus at most the redone sketch and deflation of each rerun. A
checkpoint written with other settings is refused with a message naming both.

    test_estimate_checkpoint.py CASE NTKSPEC MPIEXEC RANKS    (CASE: hutchpp or onesided)
"""
import json
import os
import subprocess
import sys
import tempfile

case, ntkspec, mpiexec, ranks = sys.argv[1:5]
common = ["-ntk_data", "fashion-mnist:train", "-ntk_data_samples", "40",
          "-ntk_net_widths", "784,16,10", "-ntk_estimate_probes", "10",
          "-ntk_estimate_lanczos_steps", "12", "-ntk_estimate_deflate", "4",
          "-ntk_estimate_deflate_steps", "20", "-ntk_quiet"]
if case == "onesided":
    common += ["-ntk_estimate_trace", "onesided", "-ntk_estimate_probe", "gaussian"]
sketch = 0 if case == "onesided" else 2 * 10  # Hutch++ sketch: at most 2k products again
deflation = 20
keys = ["trace", "frobenius", "effective_rank", "entropy", "entropy_normalized",
        "near_zero_mass"]
failures = []


def run(out, *extra):
    cmd = [mpiexec, "-n", ranks, ntkspec, "estimate"] + common + ["-ntk_output", out]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


with tempfile.TemporaryDirectory() as tmp:
    ck = os.path.join(tmp, "ck.json")
    path = lambda name: os.path.join(tmp, name)
    rc, log = run(path("ref.json"))
    if rc != 0:
        sys.exit(f"uninterrupted run failed ({rc}):\n{log}")
    ref = json.load(open(path("ref.json")))

    # stop after 6 probes (inside the trace), then after 12 more (inside SLQ), then finish
    runs = [("r1.json", ["-ntk_estimate_stop_after", "6"], 3),
            ("r2.json", ["-ntk_estimate_stop_after", "12"], 3),
            ("r3.json", [], 0)]
    docs = []
    for name, extra, want in runs:
        rc, log = run(path(name), "-ntk_estimate_checkpoint", ck, *extra)
        if rc != want:
            sys.exit(f"{name}: exit status {rc}, expected {want}:\n{log}")
        docs.append(json.load(open(path(name))))
    c1, c2, c3 = (d["checkpoint"] for d in docs)
    print("products per run:", [c["matvecs_this_run"] for c in (c1, c2, c3)],
          "uninterrupted:", ref["matvecs"])
    print("probes read back:", [(c["resumed_trace_probes"], c["resumed_slq_probes"])
                                for c in (c1, c2, c3)])
    if not (c1["interrupted"] and c2["interrupted"] and not c3["interrupted"]):
        failures.append("the first two runs should be interrupted, the last one not")
    if c2["resumed_trace_probes"] != 6 or c2["resumed_slq_probes"] != 0:
        failures.append("the second run did not read back the 6 trace probes of the first")
    if c3["resumed_slq_probes"] < 1 or c3["resumed_trace_probes"] != 10:
        failures.append("the third run did not read back the SLQ probes of the second")

    # nothing finished is redone: only the sketch and the deflation are computed again
    total = sum(c["matvecs_this_run"] for c in (c1, c2, c3))
    if not ref["matvecs"] <= total <= ref["matvecs"] + sketch + 2 * deflation:
        failures.append(f"{total} products over three runs, uninterrupted {ref['matvecs']}"
                        f" (allowed overhead {sketch + 2 * deflation})")
    res = docs[2]
    for k in keys:
        a, b = ref[k]["value"], res[k]["value"]
        print(f"{k}: uninterrupted {a:.17g}, resumed {b:.17g}")
        if abs(a - b) > 1e-12 * max(abs(a), 1e-300):
            failures.append(f"{k} differs: {a!r} vs {b!r}")
        if ref[k].get("matvecs") != res[k].get("matvecs"):
            failures.append(f"{k}: product counts differ")

    # a rerun of a finished run reads everything back and recomputes only the deflation
    rc, log = run(path("r4.json"), "-ntk_estimate_checkpoint", ck)
    c4 = json.load(open(path("r4.json")))["checkpoint"] if rc == 0 else {}
    if rc != 0 or c4.get("matvecs_this_run", -1) > deflation:
        failures.append(f"rerun of a finished run: status {rc}, {c4}")

    # another seed must not continue these probes
    rc, log = run(path("bad.json"), "-ntk_estimate_checkpoint", ck, "-ntk_estimate_seed", "7")
    if rc == 0 or "was written with" not in log or "seed 7" not in log:
        failures.append(f"a checkpoint of another seed was not refused clearly:\n{log}")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
