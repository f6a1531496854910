/*
  ntk/data.h - data sets sharded over MPI ranks.

  N samples of dimension d with C-dimensional targets. Rank r owns a contiguous block of samples
  [rstart, rend); block sizes differ by at most one. Local inputs X are n_local x d row-major,
  targets Y are n_local x C (one-hot for classification), labels are class indices.
*/
#pragma once
#include <ntk/compat.h>
#include <petscsys.h>

typedef struct _p_NtkData *NtkData;

typedef struct {
  PetscInt   N, d, C;         /* global samples, input dimension, target dimension */
  PetscInt   rstart, rend;    /* this rank's samples */
  PetscReal *X;               /* (rend - rstart) x d */
  PetscReal *Y;               /* (rend - rstart) x C */
  PetscInt  *labels;          /* (rend - rstart), or NULL for regression targets */
} NtkDataShard;

PETSC_EXTERN PetscErrorCode NtkDataCreate(MPI_Comm, NtkData *);
PETSC_EXTERN PetscErrorCode NtkDataSetSource(NtkData, const char[]);
PETSC_EXTERN PetscErrorCode NtkDataGetSource(NtkData, const char *[]);
PETSC_EXTERN PetscErrorCode NtkDataSetSamples(NtkData, PetscInt);
PETSC_EXTERN PetscErrorCode NtkDataGetSamples(NtkData, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkDataSetSubsetSeed(NtkData, PetscInt);
PETSC_EXTERN PetscErrorCode NtkDataGetSubsetSeed(NtkData, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkDataSetClasses(NtkData, PetscInt, const PetscInt[]);
PETSC_EXTERN PetscErrorCode NtkDataGetClasses(NtkData, PetscInt *, const PetscInt **);
PETSC_EXTERN PetscErrorCode NtkDataSetSynthetic(NtkData, PetscInt, PetscInt, PetscInt);
PETSC_EXTERN PetscErrorCode NtkDataSetFromOptions(NtkData);
PETSC_EXTERN PetscErrorCode NtkDataSetUp(NtkData);
PETSC_EXTERN PetscErrorCode NtkDataView(NtkData, PetscViewer);
PETSC_EXTERN PetscErrorCode NtkDataDestroy(NtkData *);
PETSC_EXTERN PetscErrorCode NtkDataGetShard(NtkData, const NtkDataShard **);
PETSC_EXTERN PetscErrorCode NtkDataGetDescription(NtkData, const char *[]);

/* The block of n items owned by `rank` out of `size`: sizes differ by at most one. */
PETSC_EXTERN PetscErrorCode NtkShardRange(PetscInt, PetscMPIInt, PetscMPIInt, PetscInt *,
                                          PetscInt *);

/*
  Raw readers. Each validates the header against the file size, rejects overflowing dimension
  products, and fails with a message naming the file. Values are converted to double.
  NtkReadIDX: MNIST-family IDX (unsigned byte payload), gzip-compressed or raw.
  NtkReadNPY: NumPy .npy, C order, dtypes <f4, <f8, |u1 (and <i8 for labels).
  On success *dims holds up to 4 dimensions and *vals (PetscMalloc'ed) the rows [row0, row0+nrows)
  along the first dimension; pass nrows = PETSC_DETERMINE for all rows.
*/
PETSC_EXTERN PetscErrorCode NtkReadIDX(const char[], PetscInt *, PetscInt[4], PetscInt, PetscInt,
                                       PetscReal **);
PETSC_EXTERN PetscErrorCode NtkReadNPY(const char[], PetscInt *, PetscInt[4], PetscInt, PetscInt,
                                       PetscReal **);
