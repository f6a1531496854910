#!/usr/bin/env python3
"""Write malformed IDX, NPY and safetensors files for the command-line error tests.

Usage: make_bad_files.py FOLDER

Every file is refused by ntkspec with a message naming it; the comment beside each writer says
which check it trips. Good companions (a valid IDX pair, a valid .npy pair, a valid model) are
written too so that a test can pair one bad file with one good one. Standard library only.
"""
import gzip
import json
import os
import struct
import sys


def idx(dims, payload, type_byte=0x08, magic=b"\x00\x00"):
    head = magic + bytes([type_byte, len(dims)])
    return head + b"".join(struct.pack(">I", d) for d in dims) + payload


def npy(dict_text, data, major=1):
    pre = 10 if major == 1 else 12
    total = (pre + len(dict_text) + 1 + 63) // 64 * 64
    hlen = total - pre
    head = b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<H" if major == 1 else "<I", hlen)
    return head + (dict_text.ljust(hlen - 1) + "\n").encode() + data


def safetensors(header, data):
    text = header if isinstance(header, str) else json.dumps(header)
    return struct.pack("<Q", len(text)) + text.encode() + data


def layer(k, out, inp, offset, dtype="F64", size=8):
    w, b = out * inp * size, out * size
    return {
        f"{k}.weight": {"dtype": dtype, "shape": [out, inp], "data_offsets": [offset, offset + w]},
        f"{k}.bias": {"dtype": dtype, "shape": [out], "data_offsets": [offset + w, offset + w + b]},
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {}
    pixels = bytes(range(4 * 2 * 2))

    # Good: 4 images of 2x2 pixels and their labels, for pairing with a bad partner.
    files["good-images-idx3-ubyte"] = idx([4, 2, 2], pixels)
    files["good-labels-idx1-ubyte"] = idx([4], bytes([0, 1, 2, 1]))
    # Magic bytes are not 00 00.
    files["badmagic-images-idx3-ubyte"] = idx([4, 2, 2], pixels, magic=b"\x01\x00")
    # Type byte 0x0D (float) is a valid IDX type that ntkspec does not support.
    files["float-images-idx3-ubyte"] = idx([4, 2, 2], bytes(64), type_byte=0x0D)
    # Payload one byte shorter than the 16 bytes the header promises (raw and gzip).
    files["truncated-images-idx3-ubyte"] = idx([4, 2, 2], pixels[:-1])
    files["truncated-gz-images-idx3-ubyte.gz"] = gzip.compress(idx([4, 2, 2], pixels[:-1]))
    # Header claims 65536 x 65536 x 2 pixels: the element count overflows a 32-bit index.
    files["overflow-images-idx3-ubyte"] = idx([65536, 65536, 2], pixels)
    # Header lies the other way: 5 labels promised, 4 present; 3 images promised, 4 present.
    files["short-labels-idx1-ubyte"] = idx([5], bytes([0, 1, 2, 1]))
    files["long-images-idx3-ubyte"] = idx([3, 2, 2], pixels)
    # A gzip stream cut in the middle: the decompressor runs out of input.
    whole = gzip.compress(idx([4, 2, 2], pixels))
    files["cut-gzip-images-idx3-ubyte.gz"] = whole[: len(whole) // 2]

    x = struct.pack("<8d", *[0.5 * i for i in range(8)])
    y = struct.pack("<4q", 0, 1, 1, 0)
    # Good: X is 4 x 2 float64, Y holds 4 integer labels.
    files["good-x.npy"] = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }", x)
    files["good-y.npy"] = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", y)
    # Magic string is wrong.
    files["badmagic.npy"] = b"\x93NUMPX" + files["good-x.npy"][6:]
    # Fortran order is not supported.
    files["fortran.npy"] = npy("{'descr': '<f8', 'fortran_order': True, 'shape': (4, 2), }", x)
    # Big-endian float64 is not supported.
    files["bigendian.npy"] = npy("{'descr': '>f8', 'fortran_order': False, 'shape': (4, 2), }", x)
    # complex128 is not a supported dtype.
    files["complex.npy"] = npy("{'descr': '<c16', 'fortran_order': False, 'shape': (4, 1), }", x)
    # Shape (4, 3) needs 96 data bytes, the file holds 64.
    files["truncated.npy"] = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", x)
    # Shape entries whose product overflows.
    files["overflow.npy"] = npy("{'descr': '<f8', 'fortran_order': False, "
                                "'shape': (4294967296, 4294967296), }", x)
    # Header length field (0xffff) larger than the file.
    files["longheader.npy"] = b"\x93NUMPY\x01\x00\xff\xff{}"
    # The header dict lacks 'shape'.
    files["noshape.npy"] = npy("{'descr': '<f8', 'fortran_order': False, }", x)
    # X contains a NaN (sample 2, entry 1).
    files["nan-x.npy"] = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }",
                             x[:40] + struct.pack("<d", float("nan")) + x[48:])

    meta = {"activation": "tanh", "parameterization": "ntk"}
    zeros = bytes(8 * 64)
    # Good: 2-3-1 tanh network with indices 0 and 2 as nn.Sequential writes them.
    files["good.safetensors"] = safetensors(
        {"__metadata__": meta, **layer(0, 3, 2, 0), **layer(2, 1, 3, 72)}, zeros[:104])
    # Header length larger than the file.
    files["longheader.safetensors"] = struct.pack("<Q", 1 << 40) + b"{}"
    # Header is JSON but not an object.
    files["notobject.safetensors"] = safetensors("[1, 2, 3]", b"")
    # Offsets beyond the end of the data section.
    files["outofrange.safetensors"] = safetensors(
        {"__metadata__": meta, **layer(0, 3, 2, 0)}, zeros[:40])
    # Two tensors share bytes.
    bad = {"__metadata__": meta, **layer(0, 3, 2, 0)}
    bad["0.bias"]["data_offsets"] = [24, 48]
    files["overlap.safetensors"] = safetensors(bad, zeros[:72])
    # Offsets span 40 bytes but 3 x 2 float64 need 48.
    bad = {"__metadata__": meta, **layer(0, 3, 2, 0)}
    bad["0.weight"]["data_offsets"] = [0, 40]
    files["sizemismatch.safetensors"] = safetensors(bad, zeros[:72])
    # Integer weights are not supported.
    files["int32.safetensors"] = safetensors(
        {"__metadata__": meta, **layer(0, 3, 2, 0, "I32", 4)}, zeros[:36])
    # Shape whose element count overflows.
    bad = {"__metadata__": meta, **layer(0, 3, 2, 0)}
    bad["0.weight"]["shape"] = [4294967296, 4294967296]
    files["shapeoverflow.safetensors"] = safetensors(bad, zeros[:72])
    # No activation in the metadata.
    files["noactivation.safetensors"] = safetensors(
        {"__metadata__": {"parameterization": "ntk"}, **layer(0, 3, 2, 0)}, zeros[:72])
    # Layer 2 takes 4 inputs but layer 0 produces 3.
    files["nochain.safetensors"] = safetensors(
        {"__metadata__": meta, **layer(0, 3, 2, 0), **layer(2, 1, 4, 72)}, zeros[:112])
    # A NaN weight.
    files["nan.safetensors"] = safetensors({"__metadata__": meta, **layer(0, 3, 2, 0)},
                                           struct.pack("<d", float("nan")) + zeros[:64])

    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
