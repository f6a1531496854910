/* The ntkspec front end: shared set-up of the model, data and operator, and the commands. */
#pragma once
#include <ntk/net.h>
#include <ntk/data.h>
#include <ntk/op.h>
#include <ntk/io.h>
#include <ntk/sys.h>

typedef struct {
  MPI_Comm  comm;
  const char *command;
  NtkNet    net;
  NtkData   data;
  NtkOp     op;
  char      output[PETSC_MAX_PATH_LEN]; /* -ntk_output, empty for none */
  PetscBool quiet;                      /* -ntk_quiet */
  PetscLogDouble t0;
} NtkApp;

/* Read the options shared by every command, create and set up the network, data and operator. */
PetscErrorCode NtkAppCreate(MPI_Comm, const char[], NtkApp *);
PetscErrorCode NtkAppDestroy(NtkApp *);
/* Add model, data, kernel and run information to a result document. */
PetscErrorCode NtkAppDescribe(NtkApp *, json_object *);
/* Write the result document if -ntk_output was given. */
PetscErrorCode NtkAppWriteResult(NtkApp *, json_object *);
/* Print on rank 0 unless -ntk_quiet. */
PetscErrorCode NtkAppPrintf(NtkApp *, const char[], ...) PETSC_ATTRIBUTE_FORMAT(2, 3);

/* Refuse -ntk_* options that no part of ntkspec reads, naming the nearest known one. */
PetscErrorCode NtkCheckKnownOptions(MPI_Comm);

PetscErrorCode NtkCmdInfo(MPI_Comm);
PetscErrorCode NtkCmdEstimate(MPI_Comm);
PetscErrorCode NtkCmdPosition(MPI_Comm);
PetscErrorCode NtkCmdSpectrum(MPI_Comm);
PetscErrorCode NtkCmdDense(MPI_Comm);
PetscErrorCode NtkCmdTrain(MPI_Comm);
PetscErrorCode NtkCmdSweep(MPI_Comm);
PetscErrorCode NtkCmdPlot(MPI_Comm);

/* One training run with the options in the database (apps/cmd_train.c); caller owns *result. */
PetscErrorCode NtkTrainRun(MPI_Comm, const char[], json_object **, PetscBool *);
/* Exit status of the process when the command succeeds (e.g. 3: interrupted, resumable). */
extern int NtkAppExitStatus;
