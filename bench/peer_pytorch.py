#!/usr/bin/python3
"""The peer of bench_kproduct: one full-kernel product K v = J (J^T v) in PyTorch (functorch).

Reads the model that bench_kproduct wrote (-bench_save, ntkspec safetensors), builds the same
nn.Sequential in float64, takes the first N Fashion-MNIST images (pixels / 255) and the same probe
v_k = sin(0.37 k + 0.1), and times what a PyTorch user writes for K v: functorch.vjp for J^T v,
then functorch.jvp for J (J^T v), the forward pass included in each product. A second timing
reuses the vjp closure across products (the forward graph built once), the strongest form of the
peer we know. Prints one key=value line; kv_norm lets the driver check both tools agree.
"""
import argparse
import gzip
import json
import math
import statistics
import struct
import sys
import time

import torch
import functorch


class NtkLinear(torch.nn.Module):
    """Dense layer of the NTK parameterisation (sigma_w = 1): z = W a / sqrt(fan_in) + b."""

    def __init__(self, weight, bias):
        super().__init__()
        self.scale = 1.0 / math.sqrt(weight.shape[1])
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(bias)

    def forward(self, a):
        return self.scale * torch.nn.functional.linear(a, self.weight) + self.bias


def load_model(path):
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        data = f.read()
    meta = header.pop("__metadata__")
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        code = {"F64": "d", "F32": "f"}[t["dtype"]]
        vals = struct.unpack("<%d%s" % ((e - b) // struct.calcsize(code), code), data[b:e])
        tensors[name] = torch.tensor(vals, dtype=torch.float64).reshape(t["shape"])
    acts = {"tanh": torch.nn.Tanh, "gelu": torch.nn.GELU, "relu": torch.nn.ReLU,
            "sigmoid": torch.nn.Sigmoid, "softplus": torch.nn.Softplus,
            "identity": torch.nn.Identity}
    keys = sorted({int(k.split(".")[0]) for k in tensors})
    mods = []
    for n, k in enumerate(keys):
        w, b = tensors["%d.weight" % k], tensors["%d.bias" % k]
        if meta.get("parameterization", "standard") == "ntk":
            mods.append(NtkLinear(w, b))
        else:
            lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            mods.append(lin)
        if n < len(keys) - 1:
            mods.append(acts[meta["activation"]]())
    return torch.nn.Sequential(*mods)


def read_images(path, n):
    with gzip.open(path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803 or count < n:
            sys.exit("%s: not an IDX image file with %d images" % (path, n))
        raw = f.read(n * rows * cols)
    x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.float64)
    return x.reshape(n, rows * cols) / 255.0


def timed(fn, reps):
    """Wall and CPU (all threads) seconds of reps calls after one warm-up call."""
    fn()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu.append(time.process_time() - c0)
        times.append(time.perf_counter() - t0)
    return times, cpu, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--images",
                    default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)

    model = load_model(args.model)
    x = read_images(args.images, args.samples)
    fmodel, params = functorch.make_functional(model)
    params = tuple(p.detach() for p in params)

    def f(*p):
        return fmodel(p, x).reshape(-1)

    nout = args.samples * model(x[:1]).shape[1]
    v = torch.sin(0.37 * torch.arange(nout, dtype=torch.float64) + 0.1)

    def kv_plain():
        _, vjp_fn = functorch.vjp(f, *params)
        return functorch.jvp(f, params, vjp_fn(v))[1]

    _, vjp_saved = functorch.vjp(f, *params)

    def kv_reuse():
        return functorch.jvp(f, params, vjp_saved(v))[1]

    t_plain, c_plain, kv = timed(kv_plain, args.reps)
    t_reuse, _, kv2 = timed(kv_reuse, args.reps)
    agree = float((kv - kv2).norm() / kv.norm())
    print("peer torch=%s threads=%d N=%d P=%d reps=%d median_s=%.6e best_s=%.6e cpu_median_s=%.6e "
          "reuse_median_s=%.6e reuse_best_s=%.6e kv_norm=%.12e reuse_rel_diff=%.1e"
          % (torch.__version__, args.threads, args.samples, sum(p.numel() for p in params),
             args.reps, statistics.median(t_plain), min(t_plain), statistics.median(c_plain),
             statistics.median(t_reuse),
             min(t_reuse), float(kv.norm()), agree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
