#!/usr/bin/env python3
"""End-to-end checks of `ntkspec train` and `ntkspec sweep`, one property per case:

  resume     stopping at a checkpoint (-ntk_train_stop_after, exit status 3) and resuming ends at
             the same final loss as an uninterrupted run to 1e-10, with no duplicate CSV rows;
  signal     the same after a SIGTERM delivered while training (single process);
  ranks      1 and 2 ranks give the same tracked values over 100 steps to 1e-8 relative;
  frozen     frozen features keep the trained-parameter Tr K constant to 1e-12 and end at a higher
             loss than feature learning at the same width;
  position   the rho tracked at the last step equals `ntkspec position` on the final checkpoint
             to 1e-10 relative, and the loss falls;
  linearized the linearised model keeps Tr K constant, starts where the network starts, stays
             close to it for small steps, and resumes exactly from a checkpoint;
  sweep      the sweep writes a summary row per width, per-width CSV files and the plots.

usage: test_train.py <case> <ntkspec> <mpiexec>. Exit status 0 means the property holds.
"""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

NTK, MPIEXEC = sys.argv[2], sys.argv[3]
BASE = ["-ntk_data", "fashion-mnist:train", "-ntk_data_samples", "64", "-ntk_net_widths",
        "784,16,10", "-ntk_train_test_samples", "50", "-ntk_quiet"]


def run(args, np=1, expect=0, command="train"):
    """Run `ntkspec <command> args` on np ranks (np = 0: one process without mpiexec)."""
    args = [command] + args
    cmd = [MPIEXEC, "-n", str(np), NTK] + args if np else [NTK] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != expect:
        sys.exit("command %s exited with %d, expected %d\n%s%s"
                 % (" ".join(cmd), r.returncode, expect, r.stdout, r.stderr))
    return r


def load(path):
    with open(path) as f:
        return json.load(f)


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def check(cond, msg):
    if not cond:
        sys.exit("FAILED: " + msg)
    print("ok: " + msg)


def csv_steps(path):
    with open(path) as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def case_resume(d):
    args = BASE + ["-ntk_train_steps", "12", "-ntk_train_batch", "16",
                   "-ntk_train_track_every", "3",
                   "-ntk_train_lr", "3e-3"]
    run(args + ["-ntk_output", d + "/full.json"], np=2)
    part = args + ["-ntk_train_checkpoint", d + "/ck", "-ntk_train_csv", d + "/part.csv",
                   "-ntk_output", d + "/part.json"]
    run(part + ["-ntk_train_stop_after", "5"], np=2, expect=3)
    check(load(d + "/ck/manifest.json")["step"] == 5, "the checkpoint after the stop is at step 5")
    run(part, np=2)
    a, b = load(d + "/full.json")["final"], load(d + "/part.json")["final"]
    check(rel(a["train_loss"], b["train_loss"]) <= 1e-10,
          "resumed final loss %.17g equals uninterrupted %.17g"
          % (b["train_loss"], a["train_loss"]))
    steps = csv_steps(d + "/part.csv")
    check(steps == [0, 3, 6, 9, 12], "the resumed CSV has every tracked step once: %s" % steps)


def case_signal(d):
    args = BASE + ["-ntk_train_steps", "400", "-ntk_train_track_every", "1", "-ntk_train_lr",
                   "3e-3"]
    run(args + ["-ntk_output", d + "/full.json"], np=0)
    part = args + ["-ntk_train_checkpoint", d + "/ck", "-ntk_train_csv", d + "/part.csv",
                   "-ntk_output", d + "/part.json"]
    # a pause after every step keeps the run going until the signal lands, however fast the machine
    env = dict(os.environ, NTK_TEST_STEP_PAUSE="0.02")
    p = subprocess.Popen([NTK, "train"] + part, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    t0 = time.time()
    while time.time() - t0 < 60:
        if os.path.exists(d + "/part.csv") and len(open(d + "/part.csv").readlines()) > 3:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    p.wait()
    check(p.returncode == 3, "SIGTERM stops with exit status 3 (got %d)" % p.returncode)
    run(part, np=0)
    a, b = load(d + "/full.json")["final"], load(d + "/part.json")["final"]
    check(rel(a["train_loss"], b["train_loss"]) <= 1e-10, "final loss after SIGTERM and resume "
          "%.17g equals uninterrupted %.17g" % (b["train_loss"], a["train_loss"]))
    steps = csv_steps(d + "/part.csv")
    check(steps == list(range(401)), "the CSV holds steps 0..400 once each")


def case_ranks(d):
    args = BASE + ["-ntk_train_steps", "100", "-ntk_train_track_every", "10",
                   "-ntk_train_batch", "20"]
    run(args + ["-ntk_output", d + "/1.json"], np=1)
    run(args + ["-ntk_output", d + "/2.json"], np=2)
    s1, s2 = load(d + "/1.json")["series"], load(d + "/2.json")["series"]
    worst = 0.0
    for key in ["train_loss", "test_loss", "trace", "residual_norm_sq", "grad_norm_sq",
                "rho", "mu"]:
        for a, b in zip(s1[key], s2[key]):
            worst = max(worst, rel(a, b))
    check(s1["step"] == s2["step"] and len(s1["step"]) == 11, "both runs tracked the same steps")
    check(worst <= 1e-8, "1 and 2 ranks agree to %.2e relative (<= 1e-8)" % worst)


def case_frozen(d):
    args = BASE + ["-ntk_train_steps", "60", "-ntk_train_track_every", "10", "-ntk_train_lr",
                   "1e-2"]
    run(args + ["-ntk_train_frozen", "-ntk_output", d + "/frozen.json"], np=2)
    run(args + ["-ntk_output", d + "/full.json"], np=2)
    fz, fl = load(d + "/frozen.json"), load(d + "/full.json")
    tr = fz["series"]["trace"]
    spread = max(rel(t, tr[0]) for t in tr)
    check(spread <= 1e-12, "frozen-feature Tr K stays constant: spread %.2e <= 1e-12" % spread)
    check(fz["final"]["train_loss"] > fl["final"]["train_loss"],
          "frozen features end higher (%.6g) than feature learning (%.6g)"
          % (fz["final"]["train_loss"], fl["final"]["train_loss"]))
    check(rel(fl["series"]["trace"][0], fl["series"]["trace"][-1]) > 1e-6,
          "with feature learning Tr K moves")


def case_position(d):
    args = BASE + ["-ntk_train_steps", "40", "-ntk_train_track_every", "20", "-ntk_train_lr",
                   "3e-3"]
    run(args + ["-ntk_train_checkpoint", d + "/ck", "-ntk_output", d + "/t.json"], np=2)
    t = load(d + "/t.json")
    man = load(d + "/ck/manifest.json")
    data = BASE[:4]
    run(data + ["-ntk_net_file", d + "/ck/" + man["model"], "-ntk_loss", "xent",
                "-ntk_output", d + "/p.json", "-ntk_quiet"], np=2, command="position")
    p = load(d + "/p.json")
    fin = t["final"]
    check(rel(fin["rho"], p["rho"]) <= 1e-10, "tracked rho %.17g equals `position` on the "
          "checkpoint %.17g" % (fin["rho"], p["rho"]))
    check(rel(fin["trace"], p["trace"]) <= 1e-10, "tracked Tr K equals `position`'s")
    check(fin["train_loss"] < t["series"]["train_loss"][0], "the training loss falls")


def case_linearized(d):
    args = BASE + ["-ntk_train_steps", "10", "-ntk_train_track_every", "1",
                   "-ntk_train_optimizer", "sgd", "-ntk_train_momentum", "0",
                   "-ntk_train_lr", "1e-2"]
    run(args + ["-ntk_output", d + "/nl.json"], np=2)
    run(args + ["-ntk_train_linearized", "-ntk_output", d + "/lin.json"], np=2)
    nl, lin = load(d + "/nl.json")["series"], load(d + "/lin.json")["series"]
    tr = lin["trace"]
    check(max(rel(t, tr[0]) for t in tr) <= 1e-12, "the linearised kernel's trace is constant")
    check(rel(nl["train_loss"][0], lin["train_loss"][0]) <= 1e-14, "both start at the same loss")
    check(lin["train_loss"][-1] < lin["train_loss"][0], "the linearised loss falls")
    gap = abs(lin["train_loss"][1] - nl["train_loss"][1])
    move = abs(nl["train_loss"][1] - nl["train_loss"][0])
    check(gap <= 1e-2 * move, "after one small step the models differ by %.2e, the loss moved "
          "%.2e" % (gap, move))
    part = args + ["-ntk_train_linearized", "-ntk_train_checkpoint", d + "/ck",
                   "-ntk_output", d + "/part.json"]
    run(part + ["-ntk_train_stop_after", "4"], np=2, expect=3)
    run(part, np=2)
    a, b = load(d + "/lin.json")["final"], load(d + "/part.json")["final"]
    check(rel(a["train_loss"], b["train_loss"]) <= 1e-10, "linearised resume ends at the same loss")
    check(rel(a["test_loss"], b["test_loss"]) <= 1e-10, "and at the same test loss")


def case_sweep(d):
    run(BASE[:4] + ["-ntk_sweep_widths", "4,8", "-ntk_sweep_depth", "1",
                    "-ntk_sweep_dir", d + "/sw", "-ntk_train_steps", "10",
                    "-ntk_train_track_every", "5", "-ntk_train_test_samples", "20",
                    "-ntk_quiet"], np=2, command="sweep")
    s = load(d + "/sw/sweep.json")
    check([r["width"] for r in s["widths"]] == [4, 8], "one summary row per width")
    check(all(math.isfinite(r["rho_min"]) and r["rho_min"] > 0 for r in s["widths"]),
          "min rho is positive and finite")
    for w in (4, 8):
        check(csv_steps(d + "/sw/width-%d.csv" % w) == [0, 5, 10], "width %d CSV complete" % w)
    for name in ("rho", "loss", "trace"):
        check(os.path.exists(s["plots"][name]), "plot %s written" % s["plots"][name])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        globals()["case_" + sys.argv[1]](tmp)
