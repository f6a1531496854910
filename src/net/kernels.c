/*
  Forward, JVP and VJP of an MLP over a batch of rows, on BLAS level 3.

  Shape legend (all arrays row-major): B rows in the batch, ni = n_{l-1} inputs and no = n_l outputs
  of layer l, C = n_L outputs of the network. Per layer
      forward  Z = s A W^T + 1 b^T                      A: B x ni, W: no x ni, Z: B x no
      JVP      tZ = s (tA W^T + A tW^T) + 1 tb^T,  tA_l = phi'(Z) . tZ   (tA_0 = 0)
      VJP      dW += s dZ^T A,  db += dZ^T 1,  dA = s dZ W,  dZ_{l-1} = phi'(Z_{l-1}) . dA
  The forward state (A_l and phi'(Z_l) for hidden layers) is either recomputed per batch in an
  NtkNetWork or held for a whole shard in an NtkNetCache; the JVP and VJP cores read it from an
  NtkNetState either way. Flops are logged exactly: 2 B ni no per GEMM, B no per bias or Hadamard.
*/
#include "netimpl.h"
#include <cblas.h>

static PetscErrorCode Gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, PetscInt m, PetscInt n,
                           PetscInt k, PetscScalar alpha, const PetscScalar *A, PetscInt lda,
                           const PetscScalar *Bm, PetscInt ldb, PetscScalar beta, PetscScalar *Cm,
                           PetscInt ldc)
{
  PetscBLASInt bm, bn, bk, blda, bldb, bldc;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(m, &bm));
  PetscCall(PetscBLASIntCast(n, &bn));
  PetscCall(PetscBLASIntCast(k, &bk));
  PetscCall(PetscBLASIntCast(lda, &blda));
  PetscCall(PetscBLASIntCast(ldb, &bldb));
  PetscCall(PetscBLASIntCast(ldc, &bldc));
  PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, ta, tb, bm, bn, bk, alpha, A, blda, Bm,
                                           bldb, beta, Cm, bldc));
  PetscCall(PetscLogFlops(2.0 * m * n * k));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Z[r, :] = b (B x no, overwritten). The GEMMs that follow accumulate into Z (beta = 1), so the
  bias costs one write of Z instead of a separate read-modify-write pass after them.
*/
static PetscErrorCode SetRowsToBias(PetscInt B, PetscInt no, const PetscScalar *b, PetscScalar *Z)
{
  PetscFunctionBegin;
  for (PetscInt r = 0; r < B; r++) PetscCall(PetscArraycpy(Z + r * no, b, no));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* a_{l-1} of rows r0.. of the state: the layer's input (the data for l = 1). */
static const PetscScalar *LayerInput(NtkNet net, const NtkNetState *st, PetscInt l, PetscInt r0)
{
  return (l == 1 ? st->X : st->A[l - 1]) + r0 * net->widths[l - 1];
}

/* U = s A tW^T + 1 tb^T (B x no, overwritten): the tangent of z_l from layer l's own parameters. */
static PetscErrorCode LayerOwnTangent(const NtkLayer *ly, PetscInt B, const PetscScalar *A,
                                      const PetscScalar *tth, PetscScalar *U)
{
  PetscFunctionBegin;
  PetscCall(SetRowsToBias(B, ly->out, tth + ly->boff, U));
  PetscCall(Gemm(CblasNoTrans, CblasTrans, B, ly->out, ly->in, ly->scale, A, ly->in,
                 tth + ly->woff, ly->in, 1.0, U, ly->out));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Fill st->A and st->D for st->nb rows of X; write the network outputs to F (B x C) if F. */
PetscErrorCode NtkNetStateForward(NtkNet net, NtkNetState *st, const PetscScalar *X, PetscScalar *F)
{
  const PetscScalar *th, *Ain = X;
  PetscInt           B = st->nb;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_NetForward, 0, 0, 0, 0));
  PetscCall(VecGetArrayRead(net->theta, &th));
  st->X = X;
  for (PetscInt l = 1; l <= net->L; l++) {
    const NtkLayer *ly  = &net->layers[l - 1];
    PetscScalar    *Z   = l < net->L ? st->A[l] : F;
    PetscInt        ni   = ly->in, no = ly->out;

    if (!Z) break;
    PetscCall(SetRowsToBias(B, no, th + ly->boff, Z));
    PetscCall(Gemm(CblasNoTrans, CblasTrans, B, no, ni, ly->scale, Ain, ni, th + ly->woff, ni, 1.0,
                   Z, no));
    if (l < net->L) PetscCall(NtkActivationApply(net->act, B * no, Z, st->A[l], st->D[l]));
    Ain = Z;
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscLogEventEnd(NTK_NetForward, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  tF = J tth for rows [r0, r0+B) of the state (B x C, overwritten). With factors of layers 1..lf
  the tangent recursion starts at layer lf+1 (tA_lf = 0), and each factored layer adds its own
  term DZ_l . (s tW_l a_{l-1} + tb_l) to tF.
*/
PetscErrorCode NtkNetStateJVP(NtkNet net, const NtkNetState *st, PetscInt r0, PetscInt B,
                              NtkNetWork w, const PetscScalar *tth, PetscScalar *tF)
{
  const PetscScalar *th;
  PetscScalar       *tA = NULL, *tZ = w->t0, *spare = w->t1;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_NetJVP, 0, 0, 0, 0));
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt l = st->lf + 1; l <= net->L; l++) {
    const NtkLayer    *ly   = &net->layers[l - 1];
    PetscInt           ni    = ly->in, no = ly->out;
    const PetscScalar *Ain  = LayerInput(net, st, l, r0);
    PetscScalar       *out  = l == net->L ? tF : tZ;

    PetscCall(LayerOwnTangent(ly, B, Ain, tth, out));
    if (tA)
      PetscCall(Gemm(CblasNoTrans, CblasTrans, B, no, ni, ly->scale, tA, ni, th + ly->woff, ni, 1.0,
                     out, no));
    if (l < net->L) {
      const PetscScalar *D = st->D[l] + r0 * no;
      for (PetscInt k = 0; k < B * no; k++) out[k] *= D[k];
      PetscCall(PetscLogFlops(2.0 * B * no));
      tA    = out;
      tZ    = spare;
      spare = tA;
    }
  }
  for (PetscInt l = 1; l <= st->lf; l++) {
    PetscCall(LayerOwnTangent(&net->layers[l - 1], B, LayerInput(net, st, l, r0), tth, w->t0));
    PetscCall(NtkNetFactorsPush(net, st, l, r0, B, w->t0, tF));
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscLogEventEnd(NTK_NetJVP, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  dth += J^T dF for rows [r0, r0+B) of the state (dF: B x C; dth accumulated). The cotangent of
  a factored layer l <= lf is read off the factors, dZ_l = sum_c dF[:, c] DZ_l[(., c)], instead
  of being backpropagated through layer l+1.
*/
PetscErrorCode NtkNetStateVJP(NtkNet net, const NtkNetState *st, PetscInt r0, PetscInt B,
                              NtkNetWork w, const PetscScalar *dF, PetscScalar *dth)
{
  const PetscScalar *th, *dZ = dF;
  PetscScalar       *dA = w->t0, *spare = w->t1;
  PetscBLASInt       bB, bO, one = 1;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_NetVJP, 0, 0, 0, 0));
  PetscCall(VecGetArrayRead(net->theta, &th));
  PetscCall(PetscBLASIntCast(B, &bB));
  for (PetscInt l = net->L; l >= 1; l--) {
    const NtkLayer    *ly  = &net->layers[l - 1];
    PetscInt           ni   = ly->in, no = ly->out;
    const PetscScalar *Ain = LayerInput(net, st, l, r0);

    PetscCall(Gemm(CblasTrans, CblasNoTrans, no, ni, B, ly->scale, dZ, no, Ain, ni, 1.0,
                   dth + ly->woff, ni));
    PetscCall(PetscBLASIntCast(no, &bO));
    PetscCallBLAS("cblas_dgemv", cblas_dgemv(CblasRowMajor, CblasTrans, bB, bO, 1.0, dZ, bO,
                                             w->ones, one, 1.0, dth + ly->boff, one));
    PetscCall(PetscLogFlops(2.0 * B * no));
    if (l == 1) break;
    if (l - 1 <= st->lf) PetscCall(NtkNetFactorsPull(net, st, l - 1, r0, B, dF, dA));
    else {
      const PetscScalar *D = st->D[l - 1] + r0 * ni;
      PetscCall(Gemm(CblasNoTrans, CblasNoTrans, B, ni, no, ly->scale, dZ, no, th + ly->woff, ni,
                     0.0, dA, ni));
      for (PetscInt k = 0; k < B * ni; k++) dA[k] *= D[k];
      PetscCall(PetscLogFlops(1.0 * B * ni));
    }
    dZ    = dA;
    dA    = spare;
    spare = (PetscScalar *)dZ;
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscLogEventEnd(NTK_NetVJP, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Point st->A[l], st->D[l] (l = 1..L-1) into buf, laid out for n rows. */
static void StateLayout(NtkNet net, PetscInt n, PetscScalar *buf, NtkNetState *st)
{
  st->nb = n;
  for (PetscInt l = 1; l < net->L; l++) {
    st->A[l] = buf;
    buf += n * net->widths[l];
    st->D[l] = buf;
    buf += n * net->widths[l];
  }
}

static PetscInt StateSize(NtkNet net)
{
  PetscInt s = 0;
  for (PetscInt l = 1; l < net->L; l++) s += 2 * net->widths[l];
  return s;
}

PetscErrorCode NtkNetWorkCreate(NtkNet net, PetscInt maxb, NtkNetWork *work)
{
  NtkNetWork w;

  PetscFunctionBegin;
  PetscCheck(net->setup, net->comm, PETSC_ERR_ORDER, "call NtkNetSetUp before NtkNetWorkCreate");
  PetscCheck(maxb >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "micro-batch %" PetscInt_FMT
             " must be positive", maxb);
  PetscCall(PetscNew(&w));
  w->maxb = maxb;
  PetscCall(PetscMalloc1(PetscMax(1, maxb * StateSize(net)), &w->abuf));
  StateLayout(net, maxb, w->abuf, &w->st);
  PetscCall(
      PetscMalloc3(maxb * net->maxwidth, &w->t0, maxb * net->maxwidth, &w->t1, maxb, &w->ones));
  for (PetscInt r = 0; r < maxb; r++) w->ones[r] = 1.0;
  *work = w;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetWorkDestroy(NtkNetWork *work)
{
  PetscFunctionBegin;
  if (!*work) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscFree((*work)->abuf));
  PetscCall(PetscFree3((*work)->t0, (*work)->t1, (*work)->ones));
  PetscCall(PetscFree(*work));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CheckBatch(NtkNetWork w, PetscInt nb)
{
  PetscFunctionBegin;
  PetscCheck(nb >= 0 && nb <= w->maxb, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "batch of %" PetscInt_FMT " rows exceeds the workspace (%" PetscInt_FMT ")", nb,
             w->maxb);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetForward(NtkNet net, NtkNetWork w, PetscInt nb, const PetscScalar *X,
                             PetscScalar *F)
{
  PetscFunctionBegin;
  PetscCall(CheckBatch(w, nb));
  w->st.nb = nb;
  PetscCall(NtkNetStateForward(net, &w->st, X, F));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetJVP(NtkNet net, NtkNetWork w, PetscInt nb, const PetscScalar *X,
                         const PetscScalar *tth, PetscScalar *tF)
{
  PetscFunctionBegin;
  PetscCall(CheckBatch(w, nb));
  StateLayout(net, nb, w->abuf, &w->st);
  PetscCall(NtkNetStateForward(net, &w->st, X, NULL));
  PetscCall(NtkNetStateJVP(net, &w->st, 0, nb, w, tth, tF));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetVJP(NtkNet net, NtkNetWork w, PetscInt nb, const PetscScalar *X,
                         const PetscScalar *dF, PetscScalar *dth)
{
  PetscFunctionBegin;
  PetscCall(CheckBatch(w, nb));
  StateLayout(net, nb, w->abuf, &w->st);
  PetscCall(NtkNetStateForward(net, &w->st, X, NULL));
  PetscCall(NtkNetStateVJP(net, &w->st, 0, nb, w, dF, dth));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCacheBytes(NtkNet net, PetscInt n, PetscLogDouble *bytes)
{
  PetscFunctionBegin;
  *bytes = (PetscLogDouble)n * StateSize(net) * sizeof(PetscScalar);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCacheCreate(NtkNet net, PetscInt n, NtkNetCache *cache)
{
  NtkNetCache c;

  PetscFunctionBegin;
  PetscCall(PetscNew(&c));
  c->n = n;
  PetscCall(PetscMalloc1(PetscMax(1, n * StateSize(net)), &c->abuf));
  StateLayout(net, n, c->abuf, &c->st);
  *cache = c;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCacheDestroy(NtkNetCache *cache)
{
  PetscFunctionBegin;
  if (!*cache) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscFree((*cache)->abuf));
  PetscCall(PetscFree((*cache)->fbuf));
  PetscCall(PetscFree(*cache));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The cache is filled in one pass over all of its rows: the GEMMs are as large as they get. Its
  factors, if any, belong to the previous state and are marked stale.
*/
PetscErrorCode NtkNetCacheForward(NtkNet net, NtkNetCache c, NtkNetWork w, const PetscScalar *X,
                                  PetscScalar *F)
{
  PetscFunctionBegin;
  c->st.lf = 0;
  PetscCall(NtkNetStateForward(net, &c->st, X, F));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The cached products take the factor route when asked to and the factors are fresh. A caller that
  needs results independent of which products ran before (a training gradient after a tracked
  step) asks for the ordinary route.
*/
static PetscErrorCode CachedState(NtkNetCache c, NtkNetWork w, PetscInt r0, PetscInt nb,
                                  PetscBool factors, NtkNetState *st)
{
  PetscFunctionBegin;
  PetscCall(CheckBatch(w, nb));
  PetscCheck(r0 >= 0 && r0 + nb <= c->n, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "rows [%" PetscInt_FMT ", %" PetscInt_FMT ") outside the cache", r0, r0 + nb);
  *st = c->st;
  if (!factors) st->lf = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCachedJVP(NtkNet net, NtkNetCache c, NtkNetWork w, PetscInt r0, PetscInt nb,
                               PetscBool factors, const PetscScalar *tth, PetscScalar *tF)
{
  NtkNetState st;

  PetscFunctionBegin;
  PetscCall(CachedState(c, w, r0, nb, factors, &st));
  PetscCall(NtkNetStateJVP(net, &st, r0, nb, w, tth, tF));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCachedVJP(NtkNet net, NtkNetCache c, NtkNetWork w, PetscInt r0, PetscInt nb,
                               PetscBool factors, const PetscScalar *dF, PetscScalar *dth)
{
  NtkNetState st;

  PetscFunctionBegin;
  PetscCall(CachedState(c, w, r0, nb, factors, &st));
  PetscCall(NtkNetStateVJP(net, &st, r0, nb, w, dF, dth));
  PetscFunctionReturn(PETSC_SUCCESS);
}
