/*
  Smoothed spectral density from the SLQ rules. On the logarithmic variable t = log10(lambda),
      rho(t) = (1 / (M n)) sum_j sum_k w_jk phi((t - log10 theta_jk) / sigma) / sigma,
  a density per decade of lambda whose integral is the nonzero mass (1 - near-zero mass), and
      N(lambda) = near_zero_mass + (1 / (M n)) sum_j sum_k w_jk Phi((t - log10 theta_jk) / sigma),
  the smoothed fraction of eigenvalues <= lambda. phi, Phi: standard normal density and CDF.
  The grid spans the nonzero Ritz values, widened by 3 sigma on each side.
  Columns: lambda,density,counting. Written by rank 0 atomically (ntk/io.h).
*/
#include "estimpl.h"
#include <ntk/io.h>

static PetscErrorCode Evaluate(NtkEstimator e, PetscReal t, PetscReal *d, PetscReal *c)
{
  PetscReal s = e->density_sigma, norm = 1.0 / (e->nslq * (PetscReal)e->n);

  PetscFunctionBegin;
  *d = 0;
  *c = 0;
  for (PetscInt j = 0; j < e->nslq; j++)
    for (PetscInt k = 0; k < e->nq[j]; k++) {
      PetscReal th = e->nodes[j * e->stride + k], w = e->weights[j * e->stride + k], x;
      if (th < e->zero_thr || th <= 0) continue;
      x = (t - PetscLog10Real(th)) / s;
      *d += w * PetscExpReal(-0.5 * x * x) / (s * PetscSqrtReal(2 * PETSC_PI));
      *c += w * 0.5 * erfc(-x / PetscSqrtReal(2.0));
    }
  *d *= norm;
  *c = e->nzmass + *c * norm;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Format(NtkEstimator e, char **text, size_t *len)
{
  PetscReal lo = PETSC_MAX_REAL, hi = -PETSC_MAX_REAL;
  size_t    cap, used               = 0, n;
  PetscInt  np = e->density_points;

  PetscFunctionBegin;
  for (PetscInt j = 0; j < e->nslq; j++)
    for (PetscInt k = 0; k < e->nq[j]; k++) {
      PetscReal th = e->nodes[j * e->stride + k];
      if (th < e->zero_thr || th <= 0) continue;
      lo = PetscMin(lo, PetscLog10Real(th));
      hi = PetscMax(hi, PetscLog10Real(th));
    }
  if (lo > hi) lo = hi = 0;
  lo -= 3 * e->density_sigma;
  hi += 3 * e->density_sigma;
  cap = 32 + (size_t)np * 80;
  PetscCall(PetscMalloc1(cap, text));
  PetscCall(PetscSNPrintfCount(*text, cap, "lambda,density,counting\n", &n));
  used = n - 1;
  for (PetscInt i = 0; i < np; i++) {
    PetscReal t = lo + (hi - lo) * i / (np - 1), d, c;
    PetscCall(Evaluate(e, t, &d, &c));
    PetscCall(PetscSNPrintfCount(*text + used, cap - used, "%.17g,%.17g,%.17g\n", &n,
                                 (double)PetscPowReal(10.0, t), (double)d, (double)c));
    used += n - 1;
  }
  *len = used;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorWriteDensity(NtkEstimator e, const char file[])
{
  PetscMPIInt    rank;
  PetscErrorCode ierr = PETSC_SUCCESS;
  char          *text = NULL, msg[PETSC_MAX_PATH_LEN + 64] = "";
  size_t         len = 0;
  int            code;

  PetscFunctionBegin;
  PetscCheck(e->nslq > 0, e->comm, PETSC_ERR_ORDER, "call NtkEstimatorSLQ first");
  PetscCallMPI(MPI_Comm_rank(e->comm, &rank));
  if (rank == 0) {
    PetscCall(Format(e, &text, &len));
    PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
    ierr = NtkWriteFileAtomic(file, text, len);
    PetscCall(PetscPopErrorHandler());
    PetscCall(PetscFree(text));
    if (ierr) PetscCall(PetscSNPrintf(msg, sizeof(msg), "cannot write the density file %s", file));
  }
  code = (int)ierr;
  PetscCallMPI(MPI_Bcast(&code, 1, MPI_INT, 0, e->comm));
  PetscCall(NtkCheckAll(e->comm, code ? PETSC_FALSE : PETSC_TRUE, code, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}
