/*
  The PETSc shell matrices J, K (or Kbar) and G, and the two passes they are made of.
  Shape legend: n = local samples, C outputs, P parameters; output-space arrays are n x C
  row-major (sample-major, as the global row index i*C + c), parameter arrays have length P and
  are replicated on every rank after the Allreduce.
*/
#include "opimpl.h"

/*
  dth = sum over ranks of J_local^T U (overwritten, replicated). U: n x C. The operator products
  (shell matrices) use the Jacobian factors; the raw NtkOpVJPAll/JVPAll do not, so that a training
  gradient is the same whether or not kernel products ran since the last update.
*/
static PetscErrorCode PassVJP(NtkOp op, PetscBool factors, const PetscScalar *U, PetscScalar *dth)
{
  PetscInt d = op->shard->d;

  PetscFunctionBegin;
  PetscCall(PetscArrayzero(dth, op->P));
  for (PetscInt r0 = 0; r0 < op->nloc; r0 += op->mb) {
    PetscInt nb = PetscMin(op->mb, op->nloc - r0);
    if (r0 + nb <= op->ncached)
      PetscCall(
          NtkNetCachedVJP(op->net, op->cache, op->work, r0, nb, factors, U + r0 * op->C, dth));
    else PetscCall(NtkNetVJP(op->net, op->work, nb, op->shard->X + r0 * d, U + r0 * op->C, dth));
  }
  PetscCallMPI(
      MPI_Allreduce(MPI_IN_PLACE, dth, (PetscMPIInt)op->P, MPIU_SCALAR, MPIU_SUM, op->comm));
  op->nvjp++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* U = J_local tth (overwritten). U: n x C. */
static PetscErrorCode PassJVP(NtkOp op, PetscBool factors, const PetscScalar *tth, PetscScalar *U)
{
  PetscInt d = op->shard->d;

  PetscFunctionBegin;
  for (PetscInt r0 = 0; r0 < op->nloc; r0 += op->mb) {
    PetscInt nb = PetscMin(op->mb, op->nloc - r0);
    if (r0 + nb <= op->ncached)
      PetscCall(
          NtkNetCachedJVP(op->net, op->cache, op->work, r0, nb, factors, tth, U + r0 * op->C));
    else PetscCall(NtkNetJVP(op->net, op->work, nb, op->shard->X + r0 * d, tth, U + r0 * op->C));
  }
  op->njvp++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpVJPAll(NtkOp op, Vec u, PetscScalar *dth)
{
  const PetscScalar *U;

  PetscFunctionBegin;
  PetscCall(VecGetArrayRead(u, &U));
  PetscCall(PassVJP(op, PETSC_FALSE, U, dth));
  PetscCall(VecRestoreArrayRead(u, &U));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpJVPAll(NtkOp op, const PetscScalar *tth, Vec u)
{
  PetscScalar *U;

  PetscFunctionBegin;
  PetscCall(VecGetArrayWrite(u, &U));
  PetscCall(PassJVP(op, PETSC_FALSE, tth, U));
  PetscCall(VecRestoreArrayWrite(u, &U));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetOutputs(NtkOp op, Vec f)
{
  PetscScalar *y;

  PetscFunctionBegin;
  PetscCall(VecGetArrayWrite(f, &y));
  PetscCall(PetscArraycpy(y, op->F, op->nloc * op->C));
  PetscCall(VecRestoreArrayWrite(f, &y));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = scale J (J^T x) */
static PetscErrorCode MultKernelFull(Mat K, Vec x, Vec y)
{
  NtkOp              op;
  const PetscScalar *u;
  PetscScalar       *v;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(K, &op));
  PetscCall(NtkOpPrepareFactors(op));
  PetscCall(PetscLogEventBegin(NTK_OpKernelMult, K, x, y, 0));
  PetscCall(VecGetArrayRead(x, &u));
  PetscCall(PassVJP(op, PETSC_TRUE, u, op->pbuf));
  PetscCall(VecRestoreArrayRead(x, &u));
  PetscCall(VecGetArrayWrite(y, &v));
  PetscCall(PassJVP(op, PETSC_TRUE, op->pbuf, v));
  PetscCall(VecRestoreArrayWrite(y, &v));
  if (op->scale != 1.0) PetscCall(VecScale(y, op->scale));
  PetscCall(NtkOpCheckProduct(op, y, "kernel product K x"));
  op->nkernel++;
  if (op->prodmon) PetscCall(op->prodmon(op, op->nkernel, op->prodmonctx));
  PetscCall(PetscLogEventEnd(NTK_OpKernelMult, K, x, y, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = (scale / C) sum_c J_c (J_c^T x): one VJP and one JVP per output. */
static PetscErrorCode MultKernelAveraged(Mat K, Vec x, Vec y)
{
  NtkOp              op;
  const PetscScalar *u;
  PetscScalar       *v;
  PetscInt           C;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(K, &op));
  PetscCall(NtkOpPrepareFactors(op));
  PetscCall(PetscLogEventBegin(NTK_OpKernelMult, K, x, y, 0));
  C = op->C;
  PetscCall(VecGetArrayRead(x, &u));
  PetscCall(VecGetArrayWrite(y, &v));
  PetscCall(PetscArrayzero(v, op->nloc));
  for (PetscInt c = 0; c < C; c++) {
    PetscCall(PetscArrayzero(op->obuf, op->nloc * C));
    for (PetscInt i = 0; i < op->nloc; i++) op->obuf[i * C + c] = u[i];
    PetscCall(PassVJP(op, PETSC_TRUE, op->obuf, op->pbuf));
    PetscCall(PassJVP(op, PETSC_TRUE, op->pbuf, op->obuf));
    for (PetscInt i = 0; i < op->nloc; i++) v[i] += op->obuf[i * C + c];
  }
  for (PetscInt i = 0; i < op->nloc; i++) v[i] *= op->scale / C;
  PetscCall(VecRestoreArrayWrite(y, &v));
  PetscCall(VecRestoreArrayRead(x, &u));
  PetscCall(NtkOpCheckProduct(op, y, "averaged kernel product"));
  op->nkernel++;
  if (op->prodmon) PetscCall(op->prodmon(op, op->nkernel, op->prodmonctx));
  PetscCall(PetscLogEventEnd(NTK_OpKernelMult, K, x, y, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Gather a distributed parameter vector into the replicated buffer op->pall. */
static PetscErrorCode GatherParams(NtkOp op, Vec x, const PetscScalar **all)
{
  PetscFunctionBegin;
  PetscCall(VecScatterBegin(op->toall, x, op->pall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(op->toall, x, op->pall, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetArrayRead(op->pall, all));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Copy this rank's part of a replicated P-vector into a distributed one, times alpha. */
static PetscErrorCode ScatterOwned(NtkOp op, const PetscScalar *all, PetscReal alpha, Vec y)
{
  PetscInt     lo, hi;
  PetscScalar *v;

  PetscFunctionBegin;
  PetscCall(VecGetOwnershipRange(y, &lo, &hi));
  PetscCall(VecGetArrayWrite(y, &v));
  for (PetscInt k = lo; k < hi; k++) v[k - lo] = alpha * all[k];
  PetscCall(VecRestoreArrayWrite(y, &v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = scale J^T (J x) */
static PetscErrorCode MultGram(Mat G, Vec x, Vec y)
{
  NtkOp              op;
  const PetscScalar *all;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(G, &op));
  PetscCall(NtkOpPrepareFactors(op));
  PetscCall(PetscLogEventBegin(NTK_OpKernelMult, G, x, y, 0));
  PetscCall(GatherParams(op, x, &all));
  PetscCall(PassJVP(op, PETSC_TRUE, all, op->obuf));
  PetscCall(VecRestoreArrayRead(op->pall, &all));
  PetscCall(PassVJP(op, PETSC_TRUE, op->obuf, op->pbuf));
  PetscCall(ScatterOwned(op, op->pbuf, op->scale, y));
  op->nkernel++;
  if (op->prodmon) PetscCall(op->prodmon(op, op->nkernel, op->prodmonctx));
  PetscCall(PetscLogEventEnd(NTK_OpKernelMult, G, x, y, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = J x */
static PetscErrorCode MultJacobian(Mat J, Vec x, Vec y)
{
  NtkOp              op;
  const PetscScalar *all;
  PetscScalar       *v;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(J, &op));
  PetscCall(NtkOpPrepareFactors(op));
  PetscCall(GatherParams(op, x, &all));
  PetscCall(VecGetArrayWrite(y, &v));
  PetscCall(PassJVP(op, PETSC_TRUE, all, v));
  PetscCall(VecRestoreArrayWrite(y, &v));
  PetscCall(VecRestoreArrayRead(op->pall, &all));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* y = J^T x */
static PetscErrorCode MultJacobianTranspose(Mat J, Vec x, Vec y)
{
  NtkOp              op;
  const PetscScalar *u;

  PetscFunctionBegin;
  PetscCall(MatShellGetContext(J, &op));
  PetscCall(NtkOpPrepareFactors(op));
  PetscCall(VecGetArrayRead(x, &u));
  PetscCall(PassVJP(op, PETSC_TRUE, u, op->pbuf));
  PetscCall(VecRestoreArrayRead(x, &u));
  PetscCall(ScatterOwned(op, op->pbuf, 1.0, y));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CreateShell(NtkOp op, PetscInt m, PetscInt n, PetscInt Nglob,
                                  PetscErrorCode (*mult)(Mat, Vec, Vec),
                                  PetscErrorCode (*multt)(Mat, Vec, Vec), Mat *A)
{
  PetscFunctionBegin;
  PetscCall(MatCreateShell(op->comm, m, n, PETSC_DETERMINE, Nglob, op, A));
  PetscCall(MatShellSetOperation(*A, MATOP_MULT, (void (*)(void))mult));
  PetscCall(MatShellSetOperation(*A, MATOP_MULT_TRANSPOSE, (void (*)(void))(multt ? multt : mult)));
  if (!multt) {
    PetscCall(MatSetOption(*A, MAT_SYMMETRIC, PETSC_TRUE));
    PetscCall(MatSetOption(*A, MAT_SYMMETRY_ETERNAL, PETSC_TRUE));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpCreateShells(NtkOp op)
{
  PetscInt nout = op->nloc * op->C, plo;
  IS       is;
  Vec      pv;

  PetscFunctionBegin;
  PetscCall(
      CreateShell(op, nout, PETSC_DECIDE, op->P, MultJacobian, MultJacobianTranspose, &op->J));
  PetscCall(MatGetLocalSize(op->J, NULL, &plo));
  PetscCall(CreateShell(op, plo, plo, PETSC_DETERMINE, MultGram, NULL, &op->G));
  if (op->variant == NTK_KERNEL_FULL)
    PetscCall(CreateShell(op, nout, nout, PETSC_DETERMINE, MultKernelFull, NULL, &op->K));
  else
    PetscCall(
        CreateShell(op, op->nloc, op->nloc, PETSC_DETERMINE, MultKernelAveraged, NULL, &op->K));

  PetscCall(MatCreateVecs(op->J, &pv, NULL));
  PetscCall(VecCreateSeq(PETSC_COMM_SELF, op->P, &op->pall));
  PetscCall(ISCreateStride(PETSC_COMM_SELF, op->P, 0, 1, &is));
  PetscCall(VecScatterCreate(pv, is, op->pall, is, &op->toall));
  PetscCall(ISDestroy(&is));
  PetscCall(VecDestroy(&pv));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetJacobian(NtkOp op, Mat *J)
{
  PetscFunctionBegin;
  *J = op->J;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetKernelMat(NtkOp op, Mat *K)
{
  PetscFunctionBegin;
  *K = op->K;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetGramMat(NtkOp op, Mat *G)
{
  PetscFunctionBegin;
  PetscCheck(op->variant == NTK_KERNEL_FULL, op->comm, PETSC_ERR_SUP,
             "the parameter-side operator G = J^T J exists for the full kernel only");
  *G = op->G;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpCreateKernelVec(NtkOp op, Vec *v)
{
  PetscFunctionBegin;
  PetscCall(MatCreateVecs(op->K, NULL, v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpCreateParamVec(NtkOp op, Vec *v)
{
  PetscFunctionBegin;
  PetscCall(MatCreateVecs(op->J, v, NULL));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetProductMonitor(NtkOp op, PetscErrorCode (*fn)(NtkOp, PetscInt, void *),
                                      void *ctx)
{
  PetscFunctionBegin;
  op->prodmon    = fn;
  op->prodmonctx = ctx;
  PetscFunctionReturn(PETSC_SUCCESS);
}
