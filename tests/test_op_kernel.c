/*
  test_op_kernel: the matrix-free operators equal products with a dense kernel built from an
  explicitly assembled Jacobian, on any number of ranks. For every activation, both
  parameterisations and both kernel variants it checks
    - each explicit Jacobian row against the plain-loop reference VJP of a unit cotangent;
    - J v against central finite differences and <J v, u> = <v, J^T u>;
    - K v, and G v = J^T J v, against the dense products (1e-12 relative);
    - <K u, w> = <u, K w> and u^T K u >= 0;
    - the exact trace against the dense trace (1e-12 relative);
    - K u against the dense kernel again after the parameters change and NtkOpUpdate, so that
      Jacobian factors cached in the operator (-ntk_op_factors) cannot outlive their parameters,
      and NtkOpVJPAll bit for bit the same before and after a kernel product built them.
  Probe vectors are keyed by global index, so every rank count checks the same numbers.
*/
#include <ntk/op.h>
#include <ntk/sys.h>

typedef struct {
  PetscInt  failures;
  PetscReal worst;
} Tally;

static PetscErrorCode Expect(Tally *t, const char *what, PetscReal err, PetscReal tol)
{
  PetscFunctionBegin;
  if (tol > 0) t->worst = PetscMax(t->worst, err / tol);
  if (err > tol || PetscIsNanReal(err)) {
    t->failures++;
    PetscCall(
        PetscPrintf(PETSC_COMM_WORLD, "  FAIL %s: %.3e > %.1e\n", what, (double)err, (double)tol));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Fill a distributed Vec with normal entries keyed by (seed, stream, global index). */
static PetscErrorCode FillProbe(Vec v, PetscInt stream)
{
  PetscInt     lo, hi;
  PetscScalar *a;

  PetscFunctionBegin;
  PetscCall(VecGetOwnershipRange(v, &lo, &hi));
  PetscCall(VecGetArray(v, &a));
  for (PetscInt i = lo; i < hi; i++) a[i - lo] = NtkRandomNormal(5, stream, i);
  PetscCall(VecRestoreArray(v, &a));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Gather the whole Jacobian (NC x P, row-major) on every rank from the local explicit blocks. */
static PetscErrorCode GatherJacobian(NtkOp op, PetscInt nloc, PetscInt C, PetscInt P,
                                     PetscScalar **Jall)
{
  PetscScalar *Jloc;
  PetscMPIInt  size, mycount;
  PetscMPIInt *counts, *displs;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(PetscMalloc1(PetscMax(1, nloc * C * P), &Jloc));
  PetscCall(NtkOpJacobianBlock(op, 0, nloc, Jloc));
  PetscCall(PetscMalloc2(size, &counts, size, &displs));
  mycount = (PetscMPIInt)(nloc * C * P);
  PetscCallMPI(MPI_Allgather(&mycount, 1, MPI_INT, counts, 1, MPI_INT, PETSC_COMM_WORLD));
  displs[0] = 0;
  for (int r = 1; r < size; r++) displs[r] = displs[r - 1] + counts[r - 1];
  PetscCall(PetscMalloc1(displs[size - 1] + counts[size - 1], Jall));
  PetscCallMPI(MPI_Allgatherv(Jloc, mycount, MPIU_SCALAR, *Jall, counts, displs, MPIU_SCALAR,
                              PETSC_COMM_WORLD));
  PetscCall(PetscFree2(counts, displs));
  PetscCall(PetscFree(Jloc));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Each local explicit Jacobian row equals the reference VJP of the unit cotangent e_(i,c). */
static PetscErrorCode CheckRows(NtkOp op, NtkNet net, const NtkDataShard *sh, PetscInt P, Tally *t)
{
  PetscInt     C = sh->C, nloc = sh->rend - sh->rstart, nchk = PetscMin(nloc, 3);
  PetscScalar *Jblk, *e, *row;
  PetscReal    err = 0, nrm = 0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc3(PetscMax(1, nchk * C * P), &Jblk, C, &e, P, &row));
  PetscCall(NtkOpJacobianBlock(op, 0, nchk, Jblk));
  for (PetscInt i = 0; i < nchk; i++)
    for (PetscInt c = 0; c < C; c++) {
      PetscCall(PetscArrayzero(e, C));
      PetscCall(PetscArrayzero(row, P));
      e[c] = 1;
      PetscCall(NtkNetVJPRef(net, 1, sh->X + i * sh->d, e, row));
      for (PetscInt k = 0; k < P; k++) {
        err = PetscMax(err, PetscAbsScalar(row[k] - Jblk[(i * C + c) * P + k]));
        nrm = PetscMax(nrm, PetscAbsScalar(row[k]));
      }
    }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &err, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &nrm, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
  PetscCall(Expect(t, "explicit Jacobian rows vs reference VJP", err / nrm, 1e-13));
  PetscCall(PetscFree3(Jblk, e, row));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Relative 2-norm difference of two distributed vectors. */
static PetscErrorCode VecRelDiff(Vec a, Vec b, PetscReal *e)
{
  Vec       d;
  PetscReal nd, nb;

  PetscFunctionBegin;
  PetscCall(VecDuplicate(a, &d));
  PetscCall(VecWAXPY(d, -1.0, b, a));
  PetscCall(VecNorm(d, NORM_2, &nd));
  PetscCall(VecNorm(b, NORM_2, &nb));
  *e = nd / nb;
  PetscCall(VecDestroy(&d));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = M x for a dense replicated n x n matrix M and distributed x, y. */
static PetscErrorCode DenseMult(PetscInt n, const PetscScalar *M, Vec x, Vec y)
{
  Vec                xall;
  VecScatter         sc;
  const PetscScalar *xa;
  PetscScalar       *ya;
  PetscInt           lo, hi;

  PetscFunctionBegin;
  PetscCall(VecScatterCreateToAll(x, &sc, &xall));
  PetscCall(VecScatterBegin(sc, x, xall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(sc, x, xall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetOwnershipRange(y, &lo, &hi));
  PetscCall(VecGetArrayRead(xall, &xa));
  PetscCall(VecGetArray(y, &ya));
  for (PetscInt i = lo; i < hi; i++) {
    PetscScalar s = 0;
    for (PetscInt j = 0; j < n; j++) s += M[i * n + j] * xa[j];
    ya[i - lo] = s;
  }
  PetscCall(VecRestoreArray(y, &ya));
  PetscCall(VecRestoreArrayRead(xall, &xa));
  PetscCall(VecScatterDestroy(&sc));
  PetscCall(VecDestroy(&xall));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Dense kernel of the chosen variant from the full Jacobian: n x n with n = NC or N. */
static PetscErrorCode DenseKernel(const PetscScalar *J, PetscInt N, PetscInt C, PetscInt P,
                                  NtkKernelVariant v, PetscReal scale, PetscScalar **Kd,
                                  PetscInt *n)
{
  PetscFunctionBegin;
  *n = v == NTK_KERNEL_FULL ? N * C : N;
  PetscCall(PetscCalloc1((*n) * (*n), Kd));
  for (PetscInt a = 0; a < N * C; a++)
    for (PetscInt b = 0; b < N * C; b++) {
      PetscScalar s = 0;
      if (v == NTK_KERNEL_AVERAGED && a % C != b % C) continue;
      for (PetscInt k = 0; k < P; k++) s += J[a * P + k] * J[b * P + k];
      if (v == NTK_KERNEL_FULL) (*Kd)[a * N * C + b] = scale * s;
      else (*Kd)[(a / C) * N + b / C] += scale * s / C;
    }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* J v against central differences of the outputs, and the adjoint identity, through the shells. */
static PetscErrorCode CheckJacobian(NtkOp op, NtkNet net, Mat J, Tally *t)
{
  Vec                v, u, jv, jtu, fp, fm, vall, theta;
  VecScatter         sc;
  const PetscScalar *va;
  PetscScalar        jvu, vjtu, *th;
  PetscInt           P;
  PetscReal          h = 1e-6, e, njv, nu;

  PetscFunctionBegin;
  PetscCall(MatCreateVecs(J, &v, &u));
  PetscCall(VecDuplicate(u, &jv));
  PetscCall(VecDuplicate(u, &fp));
  PetscCall(VecDuplicate(u, &fm));
  PetscCall(VecDuplicate(v, &jtu));
  PetscCall(FillProbe(v, 1));
  PetscCall(FillProbe(u, 2));
  PetscCall(MatMult(J, v, jv));
  PetscCall(MatMultTranspose(J, u, jtu));
  PetscCall(VecDot(jv, u, &jvu));
  PetscCall(VecDot(v, jtu, &vjtu));
  PetscCall(VecNorm(jv, NORM_2, &njv));
  PetscCall(VecNorm(u, NORM_2, &nu));
  PetscCall(
      Expect(t, "adjoint <Jv,u> = <v,J^T u>", PetscAbsScalar(jvu - vjtu) / (njv * nu), 1e-12));

  PetscCall(VecScatterCreateToAll(v, &sc, &vall));
  PetscCall(VecScatterBegin(sc, v, vall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(sc, v, vall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(VecGetArrayRead(vall, &va));
  for (int side = 0; side < 3; side++) {
    PetscReal step = side == 0 ? h : side == 1 ? -2 * h : h;
    PetscCall(VecGetArray(theta, &th));
    for (PetscInt k = 0; k < P; k++) th[k] += step * va[k];
    PetscCall(VecRestoreArray(theta, &th));
    PetscCall(NtkOpUpdate(op));
    if (side < 2) PetscCall(NtkOpGetOutputs(op, side == 0 ? fp : fm));
  }
  PetscCall(VecRestoreArrayRead(vall, &va));
  PetscCall(VecAXPY(fp, -1.0, fm));
  PetscCall(VecScale(fp, 1.0 / (2 * h)));
  PetscCall(VecRelDiff(fp, jv, &e));
  PetscCall(Expect(t, "J v vs central differences", e, 1e-7));

  PetscCall(VecScatterDestroy(&sc));
  PetscCall(VecDestroy(&vall));
  PetscCall(VecDestroy(&v));
  PetscCall(VecDestroy(&u));
  PetscCall(VecDestroy(&jv));
  PetscCall(VecDestroy(&jtu));
  PetscCall(VecDestroy(&fp));
  PetscCall(VecDestroy(&fm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Move the parameters to theta + 0.3 * probe, update the operator and compare K u with a dense
  kernel rebuilt from the new explicit Jacobian.
*/
static PetscErrorCode CheckAfterUpdate(NtkOp op, NtkNet net, const NtkDataShard *sh,
                                       NtkKernelVariant var, PetscReal scale, Tally *t)
{
  Mat          K;
  Vec          theta, u, ku, kd;
  PetscScalar *th, *Jall, *Kd, *g0 = NULL, *g1 = NULL;
  PetscInt     P, n, nloc = sh->rend - sh->rstart;
  PetscReal    e;

  PetscFunctionBegin;
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(VecGetArray(theta, &th));
  for (PetscInt k = 0; k < P; k++) th[k] += 0.3 * NtkRandomNormal(7, 0, k);
  PetscCall(VecRestoreArray(theta, &th));
  PetscCall(NtkOpUpdate(op));
  PetscCall(GatherJacobian(op, nloc, sh->C, P, &Jall));
  PetscCall(DenseKernel(Jall, sh->N, sh->C, P, var, scale, &Kd, &n));
  PetscCall(NtkOpGetKernelMat(op, &K));
  PetscCall(NtkOpCreateKernelVec(op, &u));
  PetscCall(VecDuplicate(u, &ku));
  PetscCall(VecDuplicate(u, &kd));
  PetscCall(FillProbe(u, 8));
  if (var == NTK_KERNEL_FULL) PetscCall(PetscMalloc2(P, &g0, P, &g1));
  if (var == NTK_KERNEL_FULL) PetscCall(NtkOpVJPAll(op, u, g0));
  PetscCall(MatMult(K, u, ku));
  if (var == NTK_KERNEL_FULL) {
    PetscReal diff = 0;
    PetscCall(NtkOpVJPAll(op, u, g1));
    for (PetscInt k = 0; k < P; k++) diff = PetscMax(diff, PetscAbsScalar(g1[k] - g0[k]));
    PetscCall(Expect(t, "J^T u the same before and after a kernel product", diff, 0.0));
    PetscCall(PetscFree2(g0, g1));
  }
  PetscCall(DenseMult(n, Kd, u, kd));
  PetscCall(VecRelDiff(ku, kd, &e));
  PetscCall(Expect(t, "K u vs dense kernel after a parameter update", e, 1e-12));
  PetscCall(PetscFree(Jall));
  PetscCall(PetscFree(Kd));
  PetscCall(VecDestroy(&u));
  PetscCall(VecDestroy(&ku));
  PetscCall(VecDestroy(&kd));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CheckConfig(NtkActivation act, NtkParameterization par, NtkKernelVariant var,
                                  Tally *t)
{
  NtkNet              net;
  NtkData             data;
  NtkOp               op;
  const NtkDataShard *sh;
  Mat                 J, K, G;
  Vec                 u, w, ku, kw, kd, pv, gv, gd;
  PetscScalar        *Jall, *Kd, *Gd, kuw, ukw, uku;
  PetscInt            P, n, nloc;
  PetscReal           scale, e, nku, nu, trace, tr_dense = 0;
  PetscBool           factors;

  PetscFunctionBegin;
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkNetSetActivation(net, act));
  PetscCall(NtkNetSetParameterization(net, par));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetKernel(op, var));
  PetscCall(NtkOpSetUp(op));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkOpGetScale(op, &scale));
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(NtkOpGetKernelMat(op, &K));
  nloc = sh->rend - sh->rstart;

  PetscCall(CheckRows(op, net, sh, P, t));
  PetscCall(GatherJacobian(op, nloc, sh->C, P, &Jall));
  PetscCall(DenseKernel(Jall, sh->N, sh->C, P, var, scale, &Kd, &n));

  PetscCall(NtkOpCreateKernelVec(op, &u));
  PetscCall(VecDuplicate(u, &w));
  PetscCall(VecDuplicate(u, &ku));
  PetscCall(VecDuplicate(u, &kw));
  PetscCall(VecDuplicate(u, &kd));
  PetscCall(FillProbe(u, 3));
  PetscCall(FillProbe(w, 4));
  PetscCall(MatMult(K, u, ku));
  PetscCall(MatMult(K, w, kw));
  PetscCall(DenseMult(n, Kd, u, kd));
  PetscCall(VecRelDiff(ku, kd, &e));
  PetscCall(Expect(t, "K u vs dense kernel", e, 1e-12));
  PetscCall(VecDot(ku, w, &kuw));
  PetscCall(VecDot(u, kw, &ukw));
  PetscCall(VecDot(u, ku, &uku));
  PetscCall(VecNorm(ku, NORM_2, &nku));
  PetscCall(VecNorm(u, NORM_2, &nu));
  PetscCall(
      Expect(t, "symmetry <Ku,w> = <u,Kw>", PetscAbsScalar(kuw - ukw) / (nku * nu * 2), 1e-13));
  PetscCall(Expect(t, "positivity u^T K u >= 0", uku < 0 ? -uku / (nku * nu) : 0, 1e-14));

  PetscCall(NtkOpTrace(op, &trace));
  for (PetscInt a = 0; a < n; a++) tr_dense += Kd[a * n + a];
  PetscCall(
      Expect(t, "exact trace vs dense trace", PetscAbsReal(trace - tr_dense) / tr_dense, 1e-12));

  if (var == NTK_KERNEL_FULL) {
    PetscCall(NtkOpGetGramMat(op, &G));
    PetscCall(MatCreateVecs(G, &pv, &gv));
    PetscCall(VecDuplicate(gv, &gd));
    PetscCall(FillProbe(pv, 6));
    PetscCall(MatMult(G, pv, gv));
    PetscCall(PetscCalloc1(P * P, &Gd));
    for (PetscInt a = 0; a < sh->N * sh->C; a++)
      for (PetscInt k = 0; k < P; k++)
        for (PetscInt l = 0; l < P; l++) Gd[k * P + l] += scale * Jall[a * P + k] * Jall[a * P + l];
    PetscCall(DenseMult(P, Gd, pv, gd));
    PetscCall(VecRelDiff(gv, gd, &e));
    PetscCall(Expect(t, "G v vs dense J^T J", e, 1e-12));
    PetscCall(CheckJacobian(op, net, J, t));
    PetscCall(PetscFree(Gd));
    PetscCall(VecDestroy(&pv));
    PetscCall(VecDestroy(&gv));
    PetscCall(VecDestroy(&gd));
  }
  PetscCall(NtkOpGetFactors(op, &factors));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%-8s %-8s %-8s N=%" PetscInt_FMT " P=%" PetscInt_FMT
                        " factors=%s |K u - K_dense u|/|K_dense u| = %.1e\n", NtkActivations[act],
                        NtkParameterizations[par], NtkKernelVariants[var], sh->N, P,
                        factors ? "yes" : "no", (double)e));
  PetscCall(CheckAfterUpdate(op, net, sh, var, scale, t));
  PetscCall(PetscFree(Jall));
  PetscCall(PetscFree(Kd));
  PetscCall(VecDestroy(&u));
  PetscCall(VecDestroy(&w));
  PetscCall(VecDestroy(&ku));
  PetscCall(VecDestroy(&kw));
  PetscCall(VecDestroy(&kd));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  Tally t = {0, 0};

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  for (int a = NTK_ACT_IDENTITY; a <= NTK_ACT_SIGMOID; a++)
    for (int p = NTK_PARAM_STANDARD; p <= NTK_PARAM_NTK; p++)
      for (int v = NTK_KERNEL_FULL; v <= NTK_KERNEL_AVERAGED; v++)
        PetscCall(CheckConfig((NtkActivation)a, (NtkParameterization)p, (NtkKernelVariant)v, &t));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "%" PetscInt_FMT " failures; worst error/tolerance %.2f\n", t.failures,
                        (double)t.worst));
  PetscCall(PetscFinalize());
  return t.failures ? 1 : 0;
}
