/*
  ntkspec estimate: stochastic estimates of Tr K, |K|_F, the effective rank (Tr K)^2 / Tr K^2
  and the von Neumann entropy of K / Tr K, each with a standard error and its product count,
  and optionally the SLQ spectral density (-ntk_estimate_density file.csv).
  The trace comes from -ntk_estimate_trace; the entropy normalises by the exact trace, which the
  per-sample gradient norms give without products, and SLQ supplies |K|_F from the same probes.
  With -ntk_estimate_checkpoint <file>, SIGTERM or SIGUSR1 stops the run after the probe in
  progress with the finished probes in the file, and the exit status is 3 (NTK_EXIT_INTERRUPTED);
  the same command run again reads them back and continues with the next probe.
*/
#include "app.h"
#include <ntk/estimate.h>

static PetscErrorCode Report(NtkApp *app, const char name[], const NtkEstimate *e)
{
  PetscFunctionBegin;
  PetscCall(NtkAppPrintf(
      app, "%-16s %.10g +- %.3g  (%s, %" PetscInt_FMT " products, %" PetscInt_FMT " probes)\n",
      name, (double)e->value, (double)e->err, e->method, e->matvecs, e->probes));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdEstimate(MPI_Comm comm)
{
  NtkApp       app;
  NtkEstimator est;
  NtkEstimate  T, Tex = {0}, fro, reff, S;
  PetscReal    sn, sne, nz, nze;
  PetscInt64   seed;
  const char  *dens;
  NtkAppProgress prog = {0};
  PetscBool    help, stopped;
  PetscInt     rt, rs, mv;
  json_object *doc = json_object_new_object(), *o;

  PetscFunctionBegin;
  PetscCall(NtkAppCreate(comm, "estimate", &app));
  PetscCall(NtkEstimatorCreate(app.op, &est));
  PetscCall(NtkEstimatorSetFromOptions(est));
  PetscCall(CheckpointOptions(&app, est));
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) { /* the options are listed; estimating on the default data could take long */
    json_object_put(doc);
    PetscCall(NtkEstimatorDestroy(&est));
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkEstimatorSetUp(est));
  prog.app  = &app;
  prog.last = MPI_Wtime();
  PetscCall(NtkEstimatorSetMonitor(est, NtkAppEstimatorMonitor, &prog));
  if (!app.quiet) PetscCall(NtkEstimatorView(est, NULL));

  /* trace by the chosen method; the exact trace normalises the entropy */
  PetscCall(NtkEstimatorGetResumeInfo(est, &rt, &rs, NULL));
  if (rt + rs > 0)
    PetscCall(NtkAppPrintf(&app, "resuming: %" PetscInt_FMT " trace and %" PetscInt_FMT " SLQ "
                           "probes read from the checkpoint\n", rt, rs));
  PetscCall(NtkEstimatorTrace(est, &T));
  PetscCall(NtkEstimatorGetInterrupted(est, &stopped));
  if (!stopped) {
    PetscCall(NtkOpTrace(app.op, &Tex.value));
    Tex.method = "exact";
    PetscCall(NtkEstimatorSLQ(est, &Tex, &fro, &reff, &S));
    PetscCall(NtkEstimatorGetInterrupted(est, &stopped));
  }
  if (stopped) {
    PetscCall(Stopped(&app, est, doc));
    json_object_put(doc);
    PetscCall(NtkEstimatorDestroy(&est));
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkEstimatorGetEntropyNormalized(est, &sn, &sne));
  PetscCall(NtkEstimatorGetNearZeroMass(est, &nz, &nze));
  PetscCall(NtkEstimatorGetSeed(est, &seed));
  PetscCall(NtkEstimatorGetDensityFile(est, &dens));

  PetscCall(Report(&app, "trace", &T));
  PetscCall(Report(&app, "trace (exact)", &Tex));
  PetscCall(Report(&app, "frobenius", &fro));
  PetscCall(Report(&app, "effective_rank", &reff));
  PetscCall(Report(&app, "entropy", &S));
  PetscCall(NtkAppPrintf(&app, "entropy / ln n   %.10g +- %.3g\nnear_zero_mass   %.6g +- %.3g\n",
                         (double)sn, (double)sne, (double)nz, (double)nze));
  if (dens[0]) PetscCall(NtkAppPrintf(&app, "density written to %s\n", dens));

  PetscCall(NtkAppDescribe(&app, doc));
  json_object_object_add(doc, "trace", NtkJSONEstimate(T.value, T.err, T.method, T.matvecs));
  json_object_object_add(doc, "trace_exact", json_object_new_double(Tex.value));
  json_object_object_add(doc, "frobenius",
                         NtkJSONEstimate(fro.value, fro.err, fro.method, fro.matvecs));
  json_object_object_add(doc, "effective_rank",
                         NtkJSONEstimate(reff.value, reff.err, reff.method, reff.matvecs));
  json_object_object_add(doc, "entropy", NtkJSONEstimate(S.value, S.err, S.method, S.matvecs));
  json_object_object_add(doc, "entropy_normalized", NtkJSONEstimate(sn, sne, "slq", S.matvecs));
  json_object_object_add(doc, "near_zero_mass", NtkJSONEstimate(nz, nze, "slq", S.matvecs));
  json_object_object_add(doc, "density", dens[0] ? json_object_new_string(dens) : NULL);
  json_object_object_add(doc, "matvecs", json_object_new_int64(T.matvecs + S.matvecs));
  json_object_object_add(doc, "seed", json_object_new_int64(seed));
  o = json_object_new_object();
  json_object_object_add(o, "slq_probes", json_object_new_int64(S.probes));
  json_object_object_add(o, "trace_probes", json_object_new_int64(T.probes));
  json_object_object_add(doc, "probes", o);
  json_object_object_add(doc, "checkpoint", ResumeJSON(est, PETSC_FALSE));
  PetscCall(NtkEstimatorGetResumeInfo(est, NULL, NULL, &mv));
  PetscCall(NtkAppPrintf(&app,
                         "products: %" PetscInt_FMT " (trace %" PetscInt_FMT ", SLQ %" PetscInt_FMT
                         "), %" PetscInt_FMT " of them computed by this run, %.2f s\n",
                         T.matvecs + S.matvecs, T.matvecs, S.matvecs, mv,
                         MPI_Wtime() - app.t0));
  PetscCall(NtkAppWriteResult(&app, doc));
  json_object_put(doc);
  PetscCall(NtkEstimatorDestroy(&est));
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}
