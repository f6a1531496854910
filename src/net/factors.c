/*
  Jacobian factors of an MLP. Row (i, c) of J is, layer by layer, the outer product
      dW_l = s_l dz_l^{(i,c)} a_{l-1}^{(i)T},   db_l = dz_l^{(i,c)},
  so J never needs to be stored: the exact trace, the diagonal blocks and dense kernel blocks
  follow from inner products of the factors,
      J_(i,c) . J_(j,c')
        = sum_l (dz_l^{(i,c)} . dz_l^{(j,c')}) (s_l^2 a_{l-1}^{(i)} . a_{l-1}^{(j)} + 1).
  Shape legend: B samples, C outputs; DZ_l is (B C) x n_l, rows sample-major (i*C + c).
  Backward recursion, all (i, c) pairs at once on BLAS level 3:
      DZ_L = I_C per sample,  DZ_{l-1} = phi'(Z_{l-1}) . (s_l DZ_l W_l).
*/
#include "netimpl.h"
#include <cblas.h>

struct _p_NtkNetFactors {
  PetscInt           maxb;
  NtkNetWork         work;
  PetscScalar       *dzbuf;
  PetscScalar       *DZ[NTK_MAX_LAYERS + 1];
  const PetscScalar *A[NTK_MAX_LAYERS + 1];
};

PetscErrorCode NtkNetFactorsCreate(NtkNet net, PetscInt maxb, NtkNetFactors *fac)
{
  NtkNetFactors f;
  PetscInt      C = net->widths[net->L], total = 0;

  PetscFunctionBegin;
  PetscCall(PetscNew(&f));
  f->maxb = maxb;
  PetscCall(NtkNetWorkCreate(net, maxb, &f->work));
  for (PetscInt l = 1; l <= net->L; l++) total += maxb * C * net->widths[l];
  PetscCall(PetscMalloc1(total, &f->dzbuf));
  for (PetscInt l = 1, off = 0; l <= net->L; l++) {
    f->DZ[l] = f->dzbuf + off;
    off += maxb * C * net->widths[l];
  }
  *fac = f;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetFactorsDestroy(NtkNetFactors *fac)
{
  PetscFunctionBegin;
  if (!*fac) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkNetWorkDestroy(&(*fac)->work));
  PetscCall(PetscFree((*fac)->dzbuf));
  PetscCall(PetscFree(*fac));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetFactorsCompute(NtkNet net, NtkNetFactors f, PetscInt B, const PetscScalar *X,
                                    const PetscScalar ***A, const PetscScalar ***DZ)
{
  const PetscScalar *th;
  PetscInt           C = net->widths[net->L], L = net->L;

  PetscFunctionBegin;
  PetscCheck(B <= f->maxb, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "batch of %" PetscInt_FMT " exceeds the factor workspace (%" PetscInt_FMT ")", B,
             f->maxb);
  PetscCall(NtkNetForward(net, f->work, B, X, NULL));
  f->A[1] = X;
  for (PetscInt l = 2; l <= L; l++) f->A[l] = f->work->st.A[l - 1];

  PetscCall(PetscArrayzero(f->DZ[L], B * C * C));
  for (PetscInt i = 0; i < B; i++)
    for (PetscInt c = 0; c < C; c++) f->DZ[L][(i * C + c) * C + c] = 1.0;

  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt l = L; l >= 2; l--) {
    const NtkLayer    *ly = &net->layers[l - 1];
    PetscInt           ni = ly->in, no = ly->out;
    const PetscScalar *D = f->work->st.D[l - 1];
    PetscBLASInt       m, n, k;

    PetscCall(PetscBLASIntCast(B * C, &m));
    PetscCall(PetscBLASIntCast(ni, &n));
    PetscCall(PetscBLASIntCast(no, &k));
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k,
                                             ly->scale, f->DZ[l], k, th + ly->woff, n, 0.0,
                                             f->DZ[l - 1], n));
    for (PetscInt i = 0; i < B; i++)
      for (PetscInt c = 0; c < C; c++) {
        PetscScalar *row = f->DZ[l - 1] + (i * C + c) * ni;
        for (PetscInt q = 0; q < ni; q++) row[q] *= D[i * ni + q];
      }
    PetscCall(PetscLogFlops(2.0 * B * C * ni * no + 1.0 * B * C * ni));
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  *A  = f->A;
  *DZ = (const PetscScalar **)f->DZ;
  PetscFunctionReturn(PETSC_SUCCESS);
}
