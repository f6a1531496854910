/*
  ntkspec position: where the loss gradient g = dL/dF sits in the kernel's spectrum.
  Exact: the loss, |g|^2, Tr K, |grad_theta L|^2 = g^T K g (one VJP), rho = g^T K g / (|g|^2 Tr K)
  and mu = g^T K g / |g|^2. Estimated by SLQ (-ntk_estimate_* options): the rank position
  #{lambda >= mu} / n and the alignment g^T K g / (|K|_F |g|^2). The residual's spectral
  measure: the Gauss rule of -ntk_position_lanczos_steps Lanczos steps on K started at g.
*/
#include "app.h"
#include <ntk/estimate.h>

static json_object *Array(PetscInt n, const PetscReal *x)
{
  json_object *a = json_object_new_array();

  for (PetscInt k = 0; k < n; k++) json_object_array_add(a, json_object_new_double(x[k]));
  return a;
}

static PetscErrorCode Print(NtkApp *app, const NtkPosition *p)
{
  PetscFunctionBegin;
  PetscCall(
      NtkAppPrintf(app, "loss %s           %.10g\n", NtkLossTypes[p->loss_type], (double)p->loss));
  if (p->accuracy >= 0)
    PetscCall(NtkAppPrintf(app, "accuracy           %.6g\n", (double)p->accuracy));
  PetscCall(NtkAppPrintf(app, "residual |g|^2     %.10g\ngrad |J^T g|^2 s   %.10g\n",
                         (double)p->residual_norm_sq, (double)p->grad_norm_sq));
  PetscCall(NtkAppPrintf(app,
                         "trace (exact)      %.10g\nrho                %.10g\nmu                 "
                         "%.10g\n",
                         (double)p->trace, (double)p->rho, (double)p->mu));
  PetscCall(NtkAppPrintf(app, "rank position      %.6g +- %.2g\nalignment          %.6g +- %.2g\n",
                         (double)p->rank_position.value, (double)p->rank_position.err,
                         (double)p->alignment.value, (double)p->alignment.err));
  PetscCall(NtkAppPrintf(app, "spectral measure   %" PetscInt_FMT " nodes in [%.4g, %.4g]\n",
                         p->nnodes, (double)(p->nnodes ? p->nodes[0] : 0),
                         (double)(p->nnodes ? p->nodes[p->nnodes - 1] : 0)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static void Describe(const NtkPosition *p, json_object *doc)
{
  json_object *m = json_object_new_object();

  json_object_object_add(doc, "loss_type", json_object_new_string(NtkLossTypes[p->loss_type]));
  json_object_object_add(doc, "loss", json_object_new_double(p->loss));
  if (p->accuracy >= 0)
    json_object_object_add(doc, "accuracy", json_object_new_double(p->accuracy));
  json_object_object_add(doc, "grad_norm_sq", json_object_new_double(p->grad_norm_sq));
  json_object_object_add(doc, "residual_norm_sq", json_object_new_double(p->residual_norm_sq));
  json_object_object_add(doc, "trace", json_object_new_double(p->trace));
  json_object_object_add(doc, "rho", json_object_new_double(p->rho));
  json_object_object_add(doc, "mu", json_object_new_double(p->mu));
  json_object_object_add(doc, "rank_position",
                         NtkJSONEstimate(p->rank_position.value, p->rank_position.err,
                                         p->rank_position.method, p->rank_position.matvecs));
  json_object_object_add(doc, "alignment",
                         NtkJSONEstimate(p->alignment.value, p->alignment.err, p->alignment.method,
                                         p->alignment.matvecs));
  json_object_object_add(doc, "frobenius",
                         NtkJSONEstimate(p->frobenius.value, p->frobenius.err, p->frobenius.method,
                                         p->frobenius.matvecs));
  json_object_object_add(m, "nodes", Array(p->nnodes, p->nodes));
  json_object_object_add(m, "weights", Array(p->nnodes, p->weights));
  json_object_object_add(doc, "spectral_measure", m);
}

typedef struct {
  NtkApp        *app;
  PetscLogDouble start, last;
} Progress;

/* SLQ probes of the rank position and alignment: at most one line a second on rank 0. */
static PetscErrorCode Monitor(NtkEstimator e, const char what[], PetscInt j, PetscInt m,
                              const NtkEstimate *est, void *ctx)
{
  Progress      *p   = (Progress *)ctx;
  PetscLogDouble now = MPI_Wtime();

  PetscFunctionBegin;
  if (now - p->last < 1.0 && j < m) PetscFunctionReturn(PETSC_SUCCESS);
  p->last = now;
  PetscCall(NtkAppPrintf(p->app, "  %s: probe %" PetscInt_FMT " of %" PetscInt_FMT ", %.6g +- %.2g,"
                         " %.1f s, about %.0f s left\n", what, j, m, (double)est->value,
                         (double)est->err, now - p->start, (now - p->start) / j * (m - j)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdPosition(MPI_Comm comm)
{
  NtkApp       app;
  NtkEstimator est;
  NtkLossType  loss  = NTK_LOSS_MSE;
  PetscInt     steps = 20;
  PetscBool    slq   = PETSC_TRUE, help;
  PetscInt64   seed;
  NtkPosition  pos = {0};
  Progress     prog = {0};
  json_object *doc = json_object_new_object();

  PetscFunctionBegin;
  PetscCall(NtkLossGetFromOptions(comm, &loss));
  PetscOptionsBegin(comm, NULL, "ntkspec position", "ntkspec");
  PetscCall(PetscOptionsInt("-ntk_position_lanczos_steps",
                            "Lanczos steps for the residual's "
                            "spectral measure",
                            "NtkPositionCompute", steps, &steps, NULL));
  PetscCall(PetscOptionsBool("-ntk_position_slq", "Estimate the rank position and alignment by SLQ",
                             "NtkPositionCompute", slq, &slq, NULL));
  PetscOptionsEnd();
  PetscCheck(steps >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_position_lanczos_steps %" PetscInt_FMT ": must be at least 1", steps);
  PetscCall(NtkAppCreate(comm, "position", &app));
  PetscCall(NtkEstimatorCreate(app.op, &est));
  PetscCall(NtkEstimatorSetFromOptions(est));
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) { /* the options are listed; nothing to compute */
    json_object_put(doc);
    PetscCall(NtkEstimatorDestroy(&est));
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkEstimatorSetUp(est));
  prog.app   = &app;
  prog.start = prog.last = MPI_Wtime();
  PetscCall(NtkEstimatorSetMonitor(est, Monitor, &prog));
  PetscCall(NtkPositionCompute(app.op, loss, slq ? est : NULL, steps, &pos));
  PetscCall(Print(&app, &pos));
  PetscCall(NtkEstimatorGetSeed(est, &seed));

  PetscCall(NtkAppDescribe(&app, doc));
  Describe(&pos, doc);
  json_object_object_add(doc, "seed", json_object_new_int64(seed));
  PetscCall(NtkAppWriteResult(&app, doc));
  json_object_put(doc);
  PetscCall(NtkPositionReset(&pos));
  PetscCall(NtkEstimatorDestroy(&est));
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}
