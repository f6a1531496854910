/*
  test_estimate_dense: the stochastic estimates agree with the same quantities computed from a
  dense kernel, assembled from explicit Jacobian rows and diagonalised by LAPACK dsyev:
    - Hutch++ with 60 products lies within 3 reported standard errors of Tr K for >= 19 of 20
      seeds; Hutchinson and one-sided estimates of seed 1 lie within 4 standard errors;
    - with -calibration: over 100 seeds, Tr K lies within 2 standard errors in 90-99% of runs, for
      Hutchinson (30 probes) and Hutch++ (60 products);
    - SLQ: entropy within -entropy_rtol (relative) and within 2 of its standard errors, effective
      rank within 2%, |K|_F within 3 standard errors, near-zero mass consistent with rank K;
    - position: rho and mu from NtkPositionCompute equal the dense values to 1e-10 relative for
      MSE and cross-entropy, and the residual's spectral measure reproduces g^T K^k g, k = 0..3.
  Runs on any number of ranks; the probes are keyed by global row, so every count checks the same.
*/
#include <ntk/estimate.h>
#include <ntk/loss.h>
#include <ntk/sys.h>
#include <petscblaslapack.h>

static PetscInt failures = 0;

static PetscErrorCode Expect(const char *what, PetscBool ok, PetscReal a, PetscReal b)
{
  PetscFunctionBegin;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "  %s %s: %.10g vs %.10g\n", ok ? "ok  " : "FAIL", what,
                        (double)a, (double)b));
  if (!ok) failures++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Dense K = s J J^T (n x n, replicated) from the explicit Jacobian rows of every rank. */
static PetscErrorCode DenseKernel(NtkOp op, PetscInt nloc, PetscInt C, PetscInt P, PetscReal s,
                                  PetscInt n, PetscScalar **K)
{
  PetscScalar *Jloc, *Jall;
  PetscMPIInt  size, mine, *counts, *displs;
  PetscBLASInt bn, bp;
  PetscScalar  zero = 0;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(PetscMalloc1(PetscMax(1, nloc * C * P), &Jloc));
  PetscCall(NtkOpJacobianBlock(op, 0, nloc, Jloc));
  PetscCall(PetscMalloc2(size, &counts, size, &displs));
  mine = (PetscMPIInt)(nloc * C * P);
  PetscCallMPI(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, PETSC_COMM_WORLD));
  displs[0] = 0;
  for (int r = 1; r < size; r++) displs[r] = displs[r - 1] + counts[r - 1];
  PetscCall(PetscMalloc1(n * P, &Jall));
  PetscCallMPI(
      MPI_Allgatherv(Jloc, mine, MPIU_SCALAR, Jall, counts, displs, MPIU_SCALAR, PETSC_COMM_WORLD));
  PetscCall(PetscFree(Jloc));
  PetscCall(PetscFree2(counts, displs));
  /* row-major J (n x P) is column-major J^T (P x n): K = (J^T)^T J^T */
  PetscCall(PetscBLASIntCast(n, &bn));
  PetscCall(PetscBLASIntCast(P, &bp));
  PetscCall(PetscMalloc1(n * n, K));
  PetscCallBLAS("BLASgemm",
                BLASgemm_("T", "N", &bn, &bn, &bp, &s, Jall, &bp, Jall, &bp, &zero, *K, &bn));
  PetscCall(PetscFree(Jall));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Eigenvalues (ascending) of the symmetric K; K is destroyed. */
static PetscErrorCode Eigenvalues(PetscInt n, PetscScalar *K, PetscReal *lam)
{
  PetscBLASInt bn, lwork, info;
  PetscScalar *work;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(n, &bn));
  lwork = 3 * bn;
  PetscCall(PetscMalloc1(lwork, &work));
  PetscCallBLAS("LAPACKsyev", LAPACKsyev_("N", "U", &bn, K, &bn, lam, work, &lwork, &info));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "dsyev info %d", (int)info);
  PetscCall(PetscFree(work));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Fraction of seeds (1..nseed) whose estimate lies within `width` stderrs of the exact trace. */
static PetscErrorCode Coverage(NtkEstimator est, NtkTraceMethod m, PetscInt budget, PetscInt nseed,
                               PetscReal width, PetscReal T, PetscInt *hits)
{
  NtkEstimate e;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorSetTraceMethod(est, m));
  PetscCall(NtkEstimatorSetMatvecs(est, budget));
  *hits = 0;
  for (PetscInt s = 1; s <= nseed; s++) {
    PetscCall(NtkEstimatorSetSeed(est, s));
    PetscCall(NtkEstimatorTrace(est, &e));
    PetscCheck(e.matvecs <= budget, PETSC_COMM_WORLD, PETSC_ERR_PLIB, "budget exceeded");
    if (PetscAbsReal(e.value - T) <= width * e.err) (*hits)++;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CheckTraces(NtkEstimator est, PetscReal T, PetscBool calib)
{
  PetscInt    hits;
  NtkEstimate e;
  char        what[128];

  PetscFunctionBegin;
  PetscCall(Coverage(est, NTK_TRACE_HUTCHPP, 60, 20, 3.0, T, &hits));
  PetscCall(Expect("Hutch++ (60 products) within 3 stderr, seeds of 20", hits >= 19, hits, 19));
  for (int m = NTK_TRACE_HUTCHINSON; m <= NTK_TRACE_ONESIDED; m++) {
    PetscCall(NtkEstimatorSetTraceMethod(est, (NtkTraceMethod)m));
    PetscCall(NtkEstimatorSetMatvecs(est, 60));
    PetscCall(NtkEstimatorSetSeed(est, 1));
    PetscCall(NtkEstimatorTrace(est, &e));
    PetscCall(PetscSNPrintf(what, sizeof(what), "%s trace within 4 stderr (%.3g)",
                            NtkTraceMethods[m], (double)e.err));
    PetscCall(Expect(what, PetscAbsReal(e.value - T) <= 4 * e.err ? PETSC_TRUE : PETSC_FALSE,
                     e.value, T));
  }
  if (!calib) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(Coverage(est, NTK_TRACE_HUTCHINSON, 30, 100, 2.0, T, &hits));
  PetscCall(Expect("calibration: Hutchinson within 2 stderr in 90-99 of 100 seeds",
                   hits >= 90 && hits <= 99 ? PETSC_TRUE : PETSC_FALSE, hits, 95));
  PetscCall(Coverage(est, NTK_TRACE_HUTCHPP, 60, 100, 2.0, T, &hits));
  PetscCall(Expect("calibration: Hutch++ within 2 stderr in 90-99 of 100 seeds",
                   hits >= 90 && hits <= 99 ? PETSC_TRUE : PETSC_FALSE, hits, 95));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* SLQ estimates against the dense spectrum lam (ascending, n values). */
static PetscErrorCode CheckSLQ(NtkEstimator est, PetscInt n, const PetscReal *lam, PetscReal T,
                               PetscReal srtol)
{
  NtkEstimate    Tex = {0}, fro, reff, S;
  PetscReal      F2 = 0, Sx = 0, thr, nz, nze, reffx;
  PetscInt       nzero = 0;
  PetscLogDouble t0    = MPI_Wtime();

  PetscFunctionBegin;
  Tex.value = T;
  PetscCall(NtkEstimatorSetMatvecs(est, -1));
  PetscCall(NtkEstimatorSetSeed(est, 1));
  PetscCall(NtkEstimatorSetFromOptions(est));
  PetscCall(NtkEstimatorSLQ(est, &Tex, &fro, &reff, &S));
  thr = 1e-12 * lam[n - 1] * n;
  for (PetscInt k = 0; k < n; k++) {
    F2 += lam[k] * lam[k];
    if (lam[k] < thr)
      nzero++;
    else
      Sx -= lam[k] / T * PetscLogReal(lam[k] / T);
  }
  reffx = T * T / F2;
  PetscCall(NtkEstimatorGetNearZeroMass(est, &nz, &nze));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "  SLQ: %" PetscInt_FMT " probes, %" PetscInt_FMT
                        " products, %.2f s; S = %.6g +- %.3g (exact %.6g, %.2f stderr, %.3f%%)\n",
                        S.probes, S.matvecs, MPI_Wtime() - t0, (double)S.value, (double)S.err,
                        (double)Sx, (double)(PetscAbsReal(S.value - Sx) / S.err),
                        (double)(100 * PetscAbsReal(S.value - Sx) / Sx)));
  PetscCall(
      Expect("SLQ entropy relative error", PetscAbsReal(S.value - Sx) <= srtol * Sx, S.value, Sx));
  PetscCall(
      Expect("SLQ entropy within 2 stderr", PetscAbsReal(S.value - Sx) <= 2 * S.err, S.value, Sx));
  PetscCall(Expect("effective rank within 2%", PetscAbsReal(reff.value - reffx) <= 0.02 * reffx,
                   reff.value, reffx));
  PetscCall(Expect("|K|_F within 3 stderr",
                   PetscAbsReal(fro.value - PetscSqrtReal(F2)) <= 3 * fro.err, fro.value,
                   PetscSqrtReal(F2)));
  PetscCall(Expect("near-zero mass vs dense null space",
                   PetscAbsReal(nz - (PetscReal)nzero / n) <= 3 * nze + 0.5 / n, nz,
                   (PetscReal)nzero / n));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* g by the test's own formulas from the outputs and the shard's targets (local rows). */
static PetscErrorCode OwnGradient(NtkOp op, NtkLossType type, Vec g)
{
  NtkData             data;
  const NtkDataShard *sh;
  PetscScalar        *a;
  PetscInt            n, C;

  PetscFunctionBegin;
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  n = sh->rend - sh->rstart;
  C = sh->C;
  PetscCall(NtkOpGetOutputs(op, g));
  PetscCall(VecGetArray(g, &a));
  for (PetscInt i = 0; i < n; i++) {
    PetscReal z = 0;
    for (PetscInt c = 0; c < C; c++) z += PetscExpReal(a[i * C + c]);
    for (PetscInt c = 0; c < C; c++) {
      if (type == NTK_LOSS_MSE)
        a[i * C + c] = (a[i * C + c] - sh->Y[i * C + c]) / sh->N;
      else
        a[i * C + c] = (PetscExpReal(a[i * C + c]) / z - (sh->labels[i] == c)) / sh->N;
    }
  }
  PetscCall(VecRestoreArray(g, &a));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CheckPosition(NtkOp op, NtkEstimator est, NtkLossType type, PetscInt n,
                                    const PetscScalar *K)
{
  Mat                J;
  Vec                g, gl, gall;
  VecScatter         sc;
  const PetscScalar *ga;
  PetscScalar       *v, *w;
  PetscReal          loss, m[4] = {0}, q[4] = {0}, T = 0, nrm, err, e1 = 0;
  NtkPosition        pos = {0};
  char               what[128];

  PetscFunctionBegin;
  PetscCall(NtkPositionCompute(op, type, est, 4, &pos));
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(MatCreateVecs(J, NULL, &g));
  PetscCall(VecDuplicate(g, &gl));
  PetscCall(NtkLossEvaluate(op, type, &loss, gl));
  PetscCall(OwnGradient(op, type, g));
  PetscCall(VecAXPY(gl, -1.0, g));
  PetscCall(VecNorm(gl, NORM_2, &err));
  PetscCall(VecNorm(g, NORM_2, &nrm));
  PetscCall(PetscSNPrintf(what, sizeof(what), "%s gradient vs own formula", NtkLossTypes[type]));
  PetscCall(Expect(what, err <= 1e-13 * nrm ? PETSC_TRUE : PETSC_FALSE, err / nrm, 1e-13));

  /* q_k = g^T K^k g with the dense kernel */
  PetscCall(VecScatterCreateToAll(g, &sc, &gall));
  PetscCall(VecScatterBegin(sc, g, gall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(sc, g, gall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetArrayRead(gall, &ga));
  PetscCall(PetscMalloc2(n, &v, n, &w));
  PetscCall(PetscArraycpy(v, ga, n));
  for (PetscInt k = 0; k < 4; k++) {
    for (PetscInt a = 0; a < n; a++) q[k] += ga[a] * v[a];
    for (PetscInt a = 0; a < n; a++) {
      w[a] = 0;
      for (PetscInt b = 0; b < n; b++) w[a] += K[a * n + b] * v[b];
    }
    PetscCall(PetscArraycpy(v, w, n));
  }
  for (PetscInt a = 0; a < n; a++) T += K[a * n + a];
  PetscCall(VecRestoreArrayRead(gall, &ga));
  for (PetscInt k = 0; k < 4; k++)
    for (PetscInt j = 0; j < pos.nnodes; j++)
      m[k] += pos.weights[j] * PetscPowRealInt(pos.nodes[j], k);
  PetscCall(PetscSNPrintf(what, sizeof(what), "%s rho vs dense", NtkLossTypes[type]));
  e1 = q[1] / (q[0] * T);
  PetscCall(Expect(what, PetscAbsReal(pos.rho - e1) <= 1e-10 * e1, pos.rho, e1));
  PetscCall(PetscSNPrintf(what, sizeof(what), "%s mu vs dense", NtkLossTypes[type]));
  PetscCall(
      Expect(what, PetscAbsReal(pos.mu - q[1] / q[0]) <= 1e-10 * q[1] / q[0], pos.mu, q[1] / q[0]));
  for (PetscInt k = 0; k < 4; k++) {
    PetscCall(PetscSNPrintf(what, sizeof(what), "%s spectral measure moment %" PetscInt_FMT,
                            NtkLossTypes[type], k));
    PetscCall(Expect(what, PetscAbsReal(m[k] - q[k]) <= 1e-8 * q[k], m[k], q[k]));
  }
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "  %s: loss %.6g, rho %.6g, rank position %.4g +- %.2g, "
                        "alignment %.4g +- %.2g\n",
                        NtkLossTypes[type], (double)pos.loss, (double)pos.rho,
                        (double)pos.rank_position.value, (double)pos.rank_position.err,
                        (double)pos.alignment.value, (double)pos.alignment.err));
  PetscCall(NtkPositionReset(&pos));
  PetscCall(PetscFree2(v, w));
  PetscCall(VecScatterDestroy(&sc));
  PetscCall(VecDestroy(&gall));
  PetscCall(VecDestroy(&g));
  PetscCall(VecDestroy(&gl));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  NtkNet              net;
  NtkData             data;
  NtkOp               op;
  NtkEstimator        est;
  const NtkDataShard *sh;
  PetscInt            P, n;
  PetscReal           scale, T, srtol = 0.01, *lam;
  PetscScalar        *K = NULL, *Kcopy;
  char                cache[PETSC_MAX_PATH_LEN] = "";
  FILE               *f;
  PetscBool           calib = PETSC_FALSE, traces = PETSC_TRUE, position = PETSC_TRUE;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(PetscOptionsGetBool(NULL, NULL, "-calibration", &calib, NULL));
  PetscCall(PetscOptionsGetBool(NULL, NULL, "-traces", &traces, NULL));
  PetscCall(PetscOptionsGetBool(NULL, NULL, "-position", &position, NULL));
  PetscCall(PetscOptionsGetReal(NULL, NULL, "-entropy_rtol", &srtol, NULL));
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetUp(op));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkOpGetScale(op, &scale));
  n = sh->N * sh->C;

  /* -spectrum_cache file: reuse the eigenvalues of an earlier run (then no position checks) */
  PetscCall(PetscOptionsGetString(NULL, NULL, "-spectrum_cache", cache, sizeof(cache), NULL));
  PetscCall(PetscMalloc1(n, &lam));
  if (cache[0] && (f = fopen(cache, "rb"))) {
    PetscCheck(fread(lam, sizeof(PetscReal), n, f) == (size_t)n, PETSC_COMM_SELF,
               PETSC_ERR_FILE_READ, "short cache %s", cache);
    (void)fclose(f);
    position = PETSC_FALSE;
  } else {
    PetscCall(DenseKernel(op, sh->rend - sh->rstart, sh->C, P, scale, n, &K));
    PetscCall(PetscMalloc1(n * n, &Kcopy));
    PetscCall(PetscArraycpy(Kcopy, K, n * n));
    PetscCall(Eigenvalues(n, Kcopy, lam));
    PetscCall(PetscFree(Kcopy));
    if (cache[0] && (f = fopen(cache, "wb"))) {
      (void)fwrite(lam, sizeof(PetscReal), n, f);
      (void)fclose(f);
    }
  }
  PetscCall(NtkOpTrace(op, &T));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "n = %" PetscInt_FMT ", P = %" PetscInt_FMT
                        ", Tr K = %.10g, lambda in [%.4g, %.4g]\n",
                        n, P, (double)T, (double)lam[0], (double)lam[n - 1]));
  PetscCall(NtkEstimatorCreate(op, &est));
  PetscCall(NtkEstimatorSetUp(est));
  if (traces) PetscCall(CheckTraces(est, T, calib));
  PetscCall(CheckSLQ(est, n, lam, T, srtol));
  if (position) {
    PetscCall(CheckPosition(op, est, NTK_LOSS_MSE, n, K));
    if (sh->labels) PetscCall(CheckPosition(op, est, NTK_LOSS_XENT, n, K));
  }
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%" PetscInt_FMT " failures\n", failures));
  PetscCall(PetscFree(lam));
  PetscCall(PetscFree(K));
  PetscCall(NtkEstimatorDestroy(&est));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscCall(PetscFinalize());
  return failures ? 1 : 0;
}
