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
  (side, method, nev, tail, tol, kernel dimension, P, kernel scale) plus |theta|_2 and |F|_2 of
  the network outputs, which identify model and data; a checkpoint of other settings or another
  model is refused, and so is one whose values or vector file do not hold together (ReadState,
  CheckVecFile).

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
#include <sys/stat.h>
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

/* The settings that decide the operator (its kernel scale included) and the wanted pairs. */
static PetscErrorCode Settings(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P,
                               char *buf, size_t len)
{
  PetscReal scale;

  PetscFunctionBegin;
  PetscCall(NtkOpGetScale(sp->op, &scale));
  PetscCall(PetscSNPrintf(buf, len, "side %s, method %s, nev %" PetscInt_FMT ", tail %"
                          PetscInt_FMT ", tol %.17g, kernel dimension %" PetscInt_FMT
                          ", parameters %" PetscInt_FMT ", kernel scale %.17g",
                          param ? "parameter" : "output", NtkSpectrumMethods[sp->method], sp->nev,
                          sp->ntail, (double)sp->tol, NC, P, (double)scale));
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

/*
  Before any collective read: the vector file holds exactly nl vectors of length ll, then nr of
  length lr, in PETSc's binary layout (class id and length as PetscInt, then the entries). A
  truncated file or one of another run is refused with its name, not by a read error deep inside
  VecLoad on some ranks.
*/
static PetscErrorCode CheckVecFile(NtkSpectrum sp, const char name[], PetscInt nl, PetscInt ll,
                                   PetscInt nr, PetscInt lr)
{
  char        msg[2 * PETSC_MAX_PATH_LEN + 200] = "";
  PetscMPIInt rank;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(sp->comm, &rank));
  if (!rank) {
    struct stat st;
    long long   need = 0;
    int         fd;
    PetscInt    head[2];
    off_t       off;

    for (PetscInt i = 0; i < nl + nr; i++)
      need += 2 * (long long)sizeof(PetscInt) + (long long)(i < nl ? ll : lr) * sizeof(PetscScalar);
    if (stat(name, &st))
      PetscCall(PetscSNPrintf(msg, sizeof(msg), "cannot read %s", name));
    else if ((long long)st.st_size != need)
      PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s holds %lld bytes where %lld are expected: it "
                              "is incomplete or belongs to another checkpoint", name,
                              (long long)st.st_size, need));
    else {
      PetscCall(PetscBinaryOpen(name, FILE_MODE_READ, &fd));
      for (PetscInt i = 0; i < nl + nr && !msg[0]; i++) {
        PetscCall(PetscBinaryRead(fd, head, 2, NULL, PETSC_INT));
        if (head[0] != VEC_FILE_CLASSID || head[1] != (i < nl ? ll : lr))
          PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s: vector %" PetscInt_FMT " is not a "
                                  "vector of length %" PetscInt_FMT, name, i + 1,
                                  i < nl ? ll : lr));
        PetscCall(PetscBinarySeek(fd, (i < nl ? ll : lr) * sizeof(PetscScalar),
                                  PETSC_BINARY_SEEK_CUR, &off));
      }
      PetscCall(PetscBinaryClose(fd));
    }
  }
  PetscCallMPI(MPI_Bcast(msg, (PetscMPIInt)sizeof(msg), MPI_CHAR, 0, sp->comm));
  PetscCheck(!msg[0], sp->comm, PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s: %s",
             sp->ckfile, msg);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Read the vectors back: leading kernel vectors (finished phase), then x = sum of Ritz vectors. */
static PetscErrorCode LoadVecs(NtkSpectrum sp, PetscBool param, PetscInt nritz)
{
  PetscViewer viewer;
  char        fin[PETSC_MAX_PATH_LEN + 16];
  Mat         A, K;
  Vec         y;
  PetscInt    ll, lr;

  PetscFunctionBegin;
  PetscCall(VecFileName(sp, sp->ckgen, fin, sizeof(fin)));
  PetscCall(NtkOpGetKernelMat(sp->op, &K));
  PetscCall(MatGetSize(K, &ll, NULL));
  PetscCall(NtkSpectrumOperator(sp, param, &A));
  PetscCall(MatGetSize(A, &lr, NULL));
  PetscCall(CheckVecFile(sp, fin, sp->lead_done ? sp->nlead : 0, ll, nritz, lr));
  PetscCall(PetscViewerCreate(sp->comm, &viewer));
  PetscCall(PetscViewerSetType(viewer, PETSCVIEWERBINARY));
  PetscCall(PetscViewerBinarySetSkipInfo(viewer, PETSC_TRUE));
  PetscCall(PetscViewerFileSetMode(viewer, FILE_MODE_READ));
  PetscCall(PetscViewerFileSetName(viewer, fin));
  for (PetscInt i = 0; sp->lead_done && i < sp->nlead; i++) { /* unit vectors when written */
    PetscReal nrm;

    PetscCall(NtkOpCreateKernelVec(sp->op, &sp->ulead[i]));
    PetscCall(VecLoad(sp->ulead[i], viewer));
    PetscCall(VecNorm(sp->ulead[i], NORM_2, &nrm));
    PetscCheck(PetscAbsReal(nrm - 1) <= 1e-8, sp->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the spectrum checkpoint %s: leading vector %" PetscInt_FMT " in %s has norm %g, "
               "not 1", sp->ckfile, i + 1, fin, (double)nrm);
  }
  if (nritz > 0) {
    PetscReal nrm;

    PetscCall(MatCreateVecs(A, &sp->ckstart, &y));
    PetscCall(VecSet(sp->ckstart, 0.0));
    for (PetscInt j = 0; j < nritz; j++) {
      PetscCall(VecLoad(y, viewer));
      PetscCall(VecAXPY(sp->ckstart, 1.0, y));
    }
    PetscCall(VecDestroy(&y));
    PetscCall(VecNorm(sp->ckstart, NORM_2, &nrm));
    PetscCheck(PetscIsNormalReal(nrm), sp->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the spectrum checkpoint %s: the Ritz vectors in %s sum to a vector of norm %g",
               sp->ckfile, fin, (double)nrm);
  }
  PetscCall(PetscViewerDestroy(&viewer));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  The phase, the finished leading pairs and the count of Ritz vectors, each checked: the leading
  values of a positive semidefinite kernel lie in [0, lambda_max] (up to rounding of the solve, far
  below the 1e-8 lambda_max allowed here), lambda_max is finite and positive, and no more Ritz
  vectors can have been kept than a phase asks for.
*/
static PetscErrorCode ReadState(NtkSpectrum sp, json_object *doc, PetscInt *nritz)
{
  const char  *what = "spectrum checkpoint", *file = sp->ckfile;
  json_object *phase, *lead, *done, *nr, *gen = NULL, *lmax;
  int64_t      g, n;
  PetscInt     kmax = PetscMax(PetscMax(sp->nev, 1), sp->ntail);

  PetscFunctionBegin;
  PetscCall(NtkJSONGetMember(sp->comm, what, file, doc, "", "phase", json_type_string,
                             PETSC_FALSE, &phase));
  PetscCall(NtkJSONGetMember(sp->comm, what, file, doc, "", "leading", json_type_array,
                             PETSC_FALSE, &lead));
  PetscCall(NtkJSONGetMember(sp->comm, what, file, doc, "", "leading_complete",
                             json_type_boolean, PETSC_FALSE, &done));
  PetscCall(NtkJSONGetMember(sp->comm, what, file, doc, "", "ritz_vectors", json_type_int,
                             PETSC_FALSE, &nr));
  if (json_object_object_get_ex(doc, "generation", &gen)) /* absent: written before generations */
    PetscCall(NtkJSONCheckType(sp->comm, what, file, "generation", gen, json_type_int,
                               PETSC_FALSE));
  g = gen ? json_object_get_int64(gen) : 0;
  n = json_object_get_int64(nr);
  PetscCheck(!strcmp(json_object_get_string(phase), "leading") ||
               !strcmp(json_object_get_string(phase), "tail"), sp->comm,
             PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s is malformed: phase '%s' is "
             "neither leading nor tail", sp->ckfile, json_object_get_string(phase));
  PetscCheck(g >= 0 && g < PETSC_MAX_INT && n >= 0 && n <= kmax, sp->comm,
             PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s is malformed: generation %lld "
             "and %lld Ritz vectors (0 to %" PetscInt_FMT " for these settings)", sp->ckfile,
             (long long)g, (long long)n, kmax);
  sp->ckphase   = strcmp(json_object_get_string(phase), "tail") ? 0 : 1;
  sp->lead_done = json_object_get_boolean(done) ? PETSC_TRUE : PETSC_FALSE;
  sp->ckgen     = (PetscInt)g;
  *nritz        = (PetscInt)n;
  if (!sp->lead_done) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkJSONGetMember(sp->comm, what, file, doc, "", "lambda_max", json_type_double,
                             PETSC_FALSE, &lmax));
  sp->nlead = (PetscInt)json_object_array_length(lead);
  sp->lmax  = (PetscReal)json_object_get_double(lmax);
  PetscCheck(sp->nlead >= 1 && sp->nlead <= PetscMax(sp->nev, 1) && PetscIsNormalReal(sp->lmax) &&
               sp->lmax > 0, sp->comm, PETSC_ERR_FILE_UNEXPECTED, "the spectrum checkpoint %s is "
             "malformed: a finished leading phase needs 1 to %" PetscInt_FMT " leading values and "
             "a finite lambda_max > 0", sp->ckfile, PetscMax(sp->nev, 1));
  PetscCall(PetscMalloc2(sp->nlead, &sp->lead, sp->nlead, &sp->ulead));
  PetscCall(PetscArrayzero(sp->lead, sp->nlead));
  for (PetscInt i = 0; i < sp->nlead; i++) {
    json_object *x = json_object_array_get_idx(lead, i);
    char         item[32];
    PetscReal    val;

    PetscCall(PetscSNPrintf(item, sizeof(item), "leading[%" PetscInt_FMT "]", i));
    PetscCall(NtkJSONCheckType(sp->comm, what, file, item, x, json_type_double, PETSC_FALSE));
    val = (PetscReal)json_object_get_double(x);
    PetscCheck(!PetscIsInfOrNanReal(val) && val >= -1e-8 * sp->lmax &&
                 val <= sp->lmax * (1 + 1e-8), sp->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the spectrum checkpoint %s is malformed: leading value %" PetscInt_FMT " (%g) is "
               "not in [0, lambda_max = %g]", sp->ckfile, i + 1, (double)val, (double)sp->lmax);
    sp->lead[i].value = val;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumCheckpointLoad(NtkSpectrum sp, PetscBool param, PetscInt NC, PetscInt P)
{
  PetscBool      found = PETSC_FALSE;
  PetscMPIInt    rank;
  unsigned char *text;
  size_t         size;
  json_object   *doc, *v;
  PetscInt       nritz = 0;

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
  PetscCall(ReadState(sp, doc, &nritz));
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
