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
  seed, budget, tolerance, Lanczos steps, deflation, kernel variant, scale s with 17 digits as
  every stored number is proportional to s, kernel dimension, parameter count) and two norms
  that identify model and data: |theta|_2 and |F|_2 of the network outputs. A checkpoint
  from other settings is refused with both descriptions; one from other data or another model
  is refused by its norms (relative 1e-10: the number of ranks may differ).
  Stopping: after each probe computed by this run, all ranks ask NtkSignalPending; on a signal
  (or the -ntk_estimate_stop_after test hook) the file is written atomically (NtkJSONWrite) and
  the estimator returns marked interrupted; `ntkspec estimate` then exits with status 3.
*/
#include "estimpl.h"
#include <inttypes.h>
#include <ntk/io.h>
#include <ntk/net.h>

#define CKPT_FORMAT "ntkspec-estimate-checkpoint-1"
#define NTK_CKPT_SETTINGS 768

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
  PetscInt         P;
  PetscReal        scale;
  NtkNet           net;
  NtkKernelVariant v;

  PetscFunctionBegin;
  PetscCall(NtkOpGetNet(e->op, &net));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkOpGetKernel(e->op, &v));
  PetscCall(NtkOpGetScale(e->op, &scale));
  PetscCall(PetscSNPrintf(buf, len,
                          "trace %s, probe %s, seed %" PetscInt64_FMT ", matvecs %" PetscInt_FMT
                          ", probes %" PetscInt_FMT ", rtol %.17g, lanczos_steps %" PetscInt_FMT
                          ", reorthogonalization %s, deflate %" PetscInt_FMT " (%" PetscInt_FMT
                          " steps), kernel %s, scale %.17g, kernel dimension %" PetscInt_FMT
                          ", parameters %" PetscInt_FMT,
                          NtkTraceMethods[e->trace_method], NtkProbeTypes[e->probe], e->seed,
                          e->matvecs, e->probes, (double)e->rtol, e->steps,
                          NtkReorthTypes[e->reorth], e->deflate, e->deflate_steps,
                          NtkKernelVariants[v], (double)scale, e->n, P));
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
  char         settings[NTK_CKPT_SETTINGS];
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

/*
  Reading a checkpoint back. Every field is checked before it is used, so a damaged or edited
  file is refused with the field's name instead of feeding wrong numbers to the estimates:
  - types: numbers where numbers belong (integers for counts), arrays, objects, a boolean;
  - values: finite. K is positive semidefinite, so |K z|^2, the Gauss weights, Tr(Q^T K Q) and
    the trace samples are >= 0, and the Ritz values too; a sample or node may fall below zero by
    rounding when what it measures is numerically zero (a Hutch++ residual kernel of rank 0, the
    null space of a rank-deficient K), so those two may reach -1e-8 of the largest magnitude
    beside them. The Lanczos weights of a probe are |Pz|^2 tau_k^2 with sum_k tau_k^2 = 1, so
    they sum to |Pz|^2 <= |z|^2 = n for Rademacher probes; the deflated atoms have weight 1;
  - counts: at most the trace samples the settings allow, `complete` only where the trace loop
    ends (every sample, or at least NTK_MIN_PROBES under -ntk_estimate_rtol), Hutch++ sketch
    products between k and 2k, SLQ probes only after a complete trace and no more than the
    settings allow, each with 1 to m Lanczos nodes besides the deflated atoms;
  - a complete Hutch++ trace skips the sketch, so its Tr(Q^T K Q) is compared with the exact
    Tr K, an upper bound for Q orthonormal and K positive semidefinite.
  Every rank reads the same text and so reaches the same verdict.
*/
#define CKPT_PATH 64
#define CKPT_TINY 1e-8

/* Refuse the file naming the field: fmt continues "<path>", e.g. " is ..." or "[3] is ...". */
#define Malformed(e, cond, path, fmt, ...) \
  PetscCheck(cond, (e)->comm, PETSC_ERR_FILE_UNEXPECTED, \
             "the estimate checkpoint %s is malformed: %s" fmt, (e)->ckfile, path, __VA_ARGS__)

static const char *NotFinite(PetscReal x)
{
  return PetscIsNanReal(x) ? "NaN" : x > 0 ? "infinite" : "-infinite";
}

/* *v = o[key] of type `type`; path receives "parent.key" for the messages. */
static PetscErrorCode Member(NtkEstimator e, json_object *o, const char parent[], const char key[],
                             json_type type, char path[], json_object **v)
{
  char prefix[CKPT_PATH];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(prefix, sizeof(prefix), "%s%s", parent, parent[0] ? "." : ""));
  PetscCall(PetscSNPrintf(path, CKPT_PATH, "%s%s", prefix, key));
  PetscCall(NtkJSONGetMember(e->comm, "estimate checkpoint", e->ckfile, o, prefix, key, type,
                             PETSC_FALSE, v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A finite number >= lo. */
static PetscErrorCode Number(NtkEstimator e, json_object *o, const char parent[], const char key[],
                             PetscReal lo, PetscReal *x)
{
  char         path[CKPT_PATH];
  json_object *v;

  PetscFunctionBegin;
  PetscCall(Member(e, o, parent, key, json_type_double, path, &v));
  *x = (PetscReal)json_object_get_double(v);
  Malformed(e, !PetscIsInfOrNanReal(*x), path, " is %s, not a finite number", NotFinite(*x));
  Malformed(e, *x >= lo, path, " is %.17g; it must be at least %g", (double)*x, (double)lo);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* An integer in [lo, hi]. */
static PetscErrorCode Integer(NtkEstimator e, json_object *o, const char parent[], const char key[],
                              PetscInt lo, PetscInt hi, PetscInt *n)
{
  char         path[CKPT_PATH];
  json_object *v;
  int64_t      i;

  PetscFunctionBegin;
  PetscCall(Member(e, o, parent, key, json_type_int, path, &v));
  i = json_object_get_int64(v);
  Malformed(e, i >= lo && i <= hi, path, " is %" PRId64 "; these settings allow %" PetscInt_FMT
            " to %" PetscInt_FMT, i, lo, hi);
  *n = (PetscInt)i;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The length of the array a, at most cap. */
static PetscErrorCode Length(NtkEstimator e, json_object *a, const char path[], PetscInt cap,
                             PetscInt *n)
{
  size_t len = json_object_array_length(a);

  PetscFunctionBegin;
  Malformed(e, len <= (size_t)cap, path, " holds %zu values; these settings allow at most %"
            PetscInt_FMT, len, cap);
  *n = (PetscInt)len;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* x[0..n) = the numbers of the array a (length n), each finite and >= lo. */
static PetscErrorCode Numbers(NtkEstimator e, json_object *a, const char path[], PetscInt n,
                              PetscReal lo, PetscReal *x)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(a, (size_t)i);
    char         item[CKPT_PATH + 24];

    PetscCall(PetscSNPrintf(item, sizeof(item), "%s[%" PetscInt_FMT "]", path, i));
    PetscCall(NtkJSONCheckType(e->comm, "estimate checkpoint", e->ckfile, item, v,
                               json_type_double, PETSC_FALSE));
    x[i] = (PetscReal)json_object_get_double(v);
    Malformed(e, !PetscIsInfOrNanReal(x[i]), path, "[%" PetscInt_FMT "] is %s, not a finite "
              "number", i, NotFinite(x[i]));
    Malformed(e, x[i] >= lo, path, "[%" PetscInt_FMT "] is %.17g; it must be at least %g", i,
              (double)x[i], (double)lo);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Each of x[0..n) >= -CKPT_TINY max(big, max_i |x_i|): nonnegative up to rounding. */
static PetscErrorCode NonNegative(NtkEstimator e, const char path[], PetscInt n,
                                  const PetscReal *x, PetscReal big)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) big = PetscMax(big, PetscAbsReal(x[i]));
  for (PetscInt i = 0; i < n; i++)
    Malformed(e, x[i] >= -CKPT_TINY * big, path, "[%" PetscInt_FMT "] is %.17g; the kernel is "
              "positive semidefinite and the largest magnitude here is %g", i, (double)x[i],
              (double)big);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Refuse a checkpoint of other settings, another model or other data. */
static PetscErrorCode CheckSame(NtkEstimator e, json_object *doc)
{
  char         settings[NTK_CKPT_SETTINGS], path[CKPT_PATH];
  const char  *theirs;
  json_object *v;
  PetscReal    pn, fn, cpn = 0, cfn = 0;

  PetscFunctionBegin;
  PetscCall(Settings(e, settings, sizeof(settings)));
  PetscCall(Member(e, doc, "", "settings", json_type_string, path, &v));
  theirs = json_object_get_string(v);
  PetscCheck(!strcmp(theirs, settings), e->comm, PETSC_ERR_ARG_INCOMP,
             "the estimate checkpoint %s was written with\n  %s\nbut this run has\n  %s\n"
             "run with the settings of the checkpoint, or remove it or name another file with "
             "-ntk_estimate_checkpoint", e->ckfile, theirs, settings);
  PetscCall(Norms(e, &pn, &fn));
  PetscCall(Number(e, doc, "", "parameter_norm", 0, &cpn));
  PetscCall(Number(e, doc, "", "output_norm", 0, &cfn));
  PetscCheck(PetscAbsReal(pn - cpn) <= 1e-10 * PetscAbsReal(cpn) &&
               PetscAbsReal(fn - cfn) <= 1e-10 * PetscAbsReal(cfn), e->comm, PETSC_ERR_ARG_INCOMP,
             "the estimate checkpoint %s belongs to another model or other data: |theta| %.17g "
             "and |F| %.17g there, %.17g and %.17g here; remove it or name another file with "
             "-ntk_estimate_checkpoint", e->ckfile, (double)cpn, (double)cfn, (double)pn,
             (double)fn);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The Hutch++ sketch part: k to 2k products, 0 <= Tr(Q^T K Q) <= Tr K; nothing for the others. */
static PetscErrorCode LoadSketch(NtkEstimator e, json_object *t, PetscInt k)
{
  PetscBool pp = e->trace_method == NTK_TRACE_HUTCHPP ? PETSC_TRUE : PETSC_FALSE;
  PetscReal tr;

  PetscFunctionBegin;
  PetscCall(Number(e, t, "trace", "sketch_trace", 0, &e->ck_tq));
  PetscCall(Integer(e, t, "trace", "sketch_matvecs", pp && e->ck_ntx > 0 ? k : 0,
                    pp ? 2 * k : 0, &e->ck_tq_matvecs));
  Malformed(e, pp || e->ck_tq == 0, "trace.sketch_trace", " is %g; the %s trace has no sketch",
            (double)e->ck_tq, NtkTraceMethods[e->trace_method]);
  if (!pp || !e->ck_trace_done) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkOpTrace(e->op, &tr));
  Malformed(e, e->ck_tq <= (1 + CKPT_TINY) * tr, "trace.sketch_trace", " is %.17g, above the "
            "exact trace %.17g of this kernel", (double)e->ck_tq, (double)tr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode LoadTrace(NtkEstimator e, json_object *doc)
{
  char         path[CKPT_PATH];
  json_object *t, *v;
  PetscInt     k, maxp, n;
  PetscBool    whole;

  PetscFunctionBegin;
  PetscCall(NtkEstimatorTraceLimits(e, &k, &maxp));
  PetscCall(Member(e, doc, "", "trace", json_type_object, path, &t));
  PetscCall(Member(e, t, "trace", "complete", json_type_boolean, path, &v));
  e->ck_trace_done = json_object_get_boolean(v) ? PETSC_TRUE : PETSC_FALSE;
  PetscCall(Member(e, t, "trace", "samples", json_type_array, path, &v));
  PetscCall(Length(e, v, path, maxp, &n));
  PetscCall(PetscMalloc1(PetscMax(n, 1), &e->ck_tx));
  PetscCall(Numbers(e, v, path, n, PETSC_NINFINITY, e->ck_tx));
  e->ck_ntx = n;
  /* the loop ends after maxp samples, or converged after at least NTK_MIN_PROBES */
  whole = n == maxp || (e->rtol > 0 && n >= NTK_MIN_PROBES) ? PETSC_TRUE : PETSC_FALSE;
  Malformed(e, !e->ck_trace_done || whole, "trace.complete", " is true with %" PetscInt_FMT
            " of the %" PetscInt_FMT " samples these settings take", n, maxp);
  PetscCall(LoadSketch(e, t, k));
  PetscCall(NonNegative(e, path, n, e->ck_tx, e->ck_tq));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* SLQ probe j: nq nodes and weights (Lanczos rule, then the ck_nd deflated atoms) and kz2. */
static PetscErrorCode LoadProbe(NtkEstimator e, json_object *a, PetscInt j)
{
  char         probe[CKPT_PATH], path[CKPT_PATH];
  json_object *p, *v;
  PetscInt     nq, nw, nd = e->ck_nd, off = j * e->ck_stride;
  PetscReal   *th = e->ck_nodes + off, *w = e->ck_weights + off, sum = 0;

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(probe, sizeof(probe), "slq.probes[%" PetscInt_FMT "]", j));
  p = json_object_array_get_idx(a, (size_t)j);
  PetscCall(NtkJSONCheckType(e->comm, "estimate checkpoint", e->ckfile, probe, p, json_type_object,
                             PETSC_FALSE));
  PetscCall(Member(e, p, probe, "nodes", json_type_array, path, &v));
  PetscCall(Length(e, v, path, e->ck_stride, &nq));
  Malformed(e, nq > nd, path, " holds %" PetscInt_FMT " nodes: at least one Lanczos node besides "
            "the %" PetscInt_FMT " deflated eigenvalues belongs there", nq, nd);
  PetscCall(Numbers(e, v, path, nq, PETSC_NINFINITY, th));
  PetscCall(NonNegative(e, path, nq, th, 0));
  PetscCall(Member(e, p, probe, "weights", json_type_array, path, &v));
  PetscCall(Length(e, v, path, e->ck_stride, &nw));
  Malformed(e, nw == nq, path, " holds %" PetscInt_FMT " weights for %" PetscInt_FMT " nodes", nw,
            nq);
  PetscCall(Numbers(e, v, path, nq, 0, w));
  for (PetscInt k = 0; k < nq - nd; k++) sum += w[k];
  Malformed(e, e->probe != NTK_PROBE_RADEMACHER || sum <= (1 + CKPT_TINY) * e->n, path,
            " sums to %g over the Lanczos nodes, above |z|^2 = %" PetscInt_FMT, (double)sum, e->n);
  for (PetscInt k = nq - nd; k < nq; k++)
    Malformed(e, w[k] == 1, path, "[%" PetscInt_FMT "] is %g: a deflated eigenvalue has weight 1",
              k, (double)w[k]);
  PetscCall(Number(e, p, probe, "kz2", 0, &e->ck_f2[j]));
  e->ck_nq[j] = nq;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode LoadSLQ(NtkEstimator e, json_object *doc)
{
  char         path[CKPT_PATH];
  json_object *s, *a;
  PetscInt     m;

  PetscFunctionBegin;
  Malformed(e, json_object_object_get_ex(doc, "slq", &s), "slq", " is missing%s", "");
  if (!s) PetscFunctionReturn(PETSC_SUCCESS); /* null: no SLQ probe yet */
  PetscCall(NtkJSONCheckType(e->comm, "estimate checkpoint", e->ckfile, "slq", s, json_type_object,
                             PETSC_FALSE));
  PetscCall(Integer(e, s, "slq", "deflated", 0, PetscMin(e->deflate, e->n), &e->ck_nd));
  PetscCall(Member(e, s, "slq", "probes", json_type_array, path, &a));
  PetscCall(Length(e, a, path, NtkEstimatorMaxProbes(e, e->steps, 0), &m));
  Malformed(e, m == 0 || e->ck_trace_done, path, " holds %" PetscInt_FMT " probes but the trace "
            "is not complete: SLQ starts after the trace", m);
  e->ck_stride = e->steps + e->ck_nd;
  PetscCall(PetscMalloc4(m, &e->ck_nq, m * e->ck_stride, &e->ck_nodes, m * e->ck_stride,
                         &e->ck_weights, m, &e->ck_f2));
  for (PetscInt j = 0; j < m; j++) PetscCall(LoadProbe(e, a, j));
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
               json_object_is_type(v, json_type_string) &&
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
