/*
  ntkspec spectrum: the leading (largest) and tail (smallest nonzero) eigenpairs of the kernel,
  matrix-free by SLEPc (see src/spectrum/eigen.c for the methods), each with its true residual,
  the null space dimension, and the kernel products spent. SLEPc's options keep working: -eps_* and
  -svd_* steer the leading solve, -tail_eps_* and -tail_svd_* the tail solve.
  With -ntk_spectrum_checkpoint <file>, SIGTERM or SIGUSR1 stops the solve at its next restart with
  its state in the file, and the exit status is 3 (NTK_EXIT_INTERRUPTED); the same command run
  again skips a finished leading phase and restarts the stopped one from its saved Ritz vectors.
  -ntk_spectrum_checkpoint_every <products> also saves that state periodically, without stopping.
*/
#include "app.h"
#include <ntk/spectrum.h>

static json_object *PairsJSON(PetscInt n, const NtkEigenPair *p)
{
  json_object *arr = json_object_new_array();

  for (PetscInt i = 0; i < n; i++) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "value", json_object_new_double(p[i].value));
    json_object_object_add(o, "residual", json_object_new_double(p[i].residual));
    json_object_object_add(o, "residual_rel", json_object_new_double(p[i].residual_rel));
    json_object_array_add(arr, o);
  }
  return arr;
}

/* Numbered from 1 (lambda_1 the largest, or the smallest nonzero for the tail), as in the plot. */
static PetscErrorCode PrintPairs(NtkApp *app, const char *what, PetscInt n, const NtkEigenPair *p)
{
  PetscFunctionBegin;
  PetscCall(NtkAppPrintf(app, "%s eigenvalues (residual |K u - lambda u| / lambda_max):\n", what));
  for (PetscInt i = 0; i < n; i++)
    PetscCall(NtkAppPrintf(app, "  %4" PetscInt_FMT "  %.15e  %.2e\n", i + 1, (double)p[i].value,
                           (double)p[i].residual));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* What the checkpoint gave this run and what this run computed. */
static json_object *CheckpointJSON(NtkSpectrum sp)
{
  const char  *file;
  PetscBool    read, stopped;
  PetscInt     mv, writes;
  json_object *o = json_object_new_object();

  (void)NtkSpectrumGetCheckpoint(sp, &file, NULL);
  (void)NtkSpectrumGetResumeInfo(sp, &read, &mv, &writes);
  (void)NtkSpectrumGetInterrupted(sp, &stopped);
  json_object_object_add(o, "file", file[0] ? json_object_new_string(file) : NULL);
  json_object_object_add(o, "read", json_object_new_boolean(read));
  json_object_object_add(o, "interrupted", json_object_new_boolean(stopped));
  json_object_object_add(o, "products_this_run", json_object_new_int64(mv));
  json_object_object_add(o, "writes_this_run", json_object_new_int64(writes));
  return o;
}

/* Stopped by a signal: say where the state is and write a result marked interrupted. */
static PetscErrorCode Stopped(NtkApp *app, NtkSpectrum sp)
{
  const char  *file;
  PetscInt     mv;
  json_object *doc = json_object_new_object();

  PetscFunctionBegin;
  PetscCall(NtkSpectrumGetCheckpoint(sp, &file, NULL));
  PetscCall(NtkSpectrumGetResumeInfo(sp, NULL, &mv, NULL));
  PetscCall(NtkAppPrintf(app, "stopped by a signal after %" PetscInt_FMT " products in this run;"
                         " state in %s: run the same command to resume (exit status %d)\n", mv,
                         file, NTK_EXIT_INTERRUPTED));
  PetscCall(NtkAppDescribe(app, doc));
  json_object_object_add(doc, "interrupted", json_object_new_boolean(1));
  json_object_object_add(doc, "checkpoint", CheckpointJSON(sp));
  PetscCall(NtkAppWriteResult(app, doc));
  json_object_put(doc);
  NtkAppExitStatus = NTK_EXIT_INTERRUPTED;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* More pairs than the kernel has (or than its nonzero part can hold) is refused before solving. */
static PetscErrorCode CheckRequest(NtkApp *app, NtkSpectrum sp)
{
  const NtkDataShard *sh;
  NtkKernelVariant    v;
  PetscInt            nev, tail, n, P;

  PetscFunctionBegin;
  PetscCall(NtkDataGetShard(app->data, &sh));
  PetscCall(NtkOpGetKernel(app->op, &v));
  PetscCall(NtkNetGetNumParameters(app->net, &P));
  PetscCall(NtkSpectrumGetNev(sp, &nev));
  PetscCall(NtkSpectrumGetTail(sp, &tail));
  n = v == NTK_KERNEL_FULL ? sh->N * sh->C : sh->N;
  PetscCheck(nev <= n && tail <= n, app->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_nev %" PetscInt_FMT " / -ntk_spectrum_tail %" PetscInt_FMT
             ": the %s kernel has only %" PetscInt_FMT " eigenvalues", nev, tail,
             NtkKernelVariants[v], n);
  PetscCheck(v != NTK_KERNEL_FULL || nev <= P, app->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_nev %" PetscInt_FMT ": the kernel has rank at most P = %" PetscInt_FMT,
             nev, P);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdSpectrum(MPI_Comm comm)
{
  NtkApp              app;
  NtkSpectrum         sp;
  const NtkEigenPair *lead, *tail;
  PetscInt            nlead, ntail, nreq, treq, nulldim, c[3];
  PetscBool           known;
  const char         *mlead, *mtail;
  PetscInt            seed;
  json_object        *doc = json_object_new_object(), *cost = json_object_new_object();
  json_object        *meth = json_object_new_object();

  PetscFunctionBegin;
  PetscCall(NtkAppCreate(comm, "spectrum", &app));
  PetscCall(NtkSpectrumCreate(app.op, &sp));
  PetscCall(NtkSpectrumSetMonitor(sp, app.quiet ? PETSC_FALSE : PETSC_TRUE));
  PetscCall(NtkSpectrumSetFromOptions(sp));
  PetscCall(PetscOptionsHasHelp(NULL, &known));
  if (known) { /* the options are listed; solving on the default data could take long */
    json_object_put(doc), json_object_put(cost), json_object_put(meth);
    PetscCall(NtkSpectrumDestroy(&sp));
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(CheckRequest(&app, sp));
  PetscCall(NtkSpectrumGetVectorsFile(sp, &mlead));
  PetscCall(NtkCheckWritable(comm, mlead, "-ntk_spectrum_vectors"));
  PetscCall(NtkSpectrumGetCheckpoint(sp, &mlead, NULL));
  PetscCall(NtkCheckWritable(comm, mlead, "-ntk_spectrum_checkpoint"));
  PetscCall(NtkSpectrumSolve(sp));
  PetscCall(NtkSpectrumGetInterrupted(sp, &known));
  if (known) {
    json_object_put(doc), json_object_put(cost), json_object_put(meth);
    PetscCall(Stopped(&app, sp));
    PetscCall(NtkSpectrumDestroy(&sp));
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }

  PetscCall(NtkSpectrumGetNev(sp, &nreq));
  PetscCall(NtkSpectrumGetTail(sp, &treq));
  PetscCall(NtkSpectrumGetLeading(sp, &nlead, &lead));
  PetscCall(NtkSpectrumGetTailPairs(sp, &ntail, &tail));
  PetscCall(NtkSpectrumGetNullSpace(sp, &nulldim, &known));
  PetscCall(NtkSpectrumGetCost(sp, &c[0], &c[1], &c[2]));
  PetscCall(NtkSpectrumGetMethodDescription(sp, &mlead, &mtail));
  PetscCall(PrintPairs(&app, "leading", nlead, lead));
  if (treq) PetscCall(PrintPairs(&app, "tail", ntail, tail));
  PetscCall(NtkAppPrintf(&app, "null space dimension %" PetscInt_FMT "%s\n", nulldim,
                         known ? "" : " (NC - P: a lower bound; ask for a tail to determine it)"));
  PetscCall(NtkAppPrintf(&app, "kernel products: leading %" PetscInt_FMT ", tail %" PetscInt_FMT
                         ", residual checks %" PetscInt_FMT "\n", c[0], c[1], c[2]));
  if (nlead < nreq || ntail < treq) {
    /* on stderr even with -ntk_quiet, and in the exit status: a batch job must not miss it */
    PetscCall(PetscFPrintf(comm, PETSC_STDERR, "ntkspec: warning: only %" PetscInt_FMT " of %"
                           PetscInt_FMT " leading and %" PetscInt_FMT " of %" PetscInt_FMT
                           " tail pairs converged (exit status %d); raise -ntk_spectrum_max_it or "
                           "-ntk_spectrum_tol\n", nlead, nreq, ntail, treq, NTK_EXIT_UNCONVERGED));
    NtkAppExitStatus = NTK_EXIT_UNCONVERGED;
  }

  PetscCall(NtkNetGetSeed(app.net, &seed));
  PetscCall(NtkAppDescribe(&app, doc));
  json_object_object_add(doc, "leading", PairsJSON(nlead, lead));
  json_object_object_add(doc, "tail", PairsJSON(ntail, tail));
  json_object_object_add(doc, "requested_leading", json_object_new_int64(nreq));
  json_object_object_add(doc, "requested_tail", json_object_new_int64(treq));
  json_object_object_add(doc, "converged", json_object_new_boolean(nlead >= nreq && ntail >= treq));
  json_object_object_add(doc, "null_space_dim", json_object_new_int64(nulldim));
  json_object_object_add(doc, "null_space_determined", json_object_new_boolean(known));
  json_object_object_add(doc, "matvecs", json_object_new_int64(c[0] + c[1] + c[2]));
  json_object_object_add(cost, "leading", json_object_new_int64(c[0]));
  json_object_object_add(cost, "tail", json_object_new_int64(c[1]));
  json_object_object_add(cost, "residual_checks", json_object_new_int64(c[2]));
  json_object_object_add(doc, "matvecs_by_phase", cost);
  json_object_object_add(meth, "leading", json_object_new_string(mlead));
  if (treq) json_object_object_add(meth, "tail", json_object_new_string(mtail));
  json_object_object_add(doc, "method", meth);
  json_object_object_add(doc, "seed", json_object_new_int64(seed));
  json_object_object_add(doc, "checkpoint", CheckpointJSON(sp));
  PetscCall(NtkAppWriteResult(&app, doc));
  json_object_put(doc);
  PetscCall(NtkSpectrumDestroy(&sp));
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}
