/* Private layout of the network objects; shared by the files of src/net and src/op. */
#pragma once
#include <ntk/net.h>
#include <ntk/sys.h>
#include <petscblaslapack.h>

#define NTK_MAX_LAYERS 64

struct _p_NtkNet {
  MPI_Comm            comm;
  PetscInt            L;                          /* number of dense layers */
  PetscInt            widths[NTK_MAX_LAYERS + 1]; /* n_0 ... n_L */
  NtkLayer            layers[NTK_MAX_LAYERS];     /* the layer table, layers[l-1] is layer l */
  NtkActivation       act;
  NtkParameterization param;
  PetscReal           sigma_w, sigma_b;
  PetscInt            seed;
  char                file[PETSC_MAX_PATH_LEN];
  PetscInt            P;
  PetscInt            maxwidth;
  Vec                 theta; /* sequential, length P, replicated on every rank */
  PetscBool           setup;
  PetscBool           loading; /* inside NtkNetLoadSafetensors */
};

/*
  Forward state of nb rows: A[l] = a_l (nb x n_l) and D[l] = phi'(z_l) for 1 <= l < L. When
  lf > 0 the state also holds valid Jacobian factors DZ[l] ((nb C) x n_l, the cotangents of z_l
  for the output cotangents e_c, sample-major) of layers 1..lf, and products use them in place
  of backpropagation through those layers (factors.c).
*/
typedef struct {
  PetscInt      nb;
  const PetscScalar *X;
  PetscScalar  *A[NTK_MAX_LAYERS];
  PetscScalar  *D[NTK_MAX_LAYERS];
  PetscInt      lf;
  PetscScalar  *DZ[NTK_MAX_LAYERS];
} NtkNetState;

struct _p_NtkNetWork {
  PetscInt     maxb;
  PetscScalar *abuf;       /* storage of the uncached forward state */
  NtkNetState  st;
  PetscScalar *t0, *t1;    /* maxb x maxwidth tangents or cotangents */
  PetscScalar *ones;       /* maxb ones, for bias sums */
};

struct _p_NtkNetCache {
  PetscInt     n;
  PetscScalar *abuf;
  NtkNetState  st;
  PetscInt     nf;   /* layers 1..nf have factor storage in fbuf (0: none) */
  PetscScalar *fbuf;
};

PETSC_INTERN PetscErrorCode NtkActivationApply(NtkActivation, PetscInt, const PetscScalar *,
                                               PetscScalar *, PetscScalar *);
PETSC_INTERN PetscScalar    NtkActivationValue(NtkActivation, PetscScalar);
PETSC_INTERN PetscScalar    NtkActivationSlope(NtkActivation, PetscScalar);

PETSC_INTERN PetscErrorCode NtkNetStateForward(NtkNet, NtkNetState *, const PetscScalar *,
                                               PetscScalar *);
PETSC_INTERN PetscErrorCode NtkNetStateJVP(NtkNet, const NtkNetState *, PetscInt, PetscInt,
                                           NtkNetWork, const PetscScalar *, PetscScalar *);
/* Contractions with the factors of layer l, rows [r0, r0 + B) of the state (factors.c) */
PETSC_INTERN PetscErrorCode NtkNetFactorsPull(NtkNet, const NtkNetState *, PetscInt, PetscInt,
                                              PetscInt, const PetscScalar *, PetscScalar *);
PETSC_INTERN PetscErrorCode NtkNetFactorsPush(NtkNet, const NtkNetState *, PetscInt, PetscInt,
                                              PetscInt, const PetscScalar *, PetscScalar *);
PETSC_INTERN PetscErrorCode NtkNetStateVJP(NtkNet, const NtkNetState *, PetscInt, PetscInt,
                                           NtkNetWork, const PetscScalar *, PetscScalar *);
