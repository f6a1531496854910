/*
  Trace estimators of the kernel K (n x n, scale s included). With probes z_j (E z z^T = I):
    Hutchinson   Tr K ~ (1/m) sum_j z_j^T K z_j                         (one product per probe)
    one-sided    Tr K = s Tr(J J^T) ~ (1/m) sum_j s |J^T z_j|^2         (one VJP per probe)
    Hutch++      Tr K = Tr(Q^T K Q) + Tr((I - QQ^T) K (I - QQ^T)), Q = orth(K S) for a sketch
                 S of k probes; the first term is exact in k products, the second is Hutchinson
                 on the deflated kernel (Meyer, Musco, Musco, Woodruff, SOSA 2021).
  Standard errors are sample std / sqrt(m) of the per-probe terms; for Hutch++ that of the
  residual terms, conditional on the sketch (the Tr(Q^T K Q) part has no sampling error given Q).
*/
#include "estimpl.h"

/* Report progress and decide whether to stop after probe j (1-based) of at most m. */
static PetscErrorCode Step(NtkEstimator e, const char what[], PetscInt j, PetscInt m,
                           NtkEstimate *est, PetscBool *stop)
{
  PetscFunctionBegin;
  if (e->monitor) PetscCall(e->monitor(e, what, j, m, est, e->mctx));
  *stop = NtkEstimatorConverged(e, j, est);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Room for maxp trace samples; probes up to the checkpoint's are read back, not recomputed. */
static PetscErrorCode SamplesStart(NtkEstimator e, PetscInt maxp)
{
  PetscFunctionBegin;
  PetscCheck(e->ck_ntx <= maxp, e->comm, PETSC_ERR_ARG_INCOMP,
             "the estimate checkpoint %s holds %" PetscInt_FMT " trace probes, more than the %"
             PetscInt_FMT " this run allows", e->ckfile, e->ck_ntx, maxp);
  PetscCall(PetscFree(e->tx));
  PetscCall(PetscMalloc1(maxp, &e->tx));
  e->ntx        = 0;
  e->trace_done = PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* After sample j (0-based) of at most maxp: estimate, monitor, stop on convergence or signal. */
static PetscErrorCode SampleDone(NtkEstimator e, const char what[], PetscInt j, PetscInt maxp,
                                 PetscReal shift, NtkEstimate *est, PetscBool *stop)
{
  PetscBool fresh = j >= e->ck_ntx ? PETSC_TRUE : PETSC_FALSE, halt;

  PetscFunctionBegin;
  e->ntx = j + 1;
  NtkMeanErr(j + 1, e->tx, &est->value, &est->err);
  est->value += shift;
  est->probes = j + 1;
  est->matvecs++;
  PetscCall(Step(e, what, j + 1, maxp, est, stop));
  PetscCall(NtkEstimatorProbeDone(e, fresh, !*stop && j + 1 < maxp, &halt));
  if (halt) *stop = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Hutchinson (stream offset s0, values added to `shift`) on (I - QQ^T) K (I - QQ^T), nq >= 0. */
static PetscErrorCode Hutchinson(NtkEstimator e, PetscInt64 s0, PetscInt nq, Vec *Q, PetscInt maxp,
                                 PetscReal shift, const char what[], NtkEstimate *est)
{
  Vec          z, y;
  PetscScalar *h, d;
  PetscBool    stop = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(SamplesStart(e, maxp));
  PetscCall(MatCreateVecs(e->K, &z, &y));
  PetscCall(PetscMalloc1(PetscMax(nq, 1), &h));
  for (PetscInt j = 0; j < maxp && !stop; j++) {
    if (j < e->ck_ntx) e->tx[j] = e->ck_tx[j];
    else {
      PetscCall(NtkEstimatorFillProbe(e, s0 + j, z));
      if (nq > 0) {
        PetscCall(VecMDot(z, nq, Q, h));
        for (PetscInt i = 0; i < nq; i++) h[i] = -h[i];
        PetscCall(VecMAXPY(z, nq, h, Q));
      }
      PetscCall(MatMult(e->K, z, y));
      PetscCall(VecDot(z, y, &d));
      e->tx[j] = PetscRealPart(d);
      e->fresh_matvecs++;
    }
    PetscCall(SampleDone(e, what, j, maxp, shift, est, &stop));
  }
  PetscCall(PetscFree(h));
  PetscCall(VecDestroy(&z));
  PetscCall(VecDestroy(&y));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Orthonormalise the k columns of W in place (Gram-Schmidt twice); drop dependent columns. */
static PetscErrorCode Orthonormalize(PetscInt k, Vec *W, PetscInt *nq)
{
  PetscScalar *h;
  PetscReal    nrm0, nrm;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(PetscMax(k, 1), &h));
  *nq = 0;
  for (PetscInt i = 0; i < k; i++) {
    PetscCall(VecNorm(W[i], NORM_2, &nrm0));
    for (PetscInt pass = 0; pass < 2 && *nq > 0; pass++) {
      PetscCall(VecMDot(W[i], *nq, W, h));
      for (PetscInt q = 0; q < *nq; q++) h[q] = -h[q];
      PetscCall(VecMAXPY(W[i], *nq, h, W));
    }
    PetscCall(VecNorm(W[i], NORM_2, &nrm));
    if (nrm <= 1e-12 * nrm0 || nrm == 0) continue;
    PetscCall(VecScale(W[i], 1.0 / nrm));
    if (i != *nq) PetscCall(VecSwap(W[i], W[*nq]));
    (*nq)++;
  }
  PetscCall(PetscFree(h));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Q = orth(K S) for k sketch probes and tq = Tr(Q^T K Q); 2k products at most. */
static PetscErrorCode Sketch(NtkEstimator e, PetscInt k, Vec *W, PetscInt *nq, PetscReal *tq)
{
  Vec z;

  PetscFunctionBegin;
  PetscCall(MatCreateVecs(e->K, &z, NULL));
  for (PetscInt i = 0; i < k; i++) {
    PetscCall(NtkEstimatorFillProbe(e, NTK_STREAM_SKETCH + i, z));
    PetscCall(MatMult(e->K, z, W[i]));
  }
  PetscCall(Orthonormalize(k, W, nq));
  *tq = 0;
  for (PetscInt i = 0; i < *nq; i++) {
    PetscScalar d;
    PetscCall(MatMult(e->K, W[i], z));
    PetscCall(VecDot(W[i], z, &d));
    *tq += PetscRealPart(d);
  }
  e->fresh_matvecs += k + *nq;
  PetscCall(VecDestroy(&z));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The Hutch++ sketch size k (0 for the other methods) and the most trace samples the settings
  allow. Hutch++ with a budget B: k = B/3 sketch products, at most k products for Tr(Q^T K Q),
  the rest residual probes; without one, k = -ntk_estimate_probes.
*/
PetscErrorCode NtkEstimatorTraceLimits(NtkEstimator e, PetscInt *k, PetscInt *maxp)
{
  PetscFunctionBegin;
  *k    = 0;
  *maxp = e->trace_method == NTK_TRACE_EXACT ? 0 : NtkEstimatorMaxProbes(e, 1, 0);
  if (e->trace_method != NTK_TRACE_HUTCHPP) PetscFunctionReturn(PETSC_SUCCESS);
  *k = e->matvecs >= 0 ? PetscMax(1, e->matvecs / 3) : e->probes;
  if (e->matvecs >= 0) *maxp = PetscMax(1, e->matvecs - 2 * *k);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  A budget must leave room for two probes, the fewest with a standard error: 2 products for
  Hutchinson and one-sided, 4 for Hutch++ (k = 1, its Tr(Q^T K Q), two residual probes). Above
  that the budget is never exceeded (NtkEstimatorTraceLimits).
*/
static PetscErrorCode CheckBudget(NtkEstimator e)
{
  PetscInt min = e->trace_method == NTK_TRACE_HUTCHPP ? 4 : 2;

  PetscFunctionBegin;
  PetscCheck(e->matvecs < 0 || e->trace_method == NTK_TRACE_EXACT || e->matvecs >= min, e->comm,
             PETSC_ERR_ARG_OUTOFRANGE, "-ntk_estimate_matvecs %" PetscInt_FMT " is too small for "
             "the %s trace: two probes need at least %" PetscInt_FMT " products (or -1 for no "
             "budget)", e->matvecs, NtkTraceMethods[e->trace_method], min);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode HutchPP(NtkEstimator e, NtkEstimate *est)
{
  PetscInt  k, nq = 0, maxp;
  Vec       z, *W;
  PetscReal tq = 0;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorTraceLimits(e, &k, &maxp));
  if (e->ck_trace_done) {
    /* every residual sample is in the checkpoint: the sketch is not needed again */
    e->tq         = e->ck_tq;
    e->tq_matvecs = est->matvecs = e->ck_tq_matvecs;
    PetscCall(Hutchinson(e, NTK_STREAM_RESIDUAL, 0, NULL, e->ck_ntx, e->tq, "trace (hutch++)",
                         est));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(MatCreateVecs(e->K, &z, NULL));
  PetscCall(VecDuplicateVecs(z, k, &W));
  PetscCall(VecDestroy(&z));
  PetscCall(Sketch(e, k, W, &nq, &tq));
  /* resumed: the sketch is deterministic, so Tr(Q^T K Q) is the one the samples go with */
  PetscCheck(e->ck_ntx == 0 || PetscAbsReal(tq - e->ck_tq) <= 1e-10 * PetscAbsReal(e->ck_tq),
             e->comm, PETSC_ERR_ARG_INCOMP, "the Hutch++ sketch gives Tr(Q^T K Q) = %.17g, the "
             "estimate checkpoint %s has %.17g: not the same kernel", (double)tq, e->ckfile,
             (double)e->ck_tq);
  e->tq         = tq;
  e->tq_matvecs = est->matvecs = k + nq;
  PetscCall(Hutchinson(e, NTK_STREAM_RESIDUAL, nq, W, maxp, tq, "trace (hutch++)", est));
  PetscCall(VecDestroyVecs(k, &W));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode OneSided(NtkEstimator e, NtkEstimate *est)
{
  Mat              J;
  Vec              z;
  PetscScalar     *dth;
  PetscReal        scale;
  PetscInt         P, maxp = NtkEstimatorMaxProbes(e, 1, 0);
  PetscBool        stop = PETSC_FALSE;
  NtkKernelVariant v;

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernel(e->op, &v));
  PetscCheck(v == NTK_KERNEL_FULL, e->comm, PETSC_ERR_SUP,
             "the one-sided trace estimate needs "
             "the full kernel (-ntk_kernel full); use hutchinson or hutchpp for the averaged one");
  PetscCall(NtkOpGetScale(e->op, &scale));
  PetscCall(NtkOpGetJacobian(e->op, &J));
  PetscCall(MatGetSize(J, NULL, &P));
  PetscCall(MatCreateVecs(J, NULL, &z));
  PetscCall(SamplesStart(e, maxp));
  PetscCall(PetscMalloc1(P, &dth));
  for (PetscInt j = 0; j < maxp && !stop; j++) {
    PetscReal s = 0;
    if (j < e->ck_ntx) e->tx[j] = e->ck_tx[j];
    else {
      PetscCall(NtkEstimatorFillProbe(e, NTK_STREAM_ONESIDED + j, z));
      PetscCall(NtkOpVJPAll(e->op, z, dth));
      for (PetscInt q = 0; q < P; q++) s += PetscRealPart(dth[q] * dth[q]);
      e->tx[j] = scale * s;
      e->fresh_matvecs++;
    }
    PetscCall(SampleDone(e, "trace (one-sided)", j, maxp, 0, est, &stop));
  }
  PetscCall(PetscFree(dth));
  PetscCall(VecDestroy(&z));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorTrace(NtkEstimator e, NtkEstimate *est)
{
  PetscFunctionBegin;
  PetscCall(NtkEstimatorSetUp(e));
  PetscCall(CheckBudget(e));
  PetscCall(PetscLogEventBegin(NTK_EstimateTrace, 0, 0, 0, 0));
  PetscCall(PetscMemzero(est, sizeof(*est)));
  est->method    = NtkTraceMethods[e->trace_method];
  e->interrupted = PETSC_FALSE;
  e->ntx         = 0;
  switch (e->trace_method) {
  case NTK_TRACE_EXACT:
    PetscCall(NtkOpTrace(e->op, &est->value));
    break;
  case NTK_TRACE_HUTCHINSON:
    PetscCall(Hutchinson(e, NTK_STREAM_HUTCHINSON, 0, NULL, NtkEstimatorMaxProbes(e, 1, 0), 0,
                         "trace (hutchinson)", est));
    break;
  case NTK_TRACE_HUTCHPP:
    PetscCall(HutchPP(e, est));
    break;
  case NTK_TRACE_ONESIDED:
    PetscCall(OneSided(e, est));
    break;
  }
  /* the end of a phase is a checkpoint: a resumed run skips the whole phase */
  e->trace_done = e->interrupted ? PETSC_FALSE : PETSC_TRUE;
  if (e->ckfile[0] && !e->interrupted) PetscCall(NtkEstimatorCheckpointWrite(e));
  PetscCall(PetscLogEventEnd(NTK_EstimateTrace, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}
