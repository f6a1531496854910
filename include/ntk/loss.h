/*
  ntk/loss.h - training losses on the network outputs F (NC, sample-major) and their gradient
  g = dL/dF in output space (DESIGN.md section 1):
    mse   L = (1/2N) |F - Y|^2,                  g = (F - Y) / N;
    xent  L = (1/N) sum_i -log softmax(z_i)_{y_i}, g_i = (softmax(z_i) - onehot(y_i)) / N.
*/
#pragma once
#include <ntk/compat.h>
#include <ntk/op.h>

typedef enum { NTK_LOSS_MSE, NTK_LOSS_XENT } NtkLossType;
PETSC_EXTERN const char *const NtkLossTypes[];

/* Read -ntk_loss mse|xent (default unchanged if absent). */
PETSC_EXTERN PetscErrorCode NtkLossGetFromOptions(MPI_Comm, NtkLossType *);
/* Loss at the operator's current outputs and g (a Vec of the Jacobian's row space). */
PETSC_EXTERN PetscErrorCode NtkLossEvaluate(NtkOp, NtkLossType, PetscReal *, Vec);
/* Fraction of samples whose largest output is the label (PETSC_ERR_SUP without labels). */
PETSC_EXTERN PetscErrorCode NtkLossAccuracy(NtkOp, PetscReal *);
