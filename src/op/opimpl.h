/* Private layout of NtkOp, shared by the files of src/op. */
#pragma once
#include <ntk/op.h>
#include <ntk/sys.h>
#include "../net/netimpl.h"

PETSC_INTERN PetscErrorCode NtkOpCreateShells(NtkOp);
/* Bring the cached Jacobian factors up to date, if the operator keeps them. */
PETSC_INTERN PetscErrorCode NtkOpPrepareFactors(NtkOp);
/* NaN/Inf checks (finite.c): outputs after the forward pass; J^T x and y after a product. */
PETSC_INTERN PetscErrorCode NtkOpCheckOutputs(NtkOp);
PETSC_INTERN PetscErrorCode NtkOpCheckProduct(NtkOp, Vec, const char[]);

struct _p_NtkOp {
  MPI_Comm            comm;
  NtkNet              net;
  NtkData             data;
  const NtkDataShard *shard;
  NtkKernelVariant    variant;
  PetscReal           scale;
  PetscBool           scale_by_n;  /* scale = 1/N, resolved at SetUp */
  PetscInt            mb;          /* micro-batch rows */
  PetscReal           cache_mb;    /* cache limit per rank, MiB */
  PetscInt            nloc, C, P;  /* local samples, outputs, parameters */
  PetscInt            ncached;     /* local rows held in the cache */
  PetscBool           factors;     /* keep Jacobian factors in the cache when they pay */
  PetscBool           usefactors;  /* ... and they do (decided at SetUp) */
  NtkNetCache         cache;
  NtkNetWork          work;
  PetscScalar        *F;           /* outputs of local samples, nloc x C */
  PetscScalar        *pbuf, *pbuf2; /* two replicated P-vectors */
  PetscScalar        *obuf;        /* nloc x C, for the averaged kernel */
  Mat                 J, K, G;
  Vec                 pall;        /* sequential P-vector for gathers */
  VecScatter          toall;
  PetscInt            nkernel, njvp, nvjp;
  PetscErrorCode    (*prodmon)(NtkOp, PetscInt, void *); /* called after each kernel product */
  void               *prodmonctx;
  PetscBool           setup;
};
