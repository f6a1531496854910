#!/usr/bin/env python3
"""Hostile command lines: each case runs the real `ntkspec` on bad files or bad options and checks
that the run fails with exactly one clear message, printed once (not once per rank, not inside a
PETSc traceback), naming the file or option at fault, with a non-zero exit status, and that the
job ends on 3 ranks (no rank left waiting in a collective) within the time limit.

Usage:
  cases.py --list                                   names of the cases, one per line
  cases.py --ntkspec PATH [--np N] [--mpiexec PATH] NAME...   run cases (all when none named)

The malformed files come from tests/make_bad_files.py, written afresh into a scratch folder.
docs/limitations.md carries the same table for users.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TEACHER = ["-ntk_data", "teacher", "-ntk_data_samples", "30", "-ntk_net_widths", "16,4,1"]


def idx(images, labels="good-labels-idx1-ubyte"):
    return ["-ntk_data", "idx:{B}/%s,{B}/%s" % (images, labels), "-ntk_net_widths", "4,3,3"]


def npy(x, y="good-y.npy"):
    return ["-ntk_data", "npy:{B}/%s,{B}/%s" % (x, y), "-ntk_net_widths", "2,3,2"]


def model(name):
    return ["-ntk_net_file", "{B}/%s" % name] + TEACHER[:4]


# name: (arguments of `ntkspec info`, fragment the one error line must contain, extra environment)
CASES = {
    # truncated files and headers whose sizes lie
    "idx_truncated": (idx("truncated-images-idx3-ubyte"),
                      "truncated-images-idx3-ubyte: file truncated", None),
    "idx_truncated_gzip": (idx("truncated-gz-images-idx3-ubyte.gz"),
                           "truncated-gz-images-idx3-ubyte.gz: file truncated", None),
    "idx_cut_gzip": (idx("cut-gzip-images-idx3-ubyte.gz"), "cut-gzip-images-idx3-ubyte.gz", None),
    "idx_labels_promised_more": (idx("good-images-idx3-ubyte", "short-labels-idx1-ubyte"),
                                 "short-labels-idx1-ubyte: file truncated", None),
    "idx_images_extra_bytes": (idx("long-images-idx3-ubyte"),
                               "long-images-idx3-ubyte: file size mismatch", None),
    "npy_truncated": (npy("truncated.npy"), "truncated.npy: file size mismatch", None),
    "npy_header_too_long": (npy("longheader.npy"), "longheader.npy: .npy header length", None),
    "safetensors_header_too_long": (model("longheader.safetensors"),
                                    "longheader.safetensors: header length", None),
    "safetensors_offsets_outside": (model("outofrange.safetensors"),
                                    "outofrange.safetensors: tensor '0.weight': data_offsets", None),
    "safetensors_overlap": (model("overlap.safetensors"), "overlap.safetensors: tensor data", None),
    "safetensors_size_mismatch": (model("sizemismatch.safetensors"),
                                  "sizemismatch.safetensors: tensor '0.weight'", None),
    # dimension products that overflow
    "idx_dims_overflow": (idx("overflow-images-idx3-ubyte"),
                          "overflow-images-idx3-ubyte: the dimensions in the header overflow",
                          None),
    "npy_shape_overflow": (npy("overflow.npy"), "overflow.npy: the dimensions", None),
    "safetensors_shape_overflow": (model("shapeoverflow.safetensors"),
                                   "shapeoverflow.safetensors: tensor '0.weight': shape entry",
                                   None),
    # wrong magic, types and dtypes; unsupported layouts
    "idx_bad_magic": (idx("badmagic-images-idx3-ubyte"),
                      "badmagic-images-idx3-ubyte: not an IDX file", None),
    "idx_float_type": (idx("float-images-idx3-ubyte"),
                       "float-images-idx3-ubyte: IDX data type 0x0d", None),
    "npy_bad_magic": (npy("badmagic.npy"), "badmagic.npy: not a .npy file", None),
    "npy_complex_dtype": (npy("complex.npy"), "complex.npy: dtype '<c16' is not supported", None),
    "npy_big_endian": (npy("bigendian.npy"), "bigendian.npy: big-endian dtype", None),
    "npy_fortran_order": (npy("fortran.npy"), "fortran.npy: Fortran-ordered", None),
    "npy_no_shape": (npy("noshape.npy"), "noshape.npy: .npy header lacks 'shape'", None),
    "safetensors_int32": (model("int32.safetensors"), "int32.safetensors: tensor", None),
    "safetensors_not_object": (model("notobject.safetensors"),
                               "notobject.safetensors: the safetensors header must be", None),
    "safetensors_no_activation": (model("noactivation.safetensors"),
                                  "noactivation.safetensors: __metadata__ lacks", None),
    "safetensors_layers_do_not_chain": (model("nochain.safetensors"),
                                        "nochain.safetensors: layers do not chain", None),
    # NaN or Inf in weights or data
    "safetensors_nan_weight": (model("nan.safetensors"),
                               "nan.safetensors: tensor '0.weight' entry 0 is NaN", None),
    "npy_nan_input": (npy("nan-x.npy"), "nan-x.npy: NaN value in sample 2, entry 1", None),
    # NaN or Inf produced by the network: detected after the forward pass, sample named
    "forward_pass_overflow": (["-ntk_data", "teacher", "-ntk_data_samples", "30",
                               "-ntk_net_widths", "16,64,64,1", "-ntk_net_activation", "relu",
                               "-ntk_net_sigma_w", "1e200"],
                              "the network output after the forward pass is infinite for sample",
                              None),
    # model and data that do not fit together; more ranks than samples
    "model_input_width_mismatch": (model("good.safetensors"),
                                   "input width 2 does not match the data's dimension 16", None),
    "more_ranks_than_samples": (["-ntk_data", "teacher", "-ntk_data_samples", "2",
                                 "-ntk_net_widths", "16,4,1"],
                                "2 samples cannot be shared by 3 ranks", None),
    # unknown or out-of-range option values
    "option_activation_unknown": (TEACHER + ["-ntk_net_activation", "foo"],
                                  "Unknown option foo for -ntk_net_activation", None),
    "option_widths_negative": (TEACHER[:4] + ["-ntk_net_widths", "784,-3,10"],
                               "-ntk_net_widths: width -3 at position 1", None),
    "option_widths_not_numbers": (TEACHER[:4] + ["-ntk_net_widths", "784,abc"],
                                  "-ntk_net_widths: '784,abc' is not a comma-separated list",
                                  None),
    "option_samples_negative": (TEACHER[:2] + ["-ntk_data_samples", "-5"],
                                "-ntk_data_samples -5: must be at least 1", None),
    "option_samples_not_a_number": (TEACHER[:2] + ["-ntk_data_samples", "many"],
                                    "-ntk_data_samples many:", None),
    "option_kernel_unknown": (TEACHER + ["-ntk_kernel", "weird"],
                              "Unknown option weird for -ntk_kernel", None),
    "option_classes_repeated": (["-ntk_data_classes", "1,1"] + idx("good-images-idx3-ubyte"),
                                "-ntk_data_classes: class 1 is listed twice", None),
    "option_data_unknown_source": (["-ntk_data", "nosuchsource"],
                                   "-ntk_data nosuchsource: unknown source", None),
    "option_fashion_part_unknown": (["-ntk_data", "fashion-mnist:validation"],
                                    "unknown Fashion-MNIST part 'validation'", None),
    "option_bool_not_a_bool": (TEACHER + ["-ntk_op_factors", "maybe"],
                               "-ntk_op_factors maybe: Unknown logical value: maybe", None),
    # outputs that cannot be written
    "output_folder_missing": (TEACHER + ["-ntk_output", "/nonexistent/dir/x.json"],
                              "-ntk_output /nonexistent/dir/x.json: cannot write there", None),
    "output_is_a_folder": (TEACHER + ["-ntk_output", "{B}"], "is a folder; name a file", None),
    "output_is_a_device": (TEACHER + ["-ntk_output", "/dev/null"],
                           "-ntk_output /dev/null: is not a regular file; name a file", None),
    # the Fashion-MNIST package is not installed
    "fashion_mnist_missing": (["-ntk_data", "fashion-mnist:train", "-ntk_data_samples", "10"],
                              "install the Debian package dataset-fashion-mnist",
                              {"NTK_FASHION_MNIST_DIR": "/nonexistent/fashion-mnist"}),
    # a misspelt option is refused before any work, with the nearest known name
    "option_misspelt": (TEACHER + ["-ntk_net_widht", "3"],
                        "unknown option -ntk_net_widht: did you mean -ntk_net_widths?", None),
}

# Not an error: an option of another command is named in a warning and the run succeeds.
WARNINGS = {
    "option_unread_warns": (TEACHER + ["-ntk_train_steps", "3"],
                            "option -ntk_train_steps is not read by 'info'", None),
}


def run_case(name, args, ntkspec, mpiexec, np, folder):
    argv, fragment, extra = (CASES.get(name) or WARNINGS[name])
    argv = [a.replace("{B}", folder) for a in argv]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")
    env.update(extra or {})
    cmd = [mpiexec, "-n", str(np), ntkspec, "info"] + argv
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return ["no exit within %d s on %d ranks (hang)" % (args.timeout, np)]
    problems = []
    lines = p.stderr.splitlines()
    tag = "ntkspec: warning:" if name in WARNINGS else "ntkspec: error"
    ours = [ln for ln in lines if ln.startswith(tag)]
    if name in WARNINGS:
        if p.returncode != 0:
            problems.append("exit status %d, expected 0" % p.returncode)
    elif p.returncode == 0:
        problems.append("exit status 0, expected a failure")
    if len(ours) != 1:
        problems.append("%d lines start with '%s', expected exactly 1" % (len(ours), tag))
    if not any(fragment in ln for ln in ours):
        problems.append("no '%s' line contains: %s" % (tag, fragment))
    if "PETSC ERROR" in p.stderr:
        problems.append("a PETSc traceback was printed")
    if problems:
        problems.append("command: " + " ".join(cmd))
        problems.append("stderr:\n" + p.stderr[-3000:])
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--ntkspec")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--np", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    if args.list:
        print("\n".join(list(CASES) + list(WARNINGS)))
        return 0
    if not args.ntkspec:
        ap.error("--ntkspec is required")
    names = args.names or list(CASES) + list(WARNINGS)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ntk-hostile-") as folder:
        subprocess.run([sys.executable, os.path.join(HERE, "..", "make_bad_files.py"), folder],
                       check=True)
        for name in names:
            problems = run_case(name, args, args.ntkspec, args.mpiexec, args.np, folder)
            print("%-34s %s" % (name, "ok" if not problems else "FAILED"))
            for p in problems:
                print("    " + p)
            failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
