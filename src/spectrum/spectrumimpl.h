/* Private layout of NtkSpectrum, shared by the files of src/spectrum. */
#pragma once
#include <ntk/spectrum.h>
#include <ntk/sys.h>

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
};
