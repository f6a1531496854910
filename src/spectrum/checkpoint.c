/*
  Checkpoints of NtkSpectrumSolve: surviving a batch system's time limit.

  Stopping. With a checkpoint file, the Krylov-Schur solves test at every restart, on all ranks
  together (NtkSignalPending), whether SIGTERM or SIGUSR1 arrived (or the -ntk_spectrum_stop_after
  hook raised the same flag). At that point the projected problem T = V^T A V of the current basis
  V (nv columns) has been solved and sorted, wanted eigenvalues first, with eigenvectors Q; the
  solve keeps the Ritz vectors y_j = V q_j of the k wanted ones (converged or not) and ends.
  Periodic writes (-ntk_spectrum_checkpoint_every) take the same Ritz vectors at the first restart
  after every so many products, write them, and let the solve go on: the restart is untouched, so
  the eigenvalues are those of a run without checkpoints, bit for bit.

  What is saved: the phase (leading or tail), for a finished leading phase its values, lambda_max
  and unit kernel-space vectors (so the final residual checks and -ntk_spectrum_vectors work as in
  an uninterrupted run), and the k Ritz vectors of the stopped phase in the space of the operator
  iterated on. The JSON <file> records the settings that decide the operator and the wanted pairs
  (side, method, nev, tail, tol, kernel dimension, P) plus |theta|_2 and |F|_2 of the network
  outputs, which identify model and data; a checkpoint of other settings or another model is
  refused.

  Atomicity. Write g goes to <file>.<g mod 2>.vec (PETSc binary, Vecs in the order above, no .info
  file), under a temporary name renamed by rank 0; then the JSON, which names its generation g, is
  replaced atomically; only then is the vector file of write g-1 removed. A job killed at any
  instant leaves a JSON whose vector file is complete: the JSON is the commit point. (Generation
  0 is <file>.vec, as written before generations existed.)

  Resuming. A finished leading phase is not solved again. The stopped phase starts Krylov-Schur
  from x = sum_j y_j: a single-vector Krylov method builds span{x, A x, ...}, which holds the k
  wanted directions to the accuracy of the Ritz vectors, so converged pairs reappear within a few
  products and unconverged ones continue from their approximations instead of a random vector.
  The eigenvalues agree with an uninterrupted run to the solver tolerance, not bit for bit.
*/
#include "spectrumimpl.h"
#include <ntk/io.h>
#include <ntk/net.h>
#include <slepcds.h>
#include <unistd.h>

#define CKPT_FORMAT "ntkspec-spectrum-checkpoint-1"

/* The nev wanted Ritz vectors V q_j of the current projected problem, kept in sp->ck. */
static PetscErrorCode KeepRitzVectors(EPS eps, PetscInt nev, NtkSpectrum sp)
{
  PetscInt     n, ld, l0, k0;
  BV           V;
  DS           ds;
  PetscScalar *q;

  PetscFunctionBegin;
  PetscCall(EPSGetBV(eps, &V));
  PetscCall(EPSGetDS(eps, &ds));
  PetscCall(DSGetDimensions(ds, &n, NULL, NULL, NULL));
  PetscCall(DSGetLeadingDimension(ds, &ld));
  PetscCall(BVGetActiveColumns(V, &l0, &k0));
  PetscCall(BVSetActiveColumns(V, 0, n));
  sp->nck = PetscMin(nev, n);
  PetscCall(PetscMalloc1(sp->nck, &sp->ck));
  PetscCall(DSGetArray(ds, DS_MAT_Q, &q));
  for (PetscInt j = 0; j < sp->nck; j++) {
    PetscCall(BVCreateVec(V, &sp->ck[j]));
    PetscCall(BVMultVec(V, 1.0, 0.0, sp->ck[j], q + j * ld));
    PetscCall(VecNormalize(sp->ck[j], NULL));
  }
  PetscCall(DSRestoreArray(ds, DS_MAT_Q, &q));
  PetscCall(BVSetActiveColumns(V, l0, k0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Stopping test of the Krylov-Schur solves: SLEPc's own test, then the signal flag and the
  periodic write. Both decisions rest on quantities equal on every rank (the product count, the
  collective signal test), so every rank takes the same branch.
*/
PetscErrorCode NtkSpectrumStopEPS(EPS eps, PetscInt its, PetscInt max_it, PetscInt nconv,
                                  PetscInt nev, EPSConvergedReason *reason, void *ctx)
{
  NtkSpectrum sp = (NtkSpectrum)ctx;
  PetscBool   pending, due;
  PetscInt    prod;

  PetscFunctionBegin;
  PetscCall(EPSStoppingBasic(eps, its, max_it, nconv, nev, reason, NULL));
  if (*reason != EPS_CONVERGED_ITERATING) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkSpectrumProducts(sp, &prod));
  if (sp->stop_after > 0 && prod - sp->pstart >= sp->stop_after) PetscCall(NtkSignalRaise());
  PetscCall(NtkSignalPending(sp->comm, &pending));
  due = sp->ck_every > 0 && prod - sp->cklast >= sp->ck_every ? PETSC_TRUE : PETSC_FALSE;
  if (!pending && !due) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(KeepRitzVectors(eps, nev, sp));
  if (!pending) { /* periodic: save, and go on with the solve */
    PetscCall(NtkSpectrumCheckpointWrite(sp, sp->ckparam, sp->lead_done));
    PetscCall(NtkSpectrumCheckpointReset(sp));
    sp->cklast = prod;
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  sp->interrupted = PETSC_TRUE;
  *reason         = EPS_CONVERGED_USER;
  PetscCall(PetscInfo(NULL, "spectrum solve stopped at restart %" PetscInt_FMT " with %"
                      PetscInt_FMT " of %" PetscInt_FMT " pairs converged\n", its, nconv, nev));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The settings that decide the operator and the wanted pairs. */
static PetscErrorCode Settings(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P,
                               char *buf, size_t len)
{
  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(buf, len, "side %s, method %s, nev %" PetscInt_FMT ", tail %"
                          PetscInt_FMT ", tol %.17g, kernel dimension %" PetscInt_FMT
                          ", parameters %" PetscInt_FMT, param ? "parameter" : "output",
                          NtkSpectrumMethods[sp->method], sp->nev, sp->ntail, (double)sp->tol, NC,
                          P));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* |theta|_2 and |F|_2: two numbers that change with the model or the data. */
static PetscErrorCode Norms(NtkSpectrum sp, PetscReal *pnorm, PetscReal *fnorm)
{
  NtkNet net;
  Vec    theta, F;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(sp->op, &net));
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(VecNorm(theta, NORM_2, pnorm));
  PetscCall(NtkOpCreateKernelVec(sp->op, &F));
  PetscCall(NtkOpGetOutputs(sp->op, F));
  PetscCall(VecNorm(F, NORM_2, fnorm));
  PetscCall(VecDestroy(&F));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The vector file of checkpoint generation g: <file>.vec for 0, else <file>.<g mod 2>.vec. */
static PetscErrorCode VecFileName(NtkSpectrum sp, PetscInt g, char name[], size_t len)
{
  PetscFunctionBegin;
  if (g == 0) PetscCall(PetscSNPrintf(name, len, "%s.vec", sp->ckfile));
  else PetscCall(PetscSNPrintf(name, len, "%s.%d.vec", sp->ckfile, (int)(g % 2)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Leading kernel vectors, then the Ritz vectors, to the file of generation g (temporary name). */
static PetscErrorCode WriteVecs(NtkSpectrum sp, PetscInt g)
{
  PetscViewer viewer;
  char        tmp[PETSC_MAX_PATH_LEN + 48], fin[PETSC_MAX_PATH_LEN + 16];
  PetscMPIInt rank;
  int         pid = (int)getpid();

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(sp->comm, &rank));
  PetscCallMPI(MPI_Bcast(&pid, 1, MPI_INT, 0, sp->comm)); /* one name on every rank */
  PetscCall(VecFileName(sp, g, fin, sizeof(fin)));
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.tmp.%d", fin, pid));
  PetscCall(PetscViewerCreate(sp->comm, &viewer));
  PetscCall(PetscViewerSetType(viewer, PETSCVIEWERBINARY));
  PetscCall(PetscViewerBinarySetSkipInfo(viewer, PETSC_TRUE));
  PetscCall(PetscViewerFileSetMode(viewer, FILE_MODE_WRITE));
  PetscCall(PetscViewerFileSetName(viewer, tmp));
  for (PetscInt i = 0; sp->lead_done && i < sp->nlead; i++)
    PetscCall(VecView(sp->ulead[i], viewer));
  for (PetscInt i = 0; i < sp->nck; i++) PetscCall(VecView(sp->ck[i], viewer));
  PetscCall(PetscViewerDestroy(&viewer));
  if (!rank) PetscCheck(!rename(tmp, fin), PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE,
                        "cannot rename %s to %s", tmp, fin);
  PetscCallMPI(MPI_Barrier(sp->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumCheckpointWrite(NtkSpectrum sp, PetscBool param, PetscBool tail)
{
  char         settings[256], old[PETSC_MAX_PATH_LEN + 16];
  PetscInt     NC, P, g = sp->ckgen + 1;
  PetscMPIInt  rank;
  PetscReal    pn, fn;
  Mat          K, J;
  json_object *doc = json_object_new_object(), *lead = json_object_new_array();

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernelMat(sp->op, &K));
  PetscCall(NtkOpGetJacobian(sp->op, &J));
  PetscCall(MatGetSize(K, &NC, NULL));
  PetscCall(MatGetSize(J, NULL, &P));
  PetscCall(Settings(sp, param, NC, P, settings, sizeof(settings)));
  PetscCall(Norms(sp, &pn, &fn));
  PetscCall(WriteVecs(sp, g));
  for (PetscInt i = 0; sp->lead_done && i < sp->nlead; i++)
    json_object_array_add(lead, json_object_new_double((double)sp->lead[i].value));
  json_object_object_add(doc, "format", json_object_new_string(CKPT_FORMAT));
  json_object_object_add(doc, "settings", json_object_new_string(settings));
  json_object_object_add(doc, "parameter_norm", json_object_new_double((double)pn));
  json_object_object_add(doc, "output_norm", json_object_new_double((double)fn));
  json_object_object_add(doc, "phase", json_object_new_string(tail ? "tail" : "leading"));
  json_object_object_add(doc, "leading_complete", json_object_new_boolean(sp->lead_done));
  json_object_object_add(doc, "lambda_max", json_object_new_double((double)sp->lmax));
  json_object_object_add(doc, "leading", lead);
  json_object_object_add(doc, "ritz_vectors", json_object_new_int64(sp->nck));
  json_object_object_add(doc, "generation", json_object_new_int64(g));
  PetscCall(NtkJSONWrite(sp->comm, doc, sp->ckfile));
  json_object_put(doc);
  /* committed: the vectors of the previous generation are no longer named by the JSON */
  PetscCallMPI(MPI_Comm_rank(sp->comm, &rank));
  PetscCall(VecFileName(sp, g - 1, old, sizeof(old)));
  if (!rank) (void)remove(old);
  sp->ckgen = g;
  sp->ckwrites++;
  PetscCall(PetscInfo(NULL, "spectrum checkpoint %s (generation %" PetscInt_FMT "): %s phase, %"
                      PetscInt_FMT " Ritz vectors\n", sp->ckfile, g, tail ? "tail" : "leading",
                      sp->nck));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Refuse a checkpoint of other settings, another model or other data. */
static PetscErrorCode CheckSame(NtkSpectrum sp, json_object *doc, PetscBool param, PetscInt NC,
                                PetscInt P)
{
  char         settings[256];
  json_object *v, *a, *b;
  PetscReal    pn, fn, cpn, cfn;

  PetscFunctionBegin;
  PetscCall(Settings(sp, param, NC, P, settings, sizeof(settings)));
  PetscCheck(json_object_object_get_ex(doc, "settings", &v), sp->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the spectrum checkpoint %s has no settings", sp->ckfile);
  PetscCheck(!strcmp(json_object_get_string(v), settings), sp->comm, PETSC_ERR_ARG_INCOMP,
             "the spectrum checkpoint %s was written with\n  %s\nbut this run has\n  %s\n"
             "run with the settings of the checkpoint, or remove it or name another file with "
             "-ntk_spectrum_checkpoint", sp->ckfile, json_object_get_string(v), settings);
  PetscCall(Norms(sp, &pn, &fn));
  PetscCheck(json_object_object_get_ex(doc, "parameter_norm", &a) &&
               json_object_object_get_ex(doc, "output_norm", &b), sp->comm,
             PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s has no norms", sp->ckfile);
  cpn = (PetscReal)json_object_get_double(a);
  cfn = (PetscReal)json_object_get_double(b);
  PetscCheck(PetscAbsReal(pn - cpn) <= 1e-10 * PetscAbsReal(cpn) &&
               PetscAbsReal(fn - cfn) <= 1e-10 * PetscAbsReal(cfn), sp->comm,
             PETSC_ERR_ARG_INCOMP, "the spectrum checkpoint %s belongs to another model or other "
             "data: |theta| %.17g and |F| %.17g there, %.17g and %.17g here; remove it or name "
             "another file with -ntk_spectrum_checkpoint", sp->ckfile, (double)cpn, (double)cfn,
             (double)pn, (double)fn);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Read the vectors back: leading kernel vectors (finished phase), then x = sum of Ritz vectors. */
static PetscErrorCode LoadVecs(NtkSpectrum sp, PetscBool param, PetscInt nritz)
{
  PetscViewer viewer;
  char        fin[PETSC_MAX_PATH_LEN + 16];
  Mat         A;
  Vec         y;

  PetscFunctionBegin;
  PetscCall(VecFileName(sp, sp->ckgen, fin, sizeof(fin)));
  PetscCall(PetscViewerCreate(sp->comm, &viewer));
  PetscCall(PetscViewerSetType(viewer, PETSCVIEWERBINARY));
  PetscCall(PetscViewerBinarySetSkipInfo(viewer, PETSC_TRUE));
  PetscCall(PetscViewerFileSetMode(viewer, FILE_MODE_READ));
  PetscCall(PetscViewerFileSetName(viewer, fin));
  for (PetscInt i = 0; sp->lead_done && i < sp->nlead; i++) {
    PetscCall(NtkOpCreateKernelVec(sp->op, &sp->ulead[i]));
    PetscCall(VecLoad(sp->ulead[i], viewer));
  }
  if (nritz > 0) {
    PetscCall(NtkSpectrumOperator(sp, param, &A));
    PetscCall(MatCreateVecs(A, &sp->ckstart, &y));
    PetscCall(VecSet(sp->ckstart, 0.0));
    for (PetscInt j = 0; j < nritz; j++) {
      PetscCall(VecLoad(y, viewer));
      PetscCall(VecAXPY(sp->ckstart, 1.0, y));
    }
    PetscCall(VecDestroy(&y));
  }
  PetscCall(PetscViewerDestroy(&viewer));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumCheckpointLoad(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P)
{
  PetscBool      found = PETSC_FALSE;
  PetscMPIInt    rank;
  unsigned char *text;
  size_t         size;
  json_object   *doc, *v, *lead;
  PetscInt       nritz;
  int64_t        gen;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(sp->comm, &rank));
  if (rank == 0) PetscCall(PetscTestFile(sp->ckfile, 'r', &found));
  PetscCallMPI(MPI_Bcast(&found, 1, MPIU_BOOL, 0, sp->comm));
  if (!found) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkReadFileShared(sp->comm, sp->ckfile, &text, &size));
  doc = json_tokener_parse((const char *)text);
  PetscCall(PetscFree(text));
  PetscCheck(doc && json_object_object_get_ex(doc, "format", &v) &&
               !strcmp(json_object_get_string(v), CKPT_FORMAT), sp->comm,
             PETSC_ERR_FILE_UNEXPECTED, "%s is not an ntkspec spectrum checkpoint", sp->ckfile);
  PetscCall(CheckSame(sp, doc, param, NC, P));
  PetscCheck(json_object_object_get_ex(doc, "phase", &v) && json_object_object_get_ex(doc,
             "leading", &lead) && json_object_is_type(lead, json_type_array), sp->comm,
             PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s is malformed", sp->ckfile);
  sp->ckphase = strcmp(json_object_get_string(v), "tail") ? 0 : 1;
  sp->lead_done = json_object_object_get_ex(doc, "leading_complete", &v) &&
                  json_object_get_boolean(v) ? PETSC_TRUE : PETSC_FALSE;
  nritz = json_object_object_get_ex(doc, "ritz_vectors", &v) ? json_object_get_int64(v) : 0;
  gen   = json_object_object_get_ex(doc, "generation", &v) ? json_object_get_int64(v) : 0;
  PetscCheck(gen >= 0 && gen < PETSC_MAX_INT && nritz >= 0, sp->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the spectrum checkpoint %s is malformed (generation %lld, %" PetscInt_FMT
             " Ritz vectors)", sp->ckfile, (long long)gen, nritz);
  sp->ckgen = (PetscInt)gen;
  if (sp->lead_done) {
    sp->nlead = (PetscInt)json_object_array_length(lead);
    PetscCheck(json_object_object_get_ex(doc, "lambda_max", &v) && sp->nlead >= 1, sp->comm,
               PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s has no leading values",
               sp->ckfile);
    sp->lmax = (PetscReal)json_object_get_double(v);
    PetscCall(PetscMalloc2(sp->nlead, &sp->lead, sp->nlead, &sp->ulead));
    PetscCall(PetscArrayzero(sp->lead, sp->nlead));
    for (PetscInt i = 0; i < sp->nlead; i++)
      sp->lead[i].value = (PetscReal)json_object_get_double(json_object_array_get_idx(lead, i));
  }
  json_object_put(doc);
  PetscCall(LoadVecs(sp, param, nritz));
  sp->ckread = PETSC_TRUE;
  PetscCall(PetscInfo(NULL, "resuming from %s: %s phase, leading %s\n", sp->ckfile,
                      sp->ckphase ? "tail" : "leading", sp->lead_done ? "finished" : "to do"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumCheckpointReset(NtkSpectrum sp)
{
  PetscFunctionBegin;
  for (PetscInt j = 0; j < sp->nck; j++) PetscCall(VecDestroy(&sp->ck[j]));
  PetscCall(PetscFree(sp->ck));
  sp->nck = 0;
  PetscCall(VecDestroy(&sp->ckstart));
  PetscFunctionReturn(PETSC_SUCCESS);
}
