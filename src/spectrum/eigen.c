/*
  Leading and tail eigenpairs of the eNTK K = scale J J^T by SLEPc, matrix-free.

  Side. K (NC x NC) and G = scale J^T J (P x P) share their nonzero eigenvalues; G v = lambda v
  gives the kernel eigenvector u = J v / |J v|. The solver iterates on the smaller of the two
  (-ntk_spectrum_side auto), or on the singular values of J by thick-restart Lanczos
  bidiagonalisation (-ntk_spectrum_method svd, lambda = scale sigma^2, u the left vector).

  Leading pairs: Krylov-Schur (Stewart 2001) on the largest eigenvalues with the relative test
  |r| <= tol |lambda|; they converge in a few dozen products because the top of an eNTK spectrum is
  well separated.

  Tail pairs: the k smallest nonzero eigenvalues. No factorisation of K exists, so shift-and-invert
  is out, and every method is a polynomial in K: what decides the cost on an ill-conditioned
  spectrum is how much of the Krylov space each restart throws away. The tail solve is therefore
  Krylov-Schur on the smallest eigenvalues with a wide basis (ncv = min(dimension, 2048), under
  2 GB per rank), close to unrestarted Lanczos. Measured on 784-64-10 tanh with 500 images
  (kappa ~2e6, tail 10): ncv 512 took 5,346 products, 1024 took 3,064, 2048 took 2,048; on
  784-256-256-10 with 1,000 images (kappa ~5e6) the default took 4,091, against 13,557 for plain
  Krylov-Schur with ncv 100 (docs/theory-spectrum.md). Orthogonalising against 2048 vectors costs
  ~8000 NC flops, far below one product (~8 N P flops). Convergence near zero uses an absolute
  test scaled by lambda_max, |r| <= tol lambda_max: a relative test cannot be met by eigenvalues
  at the rounding level of the products.

  Null space. When NC > P the kernel has at least NC - P zero eigenvalues; the tail is then computed
  on G (P x P) restricted to the live parameters (zero Jacobian columns, found from diag(J^T J),
  are exact null directions and are counted apart); its zero eigenvalues are counted, below the
  threshold lambda_max max(10 m eps, tol) with m the operator's dimension, and removed from the
  tail: null_space_dim = NC - P + #dead + #zeros(G). On the output side zeros found among the
  smallest eigenvalues are counted the same way. A solve whose kept pairs are crowded out by zeros
  is repeated with a larger k, so the reported tail holds nonzero eigenvalues only.

  Every pair is checked by an extra product: the reported residual is |K u - lambda u| / lambda_max
  (and / |lambda| as residual_rel), on the kernel itself whatever side the solver worked on.
*/
#include "spectrumimpl.h"
#include <slepceps.h>
#include <slepcsvd.h>
#include <petscblaslapack.h>
#include <cblas.h>

PetscLogEvent     NTK_SpectrumSolve;


/* Pairs of one solve: values and unit kernel-space vectors. */
/*
  Pairs of one solve: of the nconv converged values, nz lie below the zero threshold thr (tail
  solves only); the n kept (leading: the first k; tail: the first k above the threshold) get their
  values and unit kernel-space vectors.
*/
typedef struct {
  PetscInt   n, nz, nconv;
  PetscReal  thr;
  PetscReal *val;
  Vec       *u;
} Pairs;

PetscErrorCode NtkSpectrumInitializePackage(void)
{
  static PetscBool done = PETSC_FALSE;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(PETSC_SUCCESS);
  done = PETSC_TRUE;
  PetscCall(NtkInitializePackage());
  PetscCall(PetscLogEventRegister("NtkSpectrumSolve", NTK_CLASSID, &NTK_SpectrumSolve));
  PetscCall(PetscLogEventRegister("NtkDenseAssemble", NTK_CLASSID, &NTK_DenseAssemble));
  PetscCall(PetscLogEventRegister("NtkDenseSolve", NTK_CLASSID, &NTK_DenseSolve));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumCreate(NtkOp op, NtkSpectrum *sp)
{
  NtkSpectrum s;
  NtkNet      net;

  PetscFunctionBegin;
  PetscCall(NtkSpectrumInitializePackage());
  PetscCall(PetscNew(&s));
  PetscCall(NtkOpGetNet(op, &net));
  PetscCall(NtkNetGetComm(net, &s->comm));
  s->op       = op;
  s->nev      = 10;
  s->tol      = 1e-10;
  s->max_it   = PETSC_DEFAULT;
  s->tail_ncv = PETSC_DEFAULT;
  *sp         = s;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Kernel-product equivalents so far: a full-kernel product is one JVP plus one VJP. */
PetscErrorCode NtkSpectrumProducts(NtkSpectrum sp, PetscInt *n)
{
  PetscInt         nk, nj;
  NtkKernelVariant v;

  PetscFunctionBegin;
  PetscCall(NtkOpGetCounts(sp->op, &nk, &nj));
  PetscCall(NtkOpGetKernel(sp->op, &v));
  *n = v == NTK_KERNEL_FULL ? (nj + 1) / 2 : nk;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Progress on rank 0: at most one line a second, and one whenever more pairs converge. */
static PetscErrorCode Progress(NtkSpectrum sp, PetscInt its, PetscInt nconv, PetscReal val,
                               PetscReal err)
{
  PetscLogDouble now = MPI_Wtime();
  PetscInt       prod = 0;

  PetscFunctionBegin;
  if (now - sp->tlast < 1.0 && nconv == sp->lastconv) PetscFunctionReturn(PETSC_SUCCESS);
  sp->tlast    = now;
  sp->lastconv = nconv;
  PetscCall(NtkSpectrumProducts(sp, &prod));
  PetscCall(PetscPrintf(sp->comm, "  %-7s it %4" PetscInt_FMT "  converged %3" PetscInt_FMT
                        "  products %6" PetscInt_FMT "  %8.1f s  next %.6e (error %.1e)\n",
                        sp->phase, its, nconv, prod, now - sp->t0, (double)val, (double)err));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Between restarts a wide basis can take thousands of products: report them every 5 seconds. */
static PetscErrorCode MonitorProducts(NtkOp op, PetscInt nk, void *ctx)
{
  NtkSpectrum    sp  = (NtkSpectrum)ctx;
  PetscLogDouble now = MPI_Wtime();
  PetscInt       prod;

  PetscFunctionBegin;
  if (now - sp->tlast < 5.0) PetscFunctionReturn(PETSC_SUCCESS);
  sp->tlast = now;
  PetscCall(NtkSpectrumProducts(sp, &prod));
  PetscCall(PetscPrintf(sp->comm, "  %-7s building the Krylov basis: products %6" PetscInt_FMT
                        "  %8.1f s\n", sp->phase, prod, now - sp->t0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode MonitorEPS(EPS eps, PetscInt its, PetscInt nconv, PetscScalar *eigr,
                                 PetscScalar *eigi, PetscReal *errest, PetscInt nest, void *ctx)
{
  PetscFunctionBegin;
  if (nconv < nest) PetscCall(Progress((NtkSpectrum)ctx, its, nconv, eigr[nconv], errest[nconv]));
  else PetscCall(Progress((NtkSpectrum)ctx, its, nconv, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode MonitorSVD(SVD svd, PetscInt its, PetscInt nconv, PetscReal *sigma,
                                 PetscReal *errest, PetscInt nest, void *ctx)
{
  NtkSpectrum sp = (NtkSpectrum)ctx;
  PetscReal   scale;

  PetscFunctionBegin;
  PetscCall(NtkOpGetScale(sp->op, &scale));
  if (nconv < nest)
    PetscCall(Progress(sp, its, nconv, scale * sigma[nconv] * sigma[nconv], errest[nconv]));
  else PetscCall(Progress(sp, its, nconv, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Absolute tests near zero: |r| / lambda_max (eigenvalues), |r| / sigma_max (singular values). */
static PetscErrorCode ConvAbsEPS(EPS eps, PetscScalar er, PetscScalar ei, PetscReal res,
                                 PetscReal *errest, void *ctx)
{
  PetscFunctionBegin;
  *errest = res / ((NtkSpectrum)ctx)->lmax;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode ConvAbsSVD(SVD svd, PetscReal sigma, PetscReal res, PetscReal *errest,
                                 void *ctx)
{
  PetscFunctionBegin;
  *errest = res / ((NtkSpectrum)ctx)->sigmax;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode PairsAlloc(NtkSpectrum sp, PetscInt n, Pairs *pr)
{
  PetscFunctionBegin;
  pr->n = n;
  PetscCall(PetscMalloc2(PetscMax(n, 1), &pr->val, PetscMax(n, 1), &pr->u));
  for (PetscInt k = 0; k < n; k++) PetscCall(NtkOpCreateKernelVec(sp->op, &pr->u[k]));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode PairsFree(Pairs *pr)
{
  PetscFunctionBegin;
  for (PetscInt k = 0; k < pr->n; k++) PetscCall(VecDestroy(&pr->u[k]));
  PetscCall(PetscFree2(pr->val, pr->u));
  pr->n = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Basis size of the tail solve: as wide as memory allows, since every restart of a Lanczos-type
  method on an ill-conditioned spectrum discards progress towards its smallest eigenvalues. The
  automatic size is min(m, 2048), lowered to keep the basis under 2 GB per rank; an operator of
  dimension m <= 4096 gets the whole space (m products, no restart), which also carries a tail
  past a zero cluster wider than 2048.
*/
static PetscErrorCode TailNcv(NtkSpectrum sp, PetscInt m, PetscInt k, PetscInt *ncv)
{
  PetscMPIInt size;
  PetscReal   fit;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(sp->comm, &size));
  fit  = 2e9 * size / (sizeof(PetscScalar) * (PetscReal)m);
  *ncv = sp->tail_ncv;
  if (*ncv == PETSC_DEFAULT) *ncv = (PetscInt)PetscMin(m <= 4096 ? (PetscReal)m : 2048.0, fit);
  *ncv = PetscMin(m, PetscMax(*ncv, 2 * k + 1));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Which converged pairs to keep: the first k, after skipping (tail) the nz values below pr->thr.
  Every converged value is inspected, so a wide basis that converged the whole zero cluster at
  once needs no second solve.
*/
static PetscErrorCode Window(NtkSpectrum sp, EPS eps, SVD svd, PetscInt nconv, PetscInt k,
                             PetscBool tail, Pairs *pr)
{
  PetscReal scale, val;
  PetscInt  nz = 0;

  PetscFunctionBegin;
  PetscCall(NtkOpGetScale(sp->op, &scale));
  for (PetscInt i = 0; tail && i < nconv; i++) {
    if (eps) PetscCall(EPSGetEigenvalue(eps, i, &val, NULL));
    else {
      PetscCall(SVDGetSingularTriplet(svd, i, &val, NULL, NULL));
      val = scale * val * val;
    }
    if (val < pr->thr) nz++;
  }
  pr->nz    = nz;
  pr->nconv = nconv;
  PetscCall(PairsAlloc(sp, PetscMin(k, nconv - nz), pr));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The operator iterated on: G restricted to the live parameters, or K. */
PetscErrorCode NtkSpectrumOperator(NtkSpectrum sp, PetscBool param, Mat *A)
{
  PetscFunctionBegin;
  if (param) *A = sp->Gop;
  else PetscCall(NtkOpGetKernelMat(sp->op, A));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* k eigenpairs of K (output side) or G (parameter side, u = J v / |J v|) by Krylov-Schur. */
static PetscErrorCode RunEPS(NtkSpectrum sp, PetscBool param, PetscBool tail, PetscInt k,
                             Pairs *pr)
{
  EPS      eps;
  Mat      A, J;
  Vec      x;
  PetscInt m, nconv, ncv = PETSC_DEFAULT;

  PetscFunctionBegin;
  PetscCall(NtkSpectrumOperator(sp, param, &A));
  PetscCall(NtkOpGetJacobian(sp->op, &J));
  PetscCall(MatGetSize(A, &m, NULL));
  PetscCall(EPSCreate(sp->comm, &eps));
  if (tail) PetscCall(EPSSetOptionsPrefix(eps, "tail_"));
  PetscCall(EPSSetOperators(eps, A, NULL));
  PetscCall(EPSSetProblemType(eps, EPS_HEP));
  PetscCall(EPSSetType(eps, EPSKRYLOVSCHUR));
  PetscCall(EPSSetWhichEigenpairs(eps, tail ? EPS_SMALLEST_REAL : EPS_LARGEST_REAL));
  if (tail) PetscCall(TailNcv(sp, m, k, &ncv));
  PetscCall(EPSSetDimensions(eps, k, ncv, PETSC_DEFAULT));
  PetscCall(EPSSetTolerances(eps, sp->tol, sp->max_it));
  if (tail) PetscCall(EPSSetConvergenceTestFunction(eps, ConvAbsEPS, sp, NULL));
  if (sp->monitor) PetscCall(EPSMonitorSet(eps, MonitorEPS, sp, NULL));
  if (sp->monitor) PetscCall(NtkOpSetProductMonitor(sp->op, MonitorProducts, sp));
  if (sp->ckfile[0]) PetscCall(EPSSetStoppingTestFunction(eps, NtkSpectrumStopEPS, sp, NULL));
  /* resuming this phase: start from the sum of its saved Ritz vectors (checkpoint.c) */
  if (sp->ckstart && sp->ckphase == (PetscInt)tail) {
    PetscCall(EPSSetInitialSpace(eps, 1, &sp->ckstart));
    PetscCall(VecDestroy(&sp->ckstart));
  }
  PetscCall(EPSSetFromOptions(eps));
  PetscCall(EPSSolve(eps));
  if (sp->interrupted) { /* stopped by a signal: the Ritz vectors are in sp->ck */
    PetscCall(EPSDestroy(&eps));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(EPSGetConverged(eps, &nconv));
  PetscCall(PetscSNPrintf(sp->desc[tail], sizeof(sp->desc[tail]), "eps:krylovschur:%s",
                          param ? "parameter" : "output"));
  PetscCall(Window(sp, eps, NULL, nconv, k, tail, pr));
  PetscCall(MatCreateVecs(A, &x, NULL));
  for (PetscInt i = 0; i < pr->n; i++) {
    PetscCall(EPSGetEigenpair(eps, pr->nz + i, &pr->val[i], NULL, param ? x : pr->u[i], NULL));
    if (param && sp->ndead) {
      PetscCall(VecSet(sp->xfull, 0.0));
      PetscCall(VecScatterBegin(sp->live, x, sp->xfull, INSERT_VALUES, SCATTER_REVERSE));
      PetscCall(VecScatterEnd(sp->live, x, sp->xfull, INSERT_VALUES, SCATTER_REVERSE));
      PetscCall(MatMult(J, sp->xfull, pr->u[i]));
      PetscCall(VecNormalize(pr->u[i], NULL));
    } else if (param) {
      PetscCall(MatMult(J, x, pr->u[i]));
      PetscCall(VecNormalize(pr->u[i], NULL));
    }
  }
  PetscCall(VecDestroy(&x));
  PetscCall(EPSDestroy(&eps));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* k singular triplets of J by thick-restart Lanczos bidiagonalisation: lambda = scale sigma^2. */
static PetscErrorCode RunSVD(NtkSpectrum sp, PetscBool tail, PetscInt k, Pairs *pr)
{
  SVD       svd;
  Mat       J;
  PetscInt  m, P, nconv, ncv = PETSC_DEFAULT;
  PetscReal scale, sigma;

  PetscFunctionBegin;
  PetscCall(NtkOpGetJacobian(sp->op, &J));
  PetscCall(NtkOpGetScale(sp->op, &scale));
  PetscCall(MatGetSize(J, &m, &P));
  PetscCall(SVDCreate(sp->comm, &svd));
  if (tail) PetscCall(SVDSetOptionsPrefix(svd, "tail_"));
  PetscCall(SVDSetOperators(svd, J, NULL));
  PetscCall(SVDSetType(svd, SVDTRLANCZOS));
  PetscCall(SVDSetWhichSingularTriplets(svd, tail ? SVD_SMALLEST : SVD_LARGEST));
  if (tail) PetscCall(TailNcv(sp, PetscMin(m, P), k, &ncv));
  PetscCall(SVDSetDimensions(svd, k, ncv, PETSC_DEFAULT));
  PetscCall(SVDSetTolerances(svd, sp->tol, sp->max_it));
  if (tail) PetscCall(SVDSetConvergenceTestFunction(svd, ConvAbsSVD, sp, NULL));
  if (sp->monitor) PetscCall(SVDMonitorSet(svd, MonitorSVD, sp, NULL));
  if (sp->monitor) PetscCall(NtkOpSetProductMonitor(sp->op, MonitorProducts, sp));
  PetscCall(SVDSetFromOptions(svd));
  PetscCall(SVDSolve(svd));
  PetscCall(SVDGetConverged(svd, &nconv));
  PetscCall(PetscSNPrintf(sp->desc[tail], sizeof(sp->desc[tail]), "svd:trlanczos:jacobian"));
  PetscCall(Window(sp, NULL, svd, nconv, k, tail, pr));
  for (PetscInt i = 0; i < pr->n; i++) {
    PetscCall(SVDGetSingularTriplet(svd, pr->nz + i, &sigma, pr->u[i], NULL));
    pr->val[i] = scale * sigma * sigma;
  }
  PetscCall(SVDDestroy(&svd));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Squared column norms of J, diag(J^T J), replicated, from the factors: for the weights
  s_l^2 sum_i (sum_c dz_{(i,c),o}^2) a_{i,q}^2 (one GEMM per layer), for the biases
  sum_{i,c} dz_{(i,c),o}^2. Inputs that are zero in every sample (image borders) give exactly
  zero columns.
*/
static PetscErrorCode ColumnNorms(NtkSpectrum sp, PetscInt P, PetscReal *dg)
{
  NtkNet              net;
  NtkData             data;
  const NtkDataShard *sh;
  NtkNetFactors       fac;
  const PetscScalar **A, **DZ;
  const PetscInt     *w;
  PetscInt            n, nloc, mb = 256, wmax = 0, C;
  PetscScalar        *E, *A2;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(sp->op, &net));
  PetscCall(NtkOpGetData(sp->op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetWidths(net, &n, &w));
  for (PetscInt l = 0; l < n; l++) wmax = PetscMax(wmax, w[l]);
  C    = w[n - 1];
  nloc = sh->rend - sh->rstart;
  PetscCall(PetscArrayzero(dg, P));
  PetscCall(NtkNetFactorsCreate(net, mb, &fac));
  PetscCall(PetscMalloc2(mb * wmax, &E, mb * wmax, &A2));
  for (PetscInt i0 = 0; i0 < nloc; i0 += mb) {
    PetscInt B = PetscMin(mb, nloc - i0);
    PetscCall(NtkNetFactorsCompute(net, fac, B, sh->X + i0 * sh->d, &A, &DZ));
    for (PetscInt l = 1; l < n; l++) {
      const NtkLayer *ly;
      PetscInt        ni = w[l - 1], no = w[l];
      PetscBLASInt    bi, bo, bb;
      PetscCall(NtkNetGetLayer(net, l, &ly));
      PetscCall(PetscArrayzero(E, B * no));
      for (PetscInt i = 0; i < B; i++)
        for (PetscInt c = 0; c < C; c++)
          for (PetscInt o = 0; o < no; o++) E[i * no + o] += PetscSqr(DZ[l][(i * C + c) * no + o]);
      for (PetscInt k = 0; k < B * ni; k++) A2[k] = PetscSqr(A[l][k]);
      /* dg(W_l) += s^2 E^T A2  (no x ni) */
      PetscCall(PetscBLASIntCast(ni, &bi));
      PetscCall(PetscBLASIntCast(no, &bo));
      PetscCall(PetscBLASIntCast(B, &bb));
      PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bo, bi, bb,
                                               ly->scale * ly->scale, E, bo, A2, bi, 1.0,
                                               dg + ly->woff, bi));
      for (PetscInt i = 0; i < B; i++)
        for (PetscInt o = 0; o < no; o++) dg[ly->boff + o] += E[i * no + o];
    }
  }
  PetscCall(PetscFree2(E, A2));
  PetscCall(NtkNetFactorsDestroy(&fac));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, dg, (PetscMPIInt)P, MPIU_REAL, MPIU_SUM, sp->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = E^T G E x, with E the injection of the live parameters into all P. */
static PetscErrorCode MultLive(Mat A, Vec x, Vec y)
{
  NtkSpectrum sp;
  Mat         G;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(A, &sp));
  PetscCall(NtkOpGetGramMat(sp->op, &G));
  PetscCall(VecSet(sp->xfull, 0.0));
  PetscCall(VecScatterBegin(sp->live, x, sp->xfull, INSERT_VALUES, SCATTER_REVERSE));
  PetscCall(VecScatterEnd(sp->live, x, sp->xfull, INSERT_VALUES, SCATTER_REVERSE));
  PetscCall(MatMult(G, sp->xfull, sp->gfull));
  PetscCall(VecScatterBegin(sp->live, sp->gfull, y, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(sp->live, sp->gfull, y, INSERT_VALUES, SCATTER_FORWARD));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The parameter-side operator. Zero columns of J are exact null directions of G: iterating on
  them would put a large cluster of zeros under the tail, which Lanczos resolves only slowly, so
  G is restricted to the live parameters and the dead ones are counted into the null space.
*/
static PetscErrorCode SetUpParameterSide(NtkSpectrum sp, PetscInt P)
{
  Mat        G;
  PetscReal *dg;
  PetscInt  *idx, nlive = 0, lo, hi, k = 0;
  IS         is;
  Vec        xl;

  PetscFunctionBegin;
  PetscCall(NtkOpGetGramMat(sp->op, &G));
  PetscCall(PetscMalloc1(P, &dg));
  PetscCall(ColumnNorms(sp, P, dg));
  for (PetscInt j = 0; j < P; j++) nlive += dg[j] > 0;
  sp->ndead = P - nlive;
  if (!sp->ndead) {
    sp->Gop = G;
    PetscCall(PetscObjectReference((PetscObject)G));
    PetscCall(PetscFree(dg));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(VecCreateMPI(sp->comm, PETSC_DECIDE, nlive, &xl));
  PetscCall(VecGetOwnershipRange(xl, &lo, &hi));
  PetscCall(PetscMalloc1(PetscMax(1, hi - lo), &idx));
  for (PetscInt j = 0, r = 0; j < P; j++)
    if (dg[j] > 0) {
      if (r >= lo && r < hi) idx[k++] = j;
      r++;
    }
  PetscCall(ISCreateGeneral(PETSC_COMM_SELF, k, idx, PETSC_OWN_POINTER, &is));
  PetscCall(MatCreateVecs(G, &sp->xfull, &sp->gfull));
  PetscCall(VecScatterCreate(sp->xfull, is, xl, NULL, &sp->live));
  PetscCall(ISDestroy(&is));
  PetscCall(MatCreateShell(sp->comm, hi - lo, hi - lo, nlive, nlive, sp, &sp->Gop));
  PetscCall(MatShellSetOperation(sp->Gop, MATOP_MULT, (void (*)(void))MultLive));
  PetscCall(MatSetOption(sp->Gop, MAT_SYMMETRIC, PETSC_TRUE));
  PetscCall(VecDestroy(&xl));
  PetscCall(PetscFree(dg));
  PetscCall(PetscInfo(NULL, "%" PetscInt_FMT " of %" PetscInt_FMT " parameters have zero Jacobian "
                      "columns\n", sp->ndead, P));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Which operator to iterate on; the parameter side needs the full kernel. */
static PetscErrorCode ChooseSide(NtkSpectrum sp, PetscInt NC, PetscInt P, PetscBool *param)
{
  NtkKernelVariant v;

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernel(sp->op, &v));
  PetscCheck(v == NTK_KERNEL_FULL || (sp->side != NTK_SIDE_PARAMETER &&
             sp->method != NTK_SPECTRUM_SVD), sp->comm, PETSC_ERR_SUP,
             "the averaged kernel has no parameter-side operator: use -ntk_spectrum_side output "
             "-ntk_spectrum_method eps");
  if (sp->side == NTK_SIDE_AUTO) *param = v == NTK_KERNEL_FULL && P < NC ? PETSC_TRUE : PETSC_FALSE;
  else *param = sp->side == NTK_SIDE_PARAMETER ? PETSC_TRUE : PETSC_FALSE;
  PetscCheck(!sp->ntail || *param || v != NTK_KERNEL_FULL || NC <= P ||
             sp->method == NTK_SPECTRUM_SVD, sp->comm, PETSC_ERR_SUP,
             "the tail of a kernel with NC = %" PetscInt_FMT " > P = %" PetscInt_FMT
             " sits below an exact null space of dimension >= %" PetscInt_FMT
             ": use -ntk_spectrum_side parameter (or auto)", NC, P, NC - P);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Run(NtkSpectrum sp, PetscBool param, PetscBool tail, PetscInt k, Pairs *pr)
{
  PetscFunctionBegin;
  sp->phase    = tail ? "tail" : "leading";
  sp->lastconv = -1;
  if (sp->method == NTK_SPECTRUM_SVD) PetscCall(RunSVD(sp, tail, k, pr));
  else PetscCall(RunEPS(sp, param, tail, k, pr));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The tail: solve for the k smallest; eigenvalues below the zero threshold are null directions.
  While zeros crowd nonzero values out of the k found, solve again with k raised by their number.
*/
static PetscErrorCode SolveTail(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P,
                                Pairs *pr)
{
  PetscInt m = param ? P - sp->ndead : NC, k = sp->ntail;

  PetscFunctionBegin;
  if (sp->method == NTK_SPECTRUM_SVD) m = PetscMin(NC, P);
  pr->thr = sp->lmax * PetscMax(10 * m * PETSC_MACHINE_EPSILON, sp->tol);
  for (PetscInt round = 0;; round++) {
    PetscCall(Run(sp, param, PETSC_TRUE, PetscMin(k, m), pr));
    if (sp->interrupted) PetscFunctionReturn(PETSC_SUCCESS);
    if (pr->n >= sp->ntail || k >= m || pr->nconv < PetscMin(k, m) || round == 3) break;
    PetscCall(PetscInfo(NULL, "tail solve met %" PetscInt_FMT " zeros; again\n", pr->nz));
    k = PetscMin(m, sp->ntail + 2 * pr->nz + 16);
    PetscCall(PairsFree(pr));
  }
  /* null directions of the operator iterated on, plus the NC - P that G and sigma(J) do not see */
  sp->nulldim = pr->nz + ((param || sp->method == NTK_SPECTRUM_SVD) && NC > P ? NC - P : 0);
  if (param) sp->nulldim += sp->ndead;
  sp->null_known = pr->n > 0 || pr->nconv == m ? PETSC_TRUE : PETSC_FALSE;
  sp->ntailf     = pr->n;
  PetscCall(PetscMalloc2(PetscMax(1, sp->ntailf), &sp->tail, PetscMax(1, sp->ntailf), &sp->utail));
  for (PetscInt i = 0; i < sp->ntailf; i++) {
    sp->tail[i].value = pr->val[i];
    PetscCall(VecDuplicate(pr->u[i], &sp->utail[i]));
    PetscCall(VecCopy(pr->u[i], sp->utail[i]));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* residual = |K u - lambda u| / lambda_max, residual_rel = |K u - lambda u| / |lambda| */
static PetscErrorCode Residuals(NtkSpectrum sp, PetscInt n, NtkEigenPair *pairs, Vec *u)
{
  Mat       K;
  Vec       r;
  PetscReal nr;

  PetscFunctionBegin;
  if (!n) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkOpGetKernelMat(sp->op, &K));
  PetscCall(VecDuplicate(u[0], &r));
  for (PetscInt i = 0; i < n; i++) {
    PetscCall(MatMult(K, u[i], r));
    PetscCall(VecAXPY(r, -pairs[i].value, u[i]));
    PetscCall(VecNorm(r, NORM_2, &nr));
    pairs[i].residual     = nr / sp->lmax;
    pairs[i].residual_rel = nr / PetscMax(PetscAbsReal(pairs[i].value), PETSC_SMALL * sp->lmax);
  }
  PetscCall(VecDestroy(&r));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Eigenvectors, leading then tail, to a PETSc binary file: a temporary name, then a rename. */
static PetscErrorCode WriteVectors(NtkSpectrum sp)
{
  PetscViewer viewer;
  char        tmp[PETSC_MAX_PATH_LEN + 16];
  PetscMPIInt rank;

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.partial", sp->vecfile));
  PetscCall(PetscViewerCreate(sp->comm, &viewer));
  PetscCall(PetscViewerSetType(viewer, PETSCVIEWERBINARY));
  PetscCall(PetscViewerBinarySetSkipInfo(viewer, PETSC_TRUE));
  PetscCall(PetscViewerFileSetMode(viewer, FILE_MODE_WRITE));
  PetscCall(PetscViewerFileSetName(viewer, tmp));
  for (PetscInt i = 0; i < sp->nlead; i++) PetscCall(VecView(sp->ulead[i], viewer));
  for (PetscInt i = 0; i < sp->ntailf; i++) PetscCall(VecView(sp->utail[i], viewer));
  PetscCall(PetscViewerDestroy(&viewer));
  PetscCallMPI(MPI_Comm_rank(sp->comm, &rank));
  if (!rank) PetscCheck(!rename(tmp, sp->vecfile), PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE,
                        "cannot rename %s to %s", tmp, sp->vecfile);
  PetscCallMPI(MPI_Barrier(sp->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The leading pairs; at least one, since lambda_max scales the tail's tests. */
static PetscErrorCode SolveLeading(NtkSpectrum sp, PetscBool param)
{
  Pairs     pr = {0};
  PetscReal scale;

  PetscFunctionBegin;
  PetscCall(Run(sp, param, PETSC_FALSE, PetscMax(sp->nev, 1), &pr));
  if (sp->interrupted) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCheck(pr.n >= 1, sp->comm, PETSC_ERR_CONV_FAILED, "no eigenvalue converged: raise "
             "-ntk_spectrum_max_it or -ntk_spectrum_tol (now %g)", (double)sp->tol);
  PetscCall(NtkOpGetScale(sp->op, &scale));
  sp->lmax   = pr.val[0];
  sp->sigmax = PetscSqrtReal(sp->lmax / scale);
  sp->nlead  = PetscMin(sp->nev, pr.n);
  PetscCall(PetscMalloc2(PetscMax(1, sp->nlead), &sp->lead, PetscMax(1, sp->nlead), &sp->ulead));
  for (PetscInt i = 0; i < sp->nlead; i++) {
    sp->lead[i].value = pr.val[i];
    PetscCall(VecDuplicate(pr.u[i], &sp->ulead[i]));
    PetscCall(VecCopy(pr.u[i], sp->ulead[i]));
  }
  sp->lead_done = PETSC_TRUE;
  PetscCall(PairsFree(&pr));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* With a checkpoint file: refuse the unsupported, read it back, and catch SIGTERM/SIGUSR1. */
static PetscErrorCode SetUpCheckpoint(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P)
{
  PetscFunctionBegin;
  if (!sp->ckfile[0]) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCheck(sp->method == NTK_SPECTRUM_EPS, sp->comm, PETSC_ERR_SUP,
             "-ntk_spectrum_checkpoint works with -ntk_spectrum_method eps, not svd");
  PetscCall(NtkSpectrumCheckpointLoad(sp, param, NC, P));
  if (!sp->signals) PetscCall(NtkSignalInstall());
  sp->signals = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSolve(NtkSpectrum sp)
{
  Mat       J, K;
  Pairs     pr = {0};
  PetscInt  NC, P, p0, p1, p2, p3;
  PetscReal scale;
  PetscBool param = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_SpectrumSolve, 0, 0, 0, 0));
  PetscCall(NtkOpGetJacobian(sp->op, &J));
  PetscCall(MatGetSize(J, NULL, &P));
  PetscCall(NtkOpGetKernelMat(sp->op, &K));
  PetscCall(MatGetSize(K, &NC, NULL));
  PetscCall(NtkOpGetScale(sp->op, &scale));
  PetscCall(ChooseSide(sp, NC, P, &param));
  if (param && sp->method == NTK_SPECTRUM_EPS) PetscCall(SetUpParameterSide(sp, P));
  sp->t0 = sp->tlast = MPI_Wtime();
  PetscCall(NtkSpectrumProducts(sp, &p0));
  sp->pstart = sp->cklast = p0;
  sp->ckwrites = 0;
  sp->ckparam = param;
  PetscCall(SetUpCheckpoint(sp, param, NC, P));

  /*
    Leading pairs, unless a checkpoint holds them. With a checkpoint file they are saved as soon as
    they are done: a tail basis as wide as the operator has no restart at which to stop or write
    before it is complete, and a job killed meanwhile must not lose the leading phase.
  */
  if (sp->lead_done) sp->sigmax = PetscSqrtReal(sp->lmax / scale);
  else {
    PetscCall(SolveLeading(sp, param));
    if (sp->ckfile[0] && sp->ntail && !sp->interrupted)
      PetscCall(NtkSpectrumCheckpointWrite(sp, param, PETSC_TRUE));
  }
  PetscCall(NtkSpectrumProducts(sp, &p1));

  /* tail pairs and the null space */
  sp->nulldim    = (NC > P ? NC - P : 0) + (param ? sp->ndead : 0);
  sp->null_known = PETSC_FALSE;
  if (sp->ntail && !sp->interrupted) {
    PetscCall(SolveTail(sp, param, NC, P, &pr));
    PetscCall(PairsFree(&pr));
  }
  PetscCall(NtkSpectrumProducts(sp, &p2));
  if (sp->interrupted) {
    PetscCall(NtkSpectrumCheckpointWrite(sp, param, sp->lead_done));
    sp->pthis = p2 - p0;
    PetscCall(PetscLogEventEnd(NTK_SpectrumSolve, 0, 0, 0, 0));
    PetscFunctionReturn(PETSC_SUCCESS);
  }

  /* true residuals with one more product each */
  PetscCall(Residuals(sp, sp->nlead, sp->lead, sp->ulead));
  PetscCall(Residuals(sp, sp->ntailf, sp->tail, sp->utail));
  PetscCall(NtkSpectrumProducts(sp, &p3));
  sp->cost[0] = p1 - p0;
  sp->cost[1] = p2 - p1;
  sp->cost[2] = p3 - p2;
  sp->pthis   = p3 - p0;
  if (sp->vecfile[0]) PetscCall(WriteVectors(sp));
  PetscCall(PetscLogEventEnd(NTK_SpectrumSolve, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetLeading(NtkSpectrum sp, PetscInt *n, const NtkEigenPair **pairs)
{
  PetscFunctionBegin;
  *n     = sp->nlead;
  *pairs = sp->lead;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetTailPairs(NtkSpectrum sp, PetscInt *n, const NtkEigenPair **pairs)
{
  PetscFunctionBegin;
  *n     = sp->ntailf;
  *pairs = sp->tail;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetNullSpace(NtkSpectrum sp, PetscInt *dim, PetscBool *known)
{
  PetscFunctionBegin;
  if (dim) *dim = sp->nulldim;
  if (known) *known = sp->null_known;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetCost(NtkSpectrum sp, PetscInt *lead, PetscInt *tail, PetscInt *check)
{
  PetscFunctionBegin;
  if (lead) *lead = sp->cost[0];
  if (tail) *tail = sp->cost[1];
  if (check) *check = sp->cost[2];
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetMethodDescription(NtkSpectrum sp, const char *lead[],
                                               const char *tail[])
{
  PetscFunctionBegin;
  if (lead) *lead = sp->desc[0];
  if (tail) *tail = sp->desc[1];
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumDestroy(NtkSpectrum *sp)
{
  NtkSpectrum s = *sp;

  PetscFunctionBegin;
  if (!s) PetscFunctionReturn(PETSC_SUCCESS);
  for (PetscInt i = 0; i < s->nlead; i++) PetscCall(VecDestroy(&s->ulead[i]));
  for (PetscInt i = 0; i < s->ntailf; i++) PetscCall(VecDestroy(&s->utail[i]));
  if (s->lead) PetscCall(PetscFree2(s->lead, s->ulead));
  if (s->tail) PetscCall(PetscFree2(s->tail, s->utail));
  PetscCall(NtkSpectrumCheckpointReset(s));
  if (s->signals) PetscCall(NtkSignalRestore());
  PetscCall(MatDestroy(&s->Gop));
  PetscCall(VecScatterDestroy(&s->live));
  PetscCall(VecDestroy(&s->xfull));
  PetscCall(VecDestroy(&s->gfull));
  PetscCall(PetscFree(*sp));
  PetscFunctionReturn(PETSC_SUCCESS);
}
