/*
  Linearised (kernel-regime) training: the model is the first-order Taylor expansion of the
  network around its initial parameters theta0,
      f_lin(x; theta) = f(x; theta0) + J(x; theta0) (theta - theta0),
  so its Jacobian is J(theta0) for every theta and its kernel K0 = J0 J0^T never changes.
  The network keeps theta0 (its NtkOp cache of activations at theta0 stays valid); the trainer
  holds theta separately and writes F = F0 + J0 (theta - theta0) (one JVP per data set) into the
  operators' outputs, so the losses and gradients read them as for the network itself; the
  gradient J0^T g is the ordinary VJP at theta0.
  Checkpoints store theta (the trained parameters of f_lin) as the model file; theta0 is
  rebuilt from the run's model options.
*/
#include "trainimpl.h"
#include "../op/opimpl.h"

/* Capture theta0 and the outputs at theta0, before any checkpoint is read. */
PetscErrorCode NtkTrainerLinearSetUp(NtkTrainer tr)
{
  Vec                theta;
  const PetscScalar *th;
  PetscInt           nt = tr->test ? tr->test->nloc * tr->test->C : 0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc5(tr->P, &tr->lin_theta, tr->P, &tr->theta0, tr->P, &tr->lin_delta,
                         PetscMax(1, tr->nloc * tr->C), &tr->F0, PetscMax(1, nt), &tr->F0test));
  PetscCall(NtkNetGetParameters(tr->net, &theta));
  PetscCall(VecGetArrayRead(theta, &th));
  PetscCall(PetscArraycpy(tr->theta0, th, tr->P));
  PetscCall(PetscArraycpy(tr->lin_theta, th, tr->P));
  PetscCall(VecRestoreArrayRead(theta, &th));
  PetscCall(PetscArraycpy(tr->F0, tr->op->F, tr->nloc * tr->C));
  if (tr->test) {
    PetscCall(NtkOpUpdate(tr->test));
    PetscCall(PetscArraycpy(tr->F0test, tr->test->F, nt));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* F = F0 + J0 (theta - theta0) on one operator; u is a work vector of its output space. */
static PetscErrorCode LinearOutputs(NtkTrainer tr, NtkOp op, const PetscScalar *F0, Vec u)
{
  const PetscScalar *v;

  PetscFunctionBegin;
  PetscCall(NtkOpJVPAll(op, tr->lin_delta, u));
  PetscCall(VecGetArrayRead(u, &v));
  for (PetscInt k = 0; k < op->nloc * op->C; k++) op->F[k] = F0[k] + v[k];
  PetscCall(VecRestoreArrayRead(u, &v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Refresh the linearised outputs on the training and test data for the current theta. */
PetscErrorCode NtkTrainerLinearUpdate(NtkTrainer tr)
{
  PetscFunctionBegin;
  for (PetscInt k = 0; k < tr->P; k++) tr->lin_delta[k] = tr->lin_theta[k] - tr->theta0[k];
  PetscCall(LinearOutputs(tr, tr->op, tr->F0, tr->g));
  if (tr->test) PetscCall(LinearOutputs(tr, tr->test, tr->F0test, tr->gtest));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Swap the network's parameters with theta: before saving a checkpoint (the model file holds
  theta) and back after; after a checkpoint is read (the network then holds the saved theta,
  which moves to the trainer, and theta0 returns to the network).
*/
PetscErrorCode NtkTrainerLinearSwap(NtkTrainer tr, PetscBool to_net)
{
  Vec          theta;
  PetscScalar *th;

  PetscFunctionBegin;
  PetscCall(NtkNetGetParameters(tr->net, &theta));
  PetscCall(VecGetArray(theta, &th));
  if (to_net) PetscCall(PetscArraycpy(th, tr->lin_theta, tr->P));
  else {
    PetscCall(PetscArraycpy(tr->lin_theta, th, tr->P));
    PetscCall(PetscArraycpy(th, tr->theta0, tr->P));
  }
  PetscCall(VecRestoreArray(theta, &th));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerLinearDestroy(NtkTrainer tr)
{
  PetscFunctionBegin;
  PetscCall(PetscFree5(tr->lin_theta, tr->theta0, tr->lin_delta, tr->F0, tr->F0test));
  PetscFunctionReturn(PETSC_SUCCESS);
}
