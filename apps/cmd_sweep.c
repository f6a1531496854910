/*
  ntkspec sweep: the same training experiment at several hidden widths, and the spectral reach
  of each model size: how far into the kernel's tail the spectral position rho gets (its minimum
  and final value), next to the losses and the growth of Tr K over training.

  For every width w of -ntk_sweep_widths the network is n_0-w-...-w-n_L (-ntk_sweep_depth hidden
  layers; n_0 and n_L from -ntk_net_widths, default 784 and 10) and `ntkspec train` runs with its
  CSV, JSON and checkpoint folder inside -ntk_sweep_dir. The summary goes to sweep.json and
  sweep.csv there, and plots of rho, the loss and Tr K against the step to rho.png, loss.png and
  trace.png (gnuplot). Interrupted by a signal, it stops with exit status 3; run it again to
  resume (finished widths resume at their final checkpoint and are not trained again).
*/
#include "app.h"
#include "plot.h"
#include <ntk/train.h>

#define SWEEP_MAX        32
#define NTK_MAX_SWEEP_IO 66

typedef struct {
  PetscInt  width, P;
  PetscReal train_loss, test_loss, test_acc, rho_min, rho_final, trace0, trace1;
} SweepRow;

static PetscReal Get(json_object *o, const char key[])
{
  json_object *v;
  return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_double(v) : NAN;
}

/* The row of one width from its training document. */
static void Summarise(json_object *doc, PetscInt w, SweepRow *r)
{
  json_object *fin = NULL, *model = NULL, *ser = NULL, *tr;

  (void)json_object_object_get_ex(doc, "final", &fin);
  (void)json_object_object_get_ex(doc, "model", &model);
  (void)json_object_object_get_ex(doc, "series", &ser);
  r->width      = w;
  r->P          = (PetscInt)Get(model, "parameters");
  r->train_loss = Get(fin, "train_loss");
  r->test_loss  = Get(fin, "test_loss");
  r->test_acc   = Get(fin, "test_acc");
  r->rho_final  = Get(fin, "rho");
  r->rho_min    = Get(doc, "rho_min");
  r->trace1     = Get(fin, "trace");
  r->trace0     = NAN;
  if (ser && json_object_object_get_ex(ser, "trace", &tr) && json_object_array_length(tr))
    r->trace0 = json_object_get_double(json_object_array_get_idx(tr, 0));
}

static PetscErrorCode WriteSummary(MPI_Comm comm, const char dir[], PetscInt n, const SweepRow *r,
                                   json_object *doc)
{
  char         path[PETSC_MAX_PATH_LEN], *csv;
  size_t       len = 0, cap = 256 + 256 * (size_t)n;
  json_object *arr = json_object_new_array();
  PetscMPIInt  rank;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(cap, &csv));
  len += (size_t)snprintf(csv, cap, "width,parameters,train_loss,test_loss,test_acc,rho_min,"
                          "rho_final,trace_start,trace_end,trace_growth\n");
  for (PetscInt k = 0; k < n; k++) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "width", json_object_new_int64(r[k].width));
    json_object_object_add(o, "parameters", json_object_new_int64(r[k].P));
    json_object_object_add(o, "train_loss", json_object_new_double(r[k].train_loss));
    json_object_object_add(o, "test_loss", json_object_new_double(r[k].test_loss));
    json_object_object_add(o, "test_acc", json_object_new_double(r[k].test_acc));
    json_object_object_add(o, "rho_min", json_object_new_double(r[k].rho_min));
    json_object_object_add(o, "rho_final", json_object_new_double(r[k].rho_final));
    json_object_object_add(o, "trace_start", json_object_new_double(r[k].trace0));
    json_object_object_add(o, "trace_end", json_object_new_double(r[k].trace1));
    json_object_object_add(o, "trace_growth", json_object_new_double(r[k].trace1 / r[k].trace0));
    json_object_array_add(arr, o);
    len += (size_t)snprintf(csv + len, cap - len, "%" PetscInt_FMT ",%" PetscInt_FMT
                            ",%.10g,%.10g,%.6g,%.10g,%.10g,%.10g,%.10g,%.6g\n", r[k].width, r[k].P,
                            (double)r[k].train_loss, (double)r[k].test_loss, (double)r[k].test_acc,
                            (double)r[k].rho_min, (double)r[k].rho_final, (double)r[k].trace0,
                            (double)r[k].trace1, (double)(r[k].trace1 / r[k].trace0));
  }
  json_object_object_add(doc, "widths", arr);
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/sweep.json", dir));
  PetscCall(NtkJSONWrite(comm, doc, path));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/sweep.csv", dir));
  if (rank == 0) PetscCall(NtkWriteFileAtomic(path, csv, len));
  PetscCall(PetscFree(csv));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Plots(MPI_Comm comm, const char dir[], PetscInt n, const PetscInt w[],
                            json_object *doc)
{
  char        csv[SWEEP_MAX][PETSC_MAX_PATH_LEN], lab[SWEEP_MAX][32], stem[3][PETSC_MAX_PATH_LEN];
  char        out[PETSC_MAX_PATH_LEN];
  const char *csvp[SWEEP_MAX], *labp[SWEEP_MAX];
  json_object *plots = json_object_new_object();
  NtkPlot      p[3]  = {
    {stem[0], "spectral position rho = g^T K g / (|g|^2 Tr K)", "rho", 9, PETSC_TRUE,
     PETSC_TRUE, NULL},
    {stem[1], "training loss", "train loss", 2, PETSC_TRUE, PETSC_TRUE, NULL},
    {stem[2], "kernel trace Tr K", "Tr K", 6, PETSC_TRUE, PETSC_TRUE, NULL},
  };
  const char *names[3] = {"rho", "loss", "trace"};

  PetscFunctionBegin;
  for (PetscInt k = 0; k < n; k++) {
    PetscCall(PetscSNPrintf(csv[k], sizeof(csv[k]), "%s/width-%" PetscInt_FMT ".csv", dir, w[k]));
    PetscCall(PetscSNPrintf(lab[k], sizeof(lab[k]), "width %" PetscInt_FMT, w[k]));
    csvp[k] = csv[k], labp[k] = lab[k];
  }
  for (int j = 0; j < 3; j++) {
    PetscCall(PetscSNPrintf(stem[j], sizeof(stem[j]), "%s/%s", dir, names[j]));
    PetscCall(NtkPlotCurves(comm, &p[j], n, csvp, labp, out, sizeof(out)));
    json_object_object_add(plots, names[j], json_object_new_string(out));
  }
  json_object_object_add(doc, "plots", plots);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Set the per-width options: architecture, CSV, JSON and checkpoint folder. */
static PetscErrorCode SetWidthOptions(const char dir[], const PetscInt io[2], PetscInt depth,
                                      PetscInt w, const char ckbase[])
{
  char text[1024], path[PETSC_MAX_PATH_LEN];
  size_t len;

  PetscFunctionBegin;
  len = (size_t)snprintf(text, sizeof(text), "%" PetscInt_FMT, io[0]);
  for (PetscInt l = 0; l < depth && len < sizeof(text); l++)
    len += (size_t)snprintf(text + len, sizeof(text) - len, ",%" PetscInt_FMT, w);
  (void)snprintf(text + len, sizeof(text) - len, ",%" PetscInt_FMT, io[1]);
  PetscCall(PetscOptionsSetValue(NULL, "-ntk_net_widths", text));
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/width-%" PetscInt_FMT ".csv", dir, w));
  PetscCall(PetscOptionsSetValue(NULL, "-ntk_train_csv", path));
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/width-%" PetscInt_FMT ".json", dir, w));
  PetscCall(PetscOptionsSetValue(NULL, "-ntk_output", path));
  if (ckbase[0]) {
    PetscCall(PetscSNPrintf(path, sizeof(path), "%s/width-%" PetscInt_FMT, ckbase, w));
    PetscCall(PetscOptionsSetValue(NULL, "-ntk_train_checkpoint", path));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdSweep(MPI_Comm comm)
{
  char         wtext[512] = "32,64,128,256", dir[PETSC_MAX_PATH_LEN] = "sweep";
  char         ckbase[PETSC_MAX_PATH_LEN] = "", ntext[1024] = "784,10";
  PetscInt     widths[SWEEP_MAX], nw, depth = 2, nio, io[NTK_MAX_SWEEP_IO];
  PetscBool    plots = PETSC_TRUE, interrupted = PETSC_FALSE, quiet = PETSC_FALSE, help;
  SweepRow     rows[SWEEP_MAX];
  json_object *sum = json_object_new_object();

  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "ntkspec sweep (exit status 3: interrupted, run again to resume)",
                    "");
  PetscCall(PetscOptionsString("-ntk_sweep_widths", "Hidden widths to train", "", wtext, wtext,
                               sizeof(wtext), NULL));
  PetscCall(PetscOptionsInt("-ntk_sweep_depth", "Hidden layers", "", depth, &depth, NULL));
  PetscCall(PetscOptionsString("-ntk_sweep_dir", "Output folder", "", dir, dir, sizeof(dir), NULL));
  PetscCall(PetscOptionsBool("-ntk_sweep_plots", "Plot rho, loss and Tr K with gnuplot", "", plots,
                             &plots, NULL));
  PetscCall(PetscOptionsString("-ntk_net_widths", "Input and output widths are taken from here",
                               "", ntext, ntext, sizeof(ntext), NULL));
  PetscCall(PetscOptionsString("-ntk_train_checkpoint", "Checkpoint base folder (one per width)",
                               "", ckbase, ckbase, sizeof(ckbase), NULL));
  PetscCall(PetscOptionsBool("-ntk_quiet", "Print nothing but errors", "", quiet, &quiet, NULL));
  PetscOptionsEnd();
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) { /* list the training options too; nothing to run */
    json_object *doc;
    PetscCall(NtkTrainRun(comm, "sweep", &doc, &interrupted));
    json_object_put(doc);
    json_object_put(sum);
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkParseIntList(comm, "-ntk_sweep_widths", wtext, SWEEP_MAX, &nw, widths));
  PetscCall(NtkParseIntList(comm, "-ntk_net_widths", ntext, NTK_MAX_SWEEP_IO, &nio, io));
  PetscCheck(depth >= 1 && depth <= 16, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_sweep_depth %" PetscInt_FMT " must be in [1, 16]", depth);
  for (PetscInt k = 0; k < nw; k++)
    PetscCheck(widths[k] >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "-ntk_sweep_widths: width %"
               PetscInt_FMT " (entry %" PetscInt_FMT ") must be >= 1", widths[k], k + 1);
  io[1] = io[nio - 1];
  PetscCall(NtkEnsureFolder(comm, "-ntk_sweep_dir", dir));
  if (ckbase[0]) PetscCall(NtkEnsureFolder(comm, "-ntk_train_checkpoint", ckbase));

  for (PetscInt k = 0; k < nw; k++) {
    json_object *doc;
    PetscCall(SetWidthOptions(dir, io, depth, widths[k], ckbase));
    if (!quiet) PetscCall(PetscPrintf(comm, "== width %" PetscInt_FMT " (%" PetscInt_FMT " of %"
                                      PetscInt_FMT ")\n", widths[k], k + 1, nw));
    PetscCall(NtkTrainRun(comm, "sweep", &doc, &interrupted));
    Summarise(doc, widths[k], &rows[k]);
    json_object_put(doc);
    if (interrupted) {
      NtkAppExitStatus = NTK_TRAIN_EXIT_INTERRUPTED;
      PetscFunctionReturn(PETSC_SUCCESS);
    }
  }
  PetscCall(NtkJSONAddRunInfo(comm, sum, "sweep"));
  json_object_object_add(sum, "hidden_layers", json_object_new_int64(depth));
  if (plots) PetscCall(Plots(comm, dir, nw, widths, sum));
  PetscCall(WriteSummary(comm, dir, nw, rows, sum));
  json_object_put(sum);
  if (!quiet) {
    PetscCall(PetscPrintf(comm, "%8s %10s %12s %12s %12s %12s %10s\n", "width", "P", "train loss",
                          "test loss", "min rho", "final rho", "Tr K x"));
    for (PetscInt k = 0; k < nw; k++)
      PetscCall(PetscPrintf(comm, "%8" PetscInt_FMT " %10" PetscInt_FMT " %12.4e %12.4e %12.4e "
                            "%12.4e %10.3g\n", rows[k].width, rows[k].P, (double)rows[k].train_loss,
                            (double)rows[k].test_loss, (double)rows[k].rho_min,
                            (double)rows[k].rho_final, (double)(rows[k].trace1 / rows[k].trace0)));
    PetscCall(PetscPrintf(comm, "summary in %s/sweep.json and %s/sweep.csv\n", dir, dir));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
