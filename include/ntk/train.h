/*
  ntk/train.h - data-parallel training of an NtkNet with the spectral position tracked.

  Every rank holds all parameters theta; the samples are sharded. One step:
      g = dL/dF                        (output space; rows outside the mini-batch are zero and
                                        the batch rows are rescaled from 1/N to 1/B)
      grad = J^T g                     (one VJP over the shard and one Allreduce of a P-vector)
      theta <- optimiser(theta, grad)  (SGD with momentum, or Adam), identical on every rank.
  A step is a deterministic function of (theta, optimiser state, step index), so a run stopped
  at a checkpoint and resumed ends bit for bit where the uninterrupted run ends (same ranks).

  At tracking steps the trainer records, at the current theta, the train and test loss and
  accuracy, Tr K, |g|^2, |grad L|^2 = |J^T g|^2 and the spectral position
      rho = g^T K g / (|g|^2 Tr K),  mu = g^T K g / |g|^2,  g^T K g = scale |J^T g|^2.
  With frozen features only the last layer is trained; K then means the kernel of the trained
  parameters, K_last = J_last J_last^T, whose trace is exact from the penultimate activations:
      Tr K_last = scale C sum_i (s_L^2 |a_{L-1}(x_i)|^2 + 1).
*/
#pragma once
#include <ntk/compat.h>
#include <ntk/op.h>
#include <ntk/loss.h>
#include <json-c/json.h>

typedef enum { NTK_OPTIM_SGD, NTK_OPTIM_ADAM } NtkOptimizerType;
PETSC_EXTERN const char *const NtkOptimizerTypes[];

/* Exit status of `ntkspec train` after a signal: checkpoint written, resubmit to resume. */
#define NTK_TRAIN_EXIT_INTERRUPTED 3

typedef struct _p_NtkTrainer *NtkTrainer;

/* One tracked point. Values that were not computed are NaN. */
typedef struct {
  PetscInt  step;
  PetscReal train_loss, train_acc, test_loss, test_acc;
  PetscReal trace, residual_norm_sq, grad_norm_sq, rho, mu;
  PetscReal rank_position, entropy;
  PetscReal eigs[3];
  PetscReal seconds;
} NtkTrackPoint;

/* The trainer does not own the operators; test may be NULL. */
PETSC_EXTERN PetscErrorCode NtkTrainerCreate(NtkOp, NtkOp, NtkTrainer *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetOptimizer(NtkTrainer, NtkOptimizerType);
PETSC_EXTERN PetscErrorCode NtkTrainerGetOptimizer(NtkTrainer, NtkOptimizerType *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetLoss(NtkTrainer, NtkLossType);
PETSC_EXTERN PetscErrorCode NtkTrainerGetLoss(NtkTrainer, NtkLossType *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetSteps(NtkTrainer, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetSteps(NtkTrainer, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetLearningRate(NtkTrainer, PetscReal);
PETSC_EXTERN PetscErrorCode NtkTrainerGetLearningRate(NtkTrainer, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetMomentum(NtkTrainer, PetscReal);
PETSC_EXTERN PetscErrorCode NtkTrainerGetMomentum(NtkTrainer, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetBatch(NtkTrainer, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetBatch(NtkTrainer, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetSeed(NtkTrainer, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetSeed(NtkTrainer, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetFrozen(NtkTrainer, PetscBool);
PETSC_EXTERN PetscErrorCode NtkTrainerGetFrozen(NtkTrainer, PetscBool *);
/* Train the linearisation f(theta0) + J(theta0)(theta - theta0) instead (kernel regime). */
PETSC_EXTERN PetscErrorCode NtkTrainerSetLinearized(NtkTrainer, PetscBool);
PETSC_EXTERN PetscErrorCode NtkTrainerGetLinearized(NtkTrainer, PetscBool *);
/* Track every k steps (k > 0), or at `npoints` log-spaced steps when npoints > 0. */
PETSC_EXTERN PetscErrorCode NtkTrainerSetTracking(NtkTrainer, PetscInt, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetTracking(NtkTrainer, PetscInt *, PetscInt *);
/* Leading eigenvalues of K computed at tracking steps (0 to 3; SLEPc, Krylov-Schur). */
PETSC_EXTERN PetscErrorCode NtkTrainerSetTrackEigenvalues(NtkTrainer, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetTrackEigenvalues(NtkTrainer, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetCSV(NtkTrainer, const char[]);
PETSC_EXTERN PetscErrorCode NtkTrainerGetCSV(NtkTrainer, const char *[]);
/* Checkpoint folder ("" for none), every k steps (0: only at the end and on signals). */
PETSC_EXTERN PetscErrorCode NtkTrainerSetCheckpoint(NtkTrainer, const char[], PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetCheckpoint(NtkTrainer, const char *[], PetscInt *);
/* Stop (with a checkpoint, as after a signal) once this many steps are done; 0: never. */
PETSC_EXTERN PetscErrorCode NtkTrainerSetStopAfter(NtkTrainer, PetscInt);
PETSC_EXTERN PetscErrorCode NtkTrainerGetStopAfter(NtkTrainer, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetResume(NtkTrainer, PetscBool);
PETSC_EXTERN PetscErrorCode NtkTrainerGetResume(NtkTrainer, PetscBool *);
/* Called after every step and after every tracked point (pt non-NULL then): for progress. */
typedef PetscErrorCode (*NtkTrainerMonitorFn)(NtkTrainer, PetscInt, const NtkTrackPoint *, void *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetMonitor(NtkTrainer, NtkTrainerMonitorFn, void *);
PETSC_EXTERN PetscErrorCode NtkTrainerSetFromOptions(NtkTrainer);
PETSC_EXTERN PetscErrorCode NtkTrainerSetUp(NtkTrainer);
/* Train to the final step (or to a stop: signal or stop-after). */
PETSC_EXTERN PetscErrorCode NtkTrainerTrain(NtkTrainer);
/* PETSC_TRUE when the last NtkTrainerTrain stopped early and left a checkpoint to resume from. */
PETSC_EXTERN PetscErrorCode NtkTrainerGetInterrupted(NtkTrainer, PetscBool *);
PETSC_EXTERN PetscErrorCode NtkTrainerGetStep(NtkTrainer, PetscInt *);
/* The tracked points so far (including those restored from a checkpoint). */
PETSC_EXTERN PetscErrorCode NtkTrainerGetHistory(NtkTrainer, PetscInt *, const NtkTrackPoint **);
/* Options, final values and the per-step series as a JSON object (caller owns it). */
PETSC_EXTERN PetscErrorCode NtkTrainerDescribe(NtkTrainer, json_object **);
PETSC_EXTERN PetscErrorCode NtkTrainerView(NtkTrainer, PetscViewer);
PETSC_EXTERN PetscErrorCode NtkTrainerDestroy(NtkTrainer *);

/* Track at the current parameters without training (what `ntkspec train -ntk_train_steps 0`
   records), e.g. to recompute the spectral position of a saved checkpoint. */
PETSC_EXTERN PetscErrorCode NtkTrainerTrack(NtkTrainer, NtkTrackPoint *);

/*
  The optimisers on replicated arrays of length P (src/train/optim.c). The state holds the
  step count t and the moment buffers; NtkOptimStep applies theta <- theta - update(grad).
*/
typedef struct {
  NtkOptimizerType type;
  PetscInt         P, t;
  PetscReal        lr, momentum, beta1, beta2, eps;
  PetscScalar     *m, *v; /* momentum (SGD) or first moment (Adam); second moment (Adam) */
} NtkOptimState;
PETSC_EXTERN PetscErrorCode NtkOptimStateCreate(NtkOptimizerType, PetscInt, NtkOptimState *);
PETSC_EXTERN PetscErrorCode NtkOptimStateDestroy(NtkOptimState *);
PETSC_EXTERN PetscErrorCode NtkOptimStep(NtkOptimState *, const PetscScalar *, PetscScalar *);
/* Save/load the state as a safetensors file (F64 tensors "m", "v"; step in the metadata). */
PETSC_EXTERN PetscErrorCode NtkOptimStateSave(MPI_Comm, const NtkOptimState *, const char[]);
PETSC_EXTERN PetscErrorCode NtkOptimStateLoad(MPI_Comm, NtkOptimState *, const char[]);

PETSC_EXTERN PetscLogEvent NTK_TrainStep, NTK_TrainTrack, NTK_TrainCheckpoint;
