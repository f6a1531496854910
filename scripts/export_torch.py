#!/usr/bin/python3
"""Export a PyTorch MLP to an ntkspec model file (safetensors), for `-ntk_net_file`.

The model must be a torch.nn.Sequential of nn.Linear layers with one kind of activation module
between them (Tanh, ReLU, GELU (exact erf form), Softplus (beta 1), Sigmoid, or Identity) and no
activation after the last layer, e.g.

    Sequential(Linear(784, 256), Tanh(), Linear(256, 256), Tanh(), Linear(256, 10))

Tensors keep their state-dict names ("0.weight", "0.bias", "2.weight", ...) and are written as
float64; the activation, the parameterisation ("standard": the forward pass is W a + b exactly as
nn.Linear computes it) and the widths go into the file's metadata.

Use it from Python:

    import sys; sys.path.insert(0, "scripts")
    from export_torch import export
    export(model, "model.safetensors")

or from the shell, on a model saved whole with torch.save(model, "model.pt"):

    scripts/export_torch.py model.pt model.safetensors

Needs PyTorch (Debian: python3-torch, or `scripts/setup-debian.sh --torch`), only for loading a
.pt file; `export` itself uses the standard library and the tensors' .tolist().
"""
import json
import struct
import sys

ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "GELU": "gelu", "Softplus": "softplus",
               "Sigmoid": "sigmoid", "Identity": "identity"}


def describe(model):
    """Widths and activation name of an nn.Sequential MLP; ValueError if ntkspec cannot run it."""
    layers, acts = [], set()
    for name, mod in model.named_children():
        kind = type(mod).__name__
        if kind == "Linear":
            if mod.bias is None:
                raise ValueError("layer %s has no bias; ntkspec's layers are W a + b" % name)
            layers.append((name, mod))
        elif kind in ACTIVATIONS:
            if kind == "GELU" and getattr(mod, "approximate", "none") != "none":
                raise ValueError("GELU(approximate='tanh') is not supported; use the erf form")
            if kind == "Softplus" and (mod.beta != 1 or mod.threshold < 20):
                raise ValueError("Softplus must have beta 1 (and the default threshold)")
            acts.add(ACTIVATIONS[kind])
        else:
            raise ValueError("module %s (%s) is neither Linear nor a supported activation (%s)"
                             % (name, kind, ", ".join(sorted(ACTIVATIONS))))
    if not layers:
        raise ValueError("the model has no Linear layer")
    if len(acts) > 1:
        raise ValueError("ntkspec uses one activation for all hidden layers, found %s"
                         % ", ".join(sorted(acts)))
    names = [n for n, _ in model.named_children()]
    if type(getattr(model, names[-1])).__name__ != "Linear":
        raise ValueError("the last module must be Linear (ntkspec's output layer is linear)")
    widths = [layers[0][1].in_features]
    for name, lin in layers:
        if lin.in_features != widths[-1]:
            raise ValueError("layer %s takes %d inputs, the previous layer gives %d"
                             % (name, lin.in_features, widths[-1]))
        widths.append(lin.out_features)
    return widths, (acts.pop() if acts else "identity"), layers


def export(model, path):
    """Write model (an nn.Sequential MLP) to path as an ntkspec safetensors model file."""
    widths, act, layers = describe(model)
    header, blobs, off = {}, [], 0
    for name, lin in layers:
        for part in ("weight", "bias"):
            t = getattr(lin, part).detach().double().cpu()
            vals = t.reshape(-1).tolist()
            blob = struct.pack("<%dd" % len(vals), *vals)
            header["%s.%s" % (name, part)] = {"dtype": "F64", "shape": list(t.shape),
                                              "data_offsets": [off, off + len(blob)]}
            blobs.append(blob)
            off += len(blob)
    header["__metadata__"] = {"format": "pt", "activation": act, "parameterization": "standard",
                              "widths": ",".join(str(w) for w in widths)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    import os
    os.replace(tmp, path)  # atomic: an existing model file is never left half-written
    return widths, act


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: export_torch.py MODEL.pt OUT.safetensors\n")
        return 2
    import torch
    try:
        model = torch.load(argv[1], weights_only=False)
    except TypeError:  # torch < 2.0 has no weights_only
        model = torch.load(argv[1])
    try:
        widths, act = export(model, argv[2])
    except ValueError as e:
        sys.stderr.write("export_torch.py: %s: %s\n" % (argv[1], e))
        return 1
    print("wrote %s: MLP %s, %s" % (argv[2], "-".join(map(str, widths)), act))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
