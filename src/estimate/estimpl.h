/* Private layout of NtkEstimator, shared by the files of src/estimate. */
#pragma once
#include <ntk/estimate.h>
#include <ntk/sys.h>

/* Stream offsets: each estimator draws its probes from its own block of streams. */
#define NTK_STREAM_HUTCHINSON (PetscInt64)0
#define NTK_STREAM_SKETCH ((PetscInt64)1 << 32)
#define NTK_STREAM_RESIDUAL ((PetscInt64)2 << 32)
#define NTK_STREAM_ONESIDED ((PetscInt64)3 << 32)
#define NTK_STREAM_SLQ ((PetscInt64)4 << 32)
#define NTK_STREAM_DEFLATE ((PetscInt64)5 << 32)
/* Probes drawn with -ntk_estimate_rtol when no budget caps them. */
#define NTK_MAX_ADAPTIVE_PROBES 1000
#define NTK_MIN_PROBES 4

struct _p_NtkEstimator {
  MPI_Comm              comm;
  NtkOp                 op;
  Mat                   K;
  PetscInt              n; /* kernel dimension */
  NtkTraceMethod        trace_method;
  NtkProbeType          probe;
  PetscInt64            seed;
  PetscInt              matvecs; /* budget per quantity, < 0: none */
  PetscReal             rtol;
  PetscInt              probes;
  PetscInt              steps;         /* Lanczos steps per SLQ probe */
  PetscInt              deflate;       /* leading eigenpairs removed from the SLQ probes */
  PetscInt              deflate_steps; /* Lanczos steps that compute them */
  NtkReorthType         reorth;
  PetscReal             zero_tol, breakdown_tol;
  char                  density[PETSC_MAX_PATH_LEN];
  PetscInt              density_points;
  PetscReal             density_sigma; /* Gaussian width in decades of lambda */
  NtkEstimatorMonitorFn monitor;
  void                 *mctx;
  PetscBool             setup;

  /* Deflation: nd Ritz pairs (ylam, Y) of K, the largest ones, and the worst relative residual */
  PetscInt   nd;
  Vec       *Y;
  PetscReal *ylam, yres;
  PetscInt   ymatvecs;

  /* SLQ state: per probe j, nq[j] nodes at nodes[j*stride + k] with weights |z_j|^2 tau_jk^2,
     the nd deflated eigenvalues appended as atoms of weight 1 */
  PetscInt   nslq, stride;
  PetscInt  *nq;
  PetscReal *nodes, *weights;
  PetscReal  trace_used, lmax, zero_thr;
  PetscReal  snorm, snorm_err, nzmass, nzmass_err;
  PetscReal *f2; /* per SLQ probe: |K z_j|^2 */

  /* Per-probe samples of the last trace estimate and, for Hutch++, Tr(Q^T K Q) and its cost */
  PetscInt   ntx;
  PetscReal *tx, tq;
  PetscInt   tq_matvecs;
  PetscBool  trace_done;

  /* Checkpoint (checkpoint.c): file, fresh probes between writes, test stop, what this run did */
  char      ckfile[PETSC_MAX_PATH_LEN];
  PetscInt  ckevery, stop_after, fresh, fresh_matvecs;
  PetscBool interrupted, signals;
  /* Loaded from the checkpoint: trace samples, Hutch++ sketch trace, SLQ probes */
  PetscInt   ck_ntx, ck_tq_matvecs, ck_nslq, ck_stride, ck_nd;
  PetscReal *ck_tx, ck_tq;
  PetscBool  ck_trace_done;
  PetscInt  *ck_nq;
  PetscReal *ck_nodes, *ck_weights, *ck_f2;
};

PETSC_INTERN PetscErrorCode NtkEstimatorDeflate(NtkEstimator);
PETSC_INTERN PetscErrorCode NtkEstimatorCheckpointLoad(NtkEstimator);
PETSC_INTERN PetscErrorCode NtkEstimatorCheckpointWrite(NtkEstimator);
PETSC_INTERN PetscErrorCode NtkEstimatorProbeDone(NtkEstimator, PetscBool, PetscBool,
                                                  PetscBool *);
PETSC_INTERN PetscErrorCode NtkEstimatorCheckpointReset(NtkEstimator);
PETSC_INTERN PetscErrorCode NtkEstimatorFillProbe(NtkEstimator, PetscInt64, Vec);
PETSC_INTERN void           NtkMeanErr(PetscInt, const PetscReal *, PetscReal *, PetscReal *);
PETSC_INTERN PetscInt       NtkEstimatorMaxProbes(NtkEstimator, PetscInt, PetscInt);
PETSC_INTERN PetscInt       NtkEstimatorDeflationSteps(NtkEstimator);
PETSC_INTERN PetscErrorCode NtkEstimatorTraceLimits(NtkEstimator, PetscInt *, PetscInt *);
PETSC_INTERN PetscBool      NtkEstimatorConverged(NtkEstimator, PetscInt, const NtkEstimate *);
PETSC_INTERN PetscErrorCode NtkLanczos(Mat, Vec, PetscInt, NtkReorthType, PetscReal, PetscInt,
                                       Vec *, PetscReal *, PetscReal *, PetscInt *);
PETSC_INTERN PetscErrorCode NtkTridiagonalEig(PetscInt, const PetscReal *, const PetscReal *,
                                              PetscReal *, PetscReal *);
PETSC_INTERN PetscErrorCode NtkTridiagonalGauss(PetscInt, const PetscReal *, const PetscReal *,
                                                PetscReal *, PetscReal *);
