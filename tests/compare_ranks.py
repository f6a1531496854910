#!/usr/bin/env python3
"""Same seed, different rank counts, same estimates: runs one ntkspec command on 1, 2 and 3 ranks
and checks that every number of the result documents agrees to a relative tolerance (1e-10).
Entries of an array are compared relative to the array's largest entry.

usage: compare_ranks.py MPIEXEC NTKSPEC COMMAND [options...]"""
import json, os, subprocess, sys, tempfile

IGNORE = {"seconds", "date", "hostname", "ranks", "version", "density"}
RTOL = 1e-10


def compare(a, b, path, scale, bad):
    if isinstance(a, dict):
        if set(a) - IGNORE != set(b) - IGNORE:
            bad.append(f"{path}: keys differ")
            return
        for k in a:
            if k not in IGNORE:
                compare(a[k], b[k], f"{path}.{k}", None, bad)
    elif isinstance(a, list):
        if len(a) != len(b):
            bad.append(f"{path}: lengths {len(a)} and {len(b)}")
            return
        s = max([abs(x) for x in a if isinstance(x, (int, float))] + [0.0])
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", s, bad)
    elif isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            if a is not b:
                bad.append(f"{path}: {a} vs {b}")
            return
        ref = max(abs(a), abs(b), scale or 0.0)
        if abs(a - b) > RTOL * ref:
            bad.append(f"{path}: {a!r} vs {b!r} (rel {abs(a - b) / ref:.2e})")
    elif a != b:
        bad.append(f"{path}: {a!r} vs {b!r}")


def main():
    mpiexec, ntkspec, command, opts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    docs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2, 3):
            out = os.path.join(tmp, f"np{n}.json")
            cmd = [mpiexec, "-n", str(n), ntkspec, command] + opts
            cmd += ["-ntk_quiet", "-ntk_output", out]
            subprocess.run(cmd, check=True)
            with open(out) as f:
                docs[n] = json.load(f)
    bad = []
    for n in (2, 3):
        compare(docs[1], docs[n], f"np{n}", None, bad)
    for line in bad:
        print("FAIL", line)
    print(f"{command}: 1, 2, 3 ranks agree to {RTOL}" if not bad else f"{len(bad)} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
