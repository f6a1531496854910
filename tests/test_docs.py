#!/usr/bin/env python3
"""The documentation cannot drift from the program: options, examples and pictures.

  test_docs.py options  NTKSPEC SRCDIR
      Every -ntk_ option that `ntkspec <command> -help` lists, for every command that `ntkspec
      -help` lists, is named in docs/guide.md.
  test_docs.py examples NTKSPEC MPIEXEC SRCDIR FILE.md
      Every example command in FILE.md (lines of fenced or indented code blocks that start with
      `ntkspec`, `build/apps/ntkspec` or `mpiexec ... ntkspec`, with backslash continuations)
      exits with status 0, run in order in one scratch folder with the build's binary. Sizes are
      capped so that CI stays quick (samples, steps, widths of sweeps); a code block preceded by
      the line `<!-- no-test -->` is not run. The scratch folder holds X.npy, Y.npy (Fashion-MNIST
      sized random data) and model.safetensors (784-32-10 tanh) for examples that name them.
  test_docs.py plot     NTKSPEC MPIEXEC SRCDIR
      `ntkspec plot` renders each kind of input (spectrum JSON, dense JSON, estimate density CSV,
      training CSV, sweep folder) to a file that starts with the PNG signature (or is SVG when
      gnuplot has no PNG terminal), fails with a message on a missing input, and names the Debian
      package when gnuplot cannot be found.
  test_docs.py export   NTKSPEC SRCDIR
      scripts/export_torch.py writes a PyTorch nn.Sequential MLP (GELU, float64) that ntkspec reads
      back with the same exact trace Tr K = sum_{i,c} |grad f_c(x_i)|^2 as PyTorch's autograd on
      20 Fashion-MNIST images (relative 1e-12), and refuses a model it cannot run. Skipped
      (status 77) without PyTorch.
Exit status is the verdict.
"""
import json
import os
import random
import re
import shlex
import struct
import subprocess
import sys
import tempfile

CAPS = {"-ntk_data_samples": 200, "-ntk_train_steps": 10, "-ntk_train_test_samples": 100,
        "-ntk_estimate_probes": 8, "-ntk_estimate_lanczos_steps": 20, "-ntk_spectrum_nev": 10,
        "-ntk_spectrum_tail": 3}
OPT = re.compile(r"^\s+(-ntk_[a-z0-9_]+)")


def run(cmd, cwd=None, env=None, timeout=600):
    return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True)


def commands(ntkspec):
    out = run([ntkspec, "-help"]).stdout
    body = out.split("commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  ([a-z]+)\s", body, re.M)]


def check_options(ntkspec, src):
    guide = open(os.path.join(src, "docs", "guide.md")).read()
    missing, seen = [], set()
    for cmd in commands(ntkspec):
        r = run([ntkspec, cmd, "-help", "-ntk_data_samples", "10"])
        if r.returncode:
            print("FAIL: ntkspec %s -help exited with %d\n%s" % (cmd, r.returncode, r.stderr))
            return 1
        opts = {m.group(1) for line in r.stdout.splitlines() for m in [OPT.match(line)] if m}
        if not opts:
            print("FAIL: ntkspec %s -help lists no -ntk_ option" % cmd)
            return 1
        for o in sorted(opts - seen):
            if not re.search(re.escape(o) + r"(?![a-z0-9_])", guide):
                missing.append("%s (ntkspec %s)" % (o, cmd))
        seen |= opts
    if missing:
        print("FAIL: options listed by -help but not documented in docs/guide.md:\n  " +
              "\n  ".join(missing))
        return 1
    print("all %d -ntk_ options of %d commands are documented" % (len(seen), len(commands(ntkspec))))
    return 0


def examples(path):
    """(line number, command text) of every example command in a Markdown file."""
    lines, out = open(path).read().splitlines(), []
    fenced, skip, k = False, False, 0
    while k < len(lines):
        line = lines[k]
        if line.strip().startswith("```"):
            fenced = not fenced
            if fenced:
                skip = k > 0 and lines[k - 1].strip() == "<!-- no-test -->"
            k += 1
            continue
        indented = not fenced and line.startswith("    ") and (k == 0 or not lines[k - 1].strip()
                                                              or lines[k - 1].startswith("    "))
        if not fenced and indented and k > 0 and not lines[k - 1].startswith("    "):
            skip = any(lines[j].strip() == "<!-- no-test -->" for j in range(max(0, k - 2), k))
        text = line.strip()
        if text.startswith("$ "):
            text = text[2:]
        first = text.split()[0] if text.split() else ""
        is_cmd = first.endswith("ntkspec") or (first in ("mpiexec", "mpirun") and "ntkspec" in text)
        if (fenced or indented) and is_cmd:
            start, cmd = k + 1, text
            while cmd.endswith("\\") and k + 1 < len(lines):
                k += 1
                cmd = cmd[:-1] + " " + lines[k].strip()
            if not skip:
                out.append((start, cmd))
        k += 1
    return out


def adapt(cmd, ntkspec, mpiexec):
    """The build's binary and mpiexec, capped sizes; at most 2 ranks."""
    words = shlex.split(cmd)
    res = []
    for i, w in enumerate(words):
        if w.endswith("ntkspec") and "/" not in w.replace("build/apps/", "").replace("./", ""):
            w = ntkspec
        elif w in ("mpiexec", "mpirun"):
            w = mpiexec
        elif i > 0 and words[i - 1] in ("-n", "-np") and w.isdigit():
            w = str(min(int(w), 2))
        elif i > 0 and words[i - 1] in CAPS and re.fullmatch(r"-?\d+", w) and int(w) >= 0:
            w = str(min(int(w), CAPS[words[i - 1]]))
        elif i > 0 and words[i - 1] == "-ntk_sweep_widths":
            w = ",".join(str(min(int(x), 32)) for x in w.split(","))
        res.append(w)
    return res


def write_npy(path, rows, cols, values):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    header += " " * (-(len(header) + 11) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%dd" % (rows * cols), *values))


def write_model(path, widths, act):
    rng, header, blobs, off = random.Random(3), {}, [], 0
    for l in range(len(widths) - 1):
        n, m = widths[l + 1], widths[l]
        for part, shape in (("weight", [n, m]), ("bias", [n])):
            count = n * m if part == "weight" else n
            vals = [rng.gauss(0, 1 / m ** 0.5 if part == "weight" else 0.1) for _ in range(count)]
            blob = struct.pack("<%dd" % count, *vals)
            header["%d.%s" % (2 * l, part)] = {"dtype": "F64", "shape": shape,
                                               "data_offsets": [off, off + len(blob)]}
            blobs.append(blob)
            off += len(blob)
    header["__metadata__"] = {"format": "pt", "activation": act, "parameterization": "standard"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def scratch_inputs(d):
    rng = random.Random(1)
    n = 300
    write_npy(os.path.join(d, "X.npy"), n, 784, [rng.random() for _ in range(n * 784)])
    write_npy(os.path.join(d, "Y.npy"), n, 10,
              [1.0 if c == i % 10 else 0.0 for i in range(n) for c in range(10)])
    write_model(os.path.join(d, "model.safetensors"), [784, 32, 10], "tanh")
    os.makedirs(os.path.join(d, "results"), exist_ok=True)


def check_examples(ntkspec, mpiexec, src, md):
    found = examples(md)
    with tempfile.TemporaryDirectory() as d:
        scratch_inputs(d)
        for line, cmd in found:
            argv = adapt(cmd, ntkspec, mpiexec)
            r = run(argv, cwd=d)
            if r.returncode not in (0,):
                print("FAIL: %s:%d exited with %d\n  %s\n%s%s" % (md, line, r.returncode,
                      " ".join(argv), r.stdout[-3000:], r.stderr[-3000:]))
                return 1
            print("ok %s:%d  %s" % (os.path.basename(md), line, cmd[:100]))
    print("%d example commands of %s ran" % (len(found), md))
    return 0


def is_picture(path):
    with open(path, "rb") as f:
        head = f.read(256)
    return head.startswith(b"\x89PNG\r\n\x1a\n") or (path.endswith(".svg") and b"<svg" in head)


def check_plot(ntkspec, mpiexec, src):
    small = ["-ntk_net_widths", "784,8,10", "-ntk_data_samples", "40", "-ntk_quiet"]
    with tempfile.TemporaryDirectory() as d:
        steps = [
            [ntkspec, "spectrum", "-ntk_spectrum_nev", "5", "-ntk_spectrum_tail", "3",
             "-ntk_output", "spec.json"] + small,
            [mpiexec, "-n", "2", ntkspec, "dense", "-ntk_output", "dense.json"] + small,
            [ntkspec, "estimate", "-ntk_estimate_probes", "6", "-ntk_estimate_density",
             "dens.csv", "-ntk_output", "est.json"] + small,
            [ntkspec, "sweep", "-ntk_sweep_widths", "4,8", "-ntk_sweep_dir", "sweep",
             "-ntk_train_steps", "4", "-ntk_train_track_every", "2", "-ntk_train_test", "none",
             "-ntk_sweep_plots", "0", "-ntk_data_samples", "40", "-ntk_quiet"],
        ]
        for s in steps:
            r = run(s, cwd=d)
            if r.returncode:
                print("FAIL: %s exited with %d\n%s" % (" ".join(s), r.returncode, r.stderr))
                return 1
        cases = [("spec.json", "spec"), ("dense.json", "dense"), ("spec.json,dense.json", "both"),
                 ("dens.csv", "dens"), ("sweep/width-4.csv", "train"), ("sweep", "sweep-rho")]
        for inp, stem in cases:
            r = run([ntkspec, "plot", "-ntk_plot_input", inp, "-ntk_plot_output", stem], cwd=d)
            out = [f for f in os.listdir(d) if f in (stem + ".png", stem + ".svg")]
            if r.returncode or len(out) != 1 or not is_picture(os.path.join(d, out[0])):
                print("FAIL: plot of %s: exit %d, files %s\n%s" % (inp, r.returncode, out, r.stderr))
                return 1
            print("ok plot %s -> %s" % (inp, out[0]))
        r = run([ntkspec, "plot", "-ntk_plot_input", "sweep", "-ntk_plot_value", "train_loss"],
                cwd=d)
        out = [f for f in os.listdir(os.path.join(d, "sweep")) if f.startswith("train_loss.")]
        if r.returncode or len(out) != 1 or not is_picture(os.path.join(d, "sweep", out[0])):
            print("FAIL: -ntk_plot_value train_loss into the sweep folder: %s" % r.stderr)
            return 1
        r = run([ntkspec, "plot", "-ntk_plot_input", "missing.json"], cwd=d)
        if r.returncode == 0 or "missing.json" not in r.stderr:
            print("FAIL: a missing input: exit %d, stderr %s" % (r.returncode, r.stderr))
            return 1
        # a gnuplot that cannot run stands for a missing one (Open MPI needs the rest of PATH)
        os.mkdir(os.path.join(d, "bin"))
        with open(os.path.join(d, "bin", "gnuplot"), "w") as f:
            f.write("#!/bin/sh\nexit 127\n")
        os.chmod(os.path.join(d, "bin", "gnuplot"), 0o755)
        env = dict(os.environ, PATH=os.path.join(d, "bin") + ":" + os.environ.get("PATH", ""))
        r = run([ntkspec, "plot", "-ntk_plot_input", "dens.csv", "-ntk_plot_output", "x"], cwd=d,
                env=env)
        if r.returncode == 0 or "gnuplot-nox" not in r.stderr:
            print("FAIL: without gnuplot: exit %d, stderr %s" % (r.returncode, r.stderr))
            return 1
        leftovers = [f for f in os.listdir(d) if ".tmp." in f]
        if leftovers:
            print("FAIL: temporary files left behind: %s" % leftovers)
            return 1
    print("every kind of plot rendered; missing input and missing gnuplot fail clearly")
    return 0


def check_export(ntkspec, src):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed for %s: skipped" % sys.executable)
        return 77
    import gzip
    sys.path.insert(0, os.path.join(src, "scripts"))
    from export_torch import export
    torch.manual_seed(1)
    lin = torch.nn.Linear
    model = torch.nn.Sequential(lin(784, 16), torch.nn.GELU(), lin(16, 16), torch.nn.GELU(),
                                lin(16, 10)).double()
    images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    with gzip.open(os.environ.get("NTK_FASHION_MNIST_DIR", os.path.dirname(images)) + "/" +
                   os.path.basename(images)) as f:
        f.read(16)
        x = torch.tensor(list(f.read(20 * 784)), dtype=torch.float64).reshape(20, 784) / 255
    ref = 0.0
    for i in range(20):
        for c in range(10):
            model.zero_grad()
            model(x[i:i + 1])[0, c].backward()
            ref += sum(float((p.grad ** 2).sum()) for p in model.parameters())
    with tempfile.TemporaryDirectory() as d:
        export(model, os.path.join(d, "m.safetensors"))
        r = run([ntkspec, "estimate", "-ntk_net_file", "m.safetensors", "-ntk_data_samples", "20",
                 "-ntk_estimate_probes", "4", "-ntk_output", "m.json", "-ntk_quiet"], cwd=d)
        if r.returncode:
            print("FAIL: ntkspec on the exported model: %s" % r.stderr)
            return 1
        got = json.load(open(os.path.join(d, "m.json")))["trace_exact"]
        bad = torch.nn.Sequential(lin(4, 4), torch.nn.Tanh(), lin(4, 4), torch.nn.ReLU(), lin(4, 2))
        try:
            export(bad, os.path.join(d, "bad.safetensors"))
            print("FAIL: a model with two activation types was exported")
            return 1
        except ValueError as e:
            print("refused as expected: %s" % e)
    if abs(got - ref) > 1e-12 * abs(ref):
        print("FAIL: Tr K from ntkspec %.17g, from PyTorch %.17g" % (got, ref))
        return 1
    print("exported model: Tr K %.17g (ntkspec) vs %.17g (PyTorch)" % (got, ref))
    return 0


def main(argv):
    mode = argv[1]
    if mode == "options":
        return check_options(os.path.abspath(argv[2]), argv[3])
    if mode == "examples":
        return check_examples(os.path.abspath(argv[2]), argv[3], argv[4], argv[5])
    if mode == "export":
        return check_export(os.path.abspath(argv[2]), argv[3])
    if mode == "plot":
        return check_plot(os.path.abspath(argv[2]), argv[3], argv[4])
    print("unknown mode %s" % mode)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
