#!/usr/bin/env python3
"""test_spectrum: the matrix-free eigenpairs of `ntkspec spectrum` equal the dense spectrum.

usage: test_spectrum.py CASE NTKSPEC MPIEXEC NP

For one kernel (CASE) on NP ranks it runs `ntkspec dense` with both solvers and `ntkspec
spectrum`, and checks
  - the ScaLAPACK and LAPACK spectra agree to 100 n eps lambda_max;
  - the leading and tail eigenvalues agree with the dense ones to 1e-8 relative, the tail being
    the smallest eigenvalues above the dense null-space threshold;
  - every residual |K u - lambda u| / lambda_max is at most the requested tolerance;
  - null_space_dim equals the dense count (NC - P when J has full column rank);
  - the eigenvector file holds the expected vectors and no temporary file is left behind.
"""
import json
import os
import subprocess
import sys
import tempfile

EPS = 2.0 ** -52
TOL = 1e-10

CASES = {
    # NC = 600 < P = 12,730: the output side, full rank
    'full': (['-ntk_data_samples', '60', '-ntk_net_widths', '784,16,10'],
             ['-ntk_spectrum_nev', '10', '-ntk_spectrum_tail', '5']),
    # NC = 1,500 > P = 805: the parameter side, rank far below P (width-1 hidden layer)
    'deficient': (['-ntk_data_samples', '150', '-ntk_net_widths', '784,1,10'],
                  ['-ntk_spectrum_nev', '5', '-ntk_spectrum_tail', '5']),
    # the output-averaged kernel, N = 60
    'averaged': (['-ntk_data_samples', '60', '-ntk_net_widths', '784,16,10',
                  '-ntk_kernel', 'averaged', '-ntk_kernel_scale', '1/N'],
                 ['-ntk_spectrum_nev', '5', '-ntk_spectrum_tail', '3']),
    # singular values of J by Lanczos bidiagonalisation
    'svd': (['-ntk_data_samples', '60', '-ntk_net_widths', '784,16,10'],
            ['-ntk_spectrum_nev', '5', '-ntk_spectrum_tail', '3', '-ntk_spectrum_method', 'svd']),
}


def run(mpiexec, np, ntkspec, args, out):
    cmd = [mpiexec, '-n', np, ntkspec] + args + ['-ntk_output', out, '-ntk_quiet']
    subprocess.run(cmd, check=True, timeout=600)
    with open(out) as f:
        return json.load(f)


def main():
    case, ntkspec, mpiexec, np = sys.argv[1:5]
    common, extra = CASES[case]
    common = ['-ntk_data', 'fashion-mnist:train', '-ntk_net_activation', 'tanh'] + common
    failures = []

    def expect(what, err, tol):
        ok = err <= tol
        print(('  ok   ' if ok else '  FAIL ') + '%s: %.3e (tol %.1e)' % (what, err, tol))
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        dl = run(mpiexec, np, ntkspec, ['dense'] + common + ['-ntk_dense_solver', 'lapack'],
                 os.path.join(tmp, 'lapack.json'))
        ds = run(mpiexec, np, ntkspec, ['dense'] + common, os.path.join(tmp, 'scalapack.json'))
        vecs = os.path.join(tmp, 'vectors.bin')
        sp = run(mpiexec, np, ntkspec,
                 ['spectrum'] + common + extra + ['-ntk_spectrum_tol', str(TOL),
                                                  '-ntk_spectrum_vectors', vecs],
                 os.path.join(tmp, 'spectrum.json'))

        ev, n = dl['eigenvalues'], len(dl['eigenvalues'])
        lmax = ev[0]
        gap = max(abs(a - b) for a, b in zip(ev, ds['eigenvalues']))
        expect('scalapack vs lapack (/ n eps lambda_max)', gap / (n * EPS * lmax), 100)
        expect('dimension', abs(sp['kernel']['dimension'] - n), 0)

        lead = sp['leading']
        err = max(abs(p['value'] - ev[i]) / ev[i] for i, p in enumerate(lead))
        expect('leading %d vs dense (relative)' % len(lead), err, 1e-8)
        nonzero = sorted(e for e in ev if e >= dl['null_space_threshold'])
        tail = sp['tail']
        err = max(abs(p['value'] - nonzero[i]) / nonzero[i] for i, p in enumerate(tail))
        expect('tail %d vs dense smallest nonzero (relative)' % len(tail), err, 1e-8)
        want = int(extra[extra.index('-ntk_spectrum_nev') + 1]), \
            int(extra[extra.index('-ntk_spectrum_tail') + 1])
        expect('pairs found', abs(len(lead) - want[0]) + abs(len(tail) - want[1]), 0)
        res = max(p['residual'] for p in lead + tail)
        expect('residuals / lambda_max', res, TOL)
        expect('null_space_dim vs dense', abs(sp['null_space_dim'] - dl['null_space_dim']), 0)
        expect('null space determined', 0 if sp['null_space_determined'] else 1, 0)
        params = sp['model']['parameters']
        if n > params:
            expect('null space >= NC - P', max(0, (n - params) - sp['null_space_dim']), 0)

        size = os.path.getsize(vecs) if os.path.exists(vecs) else -1
        expect('vector file size', abs(size - (len(lead) + len(tail)) * (8 + 8 * n)), 0)
        expect('no temporary file left', len([f for f in os.listdir(tmp) if 'partial' in f]), 0)

    print('FAIL: ' + ', '.join(failures) if failures else 'PASS')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
