/*
  The trace a frozen-feature trainer tracks, Tr K_last = scale C sum_i (s_L^2 |a_{L-1}(x_i)|^2 + 1),
  equals sum over output rows (i, c) of |(J^T e_(i,c))_last|^2, the squared norm of the VJP of a
  unit cotangent restricted to the last layer's parameters, to 100 machine epsilons relative.
  Also checks that one frozen step leaves every parameter outside the last layer unchanged.
*/
#include <ntk/train.h>
#include <ntk/sys.h>

int main(int argc, char **argv)
{
  NtkNet              net;
  NtkData             data;
  NtkOp               op;
  NtkTrainer          tr;
  NtkTrackPoint       pt;
  const NtkDataShard *sh;
  const NtkLayer     *last;
  Mat                 J;
  Vec                 e, theta, theta0;
  PetscScalar        *dth, *ea;
  const PetscScalar  *t1, *t0;
  PetscInt            P, L, lo, hi, moved = 0;
  PetscReal           ref = 0, scale, err;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetUp(op));
  PetscCall(NtkTrainerCreate(op, NULL, &tr));
  PetscCall(NtkTrainerSetFrozen(tr, PETSC_TRUE));
  PetscCall(NtkTrainerSetSteps(tr, 1));
  PetscCall(NtkTrainerSetTracking(tr, 0, 0));
  PetscCall(NtkTrainerSetFromOptions(tr));
  PetscCall(NtkTrainerTrack(tr, &pt));

  /* reference: one VJP per global output row, restricted to the last layer */
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkNetGetNumLayers(net, &L));
  PetscCall(NtkNetGetLayer(net, L, &last));
  PetscCall(NtkOpGetScale(op, &scale));
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(MatCreateVecs(J, NULL, &e));
  PetscCall(VecGetOwnershipRange(e, &lo, &hi));
  PetscCall(PetscMalloc1(P, &dth));
  for (PetscInt r = 0; r < sh->N * sh->C; r++) {
    PetscCall(VecGetArrayWrite(e, &ea));
    for (PetscInt k = lo; k < hi; k++) ea[k - lo] = k == r ? 1.0 : 0.0;
    PetscCall(VecRestoreArrayWrite(e, &ea));
    PetscCall(NtkOpVJPAll(op, e, dth));
    for (PetscInt k = last->woff; k < P; k++) ref += dth[k] * dth[k];
  }
  ref *= scale;
  err = PetscAbsReal(pt.trace - ref) / ref;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "Tr K_last %.17g, restricted VJPs %.17g, diff %.2e\n",
                        (double)pt.trace, (double)ref, (double)err));
  PetscCheck(err <= 100 * PETSC_MACHINE_EPSILON, PETSC_COMM_WORLD, PETSC_ERR_PLIB,
             "last-layer trace differs from the restricted VJPs by %g", (double)err);

  /* one frozen step moves the last layer only */
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(VecDuplicate(theta, &theta0));
  PetscCall(VecCopy(theta, theta0));
  PetscCall(NtkTrainerTrain(tr));
  PetscCall(VecGetArrayRead(theta, &t1));
  PetscCall(VecGetArrayRead(theta0, &t0));
  for (PetscInt k = 0; k < last->woff; k++) moved += t1[k] != t0[k];
  PetscCheck(!moved, PETSC_COMM_WORLD, PETSC_ERR_PLIB, "%" PetscInt_FMT " frozen parameters moved",
             moved);
  for (PetscInt k = last->woff; k < P; k++) moved += t1[k] != t0[k];
  PetscCheck(moved, PETSC_COMM_WORLD, PETSC_ERR_PLIB, "the last layer did not move");
  PetscCall(VecRestoreArrayRead(theta, &t1));
  PetscCall(VecRestoreArrayRead(theta0, &t0));

  PetscCall(VecDestroy(&theta0));
  PetscCall(VecDestroy(&e));
  PetscCall(PetscFree(dth));
  PetscCall(NtkTrainerDestroy(&tr));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
