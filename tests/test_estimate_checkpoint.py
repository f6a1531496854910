#!/usr/bin/env python3
"""CASE hutchpp or onesided: an estimate stopped and resumed ends with the estimate of an
uninterrupted run, without redoing the probes it had finished: ntkspec estimate with
-ntk_estimate_checkpoint is stopped twice by the -ntk_estimate_stop_after hook (which raises the
same flag as SIGTERM), once in the trace phase and once in SLQ, each time exiting with status 3;
run again it finishes, and every estimate equals the uninterrupted one to 1e-12 relative. The
products computed over the three runs are the uninterrupted count plus at most the redone sketch
and deflation of each rerun. A checkpoint written with other settings is refused with a message
naming both.

CASE refusals: what cannot be resumed is refused, on every rank, with a message naming the cause
and a non-zero exit status (never a crash, never a result from stale or damaged probes): a
checkpoint of another kernel scale (down to the last of 17 digits) or kernel variant; a checkpoint
with a field of the wrong JSON type, a non-finite or out-of-range number, more samples than the
settings take, or a `complete` flag its counts contradict. The unmodified checkpoints resume.
Budgets too small for two probes are refused with the minimum and larger ones are never exceeded;
too few deflation steps for the deflated pairs are refused; position names its Lanczos option.

    test_estimate_checkpoint.py CASE NTKSPEC MPIEXEC RANKS    (CASE: hutchpp, onesided, refusals)
"""
import copy
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


def run(out, *extra, command="estimate", base=None):
    cmd = [mpiexec, "-n", ranks, ntkspec, command] + (common if base is None else base)
    cmd += ["-ntk_output", out] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def resume_case(tmp):
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



# CASE refusals: a small teacher problem, so that each of the many runs takes a moment
teacher = ["-ntk_data", "teacher", "-ntk_data_samples", "200", "-ntk_net_widths", "16,32,1",
           "-ntk_estimate_probes", "10", "-ntk_estimate_lanczos_steps", "12",
           "-ntk_estimate_deflate", "4", "-ntk_estimate_deflate_steps", "20", "-ntk_quiet"]


def refused(what, rc, log, *needles):
    """A refusal: non-zero status, neither interrupted (3) nor an abort, naming the cause."""
    if rc in (0, 3) or rc < 0 or rc > 128:
        failures.append(f"{what}: exit status {rc}, expected a refusal:\n{log}")
    elif not all(n in log for n in needles):
        failures.append(f"{what}: the message does not name {needles}:\n{log}")


def checkpoint(tmp, name, *extra):
    """A checkpoint of the teacher problem: stopped (by -ntk_estimate_stop_after) or finished."""
    ck = os.path.join(tmp, name)
    rc, log = run(os.path.join(tmp, "out.json"), "-ntk_estimate_checkpoint", ck, *extra,
                  base=teacher)
    want = 3 if "-ntk_estimate_stop_after" in extra else 0
    if rc != want:
        sys.exit(f"writing {name}: exit status {rc}, expected {want}:\n{log}")
    return ck, json.load(open(ck))


def scale_refusals(tmp):
    """Every probe result is proportional to the kernel scale: another scale is other probes."""
    ck, _ = checkpoint(tmp, "trace.json", "-ntk_estimate_stop_after", "4")
    out = os.path.join(tmp, "out.json")
    rc, log = run(out, "-ntk_estimate_checkpoint", ck, "-ntk_kernel_scale", "2", base=teacher)
    refused("stopped with scale 1, resumed with scale 2", rc, log, "was written with",
            "scale 1,", "scale 2,")
    done, _ = checkpoint(tmp, "done.json")
    for extra, needle in [(["-ntk_kernel_scale", "1/N"], "scale 0.0050000000000000001,"),
                          (["-ntk_kernel_scale", "1.0000000000000002"], "scale 1.0000000000000002"),
                          (["-ntk_kernel", "averaged"], "kernel averaged,")]:
        rc, log = run(out, "-ntk_estimate_checkpoint", done, *extra, base=teacher)
        refused(f"finished with scale 1, rerun with {extra}", rc, log, "was written with", needle)


def damaged(name, edit, *needles):
    return (name, edit, ("is malformed",) + needles)


def setter(path, value):
    """An edit setting doc[path[0]][path[1]]... to value."""
    def edit(doc):
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value
    return edit


def malformed_refusals(tmp):
    """Damaged checkpoints are refused naming the field; the undamaged ones resume."""
    mid, doc = checkpoint(tmp, "slq.json", "-ntk_estimate_stop_after", "13")
    if not (doc["trace"]["complete"] and len(doc["slq"]["probes"]) == 3):
        sys.exit(f"the checkpoint stopped inside SLQ has another shape: {doc['trace']}")
    p0 = ["slq", "probes", 0]
    edits = [
        # wrong JSON types (these aborted inside json-c)
        damaged("string samples", setter(["trace", "samples"], "x"), "trace.samples"),
        damaged("string SLQ probes", setter(["slq", "probes"], "x"), "slq.probes"),
        damaged("string sample", setter(["trace", "samples", 1], "3.0"), "trace.samples[1]"),
        damaged("numeric complete", setter(["trace", "complete"], 1), "trace.complete"),
        damaged("string sketch trace", setter(["trace", "sketch_trace"], "x"),
                "trace.sketch_trace"),
        damaged("fractional sketch count", setter(["trace", "sketch_matvecs"], 10.5),
                "trace.sketch_matvecs"),
        damaged("missing sketch count", lambda d: d["trace"].pop("sketch_matvecs"),
                "trace.sketch_matvecs is missing"),
        damaged("string deflated", setter(["slq", "deflated"], "4"), "slq.deflated"),
        damaged("number as probe", setter(p0, 3), "slq.probes[0] must be an object, not int"),
        damaged("object as nodes", setter(p0 + ["nodes"], {}), "slq.probes[0].nodes"),
        damaged("string weight", setter(p0 + ["weights", 1], "x"), "slq.probes[0].weights[1]"),
        damaged("null kz2", setter(p0 + ["kz2"], None), "slq.probes[0].kz2 must be a number, not null"),
        damaged("array as trace", setter(["trace"], []), "trace must be an object, not array"),
        damaged("number as slq", setter(["slq"], 5), "slq must be an object, not int"),
        damaged("numeric settings", setter(["settings"], 5), "settings"),
        damaged("string norm", setter(["parameter_norm"], "x"), "parameter_norm"),
        # numbers that cannot be, counts the settings do not take, contradicting flags
        damaged("NaN sample", setter(["trace", "samples", 0], float("nan")),
                "trace.samples[0] is NaN"),
        damaged("infinite node", setter(p0 + ["nodes", 0], float("inf")),
                "slq.probes[0].nodes[0] is infinite"),
        damaged("complete without samples", setter(["trace", "samples"], []), "trace.complete"),
        damaged("1500 samples for 10", setter(["trace", "samples"], [1.0] * 1500),
                "trace.samples holds 1500 values", "at most 10"),
        damaged("sketch trace 1e300", setter(["trace", "sketch_trace"], 1e300),
                "trace.sketch_trace", "above the exact trace"),
        damaged("negative sketch trace", setter(["trace", "sketch_trace"], -1.0),
                "trace.sketch_trace"),
        damaged("negative sketch count", setter(["trace", "sketch_matvecs"], -60),
                "trace.sketch_matvecs is -60"),
        damaged("negative sample", setter(["trace", "samples", 2], -5.0), "trace.samples[2]"),
        damaged("negative |Kz|^2", setter(p0 + ["kz2"], -1.0), "slq.probes[0].kz2"),
        damaged("negative weight", setter(p0 + ["weights", 0], -0.5), "slq.probes[0].weights[0]"),
        damaged("weights above |z|^2", setter(p0 + ["weights", 0], 1e30),
                "slq.probes[0].weights sums to"),
        damaged("deflated atom of weight 2", setter(p0 + ["weights", -1], 2.0),
                "slq.probes[0].weights["),
        damaged("more deflated pairs than asked", setter(["slq", "deflated"], 99),
                "slq.deflated is 99"),
        damaged("no Lanczos node", lambda d: [d["slq"]["probes"][0][k].__setitem__(
            slice(None), d["slq"]["probes"][0][k][-4:]) for k in ("nodes", "weights")],
            "slq.probes[0].nodes holds 4 nodes"),
        damaged("SLQ probes after an unfinished trace", setter(["trace", "complete"], False),
                "slq.probes holds 3 probes"),
        damaged("1000 SLQ probes for 10", lambda d: d["slq"]["probes"].extend(
            d["slq"]["probes"] * 400), "slq.probes holds 1203 values"),
    ]
    out = os.path.join(tmp, "out.json")
    for name, edit, needles in edits:
        bad = copy.deepcopy(doc)
        edit(bad)
        path = os.path.join(tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(bad, f)
        rc, log = run(out, "-ntk_estimate_checkpoint", path, base=teacher)
        refused(name, rc, log, *needles)
    # the undamaged checkpoints resume: stopped in the trace, stopped in SLQ, finished
    mid_trace, _ = checkpoint(tmp, "trace2.json", "-ntk_estimate_stop_after", "4")
    for ck in (mid_trace, mid, checkpoint(tmp, "done2.json")[0]):
        rc, log = run(out, "-ntk_estimate_checkpoint", ck, base=teacher)
        if rc != 0:
            failures.append(f"an undamaged checkpoint {os.path.basename(ck)} was refused:\n{log}")


def option_refusals(tmp):
    """Budgets below two probes are refused with the minimum; larger ones are hard caps."""
    out = os.path.join(tmp, "out.json")
    tiny = teacher + ["-ntk_estimate_deflate", "0", "-ntk_estimate_lanczos_steps", "2"]
    rc, log = run(out, "-ntk_estimate_matvecs", "3", base=tiny)
    refused("budget 3 for Hutch++", rc, log, "-ntk_estimate_matvecs 3", "at least 4")
    rc, log = run(out, "-ntk_estimate_matvecs", "43", base=teacher)
    refused("budget 43 for SLQ with 20 deflation steps and 12-step probes", rc, log,
            "-ntk_estimate_matvecs 43", "at least 44")
    for base, budget in [(tiny, 4), (teacher, 44), (teacher, 100)]:
        rc, log = run(out, "-ntk_estimate_matvecs", str(budget), base=base)
        res = json.load(open(out)) if rc == 0 else {}
        spent = [res.get(k, {}).get("matvecs", budget + 1) for k in ("trace", "entropy")]
        print(f"budget {budget}: trace and SLQ products {spent}")
        if rc != 0 or max(spent) > budget:
            failures.append(f"budget {budget}: status {rc}, products {spent}:\n{log}")
    rc, log = run(out, "-ntk_estimate_deflate", "10", "-ntk_estimate_deflate_steps", "1",
                  base=teacher)
    refused("10 deflated pairs from 1 Lanczos step", rc, log, "-ntk_estimate_deflate_steps 1",
            "at least 20")
    rc, log = run(out, "-ntk_position_lanczos_steps", "0", command="position", base=teacher)
    refused("position with 0 Lanczos steps", rc, log, "-ntk_position_lanczos_steps 0")


with tempfile.TemporaryDirectory() as tmp:
    if case == "refusals":
        scale_refusals(tmp)
        malformed_refusals(tmp)
        option_refusals(tmp)
    else:
        resume_case(tmp)

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
