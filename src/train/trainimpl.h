/* Private layout of NtkTrainer, shared by the files of src/train. */
#pragma once
#include <ntk/train.h>
#include <ntk/io.h>
#include <ntk/sys.h>

struct _p_NtkTrainer {
  MPI_Comm            comm;
  NtkOp               op, test;        /* training and test operators (not owned) */
  NtkNet              net;
  NtkLossType         loss;
  NtkOptimizerType    otype;
  NtkOptimState       opt;
  PetscReal           lr, momentum, beta1, beta2, eps;
  PetscInt            steps, batch, seed, neigs;
  PetscInt            track_every, track_log, *logsteps, nlogsteps;
  PetscInt            ckevery, stop_after;
  PetscBool           frozen, linearized, resume, resume_set, labels, test_labels, slq;
  char                csv[PETSC_MAX_PATH_LEN], ckdir[PETSC_MAX_PATH_LEN];
  NtkTrainerMonitorFn monitor;
  void               *monctx;

  PetscInt            step;            /* steps done: theta is theta_step */
  PetscInt            P, N, nloc, C, first_trained;
  Vec                 g, gtest;        /* dL/dF on the training and test data */
  PetscScalar        *grad;            /* replicated P-vector */
  PetscInt           *perm, perm_epoch;
  PetscBool          *inbatch;         /* local samples in the current mini-batch */
  NtkTrackPoint      *hist;
  PetscInt            nhist, maxhist;
  PetscInt            resumed_from;    /* -1 for a fresh run */
  PetscInt            ckprev;          /* step of the last checkpoint written or read, or -1 */
  const char         *stopped_by;      /* why the last Train stopped early, or NULL */
  char                resumed_reason[64]; /* why the checkpoint resumed from was written */
  PetscBool           interrupted, setup;
  PetscLogDouble      t0, tsteps;      /* start, seconds spent in steps this run */
  PetscInt            nsteps_run;
  PetscScalar        *lin_theta, *theta0, *lin_delta; /* linearised mode (src/train/linear.c) */
  PetscScalar        *F0, *F0test;                    /* outputs at theta0 */
};

/* Add a point to the history, and to the CSV file when csv is true. */
PETSC_INTERN PetscErrorCode NtkTrainerTrackAppend(NtkTrainer, const NtkTrackPoint *, PetscBool);
PETSC_INTERN PetscErrorCode NtkTrainerCSVStart(NtkTrainer);
PETSC_INTERN PetscErrorCode NtkTrainerLinearSetUp(NtkTrainer);
PETSC_INTERN PetscErrorCode NtkTrainerLinearUpdate(NtkTrainer);
PETSC_INTERN PetscErrorCode NtkTrainerLinearSwap(NtkTrainer, PetscBool);
PETSC_INTERN PetscErrorCode NtkTrainerLinearDestroy(NtkTrainer);
/* reason: what the manifest records as the cause of the checkpoint (signal, stop-after, ...) */
PETSC_INTERN PetscErrorCode NtkTrainerCheckpointWrite(NtkTrainer, const char[]);
PETSC_INTERN PetscErrorCode NtkTrainerCheckpointRead(NtkTrainer, PetscBool *);
PETSC_INTERN PetscErrorCode NtkTrainerCheckpointExists(NtkTrainer, PetscBool *);
PETSC_INTERN PetscErrorCode NtkTrainerLastLayerTrace(NtkTrainer, PetscReal *);
PETSC_INTERN json_object   *NtkTrackPointJSON(const NtkTrackPoint *, PetscInt);
PETSC_INTERN PetscErrorCode NtkTrackPointFromJSON(MPI_Comm, const char[], size_t, json_object *,
                                                  NtkTrackPoint *);
PETSC_INTERN json_object   *NtkJSONRealOrNull(PetscReal);
