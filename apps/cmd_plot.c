/*
  ntkspec plot: pictures of result files, drawn by gnuplot on rank 0 (apps/plot.c: pngcairo, else
  png, else svg; written under a temporary name and renamed into place). The kind of picture
  follows from the inputs (-ntk_plot_input, a comma-separated list of one kind; several inputs give
  several curves in one picture):

    spectrum or dense JSON   eigenvalues lambda_k against their index k (1 = largest), log-log.
                             A tail from `spectrum` sits at the indices r - t + 1 .. r of the
                             nonzero eigenvalues (r = dimension - null space), so leading and
                             tail pairs appear where they belong in the whole spectrum.
    estimate density CSV     the SLQ density per decade of lambda against lambda (log axis).
    training CSV             a tracked value (-ntk_plot_value, default rho) against the step.
    sweep folder             the same, one curve per width-<w>.csv in the folder.
*/
#include "app.h"
#include "plot.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLOT_MAX 64

typedef enum { KIND_NONE, KIND_EIGEN, KIND_DENSITY, KIND_TRACK } PlotKind;

typedef struct {
  PlotKind kind;
  PetscInt n;                                /* curves */
  char     csv[PLOT_MAX][PETSC_MAX_PATH_LEN]; /* data of each curve */
  char     label[PLOT_MAX][64];
  int      tmp[PLOT_MAX];                     /* 1: a temporary file of ours, removed after */
  size_t   count[PLOT_MAX];                   /* eigenvalues in each curve */
  int      column;
  char     msg[PETSC_MAX_PATH_LEN + 256];
} PlotSet;

static int Fail(PlotSet *s, const char *what, const char *path)
{
  (void)snprintf(s->msg, sizeof(s->msg), "ntkspec plot: %s: %s", path, what);
  return 1;
}

static int Descending(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

static void Label(PlotSet *s, const char *path, const char *suffix)
{
  const char *base = strrchr(path, '/');
  (void)snprintf(s->label[s->n], sizeof(s->label[s->n]), "%s%s", base ? base + 1 : path, suffix);
  for (char *c = s->label[s->n]; *c; c++)
    if (*c == '\'' || *c == '_') *c = *c == '_' ? '-' : ' '; /* gnuplot: quotes, subscripts */
}

/* Write lambda (n values, any order, only those > floor kept) as "index,value" rows; index 1 is
   the largest eigenvalue plus offset. */
static int WriteEigen(PlotSet *s, const char *stem, double *v, size_t n, double floor, long off)
{
  FILE  *f;
  size_t kept = 0;

  if (s->n >= PLOT_MAX) return Fail(s, "too many curves", stem);
  for (size_t k = 0; k < n; k++) kept += v[k] > floor;
  if (!kept) return Fail(s, "no positive eigenvalues to plot (on a log scale)", s->label[s->n]);
  qsort(v, n, sizeof(double), Descending);
  (void)snprintf(s->csv[s->n], sizeof(s->csv[s->n]), "%s.tmp.%ld.%d.csv", stem, (long)getpid(),
                 (int)s->n);
  f = fopen(s->csv[s->n], "w");
  if (!f) return Fail(s, "cannot write a temporary file next to the plot", s->csv[s->n]);
  s->tmp[s->n]   = 1;
  s->count[s->n] = n;
  (void)fprintf(f, "index,lambda\n");
  for (size_t k = 0; k < n; k++)
    if (v[k] > floor) (void)fprintf(f, "%ld,%.17g\n", off + (long)k + 1, v[k]);
  if (fclose(f)) return Fail(s, "cannot write a temporary file next to the plot", s->csv[s->n]);
  s->n++;
  return 0;
}

/* The values of an array of numbers or of {value: x} objects; caller frees *v. */
static size_t Values(json_object *arr, double **v)
{
  size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;

  *v = calloc(n + 1, sizeof(double));
  for (size_t k = 0; k < n && *v; k++) {
    json_object *e = json_object_array_get_idx(arr, k), *x;
    (*v)[k] = json_object_get_double(json_object_object_get_ex(e, "value", &x) ? x : e);
  }
  return *v ? n : 0;
}

static int AddJSON(PlotSet *s, const char *path, const char *stem)
{
  json_object *doc = json_object_from_file(path), *lead, *tail, *eig, *kern, *x;
  double      *v = NULL;
  size_t       n;
  int          err = 0;

  if (!doc) return Fail(s, access(path, R_OK) ? "no such readable file" : "cannot read it as JSON",
                        path);
  if (json_object_object_get_ex(doc, "eigenvalues", &eig)) { /* ntkspec dense */
    double floor = json_object_object_get_ex(doc, "null_space_threshold", &x) ?
                     json_object_get_double(x) : 0;
    n = Values(eig, &v);
    Label(s, path, "");
    err = WriteEigen(s, stem, v, n, floor > 0 ? floor : 0, 0);
  } else if (json_object_object_get_ex(doc, "leading", &lead)) { /* ntkspec spectrum */
    long dim = 0, null = 0;
    if (json_object_object_get_ex(doc, "kernel", &kern) &&
        json_object_object_get_ex(kern, "dimension", &x))
      dim = json_object_get_int64(x);
    if (json_object_object_get_ex(doc, "null_space_dim", &x)) null = json_object_get_int64(x);
    n = Values(lead, &v);
    Label(s, path, " leading");
    err = WriteEigen(s, stem, v, n, 0, 0);
    free(v), v = NULL;
    if (!err && json_object_object_get_ex(doc, "tail", &tail) &&
        json_object_is_type(tail, json_type_array) && json_object_array_length(tail)) {
      n = Values(tail, &v);
      Label(s, path, " tail");
      err = WriteEigen(s, stem, v, n, 0, dim - null - (long)n);
    }
  } else err = Fail(s, "neither a spectrum result (\"leading\") nor a dense one (\"eigenvalues\")",
                    path);
  free(v);
  json_object_put(doc);
  return err;
}

/* A CSV file: the density of `estimate` (lambda,...) or tracked values (step,...). */
static int AddCSV(PlotSet *s, const char *path, PlotKind *kind, const char *value, const char *lab)
{
  char  head[1024] = "", *tok, *save = NULL;
  FILE *f = fopen(path, "r");
  int   col = 0;

  if (!f) return Fail(s, "cannot open it", path);
  if (!fgets(head, sizeof(head), f)) head[0] = 0;
  (void)fclose(f);
  head[strcspn(head, "\r\n")] = 0;
  if (!strncmp(head, "lambda,", 7)) *kind = KIND_DENSITY, s->column = 2;
  else if (!strncmp(head, "step,", 5)) {
    *kind = KIND_TRACK;
    for (tok = strtok_r(head, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      col++;
      if (!strcmp(tok, value)) s->column = col;
    }
    if (!s->column) return Fail(s, "no column named by -ntk_plot_value in its header", path);
  } else return Fail(s, "not a density (lambda,...) or tracking (step,...) CSV file", path);
  if (s->n >= PLOT_MAX) return Fail(s, "too many curves", path);
  (void)snprintf(s->csv[s->n], sizeof(s->csv[s->n]), "%s", path);
  if (lab) (void)snprintf(s->label[s->n], sizeof(s->label[s->n]), "%s", lab);
  else Label(s, path, "");
  s->n++;
  return 0;
}

static int ByWidth(const void *a, const void *b)
{
  return (*(const long *)a > *(const long *)b) - (*(const long *)a < *(const long *)b);
}

/* A sweep folder: width-<w>.csv for each width, in increasing width. */
static int AddSweep(PlotSet *s, const char *dir, const char *value)
{
  DIR           *d = opendir(dir);
  struct dirent *e;
  long           w[PLOT_MAX], nw = 0;
  char           path[PETSC_MAX_PATH_LEN + 64], lab[64], tail[8];
  PlotKind       kind = KIND_NONE;

  if (!d) return Fail(s, "cannot open the folder", dir);
  while ((e = readdir(d)) && nw < PLOT_MAX)
    if (sscanf(e->d_name, "width-%ld.cs%1s", &w[nw], tail) == 2 && !strcmp(tail, "v")) nw++;
  (void)closedir(d);
  if (!nw) return Fail(s, "no width-<w>.csv files (is it a sweep folder?)", dir);
  qsort(w, (size_t)nw, sizeof(long), ByWidth);
  for (long k = 0; k < nw; k++) {
    (void)snprintf(path, sizeof(path), "%s/width-%ld.csv", dir, w[k]);
    (void)snprintf(lab, sizeof(lab), "width %ld", w[k]);
    if (AddCSV(s, path, &kind, value, lab)) return 1;
  }
  return 0;
}

static void Swap(PlotSet *s, PetscInt a, PetscInt b)
{
  char   csv[PETSC_MAX_PATH_LEN], label[64];
  int    tmp = s->tmp[a];
  size_t count = s->count[a];

  (void)memcpy(csv, s->csv[a], sizeof(csv)), (void)memcpy(label, s->label[a], sizeof(label));
  (void)memcpy(s->csv[a], s->csv[b], sizeof(csv)), (void)memcpy(s->label[a], s->label[b], 64);
  (void)memcpy(s->csv[b], csv, sizeof(csv)), (void)memcpy(s->label[b], label, 64);
  s->tmp[a] = s->tmp[b], s->tmp[b] = tmp, s->count[a] = s->count[b], s->count[b] = count;
}

/* Rank 0: sort the inputs into curves of one kind. */
static int Collect(PlotSet *s, char *inputs, const char *value, const char *stem)
{
  char       *save = NULL;
  struct stat st;

  for (char *in = strtok_r(inputs, ",", &save); in; in = strtok_r(NULL, ",", &save)) {
    PlotKind kind = KIND_NONE;
    size_t   len  = strlen(in);
    int      err;

    if (!stat(in, &st) && S_ISDIR(st.st_mode)) err = AddSweep(s, in, value), kind = KIND_TRACK;
    else if (len > 5 && !strcmp(in + len - 5, ".json"))
      err = AddJSON(s, in, stem), kind = KIND_EIGEN;
    else err = AddCSV(s, in, &kind, value, NULL);
    if (err) return 1;
    if (s->kind != KIND_NONE && s->kind != kind)
      return Fail(s, "inputs of different kinds cannot share one picture", in);
    s->kind = kind;
  }
  if (s->kind == KIND_EIGEN) { /* the longest spectra first, so that short ones stay visible */
    s->column = 2;
    for (PetscInt i = 1; i < s->n; i++)
      for (PetscInt j = i; j > 0 && s->count[j] > s->count[j - 1]; j--) Swap(s, j, j - 1);
  }
  return s->n ? 0 : Fail(s, "nothing to plot", "-ntk_plot_input");
}

/* The first input without its extension, or <folder>/<value> for a sweep folder. */
static void DefaultStem(const char *inputs, const char *value, char *stem, size_t len)
{
  struct stat st;

  (void)snprintf(stem, len, "%s", inputs);
  stem[strcspn(stem, ",")] = 0;
  if (!stat(stem, &st) && S_ISDIR(st.st_mode)) {
    size_t used = strlen(stem);
    (void)snprintf(stem + used, len - used, "/%s", value);
  } else {
    char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
  }
}

/* Axis labels, scales and the default title of each kind of picture. */
static void Axes(PlotKind kind, const char *value, NtkPlot *p, char *title, size_t tl,
                 char *ylabel, size_t yl)
{
  if (kind == KIND_EIGEN) {
    p->xlabel = "index k (1 = largest)";
    (void)snprintf(ylabel, yl, "eigenvalue lambda_k");
    if (!title[0]) (void)snprintf(title, tl, "eigenvalues of the kernel");
  } else if (kind == KIND_DENSITY) {
    p->xlabel = "eigenvalue lambda", p->logy = PETSC_FALSE;
    (void)snprintf(ylabel, yl, "density per decade of lambda");
    if (!title[0]) (void)snprintf(title, tl, "spectral density (SLQ)");
  } else {
    p->logy = (PetscBool)(strcmp(value, "test_acc") && strcmp(value, "train_acc"));
    (void)snprintf(ylabel, yl, "%s", value);
    if (!title[0]) (void)snprintf(title, tl, "%s during training", value);
  }
  for (char *c = ylabel; *c; c++) if (*c == '_') *c = ' '; /* no gnuplot subscripts */
  for (char *c = title; *c; c++) if (*c == '_') *c = ' ';
}

PetscErrorCode NtkCmdPlot(MPI_Comm comm)
{
  char        inputs[4096] = "", stem[PETSC_MAX_PATH_LEN] = "", value[64] = "rho", title[256] = "";
  char        out[PETSC_MAX_PATH_LEN] = "", ylabel[96];
  const char *csv[PLOT_MAX], *lab[PLOT_MAX];
  PetscBool   quiet = PETSC_FALSE, help, set;
  PetscMPIInt rank;
  PlotSet    *s;
  NtkPlot     p = {stem, title, ylabel, 2, PETSC_TRUE, PETSC_TRUE, NULL};
  int         err = 0;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "ntkspec plot (gnuplot; Debian package gnuplot-nox)", "");
  PetscCall(PetscOptionsString("-ntk_plot_input", "Result files of one kind, comma-separated: "
                               "spectrum/dense JSON, estimate density CSV, training CSV, or a "
                               "sweep folder", "", inputs, inputs, sizeof(inputs), &set));
  PetscCall(PetscOptionsString("-ntk_plot_output", "Picture path without extension (.png or .svg"
                               " is added); default: the first input without its extension", "",
                               stem, stem, sizeof(stem), NULL));
  PetscCall(PetscOptionsString("-ntk_plot_value", "Tracked value plotted from training CSVs and "
                               "sweeps (a CSV column: rho, train_loss, test_loss, trace, mu, ...)",
                               "", value, value, sizeof(value), NULL));
  PetscCall(PetscOptionsString("-ntk_plot_title", "Title of the picture", "", title, title,
                               sizeof(title), NULL));
  PetscCall(PetscOptionsBool("-ntk_quiet", "Print nothing but errors", "", quiet, &quiet, NULL));
  PetscOptionsEnd();
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCheck(set && inputs[0], comm, PETSC_ERR_USER_INPUT,
             "ntkspec plot needs -ntk_plot_input FILE[,FILE...] (a spectrum or dense JSON result, "
             "an estimate density CSV, a training CSV, or a sweep folder)");
  if (!stem[0]) DefaultStem(inputs, value, stem, sizeof(stem));
  PetscCall(PetscCalloc1(1, &s));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) err = Collect(s, inputs, value, stem);
  PetscCall(NtkCheckAll(comm, err ? PETSC_FALSE : PETSC_TRUE, PETSC_ERR_FILE_READ, s->msg));
  for (PetscInt k = 0; k < s->n; k++) csv[k] = s->csv[k], lab[k] = s->label[k];
  p.column = s->column;
  Axes(s->kind, value, &p, title, sizeof(title), ylabel, sizeof(ylabel));
  ierr = NtkPlotCurves(comm, &p, s->n, csv, lab, out, sizeof(out));
  for (PetscInt k = 0; k < s->n; k++)
    if (s->tmp[k]) (void)remove(s->csv[k]);
  PetscCall(ierr);
  if (!quiet) PetscCall(PetscPrintf(comm, "plot written to %s\n", out));
  PetscCall(PetscFree(s));
  PetscFunctionReturn(PETSC_SUCCESS);
}
