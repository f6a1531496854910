/*
  ntk/estimate.h - stochastic estimates of kernel functionals, each with a standard error.

  For the kernel K of an NtkOp (n x n, scale included):
    trace        Tr K: exact (per-sample gradient norms), Hutchinson E[z^T K z], Hutch++
                 (Meyer, Musco, Musco, Woodruff 2021), or one-sided E|J^T z|^2 (VJPs only);
    frobenius    |K|_F = sqrt(Tr K^2), Tr K^2 = E|K z|^2, and the effective rank (Tr K)^2 / Tr K^2;
    entropy      S = -sum_k p_k ln p_k, p_k = lambda_k / Tr K, by stochastic Lanczos quadrature
                 (Ubaru, Chen, Saad 2017), with the near-zero cluster counted separately;
    counting     #{lambda_k <= x} / n and a Gaussian-smoothed density on a logarithmic grid.
  Probe entries are NtkRandomSign/NtkRandomNormal(seed, stream, global row) with one stream per
  probe (plus a per-estimator offset), so a seed gives the same estimate on any number of ranks.
  The standard error is the sample standard deviation of the per-probe estimates over sqrt(m).
*/
#pragma once
#include <ntk/compat.h>
#include <ntk/op.h>
#include <ntk/loss.h>

typedef enum {
  NTK_TRACE_EXACT,
  NTK_TRACE_HUTCHINSON,
  NTK_TRACE_HUTCHPP,
  NTK_TRACE_ONESIDED
} NtkTraceMethod;
PETSC_EXTERN const char *const NtkTraceMethods[];

typedef enum { NTK_PROBE_RADEMACHER, NTK_PROBE_GAUSSIAN } NtkProbeType;
PETSC_EXTERN const char *const NtkProbeTypes[];

typedef enum { NTK_REORTH_FULL, NTK_REORTH_NONE, NTK_REORTH_LOCAL } NtkReorthType;
PETSC_EXTERN const char *const NtkReorthTypes[];

/* One estimate: value, standard error, operator applications used and probes drawn. */
typedef struct {
  PetscReal   value, err;
  PetscInt    matvecs, probes;
  const char *method;
} NtkEstimate;

typedef struct _p_NtkEstimator *NtkEstimator;

/* Called after every probe: what is being estimated, probe j (1-based) of at most m, estimate. */
typedef PetscErrorCode (*NtkEstimatorMonitorFn)(NtkEstimator, const char[], PetscInt, PetscInt,
                                                const NtkEstimate *, void *);

PETSC_EXTERN PetscErrorCode NtkEstimatorCreate(NtkOp, NtkEstimator *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetTraceMethod(NtkEstimator, NtkTraceMethod);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetTraceMethod(NtkEstimator, NtkTraceMethod *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetProbeType(NtkEstimator, NtkProbeType);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetProbeType(NtkEstimator, NtkProbeType *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetSeed(NtkEstimator, PetscInt64);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetSeed(NtkEstimator, PetscInt64 *);
/* Budget per estimated quantity: operator applications (PETSC_DETERMINE: none) */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetMatvecs(NtkEstimator, PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetMatvecs(NtkEstimator, PetscInt *);
/* Stop adding probes once stderr <= rtol |value| (0: off), after at least 4 probes */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetRtol(NtkEstimator, PetscReal);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetRtol(NtkEstimator, PetscReal *);
/* Probes per estimate when no budget is given (for Hutch++: sketch and residual probes each) */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetProbes(NtkEstimator, PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetProbes(NtkEstimator, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetLanczosSteps(NtkEstimator, PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetLanczosSteps(NtkEstimator, PetscInt *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetReorthogonalization(NtkEstimator, NtkReorthType);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetReorthogonalization(NtkEstimator, NtkReorthType *);
/* Deflate the k largest eigenpairs (computed by `steps` Lanczos steps, 0: 2k+20) from SLQ;
   the getter also returns the worst relative residual of the pairs last computed. */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetDeflation(NtkEstimator, PetscInt, PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetDeflation(NtkEstimator, PetscInt *, PetscInt *,
                                                     PetscReal *);
/* Ritz values below zero_tol * lambda_max * n count as the near-zero cluster */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetZeroTolerance(NtkEstimator, PetscReal);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetZeroTolerance(NtkEstimator, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetDensityFile(NtkEstimator, const char[]);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetDensityFile(NtkEstimator, const char *[]);
/*
  Checkpoint file ("" for none) and fresh probes between periodic writes (0: only on a signal).
  With a file, SIGTERM and SIGUSR1 stop the estimators after the probe in progress, with the
  finished probes written to the file and the estimator marked interrupted; a file present at
  set-up is loaded (same settings, model and data, else an error) and its probes are not redone.
*/
PETSC_EXTERN PetscErrorCode NtkEstimatorSetCheckpoint(NtkEstimator, const char[], PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetCheckpoint(NtkEstimator, const char *[], PetscInt *);
/* Test hook: stop as after a signal once this run has computed this many probes (0: never). */
PETSC_EXTERN PetscErrorCode NtkEstimatorSetStopAfter(NtkEstimator, PetscInt);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetStopAfter(NtkEstimator, PetscInt *);
/* Whether the last Trace or SLQ stopped on a signal, leaving a checkpoint to resume from. */
PETSC_EXTERN PetscErrorCode NtkEstimatorGetInterrupted(NtkEstimator, PetscBool *);
/* Trace and SLQ probes read back from the checkpoint; products computed by this process. */
PETSC_EXTERN PetscErrorCode NtkEstimatorGetResumeInfo(NtkEstimator, PetscInt *, PetscInt *,
                                                      PetscInt *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetMonitor(NtkEstimator, NtkEstimatorMonitorFn, void *);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetFromOptions(NtkEstimator);
PETSC_EXTERN PetscErrorCode NtkEstimatorSetUp(NtkEstimator);
PETSC_EXTERN PetscErrorCode NtkEstimatorView(NtkEstimator, PetscViewer);
PETSC_EXTERN PetscErrorCode NtkEstimatorDestroy(NtkEstimator *);

/* Tr K by the chosen method. */
PETSC_EXTERN PetscErrorCode NtkEstimatorTrace(NtkEstimator, NtkEstimate *);
/*
  Stochastic Lanczos quadrature: runs the probes (kept for the queries below) and returns
  |K|_F and S. The effective rank combines Tr K^2 with the trace given (value and stderr;
  pass the exact trace with err = 0 when it is known). S uses p = lambda / trace.value.
*/
PETSC_EXTERN PetscErrorCode NtkEstimatorSLQ(NtkEstimator, const NtkEstimate *, NtkEstimate *,
                                            NtkEstimate *, NtkEstimate *);
/* After NtkEstimatorSLQ: S / ln n, the near-zero mass fraction, and #{lambda >= x} / n. */
PETSC_EXTERN PetscErrorCode NtkEstimatorGetEntropyNormalized(NtkEstimator, PetscReal *,
                                                             PetscReal *);
PETSC_EXTERN PetscErrorCode NtkEstimatorGetNearZeroMass(NtkEstimator, PetscReal *, PetscReal *);
PETSC_EXTERN PetscErrorCode NtkEstimatorCountAbove(NtkEstimator, PetscReal, PetscReal *,
                                                   PetscReal *);
/* Write lambda,density,counting on a log grid (density per unit log10 lambda), atomically. */
PETSC_EXTERN PetscErrorCode NtkEstimatorWriteDensity(NtkEstimator, const char[]);

/*
  Lanczos on K started from u (not changed), m steps, full reorthogonalisation: the Gauss
  quadrature of the measure sum_k (v_k^T u)^2 delta(lambda - lambda_k). nodes, weights (length
  at least m) are overwritten; *nq is the number of nodes (less than m after a breakdown).
*/
PETSC_EXTERN PetscErrorCode NtkLanczosQuadrature(NtkOp, Vec, PetscInt, PetscReal *, PetscReal *,
                                                 PetscInt *);

/* Spectral position of the loss gradient g = dL/dF (DESIGN.md section 1). */
typedef struct {
  NtkLossType loss_type;
  PetscReal   loss, accuracy;       /* accuracy < 0 when there are no labels */
  PetscReal   residual_norm_sq;     /* |g|^2 */
  PetscReal   grad_norm_sq;         /* g^T K g = scale |J^T g|^2 = |grad_theta L|^2 (scale 1) */
  PetscReal   trace;                /* exact Tr K */
  PetscReal   rho, mu;              /* g^T K g / (|g|^2 Tr K), g^T K g / |g|^2 */
  NtkEstimate rank_position;        /* #{lambda_k >= mu} / n from SLQ */
  NtkEstimate frobenius, alignment; /* |K|_F by SLQ, g^T K g / (|K|_F |g|^2) */
  PetscInt    nnodes;               /* residual's spectral measure: nodes and weights */
  PetscReal  *nodes, *weights;
} NtkPosition;

/* est may be NULL: then rank_position and alignment are left out (value NaN). pos must be
   zero-initialised before its first use ({0}); each call frees what the previous one allocated,
   NtkPositionReset frees the rest. */
PETSC_EXTERN PetscErrorCode NtkPositionCompute(NtkOp, NtkLossType, NtkEstimator, PetscInt,
                                               NtkPosition *);
PETSC_EXTERN PetscErrorCode NtkPositionReset(NtkPosition *);

PETSC_EXTERN PetscLogEvent NTK_EstimateTrace, NTK_EstimateSLQ, NTK_EstimatePosition;
