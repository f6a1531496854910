/*
  ntk/spectrum.h - eigenpairs of the eNTK: matrix-free SLEPc drivers and the dense exact path.

  NtkSpectrum computes the k largest eigenpairs of K and its k smallest nonzero eigenpairs (the
  tail), each with its true residual ||K u - lambda u|| / lambda_max, working on whichever side is
  smaller: K (NC x NC), G = J^T J (P x P, same nonzero eigenvalues), or the singular values of J
  (lambda = scale sigma^2). When NC > P the kernel has an exact null space of dimension NC - rank;
  it is reported on its own and never mixed into the tail.

  NtkDense assembles K (or Kbar) from the Jacobian factors, block by block, and computes its whole
  spectrum with ScaLAPACK (distributed) or LAPACK (rank 0), for validation and mid-size kernels.
*/
#pragma once
#include <ntk/compat.h>
#include <ntk/op.h>

typedef enum { NTK_SIDE_AUTO, NTK_SIDE_OUTPUT, NTK_SIDE_PARAMETER } NtkSpectrumSide;
PETSC_EXTERN const char *const NtkSpectrumSides[];
typedef enum { NTK_SPECTRUM_EPS, NTK_SPECTRUM_SVD } NtkSpectrumMethod;
PETSC_EXTERN const char *const NtkSpectrumMethods[];

/* One eigenpair's value and its residual ||K u - lambda u|| / lambda_max (relative: / |lambda|). */
typedef struct {
  PetscReal value, residual, residual_rel;
} NtkEigenPair;

typedef struct _p_NtkSpectrum *NtkSpectrum;

PETSC_EXTERN PetscErrorCode NtkSpectrumCreate(NtkOp, NtkSpectrum *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetNev(NtkSpectrum, PetscInt);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetNev(NtkSpectrum, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetTail(NtkSpectrum, PetscInt);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetTail(NtkSpectrum, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetTolerance(NtkSpectrum, PetscReal);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetTolerance(NtkSpectrum, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetMaxIt(NtkSpectrum, PetscInt);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetMaxIt(NtkSpectrum, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetSide(NtkSpectrum, NtkSpectrumSide);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetSide(NtkSpectrum, NtkSpectrumSide *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetMethod(NtkSpectrum, NtkSpectrumMethod);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetMethod(NtkSpectrum, NtkSpectrumMethod *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetTailNcv(NtkSpectrum, PetscInt);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetTailNcv(NtkSpectrum, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetVectorsFile(NtkSpectrum, const char[]);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetVectorsFile(NtkSpectrum, const char *[]);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetMonitor(NtkSpectrum, PetscBool);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetMonitor(NtkSpectrum, PetscBool *);
/*
  Checkpoint file ("" for none) and kernel products between periodic writes (0: only on a
  signal). SIGTERM or SIGUSR1 stops the solve in progress at its next restart and saves its phase,
  the finished leading pairs and the current Ritz vectors; with every > 0 the same state is also
  saved, and the solve goes on, at the first restart after each `every` products, so that a job
  killed without warning loses at most that much work. A solve with the file present resumes from
  it. StopAfter is a test hook: stop as on a signal once this run has spent that many kernel
  products (0: never). Eigenvalue solver (eps) only.
*/
PETSC_EXTERN PetscErrorCode NtkSpectrumSetCheckpoint(NtkSpectrum, const char[], PetscInt);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetCheckpoint(NtkSpectrum, const char *[], PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetStopAfter(NtkSpectrum, PetscInt);
/*
  Whether the last solve stopped on a signal; whether a checkpoint was read, the products of this
  run and the checkpoints it wrote (periodic and on a signal). Any output may be NULL.
*/
PETSC_EXTERN PetscErrorCode NtkSpectrumGetInterrupted(NtkSpectrum, PetscBool *);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetResumeInfo(NtkSpectrum, PetscBool *, PetscInt *,
                                                     PetscInt *);
PETSC_EXTERN PetscErrorCode NtkSpectrumSetFromOptions(NtkSpectrum);
PETSC_EXTERN PetscErrorCode NtkSpectrumSolve(NtkSpectrum);
PETSC_EXTERN PetscErrorCode NtkSpectrumDestroy(NtkSpectrum *);

/* Results, valid after NtkSpectrumSolve: leading pairs descending, tail pairs ascending. */
PETSC_EXTERN PetscErrorCode NtkSpectrumGetLeading(NtkSpectrum, PetscInt *, const NtkEigenPair **);
PETSC_EXTERN PetscErrorCode NtkSpectrumGetTailPairs(NtkSpectrum, PetscInt *, const NtkEigenPair **);
/* Null space dimension and whether it was determined (PETSC_FALSE: NC - P, a lower bound). */
PETSC_EXTERN PetscErrorCode NtkSpectrumGetNullSpace(NtkSpectrum, PetscInt *, PetscBool *);
/*
  Kernel products spent on the leading pairs, on the tail, and on the residual checks. A full-kernel
  product is one JVP and one VJP, so Jacobian products (SVD, u = J v) count as halves.
*/
PETSC_EXTERN PetscErrorCode NtkSpectrumGetCost(NtkSpectrum, PetscInt *, PetscInt *, PetscInt *);
/* Which operator and solver each part used, e.g. "eps:krylovschur:parameter". */
PETSC_EXTERN PetscErrorCode NtkSpectrumGetMethodDescription(NtkSpectrum, const char *[],
                                                            const char *[]);

typedef enum { NTK_DENSE_SCALAPACK, NTK_DENSE_LAPACK } NtkDenseSolver;
PETSC_EXTERN const char *const NtkDenseSolvers[];

/* Bytes per rank that NtkDenseEigenvalues needs for an n x n kernel on `size` ranks. */
PETSC_EXTERN PetscErrorCode NtkDenseBytes(PetscInt, PetscMPIInt, NtkDenseSolver, PetscLogDouble *);
/* The kernel as a dense matrix (MATMPIDENSE, rows laid out as the kernel vectors). */
PETSC_EXTERN PetscErrorCode NtkDenseAssemble(NtkOp, Mat *);
/* All eigenvalues, descending, on every rank (PetscMalloc'ed, length n). */
PETSC_EXTERN PetscErrorCode NtkDenseEigenvalues(NtkOp, NtkDenseSolver, PetscInt *, PetscReal **);

/* Spectral summaries of a full spectrum (any order). */
typedef struct {
  PetscReal trace, frobenius, entropy, entropy_normalized, effective_rank, threshold;
  PetscInt  null_space_dim;
} NtkSpectrumSummary;
PETSC_EXTERN PetscErrorCode NtkSpectrumSummarize(PetscInt, const PetscReal[], NtkSpectrumSummary *);

/* Registers the log events; called by NtkSpectrumCreate and NtkDenseAssemble. */
PETSC_EXTERN PetscErrorCode NtkSpectrumInitializePackage(void);
PETSC_EXTERN PetscLogEvent NTK_SpectrumSolve, NTK_DenseAssemble, NTK_DenseSolve;
