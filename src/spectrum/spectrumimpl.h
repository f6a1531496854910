/* Private layout of NtkSpectrum, shared by the files of src/spectrum. */
#pragma once
#include <ntk/spectrum.h>
#include <ntk/sys.h>
#include <slepceps.h>

struct _p_NtkSpectrum {
  MPI_Comm          comm;
  NtkOp             op;
  PetscInt          nev, ntail, max_it, tail_ncv;
  PetscReal         tol;
  NtkSpectrumSide   side;
  NtkSpectrumMethod method;
  char              vecfile[PETSC_MAX_PATH_LEN];
  PetscBool         monitor;
  /* results */
  PetscInt          nlead, ntailf, nulldim;
  PetscBool         null_known;
  NtkEigenPair     *lead, *tail;
  Vec              *ulead, *utail;
  PetscReal         lmax, sigmax;
  PetscInt          cost[3];
  char              desc[2][128];
  /* monitor state */
  const char       *phase;
  PetscLogDouble    t0, tlast;
  PetscInt          lastconv;
  /* parameter side restricted to live parameters (columns of J that are not identically zero) */
  Mat               Gop;
  PetscInt          ndead;
  VecScatter        live;
  Vec               xfull, gfull;
  /* checkpoint (checkpoint.c): file, test stop, state of this run and what was read back */
  char              ckfile[PETSC_MAX_PATH_LEN];
  PetscInt          stop_after, pstart, pthis;
  PetscInt          ck_every, cklast; /* periodic writes: interval, products at the last one */
  PetscInt          ckgen;            /* vectors of the checkpoint in <ckfile>.<ckgen % 2>.vec */
  PetscInt          ckwrites;         /* checkpoints written by this run */
  PetscBool         ckparam;          /* side of this solve, for writes from the stopping test */
  PetscBool         interrupted, ckread, lead_done, signals;
  PetscInt          nck;    /* Ritz vectors of the stopped solve (operator space) */
  Vec              *ck;
  PetscInt          ckphase; /* phase the read-back start vector belongs to: 0 leading, 1 tail */
  Vec               ckstart;
};

PETSC_INTERN PetscErrorCode NtkSpectrumProducts(NtkSpectrum, PetscInt *);
PETSC_INTERN PetscErrorCode NtkSpectrumOperator(NtkSpectrum, PetscBool, Mat *);
PETSC_INTERN PetscErrorCode NtkSpectrumStopEPS(EPS, PetscInt, PetscInt, PetscInt, PetscInt,
                                               EPSConvergedReason *, void *);
PETSC_INTERN PetscErrorCode NtkSpectrumCheckpointLoad(NtkSpectrum, PetscBool, PetscInt, PetscInt);
PETSC_INTERN PetscErrorCode NtkSpectrumCheckpointWrite(NtkSpectrum, PetscBool, PetscBool);
PETSC_INTERN PetscErrorCode NtkSpectrumCheckpointReset(NtkSpectrum);
