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

  Cached factors. For fixed parameters the factors of the hidden layers 1..L-2 can be kept with
  the cached forward state; a product then replaces backpropagation below layer L-1 by per-sample
  contractions with them:
      VJP:  dZ_l^{(i)} = sum_c dF_{ic} DZ_l^{(i,c)}                 (2 C n_l flops per sample)
      JVP:  tF_{ic} += DZ_l^{(i,c)} . (s_l tW_l a_{l-1}^{(i)} + tb_l)  (2 C n_l, plus the GEMM)
  in place of the GEMMs dA_{l} = s dZ_{l+1} W_{l+1} and tA_l W_{l+1}^T (2 n_l n_{l+1} each). This
  saves flops whenever C < n_{l+1}, and time when C is well below (FactoredLayers): for
  784-1024-1024-10 a kernel product drops from 11.7 to 7.5 MFLOP per sample. The factors cost
  C backpropagations once per parameter update and N C sum_{l<=L-2} n_l doubles of memory;
  layers L-1 and L keep the ordinary recursion, which is as cheap there.
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

/*
  out = phi'(Z_{l-1}) . (s_l in W_l) for B samples: in is (B C) x n_l, out (B C) x n_{l-1}, D the
  B x n_{l-1} derivatives phi'(z_{l-1}) of the same samples.
*/
static PetscErrorCode FactorStep(NtkNet net, const PetscScalar *th, PetscInt l, PetscInt B,
                                 const PetscScalar *D, const PetscScalar *in, PetscScalar *out)
{
  const NtkLayer *ly = &net->layers[l - 1];
  PetscInt        C  = net->widths[net->L], ni = ly->in, no = ly->out;
  PetscBLASInt    m, n, k;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(B * C, &m));
  PetscCall(PetscBLASIntCast(ni, &n));
  PetscCall(PetscBLASIntCast(no, &k));
  PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k,
                                           ly->scale, in, k, th + ly->woff, n, 0.0, out, n));
  for (PetscInt i = 0; i < B; i++)
    for (PetscInt c = 0; c < C; c++) {
      PetscScalar *row = out + (i * C + c) * ni;
      for (PetscInt q = 0; q < ni; q++) row[q] *= D[i * ni + q];
    }
  PetscCall(PetscLogFlops(2.0 * B * C * ni * no + 1.0 * B * C * ni));
  PetscFunctionReturn(PETSC_SUCCESS);
}

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
  PetscInt C = net->widths[net->L], L = net->L;

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
  for (PetscInt l = L; l >= 2; l--)
    PetscCall(FactorStep(net, th, l, B, f->work->st.D[l - 1], f->DZ[l], f->DZ[l - 1]));
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  *A  = f->A;
  *DZ = (const PetscScalar **)f->DZ;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Layers whose factors a cache would keep: 1..L-2, or none when they would not pay. The flops they
  save run in GEMMs near the DGEMM rate, the flops they spend stream the factors from memory at
  a tenth of it or less, so they must save at least 8 times what they spend (C <= n_{l+1} / 8
  for one factored layer).
*/
static PetscInt FactoredLayers(NtkNet net)
{
  PetscInt       C = net->widths[net->L];
  PetscLogDouble saved = 0, spent = 0;

  for (PetscInt l = 1; l <= net->L - 2; l++) {
    saved += (PetscLogDouble)net->widths[l] * net->widths[l + 1];
    spent += (PetscLogDouble)net->widths[l] * C;
  }
  return saved >= 8 * spent ? PetscMax(net->L - 2, 0) : 0;
}

PetscErrorCode NtkNetCacheFactorBytes(NtkNet net, PetscInt n, PetscLogDouble *bytes)
{
  PetscInt nf = FactoredLayers(net);

  PetscFunctionBegin;
  *bytes = 0;
  for (PetscInt l = 1; l <= nf; l++)
    *bytes += (PetscLogDouble)n * net->widths[net->L] * net->widths[l] * sizeof(PetscScalar);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCacheEnableFactors(NtkNet net, NtkNetCache c)
{
  PetscInt       C = net->widths[net->L];
  PetscLogDouble bytes;

  PetscFunctionBegin;
  if (c->nf) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkNetCacheFactorBytes(net, c->n, &bytes));
  if (bytes == 0) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscMalloc1((size_t)(bytes / sizeof(PetscScalar)), &c->fbuf));
  c->nf = FactoredLayers(net);
  for (size_t l = 1, off = 0; l <= (size_t)c->nf; l++) {
    c->st.DZ[l] = c->fbuf + off;
    off += (size_t)c->n * C * net->widths[l];
  }
  c->st.lf = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Factors of all cached rows from the cached phi'(Z): DZ_{L-1} = phi'(Z_{L-1}) . (s_L W_L) per
  sample, built in a small block of rows, then FactorStep down to layer 1 straight into the
  cache. Does nothing when the factors are fresh or the cache keeps none.
*/
PetscErrorCode NtkNetCacheComputeFactors(NtkNet net, NtkNetCache c)
{
  const PetscInt     L = net->L, C = net->widths[L], nh = net->widths[L - 1], blk = 128;
  const NtkLayer    *last = &net->layers[L - 1];
  const PetscScalar *th;
  PetscScalar       *top;

  PetscFunctionBegin;
  if (!c->nf || c->st.lf == c->nf) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscLogEventBegin(NTK_NetFactors, 0, 0, 0, 0));
  PetscCall(PetscMalloc1(blk * C * nh, &top));
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt r0 = 0; r0 < c->n; r0 += blk) {
    PetscInt           B = PetscMin(blk, c->n - r0);
    const PetscScalar *in = top;

    for (PetscInt i = 0; i < B; i++) {
      const PetscScalar *D = c->st.D[L - 1] + (size_t)(r0 + i) * nh;
      for (PetscInt k = 0; k < C; k++) {
        const PetscScalar *w = th + last->woff + k * nh;
        PetscScalar       *row = top + (i * C + k) * nh;
        for (PetscInt q = 0; q < nh; q++) row[q] = last->scale * w[q] * D[q];
      }
    }
    for (PetscInt l = L - 1; l >= 2; l--) {
      PetscInt     ni  = net->widths[l - 1];
      PetscScalar *out = c->st.DZ[l - 1] + (size_t)r0 * C * ni;

      PetscCall(FactorStep(net, th, l, B, c->st.D[l - 1] + (size_t)r0 * ni, in, out));
      in = out;
    }
    PetscCall(PetscLogFlops(2.0 * B * C * nh));
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscFree(top));
  c->st.lf = c->nf;
  PetscCall(PetscLogEventEnd(NTK_NetFactors, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The two contractions are plain loops rather than one dgemv per sample: each streams the factors
  once at memory speed, while BLAS calls on C x n_l blocks ran at half of it for n_l = 256.
*/

/* dZ[i, :] = sum_c dF[i, c] DZ_l[(i, c), :] for rows [r0, r0 + B) of the state (dZ: B x n_l). */
PetscErrorCode NtkNetFactorsPull(NtkNet net, const NtkNetState *st, PetscInt l, PetscInt r0,
                                 PetscInt B, const PetscScalar *dF, PetscScalar *dZ)
{
  PetscInt C = net->widths[net->L], n = net->widths[l];

  PetscFunctionBegin;
  for (PetscInt i = 0; i < B; i++) {
    const PetscScalar *F = dF + i * C, *D = st->DZ[l] + (size_t)(r0 + i) * C * n;
    PetscScalar       *out = dZ + (size_t)i * n;

    for (PetscInt q = 0; q < n; q++) out[q] = F[0] * D[q];
    for (PetscInt c = 1; c < C; c++) {
      const PetscScalar *row = D + c * n, a = F[c];
      for (PetscInt q = 0; q < n; q++) out[q] += a * row[q];
    }
  }
  PetscCall(PetscLogFlops(2.0 * B * C * n));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  tF[i, c] += DZ_l[(i, c), :] . U[i, :] for rows [r0, r0 + B) of the state (U: B x n_l). Eight
  partial sums per dot product let the compiler vectorise without reassociating.
*/
PetscErrorCode NtkNetFactorsPush(NtkNet net, const NtkNetState *st, PetscInt l, PetscInt r0,
                                 PetscInt B, const PetscScalar *U, PetscScalar *tF)
{
  PetscInt C = net->widths[net->L], n = net->widths[l];

  PetscFunctionBegin;
  for (PetscInt i = 0; i < B; i++) {
    const PetscScalar *u = U + (size_t)i * n, *D = st->DZ[l] + (size_t)(r0 + i) * C * n;

    for (PetscInt c = 0; c < C; c++) {
      const PetscScalar *row = D + c * n;
      PetscScalar        acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = 0;
      PetscInt           q      = 0;

      for (; q + 8 <= n; q += 8)
        for (PetscInt j = 0; j < 8; j++) acc[j] += row[q + j] * u[q + j];
      for (; q < n; q++) sum += row[q] * u[q];
      for (PetscInt j = 0; j < 8; j++) sum += acc[j];
      tF[i * C + c] += sum;
    }
  }
  PetscCall(PetscLogFlops(2.0 * B * C * n));
  PetscFunctionReturn(PETSC_SUCCESS);
}
