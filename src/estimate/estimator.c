/*
  NtkEstimator: settings shared by the stochastic estimators (probe distribution, seed, budget,
  stopping tolerance, Lanczos steps) and the probe streams.

  Probe j of an estimator with stream offset s has entries z_i = R(seed, s + j, i) for global
  row i, where R is NtkRandomSign (Rademacher) or NtkRandomNormal: the probe does not depend on
  how rows are distributed, so results agree on any number of ranks up to summation order.
  The standard error of a mean of m per-probe estimates x_j is std(x) / sqrt(m) (unbiased std).
  To add an estimator: give it its own stream offset in estimpl.h and report matvecs and probes.
*/
#include "estimpl.h"

const char *const NtkTraceMethods[] = {"exact",          "hutchinson", "hutchpp", "onesided",
                                       "NtkTraceMethod", "NTK_TRACE_", NULL};
const char *const NtkProbeTypes[]  = {"rademacher", "gaussian", "NtkProbeType", "NTK_PROBE_", NULL};
const char *const NtkReorthTypes[] = {"full",          "none",        "local",
                                      "NtkReorthType", "NTK_REORTH_", NULL};

PetscLogEvent NTK_EstimateTrace, NTK_EstimateSLQ, NTK_EstimatePosition;

PetscErrorCode NtkEstimatorCreate(NtkOp op, NtkEstimator *est)
{
  static PetscBool registered = PETSC_FALSE;
  NtkEstimator     e;
  NtkNet           net;

  PetscFunctionBegin;
  if (!registered) {
    registered = PETSC_TRUE;
    PetscCall(NtkInitializePackage());
    PetscCall(PetscLogEventRegister("NtkEstTrace", NTK_CLASSID, &NTK_EstimateTrace));
    PetscCall(PetscLogEventRegister("NtkEstSLQ", NTK_CLASSID, &NTK_EstimateSLQ));
    PetscCall(PetscLogEventRegister("NtkEstPosition", NTK_CLASSID, &NTK_EstimatePosition));
  }
  PetscCall(PetscNew(&e));
  PetscCall(NtkOpGetNet(op, &net));
  PetscCall(NtkNetGetComm(net, &e->comm));
  e->op             = op;
  e->trace_method   = NTK_TRACE_HUTCHPP;
  e->probe          = NTK_PROBE_RADEMACHER;
  e->seed           = 1;
  e->matvecs        = -1;
  e->probes         = 30;
  e->steps          = 30;
  e->reorth         = NTK_REORTH_FULL;
  e->deflate        = 10;
  e->zero_tol       = 1e-12;
  e->breakdown_tol  = 1e-12;
  e->density_points = 200;
  e->density_sigma  = 0.05;
  *est              = e;
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define NTK_SETGET(Name, field, type)                                                              \
  PetscErrorCode NtkEstimatorSet##Name(NtkEstimator e, type v)                                     \
  {                                                                                                \
    PetscFunctionBegin;                                                                            \
    e->field = v;                                                                                  \
    PetscFunctionReturn(PETSC_SUCCESS);                                                            \
  }                                                                                                \
  PetscErrorCode NtkEstimatorGet##Name(NtkEstimator e, type *v)                                    \
  {                                                                                                \
    PetscFunctionBegin;                                                                            \
    *v = e->field;                                                                                 \
    PetscFunctionReturn(PETSC_SUCCESS);                                                            \
  }

NTK_SETGET(TraceMethod, trace_method, NtkTraceMethod)
NTK_SETGET(ProbeType, probe, NtkProbeType)
NTK_SETGET(Seed, seed, PetscInt64)
NTK_SETGET(Matvecs, matvecs, PetscInt)
NTK_SETGET(Rtol, rtol, PetscReal)
NTK_SETGET(Probes, probes, PetscInt)
NTK_SETGET(LanczosSteps, steps, PetscInt)
NTK_SETGET(Reorthogonalization, reorth, NtkReorthType)
NTK_SETGET(ZeroTolerance, zero_tol, PetscReal)

PetscErrorCode NtkEstimatorSetDeflation(NtkEstimator e, PetscInt k, PetscInt steps)
{
  PetscFunctionBegin;
  e->deflate       = k;
  e->deflate_steps = steps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetDeflation(NtkEstimator e, PetscInt *k, PetscInt *steps,
                                        PetscReal *res)
{
  PetscFunctionBegin;
  if (k) *k = e->deflate;
  if (steps) *steps = e->deflate_steps;
  if (res) *res = e->yres;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorSetDensityFile(NtkEstimator e, const char file[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(e->density, file ? file : "", sizeof(e->density)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetDensityFile(NtkEstimator e, const char *file[])
{
  PetscFunctionBegin;
  *file = e->density;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorSetMonitor(NtkEstimator e, NtkEstimatorMonitorFn fn, void *ctx)
{
  PetscFunctionBegin;
  e->monitor = fn;
  e->mctx    = ctx;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorSetFromOptions(NtkEstimator e)
{
  PetscInt64 seed = e->seed;
  PetscInt   iseed;

  PetscFunctionBegin;
  iseed = (PetscInt)seed;
  PetscOptionsBegin(e->comm, NULL, "Stochastic estimator options", "NtkEstimator");
  PetscCall(PetscOptionsEnum("-ntk_estimate_trace", "Trace method", "NtkEstimatorSetTraceMethod",
                             NtkTraceMethods, (PetscEnum)e->trace_method,
                             (PetscEnum *)&e->trace_method, NULL));
  PetscCall(PetscOptionsEnum("-ntk_estimate_probe", "Probe distribution",
                             "NtkEstimatorSetProbeType", NtkProbeTypes, (PetscEnum)e->probe,
                             (PetscEnum *)&e->probe, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_seed", "Seed of the probe streams",
                            "NtkEstimatorSetSeed", iseed, &iseed, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_matvecs",
                            "Budget of operator products for the trace and, separately, for SLQ "
                            "with its deflation; never exceeded, and a budget below two probes "
                            "is refused with the minimum (-1: use -ntk_estimate_probes)",
                            "NtkEstimatorSetMatvecs", e->matvecs, &e->matvecs, NULL));
  PetscCall(PetscOptionsReal("-ntk_estimate_rtol",
                             "Stop adding probes when stderr <= rtol |value| "
                             "(0: off)",
                             "NtkEstimatorSetRtol", e->rtol, &e->rtol, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_probes", "Probes per estimate without a budget",
                            "NtkEstimatorSetProbes", e->probes, &e->probes, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_lanczos_steps", "Lanczos steps per SLQ probe",
                            "NtkEstimatorSetLanczosSteps", e->steps, &e->steps, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_deflate",
                            "Leading eigenpairs deflated from the SLQ "
                            "probes",
                            "NtkEstimatorSetDeflation", e->deflate, &e->deflate, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_deflate_steps",
                            "Lanczos steps computing them (0: 2k+20; at least 2k)",
                            "NtkEstimatorSetDeflation",
                            e->deflate_steps, &e->deflate_steps, NULL));
  PetscCall(PetscOptionsEnum("-ntk_estimate_reorthogonalization", "Lanczos reorthogonalisation",
                             "NtkEstimatorSetReorthogonalization", NtkReorthTypes,
                             (PetscEnum)e->reorth, (PetscEnum *)&e->reorth, NULL));
  PetscCall(PetscOptionsReal("-ntk_estimate_zero_tol",
                             "Ritz values below zero_tol lambda_max n are "
                             "the near-zero cluster",
                             "NtkEstimatorSetZeroTolerance", e->zero_tol, &e->zero_tol, NULL));
  PetscCall(PetscOptionsString("-ntk_estimate_density", "Write the SLQ density to this CSV file",
                               "NtkEstimatorSetDensityFile", e->density, e->density,
                               sizeof(e->density), NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_density_points", "Grid points of the density", "",
                            e->density_points, &e->density_points, NULL));
  PetscCall(PetscOptionsReal("-ntk_estimate_density_sigma",
                             "Gaussian width of the density, in "
                             "decades of lambda",
                             "", e->density_sigma, &e->density_sigma, NULL));
  PetscOptionsEnd();
  e->seed = iseed;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Settings that need the kernel dimension n. The k largest Ritz pairs of an m-step Lanczos run
  converge only for m well beyond k (m = k leaves the k-th pair a poor mix of its neighbours and
  biases SLQ by its residual), so fewer than min(2k, n) deflation steps are refused. A budget
  B must hold the deflation run and two SLQ probes (the fewest with a standard error) of m
  Lanczos steps each; then SLQ never exceeds it.
*/
static PetscErrorCode CheckDeflationAndBudget(NtkEstimator e)
{
  PetscInt md = NtkEstimatorDeflationSteps(e), min = md + 2 * e->steps;

  PetscFunctionBegin;
  PetscCheck(e->deflate == 0 || e->deflate_steps == 0 ||
               e->deflate_steps >= PetscMin(2 * e->deflate, e->n), e->comm,
             PETSC_ERR_ARG_OUTOFRANGE, "-ntk_estimate_deflate_steps %" PetscInt_FMT " is too few "
             "for -ntk_estimate_deflate %" PetscInt_FMT ": the leading Ritz pairs need at least "
             "%" PetscInt_FMT " Lanczos steps (2k) to converge; 0 takes 2k+20", e->deflate_steps,
             e->deflate, PetscMin(2 * e->deflate, e->n));
  PetscCheck(e->matvecs < 0 || e->matvecs >= min, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_matvecs %" PetscInt_FMT " is too small for SLQ: the deflation takes "
             "%" PetscInt_FMT " products and two probes of -ntk_estimate_lanczos_steps %"
             PetscInt_FMT " take %" PetscInt_FMT ", at least %" PetscInt_FMT " in all (or -1 for "
             "no budget)", e->matvecs, md, e->steps, 2 * e->steps, min);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorSetUp(NtkEstimator e)
{
  PetscFunctionBegin;
  if (e->setup) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCheck(e->probes >= 1, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_probes %" PetscInt_FMT ": must be at least 1", e->probes);
  PetscCheck(e->steps >= 1, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_lanczos_steps %" PetscInt_FMT ": must be at least 1", e->steps);
  PetscCheck(e->rtol >= 0 && e->rtol < 1, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_rtol %g: must be in [0, 1)", (double)e->rtol);
  PetscCheck(e->deflate >= 0 && e->deflate_steps >= 0, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_deflate %" PetscInt_FMT ", -ntk_estimate_deflate_steps %" PetscInt_FMT
             ": must be >= 0",
             e->deflate, e->deflate_steps);
  PetscCheck(e->zero_tol >= 0, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_zero_tol %g: must be >= 0", (double)e->zero_tol);
  PetscCheck(e->density_points >= 2 && e->density_sigma > 0, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_density_points %" PetscInt_FMT " (>= 2) and -ntk_estimate_density_sigma"
             " %g (> 0) out of range",
             e->density_points, (double)e->density_sigma);
  PetscCheck(e->ckevery >= 0 && e->stop_after >= 0, e->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_estimate_checkpoint_every %" PetscInt_FMT ", -ntk_estimate_stop_after %"
             PetscInt_FMT ": must be >= 0", e->ckevery, e->stop_after);
  PetscCheck(e->ckfile[0] || (!e->ckevery && !e->stop_after), e->comm, PETSC_ERR_ARG_WRONG,
             "-ntk_estimate_checkpoint_every and -ntk_estimate_stop_after need a checkpoint file "
             "(-ntk_estimate_checkpoint)");
  PetscCall(NtkOpSetUp(e->op));
  PetscCall(NtkOpGetKernelMat(e->op, &e->K));
  PetscCall(MatGetSize(e->K, &e->n, NULL));
  PetscCall(CheckDeflationAndBudget(e));
  if (e->ckfile[0]) {
    PetscCall(NtkEstimatorCheckpointLoad(e));
    /* from here until Destroy, SIGTERM and SIGUSR1 stop at the end of a probe */
    PetscCall(NtkSignalInstall());
    e->signals = PETSC_TRUE;
  }
  e->setup = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorView(NtkEstimator e, PetscViewer viewer)
{
  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(e->comm, &viewer));
  PetscCall(PetscViewerASCIIPrintf(
      viewer, "NtkEstimator: trace %s, probes %s, seed %" PetscInt64_FMT "\n",
      NtkTraceMethods[e->trace_method], NtkProbeTypes[e->probe], e->seed));
  PetscCall(PetscViewerASCIIPrintf(viewer,
                                   "  budget %" PetscInt_FMT " products per quantity "
                                   "(-1: %" PetscInt_FMT " probes), rtol %g\n",
                                   e->matvecs, e->probes, (double)e->rtol));
  PetscCall(
      PetscViewerASCIIPrintf(viewer,
                             "  SLQ: %" PetscInt_FMT " Lanczos steps, %s "
                             "reorthogonalisation, near-zero below %g lambda_max n, %" PetscInt_FMT
                             " leading pairs deflated\n",
                             e->steps, NtkReorthTypes[e->reorth], (double)e->zero_tol, e->deflate));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorDestroy(NtkEstimator *e)
{
  PetscFunctionBegin;
  if (!*e) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscFree3((*e)->nq, (*e)->nodes, (*e)->weights));
  PetscCall(PetscFree((*e)->tx));
  PetscCall(PetscFree((*e)->f2));
  PetscCall(NtkEstimatorCheckpointReset(*e));
  if ((*e)->signals) PetscCall(NtkSignalRestore());
  if ((*e)->Y) PetscCall(VecDestroyVecs((*e)->nd, &(*e)->Y));
  PetscCall(PetscFree((*e)->ylam));
  PetscCall(PetscFree(*e));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorFillProbe(NtkEstimator e, PetscInt64 stream, Vec z)
{
  PetscInt     lo, hi;
  PetscScalar *a;

  PetscFunctionBegin;
  PetscCall(VecGetOwnershipRange(z, &lo, &hi));
  PetscCall(VecGetArrayWrite(z, &a));
  for (PetscInt i = lo; i < hi; i++)
    a[i - lo] = e->probe == NTK_PROBE_RADEMACHER ? NtkRandomSign(e->seed, stream, i)
                                                 : NtkRandomNormal(e->seed, stream, i);
  PetscCall(VecRestoreArrayWrite(z, &a));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Mean and standard error of the mean (NaN error for a single value). */
void NtkMeanErr(PetscInt m, const PetscReal *x, PetscReal *mean, PetscReal *err)
{
  PetscReal s = 0, v = 0;

  for (PetscInt j = 0; j < m; j++) s += x[j];
  s /= m;
  for (PetscInt j = 0; j < m; j++) v += (x[j] - s) * (x[j] - s);
  *mean = s;
  *err  = m > 1 ? PetscSqrtReal(v / (m - 1) / m) : NAN;
}

/* Probes allowed: (budget - fixed) / cost with a budget; else the count, or the adaptive cap. */
PetscInt NtkEstimatorMaxProbes(NtkEstimator e, PetscInt cost, PetscInt fixed)
{
  if (e->matvecs >= 0) return PetscMax(1, (e->matvecs - fixed) / cost);
  return e->rtol > 0 ? NTK_MAX_ADAPTIVE_PROBES : e->probes;
}

PetscBool NtkEstimatorConverged(NtkEstimator e, PetscInt m, const NtkEstimate *est)
{
  if (e->rtol <= 0 || m < NTK_MIN_PROBES) return PETSC_FALSE;
  return est->err <= e->rtol * PetscAbsReal(est->value) ? PETSC_TRUE : PETSC_FALSE;
}
