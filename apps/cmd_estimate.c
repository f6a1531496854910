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

typedef struct {
  NtkApp        *app;
  PetscLogDouble start, last;
  const char    *what;
} Progress;

/* At most two lines a second on rank 0: probe j of m, estimate +- stderr, elapsed, time left. */
static PetscErrorCode Monitor(NtkEstimator e, const char what[], PetscInt j, PetscInt m,
                              const NtkEstimate *est, void *ctx)
{
  Progress      *p   = (Progress *)ctx;
  PetscLogDouble now = MPI_Wtime();

  PetscFunctionBegin;
  /* a new phase started when the previous one last reported */
  if (what != p->what) p->start = p->last;
  p->what = what;
  if (now - p->last < 0.5 && j < m) PetscFunctionReturn(PETSC_SUCCESS);
  p->last = now;
  PetscCall(NtkAppPrintf(p->app,
                         "  %s: probe %" PetscInt_FMT " of %" PetscInt_FMT ", %.6g +- %.2g,"
                         " %.1f s, at most %.1f s left\n",
                         what, j, m, (double)est->value, (double)est->err, now - p->start,
                         (now - p->start) / j * (m - j)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Checkpoint options of this command (the library's NtkEstimatorSetCheckpoint). */
static PetscErrorCode CheckpointOptions(NtkApp *app, NtkEstimator est)
{
  char     file[PETSC_MAX_PATH_LEN] = "";
  PetscInt every = 0, stop = 0;

  PetscFunctionBegin;
  PetscOptionsBegin(app->comm, NULL, "ntkspec estimate (exit status 3: stopped by SIGTERM/SIGUSR1 "
                    "or -ntk_estimate_stop_after, checkpoint written: run again to resume)", "");
  PetscCall(PetscOptionsString("-ntk_estimate_checkpoint", "Checkpoint file (JSON) of the "
                               "finished probes: written on SIGTERM/SIGUSR1 and at the end of each "
                               "phase, read back when present", "NtkEstimatorSetCheckpoint", file,
                               file, sizeof(file), NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_checkpoint_every", "Also write it every this many "
                            "probes (0: only on signals and phase ends)",
                            "NtkEstimatorSetCheckpoint", every, &every, NULL));
  PetscCall(PetscOptionsInt("-ntk_estimate_stop_after", "Test hook: stop as on SIGTERM once "
                            "this run has computed this many probes (0: never)",
                            "NtkEstimatorSetStopAfter", stop, &stop, NULL));
  PetscOptionsEnd();
  PetscCall(NtkEstimatorSetCheckpoint(est, file, every));
  PetscCall(NtkEstimatorSetStopAfter(est, stop));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* What the checkpoint gave this run and what this run computed. */
static json_object *ResumeJSON(NtkEstimator est, PetscBool interrupted)
{
  const char  *file;
  PetscInt     tp, sp, mv;
  json_object *o = json_object_new_object();

  (void)NtkEstimatorGetCheckpoint(est, &file, NULL);
  (void)NtkEstimatorGetResumeInfo(est, &tp, &sp, &mv);
  json_object_object_add(o, "file", file[0] ? json_object_new_string(file) : NULL);
  json_object_object_add(o, "interrupted", json_object_new_boolean(interrupted));
  json_object_object_add(o, "resumed_trace_probes", json_object_new_int64(tp));
  json_object_object_add(o, "resumed_slq_probes", json_object_new_int64(sp));
  json_object_object_add(o, "matvecs_this_run", json_object_new_int64(mv));
  return o;
}

/* Stopped by a signal: say where the probes are and write a result marked interrupted. */
static PetscErrorCode Stopped(NtkApp *app, NtkEstimator est, json_object *doc)
{
  const char *file;
  PetscInt    mv;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorGetCheckpoint(est, &file, NULL));
  PetscCall(NtkEstimatorGetResumeInfo(est, NULL, NULL, &mv));
  PetscCall(NtkAppPrintf(app, "stopped by a signal after %" PetscInt_FMT " products in this run;"
                         " finished probes in %s: run the same command to resume (exit status "
                         "%d)\n", mv, file, NTK_EXIT_INTERRUPTED));
  PetscCall(NtkAppDescribe(app, doc));
  json_object_object_add(doc, "interrupted", json_object_new_boolean(1));
  json_object_object_add(doc, "checkpoint", ResumeJSON(est, PETSC_TRUE));
  PetscCall(NtkAppWriteResult(app, doc));
  NtkAppExitStatus = NTK_EXIT_INTERRUPTED;
  PetscFunctionReturn(PETSC_SUCCESS);
}

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
  Progress     prog = {0};
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
  PetscCall(NtkEstimatorGetDensityFile(est, &dens));
  PetscCall(NtkCheckWritable(comm, dens, "-ntk_estimate_density"));
  PetscCall(NtkEstimatorSetUp(est));
  prog.app  = &app;
  prog.last = MPI_Wtime();
  PetscCall(NtkEstimatorSetMonitor(est, Monitor, &prog));
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
