/*
  ntk/net.h - multi-layer perceptrons with exact forward, JVP and VJP products.

  A network of L dense layers maps x in R^{n_0} to f(x) in R^{n_L}:
      z_l = s_l W_l a_{l-1} + b_l,   a_l = phi(z_l) (l < L),   f = z_L,   a_0 = x,
  with W_l of shape [n_l, n_{l-1}] (PyTorch's nn.Linear layout) and s_l = 1 under the standard
  parameterisation or sigma_w / sqrt(n_{l-1}) under the NTK parameterisation.

  All P parameters live in one contiguous buffer, ordered as a PyTorch nn.Sequential state dict
  (W_1, b_1, W_2, b_2, ...); that buffer is the sequential parameter Vec of the network.
*/
#pragma once
#include <ntk/compat.h>
#include <petscvec.h>

typedef enum {
  NTK_ACT_IDENTITY,
  NTK_ACT_RELU,
  NTK_ACT_TANH,
  NTK_ACT_GELU,
  NTK_ACT_SOFTPLUS,
  NTK_ACT_SIGMOID
} NtkActivation;
PETSC_EXTERN const char *const NtkActivations[];

typedef enum { NTK_PARAM_STANDARD, NTK_PARAM_NTK } NtkParameterization;
PETSC_EXTERN const char *const NtkParameterizations[];

/* One row of the layer table: where the layer's weights and bias sit in the parameter buffer. */
typedef struct {
  PetscInt  in, out;     /* n_{l-1}, n_l */
  PetscInt  woff, boff;  /* offsets of W_l and b_l in the parameter buffer */
  PetscReal scale;       /* s_l */
} NtkLayer;

typedef struct _p_NtkNet *NtkNet;

PETSC_EXTERN PetscErrorCode NtkNetCreate(MPI_Comm, NtkNet *);
PETSC_EXTERN PetscErrorCode NtkNetGetComm(NtkNet, MPI_Comm *);
PETSC_EXTERN PetscErrorCode NtkNetSetWidths(NtkNet, PetscInt, const PetscInt[]);
PETSC_EXTERN PetscErrorCode NtkNetGetWidths(NtkNet, PetscInt *, const PetscInt **);
PETSC_EXTERN PetscErrorCode NtkNetSetActivation(NtkNet, NtkActivation);
PETSC_EXTERN PetscErrorCode NtkNetGetActivation(NtkNet, NtkActivation *);
PETSC_EXTERN PetscErrorCode NtkNetSetParameterization(NtkNet, NtkParameterization);
PETSC_EXTERN PetscErrorCode NtkNetGetParameterization(NtkNet, NtkParameterization *);
PETSC_EXTERN PetscErrorCode NtkNetSetSigmas(NtkNet, PetscReal, PetscReal);
PETSC_EXTERN PetscErrorCode NtkNetGetSigmas(NtkNet, PetscReal *, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkNetSetSeed(NtkNet, PetscInt);
PETSC_EXTERN PetscErrorCode NtkNetGetSeed(NtkNet, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkNetSetFile(NtkNet, const char[]);
PETSC_EXTERN PetscErrorCode NtkNetGetFile(NtkNet, const char *[]);
PETSC_EXTERN PetscErrorCode NtkNetSetFromOptions(NtkNet);
PETSC_EXTERN PetscErrorCode NtkNetSetUp(NtkNet);
PETSC_EXTERN PetscErrorCode NtkNetView(NtkNet, PetscViewer);
PETSC_EXTERN PetscErrorCode NtkNetDestroy(NtkNet *);

PETSC_EXTERN PetscErrorCode NtkNetGetNumLayers(NtkNet, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkNetGetLayer(NtkNet, PetscInt, const NtkLayer **);
PETSC_EXTERN PetscErrorCode NtkNetGetNumParameters(NtkNet, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkNetGetInputSize(NtkNet, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkNetGetOutputSize(NtkNet, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkNetGetParameters(NtkNet, Vec *);
PETSC_EXTERN PetscErrorCode NtkNetInitialize(NtkNet);
/* Build the layer table for the widths set, parameters zero: for loaders that fill them. */
PETSC_EXTERN PetscErrorCode NtkNetSetUpEmpty(NtkNet);
PETSC_EXTERN PetscErrorCode NtkNetCheckFinite(NtkNet);

/*
  Products over a batch of nb samples, rows sample-major (X is nb x n_0, F is nb x n_L, both
  row-major). theta is the full parameter buffer. Workspaces are sized for at most `maxb` rows.
*/
typedef struct _p_NtkNetWork *NtkNetWork;
PETSC_EXTERN PetscErrorCode NtkNetWorkCreate(NtkNet, PetscInt, NtkNetWork *);
PETSC_EXTERN PetscErrorCode NtkNetWorkDestroy(NtkNetWork *);

/* F = f(X; theta) (overwritten) */
PETSC_EXTERN PetscErrorCode NtkNetForward(NtkNet, NtkNetWork, PetscInt, const PetscScalar *,
                                          PetscScalar *);
/* tF = J(X) ttheta (overwritten); recomputes the forward pass */
PETSC_EXTERN PetscErrorCode NtkNetJVP(NtkNet, NtkNetWork, PetscInt, const PetscScalar *,
                                      const PetscScalar *, PetscScalar *);
/* dtheta += J(X)^T dF (accumulated); recomputes the forward pass */
PETSC_EXTERN PetscErrorCode NtkNetVJP(NtkNet, NtkNetWork, PetscInt, const PetscScalar *,
                                      const PetscScalar *, PetscScalar *);

/*
  Cached forward state: for fixed parameters and data the activations a_l and the derivatives
  phi'(z_l) of a whole shard are stored once and reused by every later product. Products then
  skip the forward pass. NtkNetCacheForward fills a cache for rows [0, n) of X; outputs F are
  returned too when F is non-NULL. NtkNetCachedJVP/VJP act on rows [r0, r0 + nb) of the cache;
  with the flag true they use the cache's Jacobian factors when fresh (see below).
*/
typedef struct _p_NtkNetCache *NtkNetCache;
PETSC_EXTERN PetscErrorCode NtkNetCacheCreate(NtkNet, PetscInt, NtkNetCache *);
PETSC_EXTERN PetscErrorCode NtkNetCacheDestroy(NtkNetCache *);
PETSC_EXTERN PetscErrorCode NtkNetCacheBytes(NtkNet, PetscInt, PetscLogDouble *);
PETSC_EXTERN PetscErrorCode NtkNetCacheForward(NtkNet, NtkNetCache, NtkNetWork, const PetscScalar *,
                                               PetscScalar *);
PETSC_EXTERN PetscErrorCode NtkNetCachedJVP(NtkNet, NtkNetCache, NtkNetWork, PetscInt, PetscInt,
                                            PetscBool, const PetscScalar *, PetscScalar *);
PETSC_EXTERN PetscErrorCode NtkNetCachedVJP(NtkNet, NtkNetCache, NtkNetWork, PetscInt, PetscInt,
                                            PetscBool, const PetscScalar *, PetscScalar *);

/*
  Cached Jacobian factors (see NtkNetFactorsCompute below): a cache may also keep, for hidden
  layers 1..L-2, the cotangents of z_l for every output, N C sum n_l doubles, when that saves
  at least eight times the flops it spends (widths above about 8 C). Products over the cache
  then skip backpropagation through those layers. NtkNetCacheFactorBytes gives the memory for n
  rows (0: the network gains nothing from factors); NtkNetCacheEnableFactors allocates it;
  NtkNetCacheComputeFactors fills it from the cached forward state and is a no-op while the
  factors are fresh. NtkNetCacheForward marks them stale; until they are recomputed products
  take the ordinary route.
*/
PETSC_EXTERN PetscErrorCode NtkNetCacheFactorBytes(NtkNet, PetscInt, PetscLogDouble *);
PETSC_EXTERN PetscErrorCode NtkNetCacheEnableFactors(NtkNet, NtkNetCache);
PETSC_EXTERN PetscErrorCode NtkNetCacheComputeFactors(NtkNet, NtkNetCache);

/* Plain-loop reference twins of the BLAS kernels, for tests. */
PETSC_EXTERN PetscErrorCode NtkNetForwardRef(NtkNet, PetscInt, const PetscScalar *, PetscScalar *);
PETSC_EXTERN PetscErrorCode NtkNetJVPRef(NtkNet, PetscInt, const PetscScalar *, const PetscScalar *,
                                         PetscScalar *);
PETSC_EXTERN PetscErrorCode NtkNetVJPRef(NtkNet, PetscInt, const PetscScalar *, const PetscScalar *,
                                         PetscScalar *);

/*
  Jacobian factors of nb samples. Row (i, c) of J restricted to layer l is the outer product
  s_l dz_l^{(i,c)} a_{l-1}^{(i)T} for the weights and dz_l^{(i,c)} for the bias, where dz_l^{(i,c)}
  is the cotangent of z_l when the output cotangent is e_c. On return A[l] points to a_{l-1} of
  the batch (nb x n_{l-1}) and DZ[l] to the cotangents ((nb C) x n_l), for l = 1..L; both point
  into storage owned by the NtkNetFactors object, valid until the next call.
*/
typedef struct _p_NtkNetFactors *NtkNetFactors;
PETSC_EXTERN PetscErrorCode NtkNetFactorsCreate(NtkNet, PetscInt, NtkNetFactors *);
PETSC_EXTERN PetscErrorCode NtkNetFactorsDestroy(NtkNetFactors *);
PETSC_EXTERN PetscErrorCode NtkNetFactorsCompute(NtkNet, NtkNetFactors, PetscInt,
                                                 const PetscScalar *, const PetscScalar ***,
                                                 const PetscScalar ***);

PETSC_EXTERN PetscLogEvent NTK_NetForward, NTK_NetJVP, NTK_NetVJP, NTK_NetFactors;
