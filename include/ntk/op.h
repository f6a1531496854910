/*
  ntk/op.h - matrix-free eNTK operators as PETSc shell matrices.

  With J = dF/dtheta (NC x P, rows sample-major i*C + c):
    J      NC x P    mult: JVP;  multtranspose: VJP and one Allreduce of a P-vector
    K      NC x NC   K u = J (J^T u), symmetric positive semidefinite
    Kbar   N x N     Kbar u = (1/C) sum_c J_c J_c^T u: the output-averaged kernel
    G      P x P     G v = J^T (J v), same nonzero spectrum as K
  all multiplied by an optional scale (e.g. 1/N). Output-space vectors are distributed by sample as
  the data; parameter-space vectors use PETSc's default layout of P.

  An NtkOp owns the network, the data shard and the cached forward state for the current
  parameters; call NtkOpUpdate after the parameters change.
*/
#pragma once
#include <ntk/compat.h>
#include <petscmat.h>
#include <ntk/net.h>
#include <ntk/data.h>

typedef enum { NTK_KERNEL_FULL, NTK_KERNEL_AVERAGED } NtkKernelVariant;
PETSC_EXTERN const char *const NtkKernelVariants[];

typedef struct _p_NtkOp *NtkOp;

PETSC_EXTERN PetscErrorCode NtkOpCreate(NtkNet, NtkData, NtkOp *);
PETSC_EXTERN PetscErrorCode NtkOpSetKernel(NtkOp, NtkKernelVariant);
PETSC_EXTERN PetscErrorCode NtkOpGetKernel(NtkOp, NtkKernelVariant *);
PETSC_EXTERN PetscErrorCode NtkOpSetScale(NtkOp, PetscReal);
PETSC_EXTERN PetscErrorCode NtkOpGetScale(NtkOp, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkOpSetMicroBatch(NtkOp, PetscInt);
PETSC_EXTERN PetscErrorCode NtkOpGetMicroBatch(NtkOp, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkOpSetCacheLimit(NtkOp, PetscReal);
PETSC_EXTERN PetscErrorCode NtkOpGetCacheLimit(NtkOp, PetscReal *);
/*
  Jacobian factors in the cache (default on): products of the shell matrices (J, J^T, K, Kbar, G)
  read the cotangents of hidden layers from stored factors instead of backpropagating
  (NtkNetCacheEnableFactors). Used when the network gains from them and the rows of every rank
  fit in the cache limit with them; computed at the first shell-matrix product after each
  NtkOpUpdate. NtkOpVJPAll and NtkOpJVPAll always take the ordinary route, so their results do
  not depend on which products ran before.
*/
/* Set: allow the factors (before SetUp). Get: whether the operator keeps them (after SetUp). */
PETSC_EXTERN PetscErrorCode NtkOpSetFactors(NtkOp, PetscBool);
PETSC_EXTERN PetscErrorCode NtkOpGetFactors(NtkOp, PetscBool *);
/* Bytes this rank holds in the cache (forward state and factors) */
PETSC_EXTERN PetscErrorCode NtkOpGetCacheBytes(NtkOp, PetscLogDouble *);
PETSC_EXTERN PetscErrorCode NtkOpSetFromOptions(NtkOp);
PETSC_EXTERN PetscErrorCode NtkOpSetUp(NtkOp);
PETSC_EXTERN PetscErrorCode NtkOpUpdate(NtkOp);
PETSC_EXTERN PetscErrorCode NtkOpView(NtkOp, PetscViewer);
PETSC_EXTERN PetscErrorCode NtkOpDestroy(NtkOp *);

PETSC_EXTERN PetscErrorCode NtkOpGetNet(NtkOp, NtkNet *);
PETSC_EXTERN PetscErrorCode NtkOpGetData(NtkOp, NtkData *);

/* Shell matrices; the NtkOp keeps ownership (do not destroy them). */
PETSC_EXTERN PetscErrorCode NtkOpGetJacobian(NtkOp, Mat *);
PETSC_EXTERN PetscErrorCode NtkOpGetKernelMat(NtkOp, Mat *);
PETSC_EXTERN PetscErrorCode NtkOpGetGramMat(NtkOp, Mat *);
/* Vectors compatible with the kernel (output space of the chosen variant) and parameter space. */
PETSC_EXTERN PetscErrorCode NtkOpCreateKernelVec(NtkOp, Vec *);
PETSC_EXTERN PetscErrorCode NtkOpCreateParamVec(NtkOp, Vec *);
/* Network outputs F (NC, distributed as the full kernel's vectors) at the current parameters. */
PETSC_EXTERN PetscErrorCode NtkOpGetOutputs(NtkOp, Vec);

/*
  Raw products on replicated parameter arrays (length P on every rank):
  NtkOpVJPAll: dtheta = J^T u summed over all ranks (u in the full output space, NC).
  NtkOpJVPAll: u = J v for this rank's samples.
*/
PETSC_EXTERN PetscErrorCode NtkOpVJPAll(NtkOp, Vec, PetscScalar *);
PETSC_EXTERN PetscErrorCode NtkOpJVPAll(NtkOp, const PetscScalar *, Vec);

/* Exact trace of the chosen kernel variant (scale included), and its diagonal blocks. */
PETSC_EXTERN PetscErrorCode NtkOpTrace(NtkOp, PetscReal *);
/* Diagonal blocks K_ii (C x C per local sample, row-major; for Kbar a scalar each). */
PETSC_EXTERN PetscErrorCode NtkOpDiagonalBlocks(NtkOp, PetscScalar *);
/* Dense Jacobian rows of local samples [i0, i0+nb): Jblk is (nb*C) x P row-major. */
PETSC_EXTERN PetscErrorCode NtkOpJacobianBlock(NtkOp, PetscInt, PetscInt, PetscScalar *);

/* Counters: kernel products and Jacobian products (JVP + VJP) done so far. */
PETSC_EXTERN PetscErrorCode NtkOpGetCounts(NtkOp, PetscInt *, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkOpResetCounts(NtkOp);
/* A callback after every kernel product (K, Kbar or G), e.g. for progress; NULL removes it. */
PETSC_EXTERN PetscErrorCode NtkOpSetProductMonitor(NtkOp,
                                                   PetscErrorCode (*)(NtkOp, PetscInt, void *),
                                                   void *);

PETSC_EXTERN PetscLogEvent NTK_OpKernelMult, NTK_OpTrace, NTK_OpJacobianBlock;
