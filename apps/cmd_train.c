/*
  ntkspec train: train the model on the data over all ranks (data parallel) and track the loss,
  accuracy, Tr K and the spectral position rho = g^T K g / (|g|^2 Tr K) through training.

  Writes the tracked values as CSV while running (-ntk_train_csv), the whole run as JSON at the
  end (-ntk_output), and checkpoints (-ntk_train_checkpoint) from which the same command resumes.
  Exit status: 0 done; 1 error; 3 (NTK_TRAIN_EXIT_INTERRUPTED) stopped by SIGTERM or SIGUSR1 (or
  -ntk_train_stop_after) with a checkpoint written: run the same command again to resume.
  The test set (-ntk_train_test, default fashion-mnist:test when training on fashion-mnist:train)
  is a second data set and operator on the same network, evaluated at tracking steps only.
*/
#include "app.h"
#include <ntk/train.h>

typedef struct {
  NtkApp        *app;
  PetscInt       steps;
  PetscLogDouble tstart, tlast;
  NtkTrackPoint  last;
  PetscBool      have;
} Progress;

static void FormatSeconds(PetscReal s, char *buf, size_t len)
{
  if (s < 120) (void)PetscSNPrintf(buf, len, "%.0f s", (double)s);
  else if (s < 7200) (void)PetscSNPrintf(buf, len, "%.1f min", (double)(s / 60));
  else (void)PetscSNPrintf(buf, len, "%.1f h", (double)(s / 3600));
}

/* A tracked value with the given precision, or "-" when it was not computed (NaN or null). */
static const char *Value(PetscReal v, int digits, char *buf, size_t len)
{
  if (PetscIsInfOrNanReal(v)) (void)PetscSNPrintf(buf, len, "-");
  else (void)PetscSNPrintf(buf, len, "%.*e", digits, (double)v);
  return buf;
}

static const char *Fraction(PetscReal v, char *buf, size_t len)
{
  if (PetscIsInfOrNanReal(v)) (void)PetscSNPrintf(buf, len, "-");
  else (void)PetscSNPrintf(buf, len, "%.3f", (double)v);
  return buf;
}

static PetscReal Member(json_object *o, const char key[])
{
  json_object *v;
  return json_object_object_get_ex(o, key, &v) && v ? json_object_get_double(v) : NAN;
}

/* Progress on rank 0: every tracked point, and otherwise at most every 10 seconds. */
static PetscErrorCode Monitor(NtkTrainer tr, PetscInt step, const NtkTrackPoint *pt, void *ctx)
{
  Progress      *p = (Progress *)ctx;
  PetscLogDouble now = MPI_Wtime();
  char           left[32] = "-", b[5][32];

  PetscFunctionBegin;
  if (pt) p->last = *pt, p->have = PETSC_TRUE;
  if (!pt && now - p->tlast < 10) PetscFunctionReturn(PETSC_SUCCESS);
  if (step > 0 && step < p->steps)
    FormatSeconds((PetscReal)((now - p->tstart) / step * (p->steps - step)), left, sizeof(left));
  if (pt)
    PetscCall(NtkAppPrintf(p->app, "step %6" PetscInt_FMT "/%" PetscInt_FMT "  loss %.4e  test %s"
                           "  acc %s/%s  Tr K %.4e  rho %s  left %s\n", step, p->steps,
                           (double)pt->train_loss, Value(pt->test_loss, 4, b[0], sizeof(b[0])),
                           Fraction(pt->train_acc, b[1], sizeof(b[1])),
                           Fraction(pt->test_acc, b[2], sizeof(b[2])), (double)pt->trace,
                           Value(pt->rho, 4, b[3], sizeof(b[3])), left));
  else
    PetscCall(NtkAppPrintf(p->app, "step %6" PetscInt_FMT "/%" PetscInt_FMT "  (last tracked: loss "
                           "%.4e, rho %.4e)  left %s\n", step, p->steps,
                           (double)p->last.train_loss, (double)p->last.rho, left));
  p->tlast = now;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The test-set operator on the training network, or NULL with -ntk_train_test none. */
static PetscErrorCode CreateTestOp(NtkApp *app, NtkData *tdata, NtkOp *top, json_object *doc)
{
  char            src[PETSC_MAX_PATH_LEN] = "none";
  const char     *train;
  const PetscInt *cls;
  PetscInt        ncls, n = 10000;
  PetscBool       fashion, none;
  json_object    *t;

  PetscFunctionBegin;
  *tdata = NULL, *top = NULL;
  PetscCall(NtkDataGetSource(app->data, &train));
  PetscCall(PetscStrcmp(train, "fashion-mnist:train", &fashion));
  if (fashion) PetscCall(PetscStrcpy(src, "fashion-mnist:test"));
  PetscOptionsBegin(app->comm, NULL, "ntkspec train (exit status 3: stopped by SIGTERM/SIGUSR1 or "
                    "-ntk_train_stop_after, checkpoint written: run again to resume)", "");
  PetscCall(PetscOptionsString("-ntk_train_test", "Test data evaluated at tracking steps (none: "
                               "no test set)", "", src, src, sizeof(src), NULL));
  PetscCall(PetscOptionsInt("-ntk_train_test_samples", "Test samples (-1: all)", "", n, &n, NULL));
  PetscOptionsEnd();
  PetscCall(PetscStrcmp(src, "none", &none));
  if (none || !src[0]) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkDataCreate(app->comm, tdata));
  PetscCall(NtkDataSetSource(*tdata, src));
  PetscCall(NtkDataSetSamples(*tdata, n));
  PetscCall(NtkDataGetClasses(app->data, &ncls, &cls));
  if (ncls) PetscCall(NtkDataSetClasses(*tdata, ncls, cls));
  PetscCall(NtkDataSetUp(*tdata));
  PetscCall(NtkOpCreate(app->net, *tdata, top));
  PetscCall(NtkOpSetCacheLimit(*top, 0)); /* outputs only: no products on the test set */
  PetscCall(NtkOpSetUp(*top));
  t = json_object_new_object();
  PetscCall(NtkDataGetDescription(*tdata, &train));
  PetscCall(NtkDataGetSamples(*tdata, &n));
  json_object_object_add(t, "source", json_object_new_string(train));
  json_object_object_add(t, "samples", json_object_new_int64(n));
  json_object_object_add(doc, "test_data", t);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* With -help: list every option of the run without loading data or training. */
static PetscErrorCode ListOptions(MPI_Comm comm)
{
  NtkNet      net;
  NtkData     data;
  NtkOp       op;
  NtkTrainer  tr;
  char        src[PETSC_MAX_PATH_LEN] = "fashion-mnist:test";
  PetscInt    n = 10000;
  PetscBool   quiet = PETSC_FALSE;
  char        out[PETSC_MAX_PATH_LEN] = "";

  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "ntkspec train (exit status 3: stopped by SIGTERM/SIGUSR1 or "
                    "-ntk_train_stop_after, checkpoint written: run again to resume)", "");
  PetscCall(PetscOptionsString("-ntk_output", "Write the results as JSON to this file", "", out,
                               out, sizeof(out), NULL));
  PetscCall(PetscOptionsBool("-ntk_quiet", "Print nothing but errors", "", quiet, &quiet, NULL));
  PetscCall(PetscOptionsString("-ntk_train_test", "Test data evaluated at tracking steps (none: "
                               "no test set; default fashion-mnist:test when training on "
                               "fashion-mnist:train)", "", src, src, sizeof(src), NULL));
  PetscCall(PetscOptionsInt("-ntk_train_test_samples", "Test samples (-1: all)", "", n, &n, NULL));
  PetscOptionsEnd();
  PetscCall(NtkNetCreate(comm, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkDataCreate(comm, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkTrainerCreate(op, NULL, &tr));
  PetscCall(NtkTrainerSetFromOptions(tr));
  PetscCall(NtkTrainerDestroy(&tr));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* One training run with the options in the database; *result (caller owns) is its document. */
PetscErrorCode NtkTrainRun(MPI_Comm comm, const char command[], json_object **result,
                           PetscBool *interrupted)
{
  NtkApp       app;
  NtkData      tdata;
  NtkOp        top;
  NtkTrainer   tr;
  Progress     prog = {0};
  PetscBool    help;
  json_object *doc = json_object_new_object(), *tj, *v;

  PetscFunctionBegin;
  *interrupted = PETSC_FALSE;
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) {
    PetscCall(ListOptions(comm));
    *result = doc;
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkAppCreate(comm, command, &app));
  PetscCall(CreateTestOp(&app, &tdata, &top, doc));
  PetscCall(NtkTrainerCreate(app.op, top, &tr));
  PetscCall(NtkTrainerSetFromOptions(tr));
  PetscCall(NtkTrainerGetSteps(tr, &prog.steps));
  prog.app    = &app;
  prog.tstart = prog.tlast = MPI_Wtime();
  PetscCall(NtkTrainerSetMonitor(tr, Monitor, &prog));
  PetscCall(NtkTrainerSetUp(tr));
  if (!app.quiet) {
    PetscCall(NtkNetView(app.net, NULL));
    PetscCall(NtkDataView(app.data, NULL));
    PetscCall(NtkTrainerView(tr, NULL));
  }
  PetscCall(NtkTrainerTrain(tr));
  PetscCall(NtkTrainerGetInterrupted(tr, interrupted));

  PetscCall(NtkAppDescribe(&app, doc));
  PetscCall(NtkTrainerDescribe(tr, &tj));
  json_object_object_foreach(tj, key, val) json_object_object_add(doc, key, json_object_get(val));
  json_object_put(tj);
  PetscCall(NtkAppWriteResult(&app, doc));
  if (*interrupted) {
    PetscInt    step;
    const char *dir;
    PetscCall(NtkTrainerGetStep(tr, &step));
    PetscCall(NtkTrainerGetCheckpoint(tr, &dir, NULL));
    v = json_object_object_get(doc, "stopped_by");
    PetscCall(NtkAppPrintf(&app, "stopped at step %" PetscInt_FMT " because of %s, with a "
                           "checkpoint in %s; run the same command to resume (exit status %d)\n",
                           step, v ? json_object_get_string(v) : "a stop request", dir,
                           NTK_TRAIN_EXIT_INTERRUPTED));
  } else if (json_object_object_get_ex(doc, "final", &v)) {
    char b[3][32];
    PetscCall(NtkAppPrintf(&app, "final: train loss %s, test loss %s, rho %s\n",
                           Value(Member(v, "train_loss"), 6, b[0], sizeof(b[0])),
                           Value(Member(v, "test_loss"), 6, b[1], sizeof(b[1])),
                           Value(Member(v, "rho"), 6, b[2], sizeof(b[2]))));
  }
  *result = doc;
  PetscCall(NtkTrainerDestroy(&tr));
  PetscCall(NtkOpDestroy(&top));
  PetscCall(NtkDataDestroy(&tdata));
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdTrain(MPI_Comm comm)
{
  json_object *doc;
  PetscBool    interrupted = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(NtkTrainRun(comm, "train", &doc, &interrupted));
  json_object_put(doc);
  if (interrupted) NtkAppExitStatus = NTK_TRAIN_EXIT_INTERRUPTED;
  PetscFunctionReturn(PETSC_SUCCESS);
}
