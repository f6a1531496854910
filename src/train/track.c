/*
  What the trainer records at a tracking step, and where it writes it.

  At theta_s, with g = dL/dF on the training set and K = scale J J^T (J restricted to the trained
  parameters when features are frozen):
      residual_norm_sq = |g|^2,   grad_norm_sq = |J^T g|^2 = |grad_theta L|^2,
      rho = scale |J^T g|^2 / (|g|^2 Tr K),   mu = scale |J^T g|^2 / |g|^2,
  one VJP and the exact trace, no eigensolve. Frozen features: only the last layer L is trained,
  and its Jacobian rows are (s_L e_c a_{L-1}(x_i)^T, e_c), so
      Tr K_last = scale C sum_i (s_L^2 |a_{L-1}(x_i)|^2 + 1),
  which depends on the fixed features only and so stays constant through training.
  Optional companions: the leading eigenvalues of K (SLEPc Krylov-Schur, largest magnitude), and
  by stochastic Lanczos quadrature the von Neumann entropy and the rank position #{lambda >= mu}/n.

  The CSV file gets one row per tracked step, appended and flushed by rank 0 as training runs;
  a resumed run first rewrites it (atomically) from the history stored in the checkpoint, so it
  never holds a row twice.
*/
#include "trainimpl.h"
#include <ntk/estimate.h>
#include <slepceps.h>
#include <stdio.h>

json_object *NtkJSONRealOrNull(PetscReal v)
{
  return PetscIsInfOrNanReal(v) ? NULL : json_object_new_double((double)v);
}

/* Tr K_last from the penultimate activations a_{L-1}, which the Jacobian factors expose. */
PetscErrorCode NtkTrainerLastLayerTrace(NtkTrainer tr, PetscReal *trace)
{
  NtkData              data;
  const NtkDataShard  *sh;
  const NtkLayer      *last;
  NtkNetFactors        fac;
  const PetscScalar  **A, **DZ;
  PetscInt             L, mb, n;
  PetscReal            sum = 0, scale;

  PetscFunctionBegin;
  PetscCall(NtkOpGetData(tr->op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkOpGetMicroBatch(tr->op, &mb));
  PetscCall(NtkOpGetScale(tr->op, &scale));
  PetscCall(NtkNetGetNumLayers(tr->net, &L));
  PetscCall(NtkNetGetLayer(tr->net, L, &last));
  n = sh->rend - sh->rstart;
  PetscCall(NtkNetFactorsCreate(tr->net, mb, &fac));
  for (PetscInt i0 = 0; i0 < n; i0 += mb) {
    PetscInt B = PetscMin(mb, n - i0);
    PetscCall(NtkNetFactorsCompute(tr->net, fac, B, sh->X + i0 * sh->d, &A, &DZ));
    for (PetscInt i = 0; i < B; i++) {
      PetscReal aa = 0;
      for (PetscInt q = 0; q < last->in; q++) aa += A[L][i * last->in + q] * A[L][i * last->in + q];
      sum += last->scale * last->scale * aa + 1.0;
    }
  }
  PetscCall(NtkNetFactorsDestroy(&fac));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPIU_REAL, MPIU_SUM, tr->comm));
  *trace = scale * tr->C * sum;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The nev largest eigenvalues of K (NaN where SLEPc did not converge). */
static PetscErrorCode TopEigenvalues(NtkTrainer tr, PetscInt nev, PetscReal *eigs)
{
  EPS      eps;
  Mat      K;
  PetscInt nconv;

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernelMat(tr->op, &K));
  PetscCall(EPSCreate(tr->comm, &eps));
  PetscCall(EPSSetOperators(eps, K, NULL));
  PetscCall(EPSSetProblemType(eps, EPS_HEP));
  PetscCall(EPSSetWhichEigenpairs(eps, EPS_LARGEST_REAL));
  PetscCall(EPSSetDimensions(eps, nev, PETSC_DEFAULT, PETSC_DEFAULT));
  PetscCall(EPSSetTolerances(eps, 1e-8, 500));
  PetscCall(EPSSolve(eps));
  PetscCall(EPSGetConverged(eps, &nconv));
  for (PetscInt k = 0; k < nev; k++) {
    PetscScalar kr = NAN, ki;
    if (k < nconv) PetscCall(EPSGetEigenvalue(eps, k, &kr, &ki));
    eigs[k] = PetscRealPart(kr);
  }
  PetscCall(EPSDestroy(&eps));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Entropy S of K / Tr K and the rank position #{lambda >= mu} / n, by SLQ with the options. */
static PetscErrorCode SLQCompanions(NtkTrainer tr, NtkTrackPoint *pt)
{
  NtkEstimator est;
  NtkEstimate  T = {0}, frob, reff, S;
  PetscReal    err;

  PetscFunctionBegin;
  T.value  = pt->trace;
  T.method = "exact";
  PetscCall(NtkEstimatorCreate(tr->op, &est));
  PetscCall(NtkEstimatorSetFromOptions(est));
  PetscCall(NtkEstimatorSetUp(est));
  PetscCall(NtkEstimatorSLQ(est, &T, &frob, &reff, &S));
  PetscCall(NtkEstimatorCountAbove(est, pt->mu, &pt->rank_position, &err));
  pt->entropy = S.value;
  PetscCall(NtkEstimatorDestroy(&est));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerTrack(NtkTrainer tr, NtkTrackPoint *pt)
{
  PetscReal res, gn = 0, scale;

  PetscFunctionBegin;
  PetscCall(NtkTrainerSetUp(tr));
  PetscCall(PetscLogEventBegin(NTK_TrainTrack, 0, 0, 0, 0));
  pt->step = tr->step;
  pt->train_acc = pt->test_loss = pt->test_acc = pt->rank_position = pt->entropy = NAN;
  for (PetscInt k = 0; k < 3; k++) pt->eigs[k] = NAN;

  PetscCall(NtkLossEvaluate(tr->op, tr->loss, &pt->train_loss, tr->g));
  if (tr->labels) PetscCall(NtkLossAccuracy(tr->op, &pt->train_acc));
  PetscCall(VecNorm(tr->g, NORM_2, &res));
  PetscCall(NtkOpVJPAll(tr->op, tr->g, tr->grad));
  for (PetscInt k = tr->first_trained; k < tr->P; k++) gn += tr->grad[k] * tr->grad[k];
  if (tr->frozen) PetscCall(NtkTrainerLastLayerTrace(tr, &pt->trace));
  else PetscCall(NtkOpTrace(tr->op, &pt->trace));
  PetscCall(NtkOpGetScale(tr->op, &scale));
  pt->residual_norm_sq = res * res;
  pt->grad_norm_sq     = gn;
  pt->mu               = scale * gn / pt->residual_norm_sq;
  pt->rho              = pt->mu / pt->trace;

  if (tr->test) {
    if (!tr->linearized) PetscCall(NtkOpUpdate(tr->test));
    PetscCall(NtkLossEvaluate(tr->test, tr->loss, &pt->test_loss, tr->gtest));
    if (tr->test_labels) PetscCall(NtkLossAccuracy(tr->test, &pt->test_acc));
  }
  if (tr->neigs > 0) PetscCall(TopEigenvalues(tr, tr->neigs, pt->eigs));
  if (tr->slq) PetscCall(SLQCompanions(tr, pt));
  pt->seconds = MPI_Wtime() - tr->t0;
  PetscCall(PetscLogEventEnd(NTK_TrainTrack, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static const char *const csv_columns =
  "step,train_loss,test_loss,train_acc,test_acc,trace,residual_norm_sq,grad_norm_sq,rho,mu,"
  "rank_position,entropy,lambda_1,lambda_2,lambda_3,seconds\n";

/* One CSV row; empty fields for values not computed. */
static void CSVRow(const NtkTrackPoint *p, char *buf, size_t len)
{
  const PetscReal v[] = {p->train_loss, p->test_loss, p->train_acc, p->test_acc, p->trace,
                         p->residual_norm_sq, p->grad_norm_sq, p->rho, p->mu, p->rank_position,
                         p->entropy, p->eigs[0], p->eigs[1], p->eigs[2], p->seconds};
  size_t          n = (size_t)snprintf(buf, len, "%" PetscInt_FMT, p->step);

  for (size_t k = 0; k < sizeof(v) / sizeof(v[0]) && n < len; k++) {
    if (PetscIsInfOrNanReal(v[k])) n += (size_t)snprintf(buf + n, len - n, ",");
    else n += (size_t)snprintf(buf + n, len - n, ",%.17g", (double)v[k]);
  }
  if (n < len) (void)snprintf(buf + n, len - n, "\n");
}

/* Header plus the rows restored from a checkpoint, written atomically. */
PetscErrorCode NtkTrainerCSVStart(NtkTrainer tr)
{
  PetscMPIInt rank;
  char       *text, row[1024];
  size_t      len, cap;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(tr->comm, &rank));
  if (!tr->csv[0] || rank) PetscFunctionReturn(PETSC_SUCCESS);
  cap = strlen(csv_columns) + (size_t)(tr->nhist + 1) * sizeof(row);
  PetscCall(PetscMalloc1(cap, &text));
  PetscCall(PetscStrcpy(text, csv_columns));
  len = strlen(text);
  for (PetscInt k = 0; k < tr->nhist; k++) {
    CSVRow(&tr->hist[k], row, sizeof(row));
    PetscCall(PetscStrcpy(text + len, row));
    len += strlen(row);
  }
  PetscCall(NtkWriteFileAtomic(tr->csv, text, len));
  PetscCall(PetscFree(text));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CSVAppend(NtkTrainer tr, const NtkTrackPoint *pt)
{
  PetscMPIInt rank;
  char        row[1024];
  FILE       *f;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(tr->comm, &rank));
  if (!tr->csv[0] || rank) PetscFunctionReturn(PETSC_SUCCESS);
  CSVRow(pt, row, sizeof(row));
  f = fopen(tr->csv, "a");
  PetscCheck(f, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot append to %s", tr->csv);
  (void)fputs(row, f);
  PetscCheck(!fflush(f) && !fclose(f), PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE,
             "cannot write to %s", tr->csv);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerTrackAppend(NtkTrainer tr, const NtkTrackPoint *pt, PetscBool csv)
{
  PetscFunctionBegin;
  if (tr->nhist == tr->maxhist) {
    NtkTrackPoint *h;
    tr->maxhist = PetscMax(64, 2 * tr->maxhist);
    PetscCall(PetscMalloc1(tr->maxhist, &h));
    if (tr->nhist) PetscCall(PetscArraycpy(h, tr->hist, tr->nhist));
    PetscCall(PetscFree(tr->hist));
    tr->hist = h;
  }
  tr->hist[tr->nhist++] = *pt;
  if (csv) PetscCall(CSVAppend(tr, pt));
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define TRACK_FIELDS(X) \
  X(train_loss) X(test_loss) X(train_acc) X(test_acc) X(trace) X(residual_norm_sq) \
  X(grad_norm_sq) X(rho) X(mu) X(rank_position) X(entropy) X(seconds)

/* One tracked point as a JSON object (null for values not computed). */
json_object *NtkTrackPointJSON(const NtkTrackPoint *p, PetscInt neigs)
{
  json_object *o = json_object_new_object(), *e = json_object_new_array();

  json_object_object_add(o, "step", json_object_new_int64(p->step));
#define TRACK_PUT(f) json_object_object_add(o, #f, NtkJSONRealOrNull(p->f));
  TRACK_FIELDS(TRACK_PUT)
#undef TRACK_PUT
  for (PetscInt k = 0; k < neigs; k++) json_object_array_add(e, NtkJSONRealOrNull(p->eigs[k]));
  json_object_object_add(o, "eigenvalues", e);
  return o;
}

/* Tracked point k of the history of the manifest man; every value is type-checked. */
PetscErrorCode NtkTrackPointFromJSON(MPI_Comm comm, const char man[], size_t k, json_object *o,
                                     NtkTrackPoint *p)
{
  json_object *v, *e;
  char         where[64];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(where, sizeof(where), "history[%zu]", k));
  PetscCall(
      NtkJSONCheckType(comm, "train checkpoint", man, where, o, json_type_object, PETSC_FALSE));
  PetscCall(PetscSNPrintf(where, sizeof(where), "history[%zu].", k));
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, o, where, "step", json_type_int,
                             PETSC_FALSE, &v));
  p->step = (PetscInt)json_object_get_int64(v);
#define TRACK_GET(f)                                                                               \
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, o, where, #f, json_type_double,        \
                             PETSC_TRUE, &v));                                                     \
  p->f = v ? json_object_get_double(v) : NAN;
  TRACK_FIELDS(TRACK_GET)
#undef TRACK_GET
  for (PetscInt j = 0; j < 3; j++) p->eigs[j] = NAN;
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, o, where, "eigenvalues",
                             json_type_array, PETSC_FALSE, &e));
  for (size_t j = 0; j < json_object_array_length(e) && j < 3; j++) {
    v = json_object_array_get_idx(e, j);
    PetscCall(PetscSNPrintf(where, sizeof(where), "history[%zu].eigenvalues[%zu]", k, j));
    PetscCall(
        NtkJSONCheckType(comm, "train checkpoint", man, where, v, json_type_double, PETSC_TRUE));
    p->eigs[j] = v ? json_object_get_double(v) : NAN;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The series as an object of columns, one array per tracked quantity. */
static json_object *SeriesJSON(NtkTrainer tr)
{
  json_object *s = json_object_new_object(), *a = json_object_new_array();

  for (PetscInt k = 0; k < tr->nhist; k++)
    json_object_array_add(a, json_object_new_int64(tr->hist[k].step));
  json_object_object_add(s, "step", a);
#define TRACK_COL(f)                                                     \
  a = json_object_new_array();                                           \
  for (PetscInt k = 0; k < tr->nhist; k++)                               \
    json_object_array_add(a, NtkJSONRealOrNull(tr->hist[k].f));          \
  json_object_object_add(s, #f, a);
  TRACK_FIELDS(TRACK_COL)
#undef TRACK_COL
  for (PetscInt j = 0; j < tr->neigs; j++) {
    char name[32];
    a = json_object_new_array();
    for (PetscInt k = 0; k < tr->nhist; k++)
      json_object_array_add(a, NtkJSONRealOrNull(tr->hist[k].eigs[j]));
    (void)snprintf(name, sizeof(name), "lambda_%d", (int)j + 1);
    json_object_object_add(s, name, a);
  }
  return s;
}

PetscErrorCode NtkTrainerDescribe(NtkTrainer tr, json_object **doc)
{
  json_object *o = json_object_new_object(), *opt = json_object_new_object();
  json_object *tim = json_object_new_object();
  PetscReal    rho_min = PETSC_MAX_REAL;

  PetscFunctionBegin;
  json_object_object_add(opt, "optimizer", json_object_new_string(NtkOptimizerTypes[tr->otype]));
  json_object_object_add(opt, "loss", json_object_new_string(NtkLossTypes[tr->loss]));
  json_object_object_add(opt, "lr", json_object_new_double(tr->lr));
  json_object_object_add(opt, "momentum", json_object_new_double(tr->momentum));
  json_object_object_add(opt, "beta1", json_object_new_double(tr->beta1));
  json_object_object_add(opt, "beta2", json_object_new_double(tr->beta2));
  json_object_object_add(opt, "eps", json_object_new_double(tr->eps));
  json_object_object_add(opt, "steps", json_object_new_int64(tr->steps));
  json_object_object_add(opt, "batch", json_object_new_int64(tr->batch));
  json_object_object_add(opt, "seed", json_object_new_int64(tr->seed));
  json_object_object_add(opt, "frozen", json_object_new_boolean(tr->frozen));
  json_object_object_add(opt, "linearized", json_object_new_boolean(tr->linearized));
  json_object_object_add(opt, "track_every", json_object_new_int64(tr->track_every));
  json_object_object_add(opt, "track_log", json_object_new_int64(tr->track_log));
  json_object_object_add(opt, "checkpoint", json_object_new_string(tr->ckdir));
  json_object_object_add(o, "options", opt);
  json_object_object_add(o, "steps_done", json_object_new_int64(tr->step));
  json_object_object_add(o, "interrupted", json_object_new_boolean(tr->interrupted));
  json_object_object_add(o, "stopped_by", tr->interrupted && tr->stopped_by ?
                         json_object_new_string(tr->stopped_by) : NULL);
  json_object_object_add(o, "resumed_from", tr->resumed_from >= 0 ?
                         json_object_new_int64(tr->resumed_from) : NULL);
  json_object_object_add(o, "trace_kernel", json_object_new_string(tr->frozen ?
                         "last layer (trained parameters)" : "all parameters"));
  if (tr->nhist) json_object_object_add(o, "final", NtkTrackPointJSON(&tr->hist[tr->nhist - 1],
                                                                      tr->neigs));
  for (PetscInt k = 0; k < tr->nhist; k++) rho_min = PetscMin(rho_min, tr->hist[k].rho);
  if (tr->nhist) json_object_object_add(o, "rho_min", NtkJSONRealOrNull(rho_min));
  json_object_object_add(o, "series", SeriesJSON(tr));
  json_object_object_add(tim, "steps_this_run", json_object_new_int64(tr->nsteps_run));
  json_object_object_add(tim, "seconds_in_steps", json_object_new_double(tr->tsteps));
  json_object_object_add(tim, "seconds_per_step", NtkJSONRealOrNull(tr->tsteps / tr->nsteps_run));
  json_object_object_add(o, "timing", tim);
  *doc = o;
  PetscFunctionReturn(PETSC_SUCCESS);
}
