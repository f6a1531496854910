/*
  Checkpoints of the stochastic estimators: surviving a batch system's time limit.

  Probe j of every estimator is a pure function of (seed, stream offset + j), so a run stopped
  after m probes and restarted needs only the per-probe results of those m probes to continue
  with probe m: the trace samples x_j (Hutchinson and one-sided: z_j^T K z_j or s |J^T z_j|^2;
  Hutch++: the residual terms, with Tr(Q^T K Q) of the sketch) and, per SLQ probe, its Gauss rule
  (nodes, weights) and |K z_j|^2. The estimates are functions of these numbers only, which JSON
  stores with 17 digits (exact for doubles), so a resumed run ends with the estimate of an
  uninterrupted one, bit for bit on the same ranks.
  Redone on resume, being cheap and deterministic: the Hutch++ sketch Q (2k products, only while
  the trace is unfinished; its Tr(Q^T K Q) must match the stored one) and the deflation pairs.

  The file records the settings that decide the probes and their results (method, distribution,
  seed, budget, tolerance, Lanczos steps, deflation, kernel dimension, parameter count) and two
  norms that identify model and data: |theta|_2 and |F|_2 of the network outputs. A checkpoint
  from other settings is refused with both descriptions; one from other data or another model
  is refused by its norms (relative 1e-10: the number of ranks may differ).
  Stopping: after each probe computed by this run, all ranks ask NtkSignalPending; on a signal
  (or the -ntk_estimate_stop_after test hook) the file is written atomically (NtkJSONWrite) and
  the estimator returns marked interrupted; `ntkspec estimate` then exits with status 3.
*/
#include "estimpl.h"
#include <ntk/io.h>
#include <ntk/net.h>

#define CKPT_FORMAT "ntkspec-estimate-checkpoint-1"

PetscErrorCode NtkEstimatorSetCheckpoint(NtkEstimator e, const char file[], PetscInt every)
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(e->ckfile, file ? file : "", sizeof(e->ckfile)));
  e->ckevery = every;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetCheckpoint(NtkEstimator e, const char *file[], PetscInt *every)
{
  PetscFunctionBegin;
  if (file) *file = e->ckfile;
  if (every) *every = e->ckevery;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorSetStopAfter(NtkEstimator e, PetscInt probes)
{
  PetscFunctionBegin;
  e->stop_after = probes;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetStopAfter(NtkEstimator e, PetscInt *probes)
{
  PetscFunctionBegin;
  *probes = e->stop_after;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetInterrupted(NtkEstimator e, PetscBool *interrupted)
{
  PetscFunctionBegin;
  *interrupted = e->interrupted;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorGetResumeInfo(NtkEstimator e, PetscInt *trace_probes,
                                         PetscInt *slq_probes, PetscInt *matvecs)
{
  PetscFunctionBegin;
  if (trace_probes) *trace_probes = e->ck_ntx;
  if (slq_probes) *slq_probes = e->ck_nslq;
  if (matvecs) *matvecs = e->fresh_matvecs;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The settings that decide which probes are drawn and what each one yields. */
static PetscErrorCode Settings(NtkEstimator e, char *buf, size_t len)
{
  PetscInt P;
  NtkNet   net;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(e->op, &net));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(PetscSNPrintf(buf, len,
                          "trace %s, probe %s, seed %" PetscInt64_FMT ", matvecs %" PetscInt_FMT
                          ", probes %" PetscInt_FMT ", rtol %.17g, lanczos_steps %" PetscInt_FMT
                          ", reorthogonalization %s, deflate %" PetscInt_FMT " (%" PetscInt_FMT
                          " steps), kernel dimension %" PetscInt_FMT ", parameters %" PetscInt_FMT,
                          NtkTraceMethods[e->trace_method], NtkProbeTypes[e->probe], e->seed,
                          e->matvecs, e->probes, (double)e->rtol, e->steps,
                          NtkReorthTypes[e->reorth], e->deflate, e->deflate_steps, e->n, P));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* |theta|_2 and |F|_2: two numbers that change with the model or the data. */
static PetscErrorCode Norms(NtkEstimator e, PetscReal *pnorm, PetscReal *fnorm)
{
  NtkNet net;
  Vec    theta, F;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(e->op, &net));
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(VecNorm(theta, NORM_2, pnorm));
  PetscCall(NtkOpCreateKernelVec(e->op, &F));
  PetscCall(NtkOpGetOutputs(e->op, F));
  PetscCall(VecNorm(F, NORM_2, fnorm));
  PetscCall(VecDestroy(&F));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static json_object *RealArray(PetscInt n, const PetscReal *x)
{
  json_object *a = json_object_new_array();

  for (PetscInt i = 0; i < n; i++) json_object_array_add(a, json_object_new_double((double)x[i]));
  return a;
}

static json_object *SLQProbes(NtkEstimator e)
{
  json_object *a = json_object_new_array();

  for (PetscInt j = 0; j < e->nslq; j++) {
    json_object *p = json_object_new_object();
    json_object_object_add(p, "nodes", RealArray(e->nq[j], e->nodes + j * e->stride));
    json_object_object_add(p, "weights", RealArray(e->nq[j], e->weights + j * e->stride));
    json_object_object_add(p, "kz2", json_object_new_double((double)e->f2[j]));
    json_object_array_add(a, p);
  }
  return a;
}

PetscErrorCode NtkEstimatorCheckpointWrite(NtkEstimator e)
{
  char         settings[512];
  PetscReal    pn, fn;
  PetscMPIInt  size;
  json_object *doc = json_object_new_object(), *t = json_object_new_object(), *s;

  PetscFunctionBegin;
  PetscCall(Settings(e, settings, sizeof(settings)));
  PetscCall(Norms(e, &pn, &fn));
  PetscCallMPI(MPI_Comm_size(e->comm, &size));
  json_object_object_add(doc, "format", json_object_new_string(CKPT_FORMAT));
  json_object_object_add(doc, "settings", json_object_new_string(settings));
  json_object_object_add(doc, "parameter_norm", json_object_new_double((double)pn));
  json_object_object_add(doc, "output_norm", json_object_new_double((double)fn));
  json_object_object_add(doc, "ranks", json_object_new_int64(size));
  json_object_object_add(t, "complete", json_object_new_boolean(e->trace_done));
  json_object_object_add(t, "sketch_trace", json_object_new_double((double)e->tq));
  json_object_object_add(t, "sketch_matvecs", json_object_new_int64(e->tq_matvecs));
  json_object_object_add(t, "samples", RealArray(e->ntx, e->tx));
  json_object_object_add(doc, "trace", t);
  s = json_object_new_object();
  json_object_object_add(s, "deflated", json_object_new_int64(e->nd));
  json_object_object_add(s, "probes", SLQProbes(e));
  json_object_object_add(doc, "slq", e->nslq > 0 ? s : NULL);
  if (e->nslq == 0) json_object_put(s);
  PetscCall(NtkJSONWrite(e->comm, doc, e->ckfile));
  json_object_put(doc);
  PetscCall(PetscInfo(NULL, "estimate checkpoint %s: %" PetscInt_FMT " trace and %" PetscInt_FMT
                      " SLQ probes\n", e->ckfile, e->ntx, e->nslq));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode GetReal(NtkEstimator e, json_object *o, const char key[], PetscReal *v)
{
  json_object *x;

  PetscFunctionBegin;
  PetscCheck(json_object_object_get_ex(o, key, &x), e->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the estimate checkpoint %s has no '%s'", e->ckfile, key);
  *v = (PetscReal)json_object_get_double(x);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Copy a JSON array of numbers into x (length n, at most cap). */
static PetscErrorCode GetArray(NtkEstimator e, json_object *a, PetscInt cap, PetscReal *x,
                               PetscInt *n)
{
  PetscFunctionBegin;
  PetscCheck(a && json_object_is_type(a, json_type_array), e->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the estimate checkpoint %s is malformed (an array is missing)", e->ckfile);
  *n = (PetscInt)json_object_array_length(a);
  PetscCheck(*n <= cap, e->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the estimate checkpoint %s holds %" PetscInt_FMT " values where at most %"
             PetscInt_FMT " fit", e->ckfile, *n, cap);
  for (PetscInt i = 0; i < *n; i++)
    x[i] = (PetscReal)json_object_get_double(json_object_array_get_idx(a, (size_t)i));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Refuse a checkpoint of other settings, another model or other data. */
static PetscErrorCode CheckSame(NtkEstimator e, json_object *doc)
{
  char         settings[512];
  json_object *v;
  PetscReal    pn, fn, cpn = 0, cfn = 0;

  PetscFunctionBegin;
  PetscCall(Settings(e, settings, sizeof(settings)));
  PetscCheck(json_object_object_get_ex(doc, "settings", &v), e->comm, PETSC_ERR_FILE_UNEXPECTED,
             "the estimate checkpoint %s has no settings", e->ckfile);
  PetscCheck(!strcmp(json_object_get_string(v), settings), e->comm, PETSC_ERR_ARG_INCOMP,
             "the estimate checkpoint %s was written with\n  %s\nbut this run has\n  %s\n"
             "run with the settings of the checkpoint, or remove it or name another file with "
             "-ntk_estimate_checkpoint", e->ckfile, json_object_get_string(v), settings);
  PetscCall(Norms(e, &pn, &fn));
  PetscCall(GetReal(e, doc, "parameter_norm", &cpn));
  PetscCall(GetReal(e, doc, "output_norm", &cfn));
  PetscCheck(PetscAbsReal(pn - cpn) <= 1e-10 * PetscAbsReal(cpn) &&
               PetscAbsReal(fn - cfn) <= 1e-10 * PetscAbsReal(cfn), e->comm, PETSC_ERR_ARG_INCOMP,
             "the estimate checkpoint %s belongs to another model or other data: |theta| %.17g "
             "and |F| %.17g there, %.17g and %.17g here; remove it or name another file with "
             "-ntk_estimate_checkpoint", e->ckfile, (double)cpn, (double)cfn, (double)pn,
             (double)fn);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode LoadTrace(NtkEstimator e, json_object *doc)
{
  json_object *t, *v;
  PetscInt     n;

  PetscFunctionBegin;
  PetscCheck(json_object_object_get_ex(doc, "trace", &t) && json_object_object_get_ex(t, "samples",
             &v), e->comm, PETSC_ERR_FILE_UNEXPECTED, "the estimate checkpoint %s has no trace "
             "samples", e->ckfile);
  n = (PetscInt)json_object_array_length(v);
  PetscCall(PetscMalloc1(PetscMax(n, 1), &e->ck_tx));
  PetscCall(GetArray(e, v, n, e->ck_tx, &e->ck_ntx));
  PetscCall(GetReal(e, t, "sketch_trace", &e->ck_tq));
  e->ck_trace_done = json_object_object_get_ex(t, "complete", &v) && json_object_get_boolean(v)
                       ? PETSC_TRUE : PETSC_FALSE;
  e->ck_tq_matvecs = json_object_object_get_ex(t, "sketch_matvecs", &v)
                       ? (PetscInt)json_object_get_int64(v) : 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode LoadSLQ(NtkEstimator e, json_object *doc)
{
  json_object *s, *a, *p, *v;
  PetscInt     m, nw;

  PetscFunctionBegin;
  if (!json_object_object_get_ex(doc, "slq", &s) || !s) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCheck(json_object_object_get_ex(s, "probes", &a) && json_object_object_get_ex(s,
             "deflated", &v), e->comm, PETSC_ERR_FILE_UNEXPECTED, "the estimate checkpoint %s "
             "has a malformed slq section", e->ckfile);
  e->ck_nd     = (PetscInt)json_object_get_int64(v);
  m            = (PetscInt)json_object_array_length(a);
  e->ck_stride = e->steps + e->ck_nd;
  PetscCall(PetscMalloc4(m, &e->ck_nq, m * e->ck_stride, &e->ck_nodes, m * e->ck_stride,
                         &e->ck_weights, m, &e->ck_f2));
  for (PetscInt j = 0; j < m; j++) {
    p = json_object_array_get_idx(a, (size_t)j);
    PetscCheck(json_object_object_get_ex(p, "nodes", &v), e->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the estimate checkpoint %s: SLQ probe %" PetscInt_FMT " has no nodes", e->ckfile,
               j);
    PetscCall(GetArray(e, v, e->ck_stride, e->ck_nodes + j * e->ck_stride, &e->ck_nq[j]));
    PetscCheck(json_object_object_get_ex(p, "weights", &v), e->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the estimate checkpoint %s: SLQ probe %" PetscInt_FMT " has no weights",
               e->ckfile, j);
    PetscCall(GetArray(e, v, e->ck_stride, e->ck_weights + j * e->ck_stride, &nw));
    PetscCheck(nw == e->ck_nq[j], e->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the estimate checkpoint %s: SLQ probe %" PetscInt_FMT " has %" PetscInt_FMT
               " nodes and %" PetscInt_FMT " weights", e->ckfile, j, e->ck_nq[j], nw);
    PetscCall(GetReal(e, p, "kz2", &e->ck_f2[j]));
  }
  e->ck_nslq = m;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorCheckpointLoad(NtkEstimator e)
{
  PetscBool      found = PETSC_FALSE;
  PetscMPIInt    rank;
  unsigned char *text;
  size_t         size;
  json_object   *doc, *v;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorCheckpointReset(e));
  PetscCallMPI(MPI_Comm_rank(e->comm, &rank));
  if (rank == 0) PetscCall(PetscTestFile(e->ckfile, 'r', &found));
  PetscCallMPI(MPI_Bcast(&found, 1, MPIU_BOOL, 0, e->comm));
  if (!found) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkReadFileShared(e->comm, e->ckfile, &text, &size));
  doc = json_tokener_parse((const char *)text);
  PetscCall(PetscFree(text));
  PetscCheck(doc && json_object_object_get_ex(doc, "format", &v) &&
               !strcmp(json_object_get_string(v), CKPT_FORMAT), e->comm,
             PETSC_ERR_FILE_UNEXPECTED, "%s is not an ntkspec estimate checkpoint", e->ckfile);
  PetscCall(CheckSame(e, doc));
  PetscCall(LoadTrace(e, doc));
  PetscCall(LoadSLQ(e, doc));
  json_object_put(doc);
  PetscCall(PetscInfo(NULL, "resuming from %s: %" PetscInt_FMT " trace and %" PetscInt_FMT
                      " SLQ probes\n", e->ckfile, e->ck_ntx, e->ck_nslq));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkEstimatorCheckpointReset(NtkEstimator e)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(e->ck_tx));
  PetscCall(PetscFree4(e->ck_nq, e->ck_nodes, e->ck_weights, e->ck_f2));
  e->ck_ntx = e->ck_nslq = e->ck_nd = e->ck_tq_matvecs = 0;
  e->ck_trace_done                                    = PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  After probe results are in: `fresh` when this run computed the probe (not read it back), `more`
  when the phase has probes left. Counts fresh probes for the test hook, stops on a signal when
  there is work left (writing the checkpoint), and writes every ckevery fresh probes.
*/
PetscErrorCode NtkEstimatorProbeDone(NtkEstimator e, PetscBool fresh, PetscBool more,
                                     PetscBool *stop)
{
  PetscBool pending = PETSC_FALSE;

  PetscFunctionBegin;
  *stop = PETSC_FALSE;
  if (!fresh || !e->ckfile[0]) PetscFunctionReturn(PETSC_SUCCESS);
  e->fresh++;
  if (e->stop_after > 0 && e->fresh == e->stop_after) PetscCall(NtkSignalRaise());
  if (more) PetscCall(NtkSignalPending(e->comm, &pending));
  if (pending) {
    e->interrupted = *stop = PETSC_TRUE;
    PetscCall(NtkEstimatorCheckpointWrite(e));
  } else if (e->ckevery > 0 && e->fresh % e->ckevery == 0)
    PetscCall(NtkEstimatorCheckpointWrite(e));
  PetscFunctionReturn(PETSC_SUCCESS);
}
