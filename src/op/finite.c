/*
  Detection of NaN and Inf in the products, with where they appeared.

  A non-finite value in the parameters, an overflowing activation or a bad input sample turns
  every later product into NaN, and an eigensolver or estimator then fails far from the cause, or
  worse, returns NaN as a result. Two cheap checks catch it where it starts:
    - after the forward pass (NtkOpUpdate), the outputs F of the local samples are scanned and the
      first bad one is named by its global sample index and output;
    - after a kernel product y = K x, the replicated parameter-space vector J^T x (identical on
      every rank after its Allreduce, so every rank reaches the same verdict without communication)
      and the local rows of y are scanned.
  A scan costs O(n) against the O(n P) of the product it checks. Rank-local verdicts are agreed
  through NtkCheckAll (one integer Allreduce), so all ranks fail together and the message of the
  lowest failing rank is printed once.
*/
#include "opimpl.h"

/*
  Index of the first non-finite entry of v[0..n), or -1. x - x is 0 for finite x and NaN for Inf
  or NaN, so a branch-free sum over eight lanes (which the compiler vectorises) clears the common
  all-finite case at memory speed; only a non-zero sum pays for the search.
*/
static PetscInt FirstNonFinite(const PetscScalar *v, PetscInt n)
{
  PetscReal acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = 0;
  PetscInt  k      = 0;

  for (; k + 8 <= n; k += 8)
    for (PetscInt j = 0; j < 8; j++) acc[j] += v[k + j] - v[k + j];
  for (; k < n; k++) sum += v[k] - v[k];
  for (PetscInt j = 0; j < 8; j++) sum += acc[j];
  if (sum == 0) return -1;
  for (k = 0; k < n; k++)
    if (PetscIsInfOrNanScalar(v[k])) return k;
  return -1;
}

/* Local rows of `width` entries, one row per local sample; names the global sample of the first
   bad entry. */
static PetscErrorCode CheckRows(NtkOp op, const PetscScalar *v, PetscInt width, const char what[])
{
  PetscInt bad = FirstNonFinite(v, op->nloc * width);
  char     msg[256] = "";

  PetscFunctionBegin;
  if (bad >= 0)
    PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s is %s for sample %" PetscInt_FMT " (output %"
                            PetscInt_FMT "); the parameters or inputs produce overflow or NaN",
                            what, PetscIsNanScalar(v[bad]) ? "NaN" : "infinite",
                            op->shard->rstart + bad / width, bad % width));
  PetscCall(NtkCheckAll(op->comm, bad < 0 ? PETSC_TRUE : PETSC_FALSE, PETSC_ERR_FP, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpCheckOutputs(NtkOp op)
{
  PetscFunctionBegin;
  PetscCall(CheckRows(op, op->F, op->C, "the network output after the forward pass"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpCheckProduct(NtkOp op, Vec y, const char what[])
{
  const PetscScalar *v;
  PetscInt           n, bad = FirstNonFinite(op->pbuf, op->P);
  char               msg[256];

  PetscFunctionBegin;
  PetscCheck(bad < 0, op->comm, PETSC_ERR_FP, "%s: J^T x is %s in parameter %" PetscInt_FMT
             "; the input vector or the Jacobian is not finite", what,
             PetscIsNanScalar(op->pbuf[bad]) ? "NaN" : "infinite", bad);
  PetscCall(VecGetLocalSize(y, &n));
  PetscCall(PetscSNPrintf(msg, sizeof(msg), "the result of the %s", what));
  PetscCall(VecGetArrayRead(y, &v));
  PetscCall(CheckRows(op, v, op->nloc ? n / op->nloc : 1, msg));
  PetscCall(VecRestoreArrayRead(y, &v));
  PetscFunctionReturn(PETSC_SUCCESS);
}
