/*
  ntk/sys.h - counter-based random streams, collective error checks, and the error handler.

  Random numbers are pure functions of (seed, stream, index): a probe vector's entry for global
  row i is the same whichever rank owns row i, so results do not depend on the number of ranks.
*/
#pragma once
#include <ntk/compat.h>
#include <petscsys.h>

/* Uniform in (0, 1), standard normal, and Rademacher (+1/-1) values keyed by (seed, stream, i). */
PETSC_EXTERN PetscReal NtkRandomUniform(PetscInt64, PetscInt64, PetscInt64);
PETSC_EXTERN PetscReal NtkRandomNormal(PetscInt64, PetscInt64, PetscInt64);
PETSC_EXTERN PetscReal NtkRandomSign(PetscInt64, PetscInt64, PetscInt64);

/*
  NtkCheckAll: every rank of comm learns whether any rank failed a local condition, and all fail
  together with the message of the lowest failing rank, so a bad file seen on one rank never leaves
  the others waiting in a collective. Use where a condition may differ across ranks.
*/
PETSC_EXTERN PetscErrorCode NtkCheckAll(MPI_Comm, PetscBool, PetscErrorCode, const char[]);

/* Install the handler that prints one line "ntkspec: <message>" per collective error. */
PETSC_EXTERN PetscErrorCode NtkErrorHandlerPush(void);
PETSC_EXTERN PetscBool      NtkErrorWasCollective(void);

/* Parse "784,256,10" into at most `max` integers. */
PETSC_EXTERN PetscErrorCode NtkParseIntList(MPI_Comm, const char[], const char[], PetscInt,
                                            PetscInt *, PetscInt[]);

/*
  Signals: NtkSignalInstall makes SIGTERM and SIGUSR1 set a flag instead of ending the process
  (nested calls allowed; NtkSignalRestore undoes the matching install). NtkSignalPending is
  collective: true on every rank when any rank got a signal since the outermost install.
  NtkSignalRaise sets the flag as a signal would (test hooks). A command stopped this way writes
  its checkpoint and exits with NTK_EXIT_INTERRUPTED: run the same command again to resume.
*/
#define NTK_EXIT_INTERRUPTED 3
/* Exit status of a solve that wrote its results but did not converge every requested pair. */
#define NTK_EXIT_UNCONVERGED 4
PETSC_EXTERN PetscErrorCode NtkSignalInstall(void);
PETSC_EXTERN PetscErrorCode NtkSignalRestore(void);
PETSC_EXTERN PetscErrorCode NtkSignalRaise(void);
PETSC_EXTERN PetscErrorCode NtkSignalPending(MPI_Comm, PetscBool *);

/* Package-wide initialisation: log events and classes; called once by every Create. */
PETSC_EXTERN PetscErrorCode NtkInitializePackage(void);
PETSC_EXTERN PetscClassId NTK_CLASSID;
