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
  sweep      the sweep writes a summary row per width, per-width CSV files and the plots;
  refuse     a resume under any other setting that decides the run (model, data, loss, kernel,
             optimiser hyperparameters, tracking) is refused with one error naming the setting,
             its old and its new value, and a resume under the same settings still runs;
  malformed  a manifest with a value of the wrong JSON type, a negative or fractional step, an
             earlier format, or an optimiser state that is not finite is refused with one error
             line and exit status 1, never an abort;
  messages   the stop and resume messages name -ntk_train_stop_after as the cause, and without a
             test set the progress and final lines print "-" for the test values;
  sweep_refuse  a zero width and an output folder that is a file or cannot be created are refused
             before any training with one error line naming the sweep option.

usage: test_train.py <case> <ntkspec> <mpiexec> [ranks]. Exit status 0 means the property holds.
"""
import csv
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

NTK, MPIEXEC = sys.argv[2], sys.argv[3]
NP = int(sys.argv[4]) if len(sys.argv) > 4 else 2
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


SMALL = ["-ntk_data", "fashion-mnist:train", "-ntk_data_samples", "24", "-ntk_net_widths",
         "784,6,10", "-ntk_train_test_samples", "12", "-ntk_train_steps", "8",
         "-ntk_train_track_every", "4", "-ntk_quiet"]


def refused(args, command="train"):
    """Run a command that must be refused: exit status 1, one error line, no abort or crash."""
    r = run(args, np=NP, expect=1, command=command)
    errors = [line for line in r.stderr.splitlines() if line.startswith("ntkspec: error:")]
    check(len(errors) == 1, "one error line on %d ranks (%d): %s" % (NP, len(errors), errors))
    for noise in ("Assertion", "MPI_ABORT", "ORTE_ERROR_LOG", "Could not create dir", "signal"):
        check(noise not in r.stderr, "no '%s' in the output" % noise)
    return r.stderr


def stopped_checkpoint(d):
    """A checkpoint stopped at step 4 of SMALL, kept as a pristine copy in d/ck.orig."""
    run(SMALL + ["-ntk_train_checkpoint", d + "/ck.orig", "-ntk_train_stop_after", "4"],
        np=NP, expect=3)
    return SMALL + ["-ntk_train_checkpoint", d + "/ck"]


def fresh_copy(d):
    shutil.rmtree(d + "/ck", ignore_errors=True)
    shutil.copytree(d + "/ck.orig", d + "/ck")


def case_refuse(d):
    args = stopped_checkpoint(d)
    changes = [(["-ntk_net_activation", "relu"], "activation: tanh in the checkpoint, relu"),
               (["-ntk_data", "fashion-mnist:test"], "data: fashion-mnist:train"),
               (["-ntk_data_subset_seed", "4"], "random 24 of 60000, seed 4"),
               (["-ntk_loss", "mse"], "loss: xent in the checkpoint, mse in this run"),
               (["-ntk_net_seed", "9"], "initial_parameters: seed 0 in the checkpoint, seed 9"),
               (["-ntk_kernel_scale", "1/N"], "kernel_scale: 1 in the checkpoint, 0.041666"),
               (["-ntk_kernel", "averaged"], "kernel: full in the checkpoint, averaged"),
               (["-ntk_net_sigma_w", "1.5"], "(-ntk_net_sigma_w)"),
               (["-ntk_train_lr", "1e-2"], "lr: 0.001 in the checkpoint, 0.01 in this run"),
               (["-ntk_train_test", "none"], "test_data: fashion-mnist:test"),
               (["-ntk_train_track_every", "2"], "track_every: 4 in the checkpoint, 2"),
               (["-ntk_train_optimizer", "sgd"], "optimizer: adam in the checkpoint, sgd"),
               (["-ntk_train_beta2", "0.99"], "beta2: 0.999 in the checkpoint, 0.99"),
               (["-ntk_net_widths", "784,7,10"], "widths: 784,6,10 in the checkpoint, 784,7,10")]
    for extra, want in changes:
        fresh_copy(d)
        err = refused(args + extra)
        check(want in err, "%s is refused naming '%s'" % (" ".join(extra), want))
    fresh_copy(d)
    err = refused(args + ["-ntk_loss", "mse", "-ntk_net_seed", "9"])
    check("loss:" in err and "initial_parameters:" in err, "two differences, both named")
    fresh_copy(d)
    run(args + ["-ntk_output", d + "/same.json", "-ntk_train_momentum", "0.5"], np=NP)
    check(load(d + "/same.json")["resumed_from"] == 4, "the same settings resume from step 4 (a "
          "momentum, which Adam does not use, may differ)")


def edit_manifest(d, path, value):
    """Set the manifest value at path (keys and list indices) in a fresh copy of the checkpoint."""
    fresh_copy(d)
    man = load(d + "/ck/manifest.json")
    obj = man
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    with open(d + "/ck/manifest.json", "w") as f:
        json.dump(man, f)


def case_malformed(d):
    args = stopped_checkpoint(d)
    edits = [(["history"], "x", "history must be an array"),
             (["history"], {}, "history must be an array"),
             (["history", 0], [], "history[0] must be an object"),
             (["history", 0, "step"], "0", "history[0].step must be an integer"),
             (["history", 0, "train_loss"], "1", "history[0].train_loss must be a number or null"),
             (["history", 0, "eigenvalues"], {}, "history[0].eigenvalues must be an array"),
             (["history", 0, "eigenvalues"], ["a"],
              "history[0].eigenvalues[0] must be a number or null"),
             (["step"], -5, "step -5 must be >= 0"),
             (["step"], 4.5, "step must be an integer"),
             (["step"], "4", "step must be an integer"),
             (["model"], 3, "model must be a string"),
             (["optimizer_state"], None, "optimizer_state must be a string"),
             (["written_after"], [], "written_after must be a string"),
             (["settings"], [], "settings must be an object"),
             (["settings", "lr"], "0.001", "settings.lr must be a number"),
             (["settings", "frozen"], 0, "settings.frozen must be true or false"),
             (["settings", "widths"], [784, 6, 10], "settings.widths must be a string"),
             (["settings", "loss"], None, "settings.loss must be a string")]
    for path, value, want in edits:
        edit_manifest(d, path, value)
        err = refused(args)
        check("is malformed: " + want in err, "%s = %r is refused: %s"
              % (".".join(map(str, path)), value, want))
    fresh_copy(d)
    man = load(d + "/ck/manifest.json")
    del man["settings"]["activation"]
    with open(d + "/ck/manifest.json", "w") as f:
        json.dump(man, f)
    check("settings.activation is missing" in refused(args), "a missing setting is malformed")
    edit_manifest(d, ["format"], "ntkspec-train-checkpoint-1")
    check("has format 'ntkspec-train-checkpoint-1'" in refused(args),
          "an earlier format is refused")
    # a NaN in the first moment of the stored optimiser state
    fresh_copy(d)
    state = d + "/ck/" + load(d + "/ck/manifest.json")["optimizer_state"]
    with open(state, "rb") as f:
        raw = bytearray(f.read())
    hlen = struct.unpack("<Q", raw[:8])[0]
    off = 8 + hlen + json.loads(raw[8:8 + hlen])["m"]["data_offsets"][0] + 8 * 3
    raw[off:off + 8] = struct.pack("<d", float("nan"))
    with open(state, "wb") as f:
        f.write(raw)
    err = refused(args)
    check("optimiser state in" in err and "is not finite (entry 3 of its tensor 'm')" in err,
          "a NaN in the optimiser state is named as such")


def case_messages(d):
    args = SMALL + ["-ntk_train_test", "none"]
    args = [a for a in args if a != "-ntk_quiet"]
    part = args + ["-ntk_train_checkpoint", d + "/ck"]
    r = run(part + ["-ntk_train_stop_after", "3"], np=NP, expect=3)
    check("stopped at step 3 because of -ntk_train_stop_after" in r.stdout, "the stop names "
          "-ntk_train_stop_after")
    check("signal" not in r.stdout, "and no signal")
    r = run(part + ["-ntk_output", d + "/r.json"], np=NP)
    check("resumed from the checkpoint at step 3 in %s/ck (written because of "
          "-ntk_train_stop_after)" % d in r.stdout, "the resume names -ntk_train_stop_after")
    check("signal" not in r.stdout, "and no signal")
    final = [line for line in r.stdout.splitlines() if line.startswith("final:")]
    check(len(final) == 1 and "test loss -," in final[0], "the final line prints test loss -: %s"
          % final)
    progress = [line for line in r.stdout.splitlines() if line.startswith("step ")]
    check(progress and all("test -  acc " in line and "/-  Tr K" in line for line in progress),
          "progress prints - for the test values")
    check("nan" not in r.stdout and "0.000000e+00" not in r.stdout, "no nan and no zero test loss")
    check(load(d + "/r.json")["final"]["test_loss"] is None, "the JSON has null")


def case_sweep_refuse(d):
    base = BASE[:4] + ["-ntk_sweep_depth", "1", "-ntk_train_steps", "2", "-ntk_quiet"]
    err = refused(base + ["-ntk_sweep_widths", "0,4", "-ntk_sweep_dir", d + "/sw"], "sweep")
    check("-ntk_sweep_widths: width 0" in err and "-ntk_net_widths" not in err,
          "a zero width names -ntk_sweep_widths")
    with open(d + "/file", "w") as f:
        f.write("x")
    for path, why in [("/dev/null", "it exists and is not a folder"),
                      (d + "/file", "it exists and is not a folder"),
                      (d + "/file/sub", "it cannot be created")]:
        err = refused(base + ["-ntk_sweep_widths", "4", "-ntk_sweep_dir", path], "sweep")
        check("-ntk_sweep_dir %s: %s" % (path, why) in err, "-ntk_sweep_dir %s: %s" % (path, why))
    check(not os.path.exists(d + "/sw"), "nothing was trained or written")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        globals()["case_" + sys.argv[1]](tmp)
