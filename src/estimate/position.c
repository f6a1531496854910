/*
  Spectral position of the loss gradient (DESIGN.md section 1). With g = dL/dF and K = s J J^T:
      g^T K g = s |J^T g|^2 = |grad_theta L|^2           (one VJP)
      rho = g^T K g / (|g|^2 Tr K),   mu = g^T K g / |g|^2 (Tr K exact, no eigensolve)
      rank position = #{lambda_k >= mu} / n               (SLQ counting function, with error)
      alignment = g^T K g / (|K|_F |g|^2) = mu / |K|_F    (|K|_F by SLQ, delta-method error)
  and the residual's spectral measure sum_k (u_k^T g)^2 delta(lambda - lambda_k), of total mass
  |g|^2 and mean mu, through its Gauss rule from Lanczos started at g.
*/
#include "estimpl.h"

/* |g|^2 and g^T K g = s |J^T g|^2 */
static PetscErrorCode Quadratic(NtkOp op, Vec g, PetscReal *g2, PetscReal *gKg)
{
  Mat          J;
  PetscInt     P;
  PetscScalar *dth;
  PetscReal    s = 0, scale;

  PetscFunctionBegin;
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(NtkOpGetScale(op, &scale));
  PetscCall(MatGetSize(J, NULL, &P));
  PetscCall(PetscMalloc1(P, &dth));
  PetscCall(NtkOpVJPAll(op, g, dth));
  for (PetscInt q = 0; q < P; q++) s += PetscRealPart(dth[q] * dth[q]);
  PetscCall(PetscFree(dth));
  *gKg = scale * s;
  PetscCall(VecNorm(g, NORM_2, g2));
  *g2 = (*g2) * (*g2);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Companions(NtkEstimator est, NtkPosition *pos)
{
  NtkEstimate T = {0}, S, reff;

  PetscFunctionBegin;
  T.value  = pos->trace;
  T.method = "exact";
  PetscCall(NtkEstimatorSLQ(est, &T, &pos->frobenius, &reff, &S));
  PetscCall(
      NtkEstimatorCountAbove(est, pos->mu, &pos->rank_position.value, &pos->rank_position.err));
  pos->rank_position.method  = "slq";
  pos->rank_position.matvecs = S.matvecs;
  pos->rank_position.probes  = S.probes;
  pos->alignment.value       = pos->mu / pos->frobenius.value;
  pos->alignment.err         = pos->alignment.value * pos->frobenius.err / pos->frobenius.value;
  pos->alignment.method      = "slq";
  pos->alignment.matvecs     = S.matvecs + 1;
  pos->alignment.probes      = S.probes;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkPositionCompute(NtkOp op, NtkLossType type, NtkEstimator est, PetscInt steps,
                                  NtkPosition *pos)
{
  Mat                 J;
  Vec                 g;
  NtkKernelVariant    v;
  NtkData             data;
  const NtkDataShard *sh;
  MPI_Comm            comm;

  PetscFunctionBegin;
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(PetscObjectGetComm((PetscObject)J, &comm));
  PetscCall(NtkOpGetKernel(op, &v));
  PetscCheck(
      v == NTK_KERNEL_FULL, comm, PETSC_ERR_SUP,
      "the spectral position needs the full "
      "kernel (-ntk_kernel full): the loss gradient lives in the NC-dimensional output space");
  PetscCheck(steps >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "%" PetscInt_FMT " Lanczos steps for the residual's spectral measure "
             "(-ntk_position_lanczos_steps): must be at least 1", steps);
  PetscCall(PetscLogEventBegin(NTK_EstimatePosition, 0, 0, 0, 0));
  PetscCall(NtkPositionReset(pos));
  pos->loss_type = type;

  /* loss, g, and the exact quadratic forms */
  PetscCall(MatCreateVecs(J, NULL, &g));
  PetscCall(NtkLossEvaluate(op, type, &pos->loss, g));
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  pos->accuracy = -1;
  if (sh->labels) PetscCall(NtkLossAccuracy(op, &pos->accuracy));
  PetscCall(Quadratic(op, g, &pos->residual_norm_sq, &pos->grad_norm_sq));
  PetscCall(NtkOpTrace(op, &pos->trace));
  pos->rho = pos->grad_norm_sq / (pos->residual_norm_sq * pos->trace);
  pos->mu  = pos->grad_norm_sq / pos->residual_norm_sq;

  /* the residual's spectral measure */
  PetscCall(PetscMalloc2(steps, &pos->nodes, steps, &pos->weights));
  PetscCall(NtkLanczosQuadrature(op, g, steps, pos->nodes, pos->weights, &pos->nnodes));
  PetscCall(VecDestroy(&g));

  /* companions that need the kernel's spectrum: SLQ counting function and |K|_F */
  pos->rank_position.value = pos->alignment.value = pos->frobenius.value = NAN;
  if (est) PetscCall(Companions(est, pos));
  PetscCall(PetscLogEventEnd(NTK_EstimatePosition, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkPositionReset(NtkPosition *pos)
{
  PetscFunctionBegin;
  PetscCall(PetscFree2(pos->nodes, pos->weights));
  PetscCall(PetscMemzero(pos, sizeof(*pos)));
  PetscFunctionReturn(PETSC_SUCCESS);
}
