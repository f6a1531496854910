/*
  Exact trace, diagonal blocks and explicit Jacobian rows from the Jacobian factors (see
  src/net/factors.c). With a_{l-1}^{(i)} the layer inputs and dz_l^{(i,c)} the cotangents,
      K_(i,c),(i,c') = sum_l (dz_l^{(i,c)} . dz_l^{(i,c')}) (s_l^2 |a_{l-1}^{(i)}|^2 + 1),
      Tr K = sum_{i,c} K_(i,c),(i,c) = sum_{i,c} |grad_theta f_c(x_i)|^2.
  Cost: one batched backward pass of C cotangents per sample, ~2 N C P flops, and no products
  with K. Batches have at most op->mb samples.
*/
#include "opimpl.h"

/* Diagonal blocks of local samples [i0, i0+B): Kd (B x C x C, overwritten), unscaled J J^T. */
static PetscErrorCode BlocksOfBatch(NtkOp op, NtkNetFactors fac, PetscInt i0, PetscInt B,
                                    PetscScalar *Kd)
{
  const PetscScalar **A, **DZ;
  PetscInt            C = op->C, L = op->net->L;

  PetscFunctionBegin;
  PetscCall(NtkNetFactorsCompute(op->net, fac, B, op->shard->X + i0 * op->shard->d, &A, &DZ));
  PetscCall(PetscArrayzero(Kd, B * C * C));
  for (PetscInt l = 1; l <= L; l++) {
    const NtkLayer *ly = &op->net->layers[l - 1];
    PetscInt        ni = ly->in, no = ly->out;
    for (PetscInt i = 0; i < B; i++) {
      PetscScalar aa = 0, w;
      for (PetscInt q = 0; q < ni; q++) aa += A[l][i * ni + q] * A[l][i * ni + q];
      w = ly->scale * ly->scale * aa + 1.0;
      for (PetscInt c = 0; c < C; c++)
        for (PetscInt c2 = 0; c2 <= c; c2++) {
          const PetscScalar *g = DZ[l] + (i * C + c) * no, *h = DZ[l] + (i * C + c2) * no;
          PetscScalar        gh = 0;
          for (PetscInt o = 0; o < no; o++) gh += g[o] * h[o];
          Kd[(i * C + c) * C + c2] += w * gh;
        }
    }
  }
  for (PetscInt i = 0; i < B; i++)
    for (PetscInt c = 0; c < C; c++)
      for (PetscInt c2 = c + 1; c2 < C; c2++) Kd[(i * C + c) * C + c2] = Kd[(i * C + c2) * C + c];
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Full kernel: Kd holds n C x C blocks. Averaged: n scalars (1/C) sum_c K_(i,c),(i,c). Scaled. */
PetscErrorCode NtkOpDiagonalBlocks(NtkOp op, PetscScalar *Kd)
{
  NtkNetFactors fac;
  PetscInt      C = op->C, mb = PetscMin(op->mb, 256);
  PetscScalar  *blk;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_OpTrace, 0, 0, 0, 0));
  PetscCall(NtkNetFactorsCreate(op->net, mb, &fac));
  PetscCall(PetscMalloc1(mb * C * C, &blk));
  for (PetscInt i0 = 0; i0 < op->nloc; i0 += mb) {
    PetscInt B = PetscMin(mb, op->nloc - i0);
    PetscCall(BlocksOfBatch(op, fac, i0, B, blk));
    for (PetscInt i = 0; i < B; i++) {
      if (op->variant == NTK_KERNEL_FULL) {
        for (PetscInt k = 0; k < C * C; k++)
          Kd[(i0 + i) * C * C + k] = op->scale * blk[i * C * C + k];
      } else {
        PetscScalar s = 0;
        for (PetscInt c = 0; c < C; c++) s += blk[(i * C + c) * C + c];
        Kd[i0 + i] = op->scale * s / C;
      }
    }
  }
  PetscCall(PetscFree(blk));
  PetscCall(NtkNetFactorsDestroy(&fac));
  PetscCall(PetscLogEventEnd(NTK_OpTrace, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpTrace(NtkOp op, PetscReal *trace)
{
  PetscScalar *Kd, local = 0;
  PetscInt     C = op->C, per = op->variant == NTK_KERNEL_FULL ? C * C : 1;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(PetscMax(1, op->nloc * per), &Kd));
  PetscCall(NtkOpDiagonalBlocks(op, Kd));
  for (PetscInt i = 0; i < op->nloc; i++) {
    if (op->variant == NTK_KERNEL_FULL)
      for (PetscInt c = 0; c < C; c++) local += Kd[i * C * C + c * C + c];
    else local += Kd[i];
  }
  PetscCall(PetscFree(Kd));
  PetscCallMPI(MPI_Allreduce(&local, trace, 1, MPIU_REAL, MPIU_SUM, op->comm));
  /* the sum is the same on every rank, so is the verdict */
  PetscCheck(!PetscIsInfOrNanReal(*trace), op->comm, PETSC_ERR_FP,
             "the exact trace of the kernel is %s: the Jacobian overflows (parameters or inputs "
             "too large)", PetscIsNanReal(*trace) ? "NaN" : "infinite");
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Jblk ((B C) x P, overwritten): the explicit Jacobian rows of local samples [i0, i0+B). */
PetscErrorCode NtkOpJacobianBlock(NtkOp op, PetscInt i0, PetscInt B, PetscScalar *Jblk)
{
  NtkNetFactors       fac;
  const PetscScalar **A, **DZ;
  PetscInt            C = op->C, P = op->P;

  PetscFunctionBegin;
  PetscCheck(i0 >= 0 && B >= 0 && i0 + B <= op->nloc, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "samples [%" PetscInt_FMT ", %" PetscInt_FMT ") outside the %" PetscInt_FMT
             " local samples", i0, i0 + B, op->nloc);
  PetscCall(PetscLogEventBegin(NTK_OpJacobianBlock, 0, 0, 0, 0));
  PetscCall(NtkNetFactorsCreate(op->net, PetscMax(B, 1), &fac));
  PetscCall(NtkNetFactorsCompute(op->net, fac, B, op->shard->X + i0 * op->shard->d, &A, &DZ));
  for (PetscInt l = 1; l <= op->net->L; l++) {
    const NtkLayer *ly = &op->net->layers[l - 1];
    PetscInt        ni = ly->in, no = ly->out;
    for (PetscInt i = 0; i < B; i++)
      for (PetscInt c = 0; c < C; c++) {
        const PetscScalar *dz  = DZ[l] + (i * C + c) * no, *a = A[l] + i * ni;
        PetscScalar       *row = Jblk + (i * C + c) * P;
        for (PetscInt o = 0; o < no; o++) {
          for (PetscInt q = 0; q < ni; q++) row[ly->woff + o * ni + q] = ly->scale * dz[o] * a[q];
          row[ly->boff + o] = dz[o];
        }
      }
  }
  PetscCall(NtkNetFactorsDestroy(&fac));
  PetscCall(PetscLogEventEnd(NTK_OpJacobianBlock, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}
