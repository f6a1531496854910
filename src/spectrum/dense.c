/*
  The dense exact path: K (or Kbar) assembled from the Jacobian factors, then its whole spectrum.

  Assembly. Row (i, c) of J is, layer by layer, s_l dz_l^{(i,c)} a_{l-1}^{(i)T} (weights) and
  dz_l^{(i,c)} (bias), so with S_l = A_l A_l'^T (samples x samples) and Z_l = DZ_l DZ_l'^T,
      K_(i,c),(j,c') = scale sum_l Z_l[(i,c),(j,c')] (s_l^2 S_l[i,j] + 1),
      Kbar_ij        = (scale / C) sum_c K_(i,c),(j,c),
  two BLAS-3 products per layer and block; J itself is never stored. Each rank packs the factors
  of its own samples (F doubles per sample, F = sum_l n_{l-1} + C n_l); the packs travel around
  a ring of ranks (MPI_Sendrecv_replace), and at every step a rank fills the columns of the
  visiting samples in its own row block K(mine, visiting). The row blocks form a MATMPIDENSE laid
  out as the kernel vectors; no K product and no column-by-column conversion is ever done.

  Solvers. ScaLAPACK: the row-block matrix is converted to MATSCALAPACK (block-cyclic; PETSc
  redistributes it in one collective exchange) and SLEPc's EPSSCALAPACK (p?syev) computes all
  eigenvalues. LAPACK: the rows are gathered on rank 0 and dsyev computes the values only; the
  fast path for small kernels, and an independent check of the ScaLAPACK path.

  Summaries of a full spectrum: trace, Frobenius norm sqrt(sum lambda^2), effective rank
  (Tr K)^2 / Tr K^2, von Neumann entropy S = -sum p ln p with p = lambda / Tr K (p <= 0 adds
  nothing; S / ln n is the normalised entropy), and the null space dimension: the eigenvalues below
  the absolute threshold lambda_max n eps 10, the size of the rounding error of a dense symmetric
  eigensolver (backward error ~ n eps ||K||) with a safety factor of ten.
*/
#include <ntk/spectrum.h>
#include <slepceps.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include "../net/netimpl.h" /* NTK_MAX_LAYERS */

const char *const NtkDenseSolvers[] = {"scalapack", "lapack", "NtkDenseSolver", "NTK_DENSE_", NULL};
PetscLogEvent     NTK_DenseAssemble, NTK_DenseSolve;

/* The factor pack: layer-major sections A_l (nmax x n_{l-1}) and DZ_l (nmax C x n_l). */
typedef struct {
  PetscInt        L, C, nmax, F;
  const PetscInt *w;
  PetscInt        offA[NTK_MAX_LAYERS + 1], offZ[NTK_MAX_LAYERS + 1];
  PetscReal       s2[NTK_MAX_LAYERS + 1];
} Pack;

static PetscErrorCode PackLayout(NtkNet net, PetscInt nmax, Pack *pk)
{
  PetscInt n, off = 0;

  PetscFunctionBegin;
  PetscCall(NtkNetGetWidths(net, &n, &pk->w));
  pk->L    = n - 1;
  pk->C    = pk->w[pk->L];
  pk->nmax = nmax;
  for (PetscInt l = 1; l <= pk->L; l++) {
    const NtkLayer *ly;
    PetscCall(NtkNetGetLayer(net, l, &ly));
    pk->s2[l]   = ly->scale * ly->scale;
    pk->offA[l] = off;
    off += nmax * pk->w[l - 1];
    pk->offZ[l] = off;
    off += nmax * pk->C * pk->w[l];
  }
  pk->F = off / PetscMax(nmax, 1);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Fill buf with the factors of this rank's samples, computed in batches of at most 256. */
static PetscErrorCode PackLocal(NtkOp op, const Pack *pk, PetscScalar *buf)
{
  NtkNet              net;
  NtkData             data;
  const NtkDataShard *sh;
  NtkNetFactors       fac;
  const PetscScalar **A, **DZ;
  PetscInt            nloc, mb = 256, C = pk->C;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(op, &net));
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  nloc = sh->rend - sh->rstart;
  PetscCall(NtkNetFactorsCreate(net, mb, &fac));
  for (PetscInt i0 = 0; i0 < nloc; i0 += mb) {
    PetscInt B = PetscMin(mb, nloc - i0);
    PetscCall(NtkNetFactorsCompute(net, fac, B, sh->X + i0 * sh->d, &A, &DZ));
    for (PetscInt l = 1; l <= pk->L; l++) {
      PetscInt ni = pk->w[l - 1], no = pk->w[l];
      PetscCall(PetscArraycpy(buf + pk->offA[l] + i0 * ni, A[l], B * ni));
      PetscCall(PetscArraycpy(buf + pk->offZ[l] + i0 * C * no, DZ[l], B * C * no));
    }
  }
  PetscCall(NtkNetFactorsDestroy(&fac));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Kb ((m C) x (cb C), row-major, overwritten) = unscaled J(rows) J(cols)^T for my m samples in
  `mine` and samples [j0, j0+cb) of the visiting pack `vis`. S is m x cb, Z is (m C) x (cb C).
*/
static PetscErrorCode BlockFromFactors(const Pack *pk, const PetscScalar *mine, PetscInt m,
                                       const PetscScalar *vis, PetscInt j0, PetscInt cb,
                                       PetscScalar *S, PetscScalar *Z, PetscScalar *Kb)
{
  PetscInt C = pk->C, ncol = cb * C;

  PetscFunctionBegin;
  PetscCall(PetscArrayzero(Kb, m * C * ncol));
  for (PetscInt l = 1; l <= pk->L; l++) {
    PetscInt     ni = pk->w[l - 1], no = pk->w[l];
    PetscBLASInt bm, bc, bi, bo, bmc, bcc;

    PetscCall(PetscBLASIntCast(m, &bm));
    PetscCall(PetscBLASIntCast(cb, &bc));
    PetscCall(PetscBLASIntCast(ni, &bi));
    PetscCall(PetscBLASIntCast(no, &bo));
    PetscCall(PetscBLASIntCast(m * C, &bmc));
    PetscCall(PetscBLASIntCast(ncol, &bcc));
    /* S = A_l(mine) A_l(vis)^T,  Z = DZ_l(mine) DZ_l(vis)^T */
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bm, bc, bi,
                                             1.0, mine + pk->offA[l], bi,
                                             vis + pk->offA[l] + j0 * ni, bi, 0.0, S, bc));
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bmc, bcc, bo,
                                             1.0, mine + pk->offZ[l], bo,
                                             vis + pk->offZ[l] + j0 * C * no, bo, 0.0, Z, bcc));
    /* Kb[(i,c),(j,c')] += Z[(i,c),(j,c')] (s_l^2 S[i,j] + 1) */
    for (PetscInt i = 0; i < m; i++)
      for (PetscInt c = 0; c < C; c++) {
        const PetscScalar *z = Z + (i * C + c) * ncol;
        PetscScalar       *k = Kb + (i * C + c) * ncol;
        for (PetscInt j = 0; j < cb; j++) {
          PetscScalar wgt = pk->s2[l] * S[i * cb + j] + 1.0;
          for (PetscInt c2 = 0; c2 < C; c2++) k[j * C + c2] += wgt * z[j * C + c2];
        }
      }
    PetscCall(PetscLogFlops(2.0 * m * cb * ni + 2.0 * m * C * ncol * no + 2.0 * m * C * ncol));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Store block Kb (my rows x visiting samples [g0, g0+cb)) into the local column-major array. */
static void StoreBlock(const Pack *pk, PetscBool avg, PetscReal scale, PetscInt m, PetscInt g0,
                       PetscInt cb, const PetscScalar *Kb, PetscScalar *loc, PetscInt lda)
{
  PetscInt C = pk->C, ncol = cb * C;

  if (!avg) {
    for (PetscInt r = 0; r < m * C; r++)
      for (PetscInt q = 0; q < ncol; q++) loc[r + (g0 * C + q) * lda] = scale * Kb[r * ncol + q];
    return;
  }
  for (PetscInt i = 0; i < m; i++)
    for (PetscInt j = 0; j < cb; j++) {
      PetscScalar s = 0;
      for (PetscInt c = 0; c < C; c++) s += Kb[(i * C + c) * ncol + j * C + c];
      loc[i + (g0 + j) * lda] = scale * s / C;
    }
}

PetscErrorCode NtkDenseAssemble(NtkOp op, Mat *K)
{
  MPI_Comm            comm;
  NtkNet              net;
  NtkData             data;
  const NtkDataShard *sh;
  NtkKernelVariant    v;
  Pack                pk;
  PetscMPIInt         rank, size, cnt;
  PetscInt            nloc, nmax, nrow, n, cbmax, lda;
  PetscReal           scale;
  PetscScalar        *mine, *vis, *S, *Z, *Kb, *loc;

  PetscFunctionBegin;
  PetscCall(NtkSpectrumInitializePackage());
  PetscCall(PetscLogEventBegin(NTK_DenseAssemble, 0, 0, 0, 0));
  PetscCall(NtkOpGetNet(op, &net));
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkOpGetKernel(op, &v));
  PetscCall(NtkOpGetScale(op, &scale));
  PetscCall(NtkNetGetComm(net, &comm));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  nloc = sh->rend - sh->rstart;
  PetscCallMPI(MPI_Allreduce(&nloc, &nmax, 1, MPIU_INT, MPI_MAX, comm));
  PetscCall(PackLayout(net, nmax, &pk));
  nrow = v == NTK_KERNEL_FULL ? nloc * pk.C : nloc;
  n    = v == NTK_KERNEL_FULL ? sh->N * pk.C : sh->N;
  PetscCall(MatCreateDense(comm, nrow, PETSC_DECIDE, n, n, NULL, K));
  PetscCall(MatDenseGetArrayWrite(*K, &loc));
  PetscCall(MatDenseGetLDA(*K, &lda));

  /* column chunks keep the block workspace near 2^24 doubles (128 MB) */
  cbmax = PetscMax(1, PetscMin(nmax, (1 << 24) / PetscMax(1, nloc * pk.C * pk.C)));
  PetscCall(PetscMalloc2(PetscMax(1, nmax * pk.F), &mine, PetscMax(1, nmax * pk.F), &vis));
  PetscCall(PetscMalloc3(PetscMax(1, nloc * cbmax), &S, PetscMax(1, nloc * pk.C * cbmax * pk.C), &Z,
                         PetscMax(1, nloc * pk.C * cbmax * pk.C), &Kb));
  PetscCall(PackLocal(op, &pk, mine));
  PetscCall(PetscArraycpy(vis, mine, nmax * pk.F));
  PetscCall(PetscMPIIntCast(nmax * pk.F, &cnt));

  /* ring: at step s this rank holds the pack of rank (rank - s) mod size */
  for (PetscMPIInt s = 0; s < size; s++) {
    PetscMPIInt src = (rank - s + size) % size;
    PetscInt    lo, hi;

    PetscCall(NtkShardRange(sh->N, src, size, &lo, &hi));
    for (PetscInt j0 = 0; j0 < hi - lo; j0 += cbmax) {
      PetscInt cb = PetscMin(cbmax, hi - lo - j0);
      PetscCall(BlockFromFactors(&pk, mine, nloc, vis, j0, cb, S, Z, Kb));
      StoreBlock(&pk, v == NTK_KERNEL_AVERAGED, scale, nloc, lo + j0, cb, Kb, loc, lda);
    }
    if (s + 1 < size)
      PetscCallMPI(MPI_Sendrecv_replace(vis, cnt, MPIU_SCALAR, (rank + 1) % size, 0,
                                        (rank - 1 + size) % size, 0, comm, MPI_STATUS_IGNORE));
  }
  PetscCall(PetscFree3(S, Z, Kb));
  PetscCall(PetscFree2(mine, vis));
  PetscCall(MatDenseRestoreArrayWrite(*K, &loc));
  PetscCall(MatAssemblyBegin(*K, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(*K, MAT_FINAL_ASSEMBLY));
  PetscCall(PetscLogEventEnd(NTK_DenseAssemble, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Peak bytes per rank. ScaLAPACK: the row blocks and the block-cyclic copy during the conversion,
  then the matrix, its eigenvectors (p?syev always forms them) and a workspace of about the same
  size: 3 n^2 / ranks doubles. LAPACK: rank 0 holds its row block, a transposed copy and all of K.
*/
PetscErrorCode NtkDenseBytes(PetscInt n, PetscMPIInt size, NtkDenseSolver solver, PetscLogDouble *b)
{
  PetscLogDouble nn = (PetscLogDouble)n * (PetscLogDouble)n * sizeof(PetscScalar);

  PetscFunctionBegin;
  if (solver == NTK_DENSE_SCALAPACK) *b = 3.0 * nn / size + 64.0 * n * sizeof(PetscScalar);
  else *b = nn * (1.0 + 2.0 / size) + 34.0 * n * sizeof(PetscScalar);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* All eigenvalues of the block-cyclic copy of K, by SLEPc's ScaLAPACK solver. */
static PetscErrorCode SolveScaLAPACK(Mat Kd, PetscInt n, PetscReal *eig)
{
  Mat      Ks;
  EPS      eps;
  PetscInt nconv;

  PetscFunctionBegin;
  PetscCall(MatConvert(Kd, MATSCALAPACK, MAT_INITIAL_MATRIX, &Ks));
  PetscCall(EPSCreate(PetscObjectComm((PetscObject)Kd), &eps));
  PetscCall(EPSSetOptionsPrefix(eps, "ntk_dense_"));
  PetscCall(EPSSetOperators(eps, Ks, NULL));
  PetscCall(EPSSetProblemType(eps, EPS_HEP));
  PetscCall(EPSSetType(eps, EPSSCALAPACK));
  PetscCall(EPSSetWhichEigenpairs(eps, EPS_LARGEST_REAL));
  PetscCall(EPSSetDimensions(eps, n, PETSC_DEFAULT, PETSC_DEFAULT));
  PetscCall(EPSSetFromOptions(eps));
  PetscCall(EPSSolve(eps));
  PetscCall(EPSGetConverged(eps, &nconv));
  PetscCheck(nconv == n, PetscObjectComm((PetscObject)Kd), PETSC_ERR_LIB,
             "ScaLAPACK returned %" PetscInt_FMT " of %" PetscInt_FMT " eigenvalues", nconv, n);
  for (PetscInt k = 0; k < n; k++) PetscCall(EPSGetEigenvalue(eps, k, &eig[k], NULL));
  PetscCall(EPSDestroy(&eps));
  PetscCall(MatDestroy(&Ks));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* All eigenvalues by LAPACK dsyev (values only) on rank 0, then broadcast. */
static PetscErrorCode SolveLAPACK(Mat Kd, PetscInt n, PetscReal *eig)
{
  MPI_Comm           comm = PetscObjectComm((PetscObject)Kd);
  PetscMPIInt        rank, size, mine, *counts = NULL, *displs = NULL;
  PetscInt           m, lda;
  const PetscScalar *loc;
  PetscScalar       *rows, *full = NULL, *work, wq;
  PetscBLASInt       bn, lwork = -1, info;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(MatGetLocalSize(Kd, &m, NULL));
  PetscCall(MatDenseGetLDA(Kd, &lda));
  PetscCall(MatDenseGetArrayRead(Kd, &loc));
  PetscCall(PetscMalloc1(PetscMax(1, m * n), &rows));
  for (PetscInt i = 0; i < m; i++)
    for (PetscInt j = 0; j < n; j++) rows[i * n + j] = loc[i + j * lda];
  PetscCall(MatDenseRestoreArrayRead(Kd, &loc));
  PetscCall(PetscMPIIntCast(m * n, &mine));
  if (!rank) {
    PetscCall(PetscMalloc3(n * n, &full, size, &counts, size, &displs));
    PetscCheck((PetscLogDouble)n * n < 2147483647.0, PETSC_COMM_SELF, PETSC_ERR_SUP,
               "-ntk_dense_solver lapack gathers K with 32-bit counts: n = %" PetscInt_FMT
               " is too large, use -ntk_dense_solver scalapack", n);
  }
  PetscCallMPI(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm));
  if (!rank)
    for (PetscMPIInt r = 0; r < size; r++) displs[r] = r ? displs[r - 1] + counts[r - 1] : 0;
  PetscCallMPI(MPI_Gatherv(rows, mine, MPIU_SCALAR, full, counts, displs, MPIU_SCALAR, 0, comm));
  PetscCall(PetscFree(rows));
  if (!rank) {
    PetscCall(PetscBLASIntCast(n, &bn));
    PetscCallBLAS("LAPACKsyev", LAPACKsyev_("N", "U", &bn, full, &bn, eig, &wq, &lwork, &info));
    lwork = (PetscBLASInt)wq;
    PetscCall(PetscMalloc1(PetscMax(1, lwork), &work));
    PetscCallBLAS("LAPACKsyev", LAPACKsyev_("N", "U", &bn, full, &bn, eig, work, &lwork, &info));
    PetscCheck(!info, PETSC_COMM_SELF, PETSC_ERR_LIB, "dsyev failed: info = %d", (int)info);
    PetscCall(PetscFree(work));
    for (PetscInt k = 0; k < n / 2; k++) {
      PetscReal t    = eig[k];
      eig[k]         = eig[n - 1 - k];
      eig[n - 1 - k] = t;
    }
    PetscCall(PetscFree3(full, counts, displs));
  }
  PetscCallMPI(MPI_Bcast(eig, (PetscMPIInt)n, MPIU_REAL, 0, comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDenseEigenvalues(NtkOp op, NtkDenseSolver solver, PetscInt *n, PetscReal **eig)
{
  Mat Kd;

  PetscFunctionBegin;
  PetscCall(NtkDenseAssemble(op, &Kd));
  PetscCall(MatGetSize(Kd, n, NULL));
  PetscCall(PetscMalloc1(PetscMax(1, *n), eig));
  PetscCall(PetscLogEventBegin(NTK_DenseSolve, 0, 0, 0, 0));
  if (solver == NTK_DENSE_SCALAPACK) PetscCall(SolveScaLAPACK(Kd, *n, *eig));
  else PetscCall(SolveLAPACK(Kd, *n, *eig));
  PetscCall(PetscLogEventEnd(NTK_DenseSolve, 0, 0, 0, 0));
  PetscCall(MatDestroy(&Kd));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSummarize(PetscInt n, const PetscReal eig[], NtkSpectrumSummary *s)
{
  PetscReal lmax = 0, sq = 0;

  PetscFunctionBegin;
  PetscCall(PetscMemzero(s, sizeof(*s)));
  for (PetscInt k = 0; k < n; k++) {
    s->trace += eig[k];
    sq += eig[k] * eig[k];
    lmax = PetscMax(lmax, eig[k]);
  }
  s->frobenius      = PetscSqrtReal(sq);
  s->effective_rank = sq > 0 ? s->trace * s->trace / sq : 0;
  s->threshold      = lmax * n * PETSC_MACHINE_EPSILON * 10;
  for (PetscInt k = 0; k < n; k++) {
    PetscReal p = s->trace > 0 ? eig[k] / s->trace : 0;
    if (p > 0) s->entropy -= p * PetscLogReal(p);
    if (eig[k] < s->threshold) s->null_space_dim++;
  }
  s->entropy_normalized = n > 1 ? s->entropy / PetscLogReal((PetscReal)n) : 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}
