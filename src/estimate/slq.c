/*
  Stochastic Lanczos quadrature (Ubaru, Chen, Saad, SIMAX 2017). For probes z_j,
      Tr f(K) = E z^T f(K) z ~ (1/M) sum_j |z_j|^2 sum_k tau_jk^2 f(theta_jk),
  with (theta_jk, tau_jk^2) the Gauss rule of m Lanczos steps from z_j / |z_j| (lanczos.c).
  From the same probes, with no extra products: Tr K^2 = E |K z|^2 = |z|^2 (alpha_1^2 + beta_1^2),
  the von Neumann entropy S = -Tr p(K) ln p(K) with p = K / Tr K, the counting function
  #{lambda >= x} = Tr 1[K >= x], and a smoothed density.
  Near-zero cluster: a rank-deficient kernel (NC > P) has an exact null space that Lanczos sees
  as Ritz values at rounding level, of size about eps |K| sqrt(n). Ritz values below
  zero_tol lambda_max n (default 1e-12 lambda_max n, above that rounding floor) are counted as
  zero eigenvalues: they contribute nothing to S (p ln p -> 0) and their share of the measure is
  reported as the near-zero mass. lambda_max is the largest Ritz value over all probes.
  With deflation (deflate.c) the k largest eigenvalues enter every probe's rule as exact atoms of
  weight 1 and the probes see only the rest of the spectrum.
*/
#include "estimpl.h"

static PetscReal XLogX(PetscReal p)
{
  return p > 0 ? p * PetscLogReal(p) : 0;
}

/* Per-probe entropy and near-zero share for probe j with the current threshold. */
static void ProbeEntropy(NtkEstimator e, PetscInt j, PetscReal *s, PetscReal *z0)
{
  const PetscReal *th = e->nodes + j * e->stride, *w = e->weights + j * e->stride;

  *s  = 0;
  *z0 = 0;
  for (PetscInt k = 0; k < e->nq[j]; k++) {
    if (th[k] < e->zero_thr)
      *z0 += w[k] / e->n;
    else
      *s -= w[k] * XLogX(th[k] / e->trace_used);
  }
}

/* Entropy over the first m probes, and (if asked) S / ln n and near-zero mass with errors. */
static PetscErrorCode Entropy(NtkEstimator e, PetscInt m, NtkEstimate *S)
{
  PetscReal *s, *z;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(m, &s, m, &z));
  e->lmax = 0;
  for (PetscInt j = 0; j < m; j++)
    for (PetscInt k = 0; k < e->nq[j]; k++)
      e->lmax = PetscMax(e->lmax, e->nodes[j * e->stride + k]);
  e->zero_thr = e->zero_tol * e->lmax * e->n;
  for (PetscInt j = 0; j < m; j++) ProbeEntropy(e, j, &s[j], &z[j]);
  NtkMeanErr(m, s, &S->value, &S->err);
  NtkMeanErr(m, z, &e->nzmass, &e->nzmass_err);
  e->snorm     = S->value / PetscLogReal((PetscReal)e->n);
  e->snorm_err = S->err / PetscLogReal((PetscReal)e->n);
  PetscCall(PetscFree2(s, z));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Allocate(NtkEstimator e, PetscInt maxp)
{
  PetscFunctionBegin;
  PetscCall(PetscFree3(e->nq, e->nodes, e->weights));
  PetscCall(PetscFree(e->f2));
  e->stride = e->steps + e->nd;
  PetscCall(PetscMalloc3(maxp, &e->nq, maxp * e->stride, &e->nodes, maxp * e->stride, &e->weights));
  PetscCall(PetscMalloc1(maxp, &e->f2));
  e->nslq = 0;
  PetscCheck(e->ck_nslq <= maxp && (e->ck_nslq == 0 || e->ck_nd == e->nd), e->comm,
             PETSC_ERR_ARG_INCOMP, "the estimate checkpoint %s holds %" PetscInt_FMT " SLQ probes "
             "with %" PetscInt_FMT " deflated pairs; this run allows %" PetscInt_FMT " probes and "
             "deflates %" PetscInt_FMT, e->ckfile, e->ck_nslq, e->ck_nd, maxp, e->nd);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Probe j read back from the checkpoint: its rule, |K z_j|^2 and the products it took. */
static void Replay(NtkEstimator e, PetscInt j, PetscInt *mm)
{
  PetscInt off = j * e->stride;

  e->nq[j] = e->ck_nq[j];
  for (PetscInt k = 0; k < e->nq[j]; k++) {
    e->nodes[off + k]   = e->ck_nodes[off + k];
    e->weights[off + k] = e->ck_weights[off + k];
  }
  e->f2[j] = e->ck_f2[j];
  *mm      = e->nq[j] - e->nd;
}

/* A signal that came between the trace and SLQ: stop before the deflation's products. */
static PetscErrorCode StopBeforeStart(NtkEstimator e, PetscBool *stop)
{
  PetscFunctionBegin;
  *stop = PETSC_FALSE;
  if (!e->ckfile[0]) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkSignalPending(e->comm, stop));
  if (!*stop) PetscFunctionReturn(PETSC_SUCCESS);
  e->nslq        = 0;
  e->interrupted = PETSC_TRUE;
  PetscCall(NtkEstimatorCheckpointWrite(e));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Probe j: z projected off the deflation vectors, m Lanczos steps on the projected kernel, Gauss
  rule scaled by |Pz|^2, the deflated eigenvalues appended as atoms of weight 1; *f2 = |K z|^2
  estimate of Tr K^2 = sum_i lambda_i^2 + |Pz|^2 (alpha_1^2 + beta_1^2). Returns the products.
*/
static PetscErrorCode Probe(NtkEstimator e, PetscInt j, Vec z, Vec *V, PetscReal *alpha,
                            PetscReal *beta, PetscReal *f2, PetscInt *mm)
{
  PetscReal   *th = e->nodes + j * e->stride, *w = e->weights + j * e->stride, nz2;
  PetscScalar *h;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorFillProbe(e, NTK_STREAM_SLQ + j, z));
  if (e->nd > 0) {
    PetscCall(PetscMalloc1(e->nd, &h));
    for (PetscInt pass = 0; pass < 2; pass++) {
      PetscCall(VecMDot(z, e->nd, e->Y, h));
      for (PetscInt i = 0; i < e->nd; i++) h[i] = -h[i];
      PetscCall(VecMAXPY(z, e->nd, h, e->Y));
    }
    PetscCall(PetscFree(h));
  }
  PetscCall(VecNorm(z, NORM_2, &nz2));
  nz2 *= nz2;
  PetscCall(NtkLanczos(e->K, z, e->steps, e->reorth, e->breakdown_tol, e->nd, V, alpha, beta, mm));
  PetscCall(NtkTridiagonalGauss(*mm, alpha, beta, th, w));
  for (PetscInt k = 0; k < *mm; k++) w[k] *= nz2;
  *f2 = nz2 * (alpha[0] * alpha[0] + beta[0] * beta[0]);
  for (PetscInt i = 0; i < e->nd; i++) {
    th[*mm + i] = e->ylam[i];
    w[*mm + i]  = 1;
    *f2 += e->ylam[i] * e->ylam[i];
  }
  e->nq[j] = *mm + e->nd;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Effective rank r = T^2 / F2 and its delta-method error (T and F2 from independent probes). */
static void EffectiveRank(const NtkEstimate *T, PetscReal f2, PetscReal f2err, NtkEstimate *r)
{
  PetscReal rt = T->err / T->value, rf = f2err / f2;

  r->value = T->value * T->value / f2;
  r->err   = r->value * PetscSqrtReal(4 * rt * rt + rf * rf);
}

PetscErrorCode NtkEstimatorSLQ(NtkEstimator e, const NtkEstimate *trace, NtkEstimate *fro,
                               NtkEstimate *reff, NtkEstimate *S)
{
  PetscInt   maxp, mm;
  Vec        z, *V;
  PetscReal *alpha, *beta, f2v, f2e;
  PetscBool  stop = PETSC_FALSE, halt;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorSetUp(e));
  PetscCheck(trace->value > 0, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "SLQ entropy needs a positive trace (got %g)", (double)trace->value);
  PetscCall(PetscMemzero(S, sizeof(*S)));
  PetscCall(PetscMemzero(fro, sizeof(*fro)));
  PetscCall(PetscMemzero(reff, sizeof(*reff)));
  e->interrupted = PETSC_FALSE;
  PetscCall(StopBeforeStart(e, &stop));
  if (stop) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscLogEventBegin(NTK_EstimateSLQ, 0, 0, 0, 0));
  PetscCall(NtkEstimatorDeflate(e));
  e->fresh_matvecs += e->ymatvecs;
  S->matvecs = e->ymatvecs;
  maxp       = NtkEstimatorMaxProbes(e, e->steps, e->ymatvecs);
  PetscCall(Allocate(e, maxp));
  e->trace_used = trace->value;
  PetscCall(MatCreateVecs(e->K, &z, NULL));
  PetscCall(VecDuplicateVecs(z, e->nd + e->steps + 1, &V));
  for (PetscInt i = 0; i < e->nd; i++) PetscCall(VecCopy(e->Y[i], V[i]));
  PetscCall(PetscMalloc2(e->steps, &alpha, e->steps, &beta));
  for (PetscInt j = 0; j < maxp && !stop; j++) {
    PetscBool fresh = j >= e->ck_nslq ? PETSC_TRUE : PETSC_FALSE;
    if (fresh) PetscCall(Probe(e, j, z, V, alpha, beta, &e->f2[j], &mm));
    else Replay(e, j, &mm);
    if (fresh) e->fresh_matvecs += mm;
    e->nslq = j + 1;
    S->matvecs += mm;
    S->probes = j + 1;
    PetscCall(Entropy(e, j + 1, S));
    if (e->monitor) PetscCall(e->monitor(e, "entropy (SLQ)", j + 1, maxp, S, e->mctx));
    stop = NtkEstimatorConverged(e, j + 1, S);
    PetscCall(NtkEstimatorProbeDone(e, fresh, !stop && j + 1 < maxp, &halt));
    if (halt) stop = PETSC_TRUE;
  }
  /* a finished run leaves every probe in the checkpoint: run again, nothing is redone */
  if (e->ckfile[0] && !e->interrupted) PetscCall(NtkEstimatorCheckpointWrite(e));
  S->method = "slq";

  /* |K|_F = sqrt(Tr K^2): error by the delta method, d sqrt(x) = dx / (2 sqrt(x)) */
  NtkMeanErr(e->nslq, e->f2, &f2v, &f2e);
  fro->value   = PetscSqrtReal(f2v);
  fro->err     = f2e / (2 * fro->value);
  fro->method  = "slq";
  fro->matvecs = S->matvecs;
  fro->probes  = S->probes;
  EffectiveRank(trace, f2v, f2e, reff);
  reff->method  = "slq";
  reff->matvecs = S->matvecs + trace->matvecs;
  reff->probes  = S->probes;
  PetscCall(PetscFree2(alpha, beta));
  PetscCall(VecDestroyVecs(e->nd + e->steps + 1, &V));
  PetscCall(VecDestroy(&z));
  PetscCall(PetscLogEventEnd(NTK_EstimateSLQ, 0, 0, 0, 0));
  if (e->density[0] && !e->interrupted) PetscCall(NtkEstimatorWriteDensity(e, e->density));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetEntropyNormalized(NtkEstimator e, PetscReal *v, PetscReal *err)
{
  PetscFunctionBegin;
  PetscCheck(e->nslq > 0, e->comm, PETSC_ERR_ORDER, "call NtkEstimatorSLQ first");
  *v = e->snorm;
  if (err) *err = e->snorm_err;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetNearZeroMass(NtkEstimator e, PetscReal *v, PetscReal *err)
{
  PetscFunctionBegin;
  PetscCheck(e->nslq > 0, e->comm, PETSC_ERR_ORDER, "call NtkEstimatorSLQ first");
  *v = e->nzmass;
  if (err) *err = e->nzmass_err;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* #{lambda >= x} / n ~ mean over probes of sum_k w_jk [theta_jk >= x] / n */
PetscErrorCode NtkEstimatorCountAbove(NtkEstimator e, PetscReal x, PetscReal *frac, PetscReal *err)
{
  PetscReal *c;

  PetscFunctionBegin;
  PetscCheck(e->nslq > 0, e->comm, PETSC_ERR_ORDER, "call NtkEstimatorSLQ first");
  PetscCall(PetscCalloc1(e->nslq, &c));
  for (PetscInt j = 0; j < e->nslq; j++)
    for (PetscInt k = 0; k < e->nq[j]; k++) {
      PetscReal th = e->nodes[j * e->stride + k];
      if (th >= x && th >= e->zero_thr) c[j] += e->weights[j * e->stride + k] / e->n;
    }
  NtkMeanErr(e->nslq, c, frac, err);
  PetscCall(PetscFree(c));
  PetscFunctionReturn(PETSC_SUCCESS);
}
