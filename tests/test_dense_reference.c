/*
  test_dense_reference: the dense path equals an independent dense kernel on any number of ranks.
  The reference K is built here from explicit Jacobian rows (NtkOpJacobianBlock, gathered), and
  its eigenvalues come from LAPACK dsyev on rank 0. For both kernel variants it checks
    - every entry of NtkDenseAssemble (factors around a ring of ranks) against J J^T (1e-13 of
      max |K|);
    - all eigenvalues of the ScaLAPACK and LAPACK solvers against the reference, to
      n eps lambda_max (the backward error of a dense symmetric eigensolver) times 100;
    - the summary's trace against the exact trace of the operator (1e-12 relative).
*/
#include <ntk/spectrum.h>
#include <ntk/sys.h>
#include <slepcsys.h>
#include <petscblaslapack.h>

static PetscInt failures;

static PetscErrorCode Expect(const char *what, PetscReal err, PetscReal tol)
{
  PetscFunctionBegin;
  if (err > tol || PetscIsNanReal(err)) {
    failures++;
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, "  FAIL %s: %.3e > %.1e\n", what, (double)err,
                          (double)tol));
  } else PetscCall(PetscPrintf(PETSC_COMM_WORLD, "  ok   %s: %.3e\n", what, (double)err));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The whole Jacobian (NC x P, row-major) on every rank, from the explicit local rows. */
static PetscErrorCode GatherJacobian(NtkOp op, PetscInt nloc, PetscInt C, PetscInt P,
                                     PetscScalar **Jall)
{
  PetscScalar *Jloc;
  PetscMPIInt  size, mine, *counts, *displs;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(PetscMalloc1(PetscMax(1, nloc * C * P), &Jloc));
  PetscCall(NtkOpJacobianBlock(op, 0, nloc, Jloc));
  PetscCall(PetscMalloc2(size, &counts, size, &displs));
  PetscCall(PetscMPIIntCast(nloc * C * P, &mine));
  PetscCallMPI(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, PETSC_COMM_WORLD));
  for (PetscMPIInt r = 0; r < size; r++) displs[r] = r ? displs[r - 1] + counts[r - 1] : 0;
  PetscCall(PetscMalloc1(displs[size - 1] + counts[size - 1], Jall));
  PetscCallMPI(MPI_Allgatherv(Jloc, mine, MPIU_SCALAR, *Jall, counts, displs, MPIU_SCALAR,
                              PETSC_COMM_WORLD));
  PetscCall(PetscFree2(counts, displs));
  PetscCall(PetscFree(Jloc));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Reference kernel (n x n row-major) of the variant: scale J J^T, or its output average. */
static PetscErrorCode ReferenceKernel(const PetscScalar *J, PetscInt N, PetscInt C, PetscInt P,
                                      NtkKernelVariant v, PetscReal scale, PetscScalar *Kr)
{
  PetscInt n = v == NTK_KERNEL_FULL ? N * C : N;

  PetscFunctionBegin;
  PetscCall(PetscArrayzero(Kr, n * n));
  for (PetscInt a = 0; a < N * C; a++)
    for (PetscInt b = 0; b < N * C; b++) {
      PetscScalar s = 0;
      if (v == NTK_KERNEL_AVERAGED && a % C != b % C) continue;
      for (PetscInt k = 0; k < P; k++) s += J[a * P + k] * J[b * P + k];
      if (v == NTK_KERNEL_FULL) Kr[a * n + b] = scale * s;
      else Kr[(a / C) * n + b / C] += scale * s / C;
    }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* max |Kd - Kr| / max |Kr| over this rank's rows of the assembled matrix, reduced over ranks. */
static PetscErrorCode EntryError(Mat Kd, const PetscScalar *Kr, PetscInt n, PetscReal *err)
{
  const PetscScalar *loc;
  PetscInt           lo, hi, lda;
  PetscReal          e = 0, big = 0;

  PetscFunctionBegin;
  PetscCall(MatGetOwnershipRange(Kd, &lo, &hi));
  PetscCall(MatDenseGetLDA(Kd, &lda));
  PetscCall(MatDenseGetArrayRead(Kd, &loc));
  for (PetscInt i = lo; i < hi; i++)
    for (PetscInt j = 0; j < n; j++) {
      e   = PetscMax(e, PetscAbsScalar(loc[(i - lo) + j * lda] - Kr[i * n + j]));
      big = PetscMax(big, PetscAbsScalar(Kr[i * n + j]));
    }
  PetscCall(MatDenseRestoreArrayRead(Kd, &loc));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &e, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &big, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
  *err = e / big;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Descending eigenvalues of the reference by dsyev (every rank computes the same). */
static PetscErrorCode ReferenceEigenvalues(PetscScalar *Kr, PetscInt n, PetscReal *ev)
{
  PetscBLASInt bn, lwork, info;
  PetscScalar *work;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(n, &bn));
  lwork = 3 * bn;
  PetscCall(PetscMalloc1(lwork, &work));
  PetscCallBLAS("LAPACKsyev", LAPACKsyev_("N", "U", &bn, Kr, &bn, ev, work, &lwork, &info));
  PetscCheck(!info, PETSC_COMM_SELF, PETSC_ERR_LIB, "dsyev info %d", (int)info);
  for (PetscInt k = 0; k < n / 2; k++) {
    PetscReal t    = ev[k];
    ev[k]          = ev[n - 1 - k];
    ev[n - 1 - k]  = t;
  }
  PetscCall(PetscFree(work));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode RunCase(NtkKernelVariant v)
{
  NtkNet              net;
  NtkData             data;
  NtkOp               op;
  const NtkDataShard *sh;
  Mat                 Kd;
  PetscScalar        *J, *Kr;
  PetscReal          *ev, *eig, err = 0, scale, trace;
  PetscInt            P, n, m;
  NtkSpectrumSummary  sum;
  char                what[128];

  PetscFunctionBegin;
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetKernel(op, v));
  PetscCall(NtkOpSetUp(op));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkOpGetScale(op, &scale));
  n = v == NTK_KERNEL_FULL ? sh->N * sh->C : sh->N;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%s kernel, n = %" PetscInt_FMT ", P = %" PetscInt_FMT
                        "\n", NtkKernelVariants[v], n, P));

  PetscCall(GatherJacobian(op, sh->rend - sh->rstart, sh->C, P, &J));
  PetscCall(PetscMalloc3(n * n, &Kr, n, &ev, n, &eig));
  PetscCall(ReferenceKernel(J, sh->N, sh->C, P, v, scale, Kr));
  PetscCall(NtkDenseAssemble(op, &Kd));
  PetscCall(EntryError(Kd, Kr, n, &err));
  PetscCall(Expect("assembled entries vs explicit J J^T", err, 1e-13));
  PetscCall(MatDestroy(&Kd));
  PetscCall(ReferenceEigenvalues(Kr, n, ev));

  for (int s = 0; s < 2; s++) {
    PetscReal *val;
    PetscCall(NtkDenseEigenvalues(op, (NtkDenseSolver)s, &m, &val));
    PetscCheck(m == n, PETSC_COMM_WORLD, PETSC_ERR_PLIB, "dimension %" PetscInt_FMT, m);
    err = 0;
    for (PetscInt k = 0; k < n; k++) err = PetscMax(err, PetscAbsReal(val[k] - ev[k]));
    PetscCall(PetscSNPrintf(what, sizeof(what), "%s eigenvalues vs dsyev (/ n eps lambda_max)",
                            NtkDenseSolvers[s]));
    PetscCall(Expect(what, err / (n * PETSC_MACHINE_EPSILON * ev[0]), 100));
    if (s == 0) PetscCall(PetscArraycpy(eig, val, n));
    PetscCall(PetscFree(val));
  }
  PetscCall(NtkSpectrumSummarize(n, eig, &sum));
  PetscCall(NtkOpTrace(op, &trace));
  PetscCall(Expect("summary trace vs exact trace", PetscAbsReal(sum.trace - trace) / trace, 1e-12));

  PetscCall(PetscFree3(Kr, ev, eig));
  PetscCall(PetscFree(J));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  PetscCall(SlepcInitialize(&argc, &argv, NULL, NULL));
  PetscCall(RunCase(NTK_KERNEL_FULL));
  PetscCall(RunCase(NTK_KERNEL_AVERAGED));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%s: %" PetscInt_FMT " failures\n",
                        failures ? "FAIL" : "PASS", failures));
  PetscCall(SlepcFinalize());
  return failures ? 1 : 0;
}
