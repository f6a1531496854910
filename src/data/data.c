/*
  NtkData: a data set of N samples sharded over the ranks of a communicator.

  Sources: Fashion-MNIST from the Debian package, IDX pairs (images, labels), NPY pairs (inputs,
  labels or regression targets), and a synthetic teacher (Gaussian inputs labelled by a random
  tanh MLP). Setting up selects the samples first and reads second: the labels, which are small,
  are read whole on every rank so that a class filter and a seeded random subset pick the same
  global samples on every rank; each rank then reads only the input rows of its own contiguous
  block. Teacher inputs come from the counter-based streams of sys.h keyed by the global entry
  index, so the data are the same whatever the number of ranks.

  The readers fail on one rank only (a truncated file is seen by the rank that reads its end), so
  every read goes through DataRead, which turns a local failure into a collective one.
*/
#include "dataimpl.h"
#include <ntk/net.h>
#include <ntk/sys.h>
#include <ntk_config.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA_MAX_CLASSES     65536 /* bound on max label + 1, so one-hot targets stay sane */
#define DATA_MAX_LISTED      64    /* classes that -ntk_data_classes may list */
#define DATA_STREAM_SUBSET   0x5AB5 /* random stream of the subset keys */
#define DATA_STREAM_INPUTS   0x7EAC /* random stream of the teacher inputs */
#define DATA_TEACHER_SAMPLES 1000
#define DATA_TEACHER_BATCH   256

typedef enum { DATA_IDX, DATA_NPY, DATA_TEACHER } DataKind;

struct _p_NtkData {
  MPI_Comm     comm;
  char        *source;
  PetscInt     samples;     /* requested N, or PETSC_DETERMINE for all */
  PetscInt     subset_seed; /* < 0: the first N samples */
  PetscInt     nclasses, classes[DATA_MAX_LISTED];
  PetscInt     teacher_d, teacher_C, teacher_width, seed;
  DataKind     kind;
  char         files[2][PETSC_MAX_PATH_LEN]; /* inputs and targets */
  PetscInt     navail;                        /* samples in the source */
  PetscInt     ncand;                         /* samples left after the class filter */
  PetscInt    *sel;                           /* selected file rows, or NULL for the first N */
  PetscBool    setup;
  NtkDataShard shard;
  char         desc[2 * PETSC_MAX_PATH_LEN];
};

typedef PetscErrorCode (*DataReader)(const char[], PetscInt *, PetscInt[4], NtkRowSel *,
                                     PetscReal **);

PetscErrorCode NtkShardRange(PetscInt n, PetscMPIInt rank, PetscMPIInt size, PetscInt *start,
                             PetscInt *end)
{
  PetscInt base, rem;

  PetscFunctionBegin;
  PetscCheck(size > 0 && rank >= 0 && rank < size && n >= 0, PETSC_COMM_SELF,
             PETSC_ERR_ARG_OUTOFRANGE, "rank %d of %d, n = %" PetscInt_FMT, rank, size, n);
  base   = n / size;
  rem    = n % size;
  *start = rank * base + PetscMin(rank, rem);
  *end   = *start + base + (rank < rem ? 1 : 0);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkShapeCheck(const char file[], PetscInt ndim, const uint64_t shape[], size_t isize,
                             PetscInt dims[4], size_t *nbytes)
{
  size_t n = 1;

  PetscFunctionBegin;
  PetscCheck(ndim >= 1 && ndim <= 4, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: %" PetscInt_FMT " dimensions; 1 to 4 are supported", file, ndim);
  for (PetscInt k = 0; k < 4; k++) dims[k] = 0;
  for (PetscInt k = 0; k < ndim; k++) {
    PetscCheck(shape[k] > 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: dimension %" PetscInt_FMT " is 0; every dimension must be positive", file, k);
    PetscCheck(shape[k] <= (uint64_t)PETSC_MAX_INT && !__builtin_mul_overflow(n, shape[k], &n) &&
                 n <= (size_t)PETSC_MAX_INT,
               PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: the dimensions in the header overflow: at dimension %" PetscInt_FMT
               " (%llu) the element count exceeds %d",
               file, k, (unsigned long long)shape[k], (int)PETSC_MAX_INT);
    dims[k] = (PetscInt)shape[k];
  }
  PetscCheck(!__builtin_mul_overflow(n, isize, nbytes), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: the data size in bytes overflows", file);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkRowSelResolve(const char file[], PetscInt nfile, NtkRowSel *sel)
{
  PetscFunctionBegin;
  if (!sel->rows && sel->n == PETSC_DETERMINE) sel->n = nfile - sel->row0;
  if (!sel->rows)
    PetscCheck(sel->row0 >= 0 && sel->n >= 0 && sel->row0 + sel->n <= nfile, PETSC_COMM_SELF,
               PETSC_ERR_ARG_OUTOFRANGE, "%s: rows [%" PetscInt_FMT ", %" PetscInt_FMT
               ") requested, the file has %" PetscInt_FMT, file, sel->row0, sel->row0 + sel->n,
               nfile);
  for (PetscInt k = 0; sel->rows && k < sel->n; k++)
    PetscCheck(sel->rows[k] >= 0 && sel->rows[k] < nfile &&
                 (k == 0 || sel->rows[k] > sel->rows[k - 1]),
               PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
               "%s: row %" PetscInt_FMT " requested out of order or beyond the %" PetscInt_FMT
               " rows of the file", file, sel->rows[k], nfile);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Run a reader on every rank; if any rank fails, all fail with the first failing rank's message. */
static PetscErrorCode DataRead(NtkData data, DataReader reader, const char file[], NtkRowSel *sel,
                               PetscInt *ndim, PetscInt dims[4], PetscReal **vals)
{
  PetscErrorCode ierr;
  int            code, agreed;
  char          *msg = NULL;

  PetscFunctionBegin;
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = reader(file, ndim, dims, sel, vals);
  PetscCall(PetscPopErrorHandler());
  if (ierr) PetscCall(PetscErrorMessage(ierr, NULL, &msg));
  /* NtkCheckAll shares the message only, so the ranks agree on the error code first */
  code = (int)ierr;
  PetscCallMPI(MPI_Allreduce(&code, &agreed, 1, MPI_INT, MPI_MAX, data->comm));
  PetscCall(NtkCheckAll(data->comm, ierr ? PETSC_FALSE : PETSC_TRUE, agreed, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataCreate(MPI_Comm comm, NtkData *data)
{
  NtkData d;

  PetscFunctionBegin;
  PetscCall(NtkInitializePackage());
  PetscCall(PetscNew(&d));
  d->comm          = comm;
  d->samples       = PETSC_DETERMINE;
  d->subset_seed   = -1;
  d->teacher_d     = 16;
  d->teacher_C     = 1;
  d->teacher_width = 64;
  PetscCall(PetscStrallocpy("fashion-mnist:train", &d->source));
  *data = d;
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define DataCheckNotSetUp(data) \
  PetscCheck(!(data)->setup, (data)->comm, PETSC_ERR_ORDER, \
             "%s must be called before NtkDataSetUp", PETSC_FUNCTION_NAME)

PetscErrorCode NtkDataSetSource(NtkData data, const char source[])
{
  PetscFunctionBegin;
  DataCheckNotSetUp(data);
  PetscCheck(source && source[0], data->comm, PETSC_ERR_ARG_WRONG, "empty data source");
  PetscCall(PetscFree(data->source));
  PetscCall(PetscStrallocpy(source, &data->source));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetSource(NtkData data, const char *source[])
{
  PetscFunctionBegin;
  *source = data->source;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataSetSamples(NtkData data, PetscInt n)
{
  PetscFunctionBegin;
  DataCheckNotSetUp(data);
  PetscCheck(n == PETSC_DETERMINE || n >= 1, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_data_samples %" PetscInt_FMT ": must be at least 1 (or -1 for all)", n);
  data->samples = n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetSamples(NtkData data, PetscInt *n)
{
  PetscFunctionBegin;
  *n = data->setup ? data->shard.N : data->samples;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataSetSubsetSeed(NtkData data, PetscInt seed)
{
  PetscFunctionBegin;
  DataCheckNotSetUp(data);
  data->subset_seed = seed;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetSubsetSeed(NtkData data, PetscInt *seed)
{
  PetscFunctionBegin;
  *seed = data->subset_seed;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataSetClasses(NtkData data, PetscInt n, const PetscInt classes[])
{
  const PetscInt max = DATA_MAX_LISTED;

  PetscFunctionBegin;
  DataCheckNotSetUp(data);
  PetscCheck(n >= 0 && n <= max, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_data_classes: %" PetscInt_FMT " classes given, 0 to %" PetscInt_FMT
             " allowed", n, max);
  for (PetscInt k = 0; k < n; k++) {
    PetscCheck(classes[k] >= 0, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
               "-ntk_data_classes: class %" PetscInt_FMT " is negative", classes[k]);
    for (PetscInt j = 0; j < k; j++)
      PetscCheck(classes[j] != classes[k], data->comm, PETSC_ERR_ARG_WRONG,
                 "-ntk_data_classes: class %" PetscInt_FMT " is listed twice", classes[k]);
    data->classes[k] = classes[k];
  }
  data->nclasses = n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetClasses(NtkData data, PetscInt *n, const PetscInt **classes)
{
  PetscFunctionBegin;
  *n = data->nclasses;
  if (classes) *classes = data->classes;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Teacher sizes: input dimension d, outputs C, hidden width; also selects the teacher source. */
PetscErrorCode NtkDataSetSynthetic(NtkData data, PetscInt d, PetscInt C, PetscInt width)
{
  PetscFunctionBegin;
  DataCheckNotSetUp(data);
  PetscCheck(d >= 1 && C >= 1 && width >= 1, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "teacher sizes d = %" PetscInt_FMT ", C = %" PetscInt_FMT ", width = %" PetscInt_FMT
             " must all be at least 1", d, C, width);
  data->teacher_d     = d;
  data->teacher_C     = C;
  data->teacher_width = width;
  PetscCall(NtkDataSetSource(data, "teacher"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataSetFromOptions(NtkData data)
{
  char      src[2 * PETSC_MAX_PATH_LEN], text[DATA_MAX_LISTED * 8] = "all";
  PetscInt  v, cls[DATA_MAX_LISTED], ncls;
  PetscInt  td = data->teacher_d, tc = data->teacher_C, tw = data->teacher_width;
  PetscBool flg, fd, fc, fw;

  PetscFunctionBegin;
  PetscOptionsBegin(data->comm, NULL, "Data set options", "NtkData");
  PetscCall(PetscOptionsString("-ntk_data",
                               "Data source: fashion-mnist:train|test, teacher, idx:IMAGES,LABELS, "
                               "npy:X.npy,Y.npy, or a path prefix P (P-images-idx3-ubyte[.gz])",
                               "NtkDataSetSource", data->source, src, sizeof(src), &flg));
  if (flg) PetscCall(NtkDataSetSource(data, src));
  PetscCall(PetscOptionsInt("-ntk_data_samples",
                            "Number of samples (-1: all; teacher default 1000)",
                            "NtkDataSetSamples", data->samples, &v, &flg));
  if (flg) PetscCall(NtkDataSetSamples(data, v));
  PetscCall(PetscOptionsInt("-ntk_data_subset_seed",
                            "Seed of a random subset of the samples (negative: the first N)",
                            "NtkDataSetSubsetSeed", data->subset_seed, &v, &flg));
  if (flg) PetscCall(NtkDataSetSubsetSeed(data, v));
  PetscCall(PetscOptionsString("-ntk_data_classes",
                               "Keep only these classes (e.g. 0,1,2), relabelled 0..k-1 in order",
                               "NtkDataSetClasses", text, text, sizeof(text), &flg));
  if (flg && strcmp(text, "all")) {
    PetscCall(NtkParseIntList(data->comm, "-ntk_data_classes", text, DATA_MAX_LISTED, &ncls, cls));
    PetscCall(NtkDataSetClasses(data, ncls, cls));
  }
  PetscCall(PetscOptionsInt("-ntk_data_teacher_dim", "Teacher input dimension d",
                            "NtkDataSetSynthetic", td, &td, &fd));
  PetscCall(PetscOptionsInt("-ntk_data_teacher_outputs", "Teacher outputs C",
                            "NtkDataSetSynthetic", tc, &tc, &fc));
  PetscCall(PetscOptionsInt("-ntk_data_teacher_width", "Teacher hidden width",
                            "NtkDataSetSynthetic", tw, &tw, &fw));
  PetscCall(PetscOptionsInt("-ntk_data_seed", "Seed of the teacher inputs and weights",
                            "NtkDataSetFromOptions",
                            data->seed, &data->seed, NULL));
  PetscOptionsEnd();
  PetscCheck(td >= 1 && tc >= 1 && tw >= 1, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_data_teacher_dim %" PetscInt_FMT ", -ntk_data_teacher_outputs %" PetscInt_FMT
             ", -ntk_data_teacher_width %" PetscInt_FMT ": each must be at least 1", td, tc, tw);
  data->teacher_d     = td;
  data->teacher_C     = tc;
  data->teacher_width = tw;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* P-NAME-ubyte.gz if present, else P-NAME-ubyte; *found tells whether either exists. */
static void DataPrefixFile(const char prefix[], const char name[], char out[], PetscBool *found)
{
  (void)PetscSNPrintf(out, PETSC_MAX_PATH_LEN, "%s-%s-ubyte.gz", prefix, name);
  if (!access(out, R_OK)) return;
  (void)PetscSNPrintf(out, PETSC_MAX_PATH_LEN, "%s-%s-ubyte", prefix, name);
  if (!access(out, R_OK)) return;
  *found = PETSC_FALSE;
}

/* Two comma-separated file names after a "kind:" prefix. */
static PetscErrorCode DataFilePair(NtkData data, const char *spec, const char *example)
{
  const char *comma = strchr(spec, ',');
  size_t      len   = comma ? (size_t)(comma - spec) : 0;

  PetscFunctionBegin;
  PetscCheck(comma && len > 0 && comma[1] && len < PETSC_MAX_PATH_LEN, data->comm,
             PETSC_ERR_ARG_WRONG, "-ntk_data %s: expected %s", data->source, example);
  PetscCall(PetscStrncpy(data->files[0], spec, len + 1));
  PetscCall(PetscStrncpy(data->files[1], comma + 1, PETSC_MAX_PATH_LEN));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode DataResolveSource(NtkData data)
{
  const char *src = data->source, *fm = "fashion-mnist:", *fmdir = getenv("NTK_FASHION_MNIST_DIR");
  char        prefix[PETSC_MAX_PATH_LEN], msg[3 * PETSC_MAX_PATH_LEN];
  PetscBool   found = PETSC_TRUE, builtin = PETSC_FALSE;

  PetscFunctionBegin;
  data->kind = DATA_IDX;
  if (!strcmp(src, "teacher")) {
    data->kind = DATA_TEACHER;
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  if (!strncmp(src, "npy:", 4)) {
    data->kind = DATA_NPY;
    PetscCall(DataFilePair(data, src + 4, "npy:X.npy,Y.npy"));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  if (!strncmp(src, "idx:", 4)) {
    PetscCall(DataFilePair(data, src + 4, "idx:IMAGES,LABELS"));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  if (!strncmp(src, fm, strlen(fm))) {
    const char *part = src + strlen(fm);
    PetscCheck(!strcmp(part, "train") || !strcmp(part, "test"), data->comm, PETSC_ERR_ARG_WRONG,
               "-ntk_data %s: unknown Fashion-MNIST part '%s' (use train or test)", src, part);
    /* the environment may move the folder (a copy elsewhere, or tests of a missing package) */
    if (!fmdir || !fmdir[0]) fmdir = NTK_FASHION_MNIST_DIR;
    PetscCall(PetscSNPrintf(prefix, sizeof(prefix), "%s/%s", fmdir,
                            strcmp(part, "test") ? "train" : "t10k"));
    builtin = PETSC_TRUE;
  } else PetscCall(PetscStrncpy(prefix, src, sizeof(prefix)));

  /* whether a file exists may differ between the nodes of a cluster */
  DataPrefixFile(prefix, "images-idx3", data->files[0], &found);
  DataPrefixFile(prefix, "labels-idx1", data->files[1], &found);
  if (builtin)
    PetscCall(PetscSNPrintf(msg, sizeof(msg), "-ntk_data %s: Fashion-MNIST not found in %s; "
                            "install the Debian package dataset-fashion-mnist", src, fmdir));
  else
    PetscCall(PetscSNPrintf(msg, sizeof(msg), "-ntk_data %s: unknown source and no files %s-"
                            "{images-idx3,labels-idx1}-ubyte[.gz]; use fashion-mnist:train|test, "
                            "teacher, idx:IMAGES,LABELS, npy:X.npy,Y.npy or a path prefix", src,
                            prefix));
  PetscCall(NtkCheckAll(data->comm, found, PETSC_ERR_FILE_OPEN, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Class labels must be integers in [0, DATA_MAX_CLASSES); the class count is the largest + 1. */
static PetscErrorCode DataCheckLabels(NtkData data, const char file[], const PetscReal lab[],
                                      PetscInt *C)
{
  PetscInt max = 0;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < data->navail; i++) {
    PetscCheck(lab[i] >= 0 && lab[i] < DATA_MAX_CLASSES && lab[i] == floor(lab[i]), data->comm,
               PETSC_ERR_FILE_UNEXPECTED, "%s: label %g of sample %" PetscInt_FMT
               " is not a class index (an integer in [0, %d))", file, (double)lab[i], i,
               DATA_MAX_CLASSES);
    max = PetscMax(max, (PetscInt)lab[i]);
  }
  *C = max + 1;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Choose the N global samples: the class filter first, then the first N or a seeded random subset
  (the N smallest of keys u_i = U(seed, i), sorted back into file order). All ranks hold all labels
  and compute the same list. data->sel stays NULL when the selection is simply the first N rows.
*/
static PetscErrorCode DataSelect(NtkData data, const char *lfile, const PetscReal lab[],
                                 PetscInt Cavail, PetscInt *N)
{
  PetscInt *cand = NULL;

  PetscFunctionBegin;
  data->ncand = data->navail;
  if (data->nclasses) {
    PetscCheck(lab, data->comm, PETSC_ERR_ARG_INCOMP,
               "-ntk_data_classes needs class labels; %s holds regression targets", lfile);
    for (PetscInt k = 0; k < data->nclasses; k++)
      PetscCheck(data->classes[k] < Cavail, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
                 "-ntk_data_classes: class %" PetscInt_FMT " does not exist; %s has classes 0 to %"
                 PetscInt_FMT, data->classes[k], lfile, Cavail - 1);
    PetscCall(PetscMalloc1(data->navail, &cand));
    data->ncand = 0;
    for (PetscInt i = 0; i < data->navail; i++)
      for (PetscInt k = 0; k < data->nclasses; k++)
        if ((PetscInt)lab[i] == data->classes[k]) cand[data->ncand++] = i;
    PetscCheck(data->ncand > 0, data->comm, PETSC_ERR_ARG_WRONG,
               "-ntk_data_classes: no sample of %s belongs to the classes given", lfile);
  }
  *N = data->samples == PETSC_DETERMINE ? data->ncand : data->samples;
  PetscCheck(*N <= data->ncand, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_data_samples %" PetscInt_FMT ": %s has only %" PetscInt_FMT " samples%s",
             *N, data->source, data->ncand, data->nclasses ? " in the classes given" : "");
  if (data->subset_seed >= 0 && *N < data->ncand) {
    PetscReal *key;

    if (!cand) {
      PetscCall(PetscMalloc1(data->ncand, &cand));
      for (PetscInt i = 0; i < data->ncand; i++) cand[i] = i;
    }
    PetscCall(PetscMalloc1(data->ncand, &key));
    for (PetscInt i = 0; i < data->ncand; i++)
      key[i] = NtkRandomUniform(data->subset_seed, DATA_STREAM_SUBSET, cand[i]);
    PetscCall(PetscSortRealWithArrayInt(data->ncand, key, cand));
    PetscCall(PetscSortInt(*N, cand));
    PetscCall(PetscFree(key));
  }
  data->sel = cand;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* This rank's block of the N samples, and the file rows it must read. */
static PetscErrorCode DataShard(NtkData data, PetscInt N, NtkRowSel *mine)
{
  PetscMPIInt rank, size;
  PetscInt    rs, re;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(data->comm, &rank));
  PetscCallMPI(MPI_Comm_size(data->comm, &size));
  PetscCheck(N >= size, data->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "%" PetscInt_FMT " samples cannot be shared by %d ranks: run on at most %" PetscInt_FMT
             " ranks or use more samples", N, size, N);
  PetscCall(NtkShardRange(N, rank, size, &rs, &re));
  data->shard.N      = N;
  data->shard.rstart = rs;
  data->shard.rend   = re;
  mine->n            = re - rs;
  mine->row0         = data->sel ? 0 : rs;
  mine->rows         = data->sel ? data->sel + rs : NULL;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static inline PetscInt DataFileRow(NtkData data, PetscInt k)
{
  return data->sel ? data->sel[data->shard.rstart + k] : data->shard.rstart + k;
}

/* One-hot targets and class indices of the local samples, relabelled if classes were chosen. */
static PetscErrorCode DataOneHot(NtkData data, const PetscReal lab[], PetscInt Cavail)
{
  NtkDataShard *s = &data->shard;
  PetscInt      n = s->rend - s->rstart;

  PetscFunctionBegin;
  s->C = data->nclasses ? data->nclasses : Cavail;
  PetscCall(PetscCalloc1((size_t)n * s->C, &s->Y));
  PetscCall(PetscMalloc1(n, &s->labels));
  for (PetscInt k = 0; k < n; k++) {
    PetscInt c = (PetscInt)lab[DataFileRow(data, k)];

    for (PetscInt j = 0; j < data->nclasses; j++)
      if (data->classes[j] == c) {
        c = j;
        break;
      }
    s->labels[k]             = c;
    s->Y[(size_t)k * s->C + c] = 1.0;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Values read from a float file may be NaN or Inf; name the file row of the first one. */
static PetscErrorCode DataCheckFinite(NtkData data, const char file[], const PetscReal v[],
                                      PetscInt width)
{
  PetscInt  n  = data->shard.rend - data->shard.rstart;
  PetscBool ok = PETSC_TRUE;
  char      msg[PETSC_MAX_PATH_LEN + 128] = "";

  PetscFunctionBegin;
  for (size_t k = 0; ok && k < (size_t)n * width; k++) {
    if (!PetscIsInfOrNanReal(v[k])) continue;
    ok = PETSC_FALSE;
    PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s: %s value in sample %" PetscInt_FMT
                            ", entry %" PetscInt_FMT, file,
                            PetscIsNanReal(v[k]) ? "NaN" : "infinite",
                            DataFileRow(data, (PetscInt)(k / width)), (PetscInt)(k % width)));
  }
  PetscCall(NtkCheckAll(data->comm, ok, PETSC_ERR_FP, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscInt DataRowLength(PetscInt ndim, const PetscInt dims[])
{
  PetscInt len = 1;
  for (PetscInt k = 1; k < ndim; k++) len *= dims[k];
  return len;
}

/* IDX pair: labels whole on every rank, then the local image rows, scaled to [0, 1]. */
static PetscErrorCode DataSetUpIDX(NtkData data)
{
  NtkRowSel  all = {0, PETSC_DETERMINE, NULL}, mine;
  PetscReal *lab;
  PetscInt   ndim, dims[4], C, N;
  size_t     nx;

  PetscFunctionBegin;
  PetscCall(DataRead(data, NtkReadIDXRows, data->files[1], &all, &ndim, dims, &lab));
  PetscCheck(ndim == 1, data->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: a label file must have one dimension, this one has %" PetscInt_FMT,
             data->files[1], ndim);
  data->navail = dims[0];
  PetscCall(DataCheckLabels(data, data->files[1], lab, &C));
  PetscCall(DataSelect(data, data->files[1], lab, C, &N));
  PetscCall(DataShard(data, N, &mine));
  PetscCall(DataOneHot(data, lab, C));
  PetscCall(PetscFree(lab));
  PetscCall(DataRead(data, NtkReadIDXRows, data->files[0], &mine, &ndim, dims, &data->shard.X));
  PetscCheck(dims[0] == data->navail, data->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s holds %" PetscInt_FMT " images but %s holds %" PetscInt_FMT " labels",
             data->files[0], dims[0], data->files[1], data->navail);
  data->shard.d = DataRowLength(ndim, dims);
  nx            = (size_t)(data->shard.rend - data->shard.rstart) * data->shard.d;
  for (size_t k = 0; k < nx; k++) data->shard.X[k] /= 255.0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* NPY pair: Y is 1-D class labels (one-hot targets) or 2-D regression targets. */
static PetscErrorCode DataSetUpNPY(NtkData data)
{
  NtkRowSel  none = {0, 0, NULL}, all = {0, PETSC_DETERMINE, NULL}, mine;
  PetscReal *lab = NULL, *tmp;
  PetscInt   xnd, xdims[4], ynd, ydims[4], C = 0, N;

  PetscFunctionBegin;
  PetscCall(DataRead(data, NtkReadNPYRows, data->files[0], &none, &xnd, xdims, &tmp));
  PetscCall(DataRead(data, NtkReadNPYRows, data->files[1], &none, &ynd, ydims, &tmp));
  data->navail = xdims[0];
  PetscCheck(ydims[0] == xdims[0], data->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s holds %" PetscInt_FMT " samples but %s holds %" PetscInt_FMT, data->files[0],
             xdims[0], data->files[1], ydims[0]);
  PetscCheck(ynd <= 2, data->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: targets must be 1-D labels or 2-D [N, C] values, not %" PetscInt_FMT "-D",
             data->files[1], ynd);
  if (ynd == 1) {
    PetscCall(DataRead(data, NtkReadNPYRows, data->files[1], &all, &ynd, ydims, &lab));
    PetscCall(DataCheckLabels(data, data->files[1], lab, &C));
  }
  PetscCall(DataSelect(data, data->files[1], lab, C, &N));
  PetscCall(DataShard(data, N, &mine));
  if (lab) PetscCall(DataOneHot(data, lab, C));
  PetscCall(PetscFree(lab));
  if (ynd == 2) {
    NtkRowSel again = mine;

    PetscCall(DataRead(data, NtkReadNPYRows, data->files[1], &again, &ynd, ydims, &data->shard.Y));
    data->shard.C = ydims[1];
    PetscCall(DataCheckFinite(data, data->files[1], data->shard.Y, data->shard.C));
  }
  PetscCall(DataRead(data, NtkReadNPYRows, data->files[0], &mine, &xnd, xdims, &data->shard.X));
  data->shard.d = DataRowLength(xnd, xdims);
  PetscCall(DataCheckFinite(data, data->files[0], data->shard.X, data->shard.d));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Teacher-student data: x ~ N(0, I_d) with entry (i, j) drawn from stream DATA_STREAM_INPUTS at
  index i*d + j, and targets f*(x) of a tanh MLP d-width-C initialised from the same seed.
*/
static PetscErrorCode DataSetUpTeacher(NtkData data)
{
  NtkDataShard  *s = &data->shard;
  NtkRowSel      mine;
  NtkNet         net;
  NtkNetWork     work;
  const PetscInt widths[3] = {data->teacher_d, data->teacher_width, data->teacher_C};
  PetscInt       n;

  PetscFunctionBegin;
  PetscCheck(!data->nclasses, data->comm, PETSC_ERR_ARG_INCOMP,
             "-ntk_data_classes needs class labels; the teacher source has regression targets");
  data->navail = data->samples == PETSC_DETERMINE ? DATA_TEACHER_SAMPLES : data->samples;
  data->ncand  = data->navail;
  PetscCall(DataShard(data, data->navail, &mine));
  n    = s->rend - s->rstart;
  s->d = data->teacher_d;
  s->C = data->teacher_C;
  PetscCall(PetscMalloc1((size_t)n * s->d, &s->X));
  PetscCall(PetscMalloc1((size_t)n * s->C, &s->Y));
  for (PetscInt k = 0; k < n; k++)
    for (PetscInt j = 0; j < s->d; j++)
      s->X[(size_t)k * s->d + j] =
        NtkRandomNormal(data->seed, DATA_STREAM_INPUTS, (PetscInt64)(s->rstart + k) * s->d + j);

  PetscCall(NtkNetCreate(PETSC_COMM_SELF, &net));
  PetscCall(NtkNetSetWidths(net, 3, widths));
  PetscCall(NtkNetSetActivation(net, NTK_ACT_TANH));
  PetscCall(NtkNetSetSeed(net, data->seed));
  PetscCall(NtkNetSetUp(net));
  /* the workspace is sized by the rows it will hold, not by the batch: few samples of a teacher
     with a million outputs need little memory */
  PetscCall(NtkNetWorkCreate(net, PetscMax(1, PetscMin(DATA_TEACHER_BATCH, n)), &work));
  for (PetscInt k = 0; k < n; k += DATA_TEACHER_BATCH) {
    PetscInt nb = PetscMin(DATA_TEACHER_BATCH, n - k);
    PetscCall(NtkNetForward(net, work, nb, s->X + (size_t)k * s->d, s->Y + (size_t)k * s->C));
  }
  PetscCall(NtkNetWorkDestroy(&work));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode DataDescribe(NtkData data)
{
  char  *p = data->desc, cls[DATA_MAX_LISTED * 8] = "";
  size_t size = sizeof(data->desc), len = 0;

  PetscFunctionBegin;
  if (data->kind == DATA_TEACHER) {
    PetscCall(PetscSNPrintf(p, size, "teacher d=%" PetscInt_FMT " width=%" PetscInt_FMT
                            " C=%" PetscInt_FMT " seed=%" PetscInt_FMT " (%" PetscInt_FMT
                            " samples)", data->teacher_d, data->teacher_width, data->teacher_C,
                            data->seed, data->shard.N));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  for (PetscInt k = 0; k < data->nclasses; k++) {
    PetscCall(PetscSNPrintf(cls + len, sizeof(cls) - len, "%s%" PetscInt_FMT, k ? "," : "classes ",
                            data->classes[k]));
    PetscCall(PetscStrlen(cls, &len));
  }
  if (len) PetscCall(PetscStrlcat(cls, ": ", sizeof(cls)));
  if (data->shard.N == data->ncand)
    PetscCall(PetscSNPrintf(p, size, "%s (%sall %" PetscInt_FMT ")", data->source, cls,
                            data->shard.N));
  else if (data->subset_seed >= 0)
    PetscCall(PetscSNPrintf(p, size, "%s (%srandom %" PetscInt_FMT " of %" PetscInt_FMT
                            ", seed %" PetscInt_FMT ")", data->source, cls, data->shard.N,
                            data->ncand, data->subset_seed));
  else
    PetscCall(PetscSNPrintf(p, size, "%s (%sfirst %" PetscInt_FMT " of %" PetscInt_FMT ")",
                            data->source, cls, data->shard.N, data->ncand));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataSetUp(NtkData data)
{
  PetscFunctionBegin;
  if (data->setup) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(DataResolveSource(data));
  switch (data->kind) {
  case DATA_IDX: PetscCall(DataSetUpIDX(data)); break;
  case DATA_NPY: PetscCall(DataSetUpNPY(data)); break;
  case DATA_TEACHER: PetscCall(DataSetUpTeacher(data)); break;
  }
  PetscCall(DataDescribe(data));
  data->setup = PETSC_TRUE;
  PetscCall(PetscInfo(NULL, "data %s: N %" PetscInt_FMT ", d %" PetscInt_FMT ", C %" PetscInt_FMT
                      ", local rows [%" PetscInt_FMT ", %" PetscInt_FMT ")\n", data->desc,
                      data->shard.N, data->shard.d, data->shard.C, data->shard.rstart,
                      data->shard.rend));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataView(NtkData data, PetscViewer viewer)
{
  PetscBool   ascii;
  PetscInt    n = data->shard.rend - data->shard.rstart, nmin, nmax;
  PetscMPIInt size;

  PetscFunctionBegin;
  if (!viewer) viewer = PETSC_VIEWER_STDOUT_(data->comm);
  PetscCall(PetscObjectTypeCompare((PetscObject)viewer, PETSCVIEWERASCII, &ascii));
  if (!ascii) PetscFunctionReturn(PETSC_SUCCESS);
  if (!data->setup) {
    PetscCall(PetscViewerASCIIPrintf(viewer, "NtkData: source %s (not set up)\n", data->source));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCallMPI(MPI_Comm_size(data->comm, &size));
  PetscCallMPI(MPI_Allreduce(&n, &nmin, 1, MPIU_INT, MPI_MIN, data->comm));
  PetscCallMPI(MPI_Allreduce(&n, &nmax, 1, MPIU_INT, MPI_MAX, data->comm));
  PetscCall(PetscViewerASCIIPrintf(viewer, "NtkData: %s\n", data->desc));
  PetscCall(PetscViewerASCIIPushTab(viewer));
  PetscCall(PetscViewerASCIIPrintf(viewer, "samples N = %" PetscInt_FMT ", input dimension d = %"
                                   PetscInt_FMT ", targets C = %" PetscInt_FMT " (%s)\n",
                                   data->shard.N, data->shard.d, data->shard.C,
                                   data->shard.labels ? "one-hot classes" : "regression"));
  PetscCall(PetscViewerASCIIPrintf(viewer, "%d ranks, %" PetscInt_FMT " to %" PetscInt_FMT
                                   " samples per rank\n", size, nmin, nmax));
  PetscCall(PetscViewerASCIIPopTab(viewer));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetShard(NtkData data, const NtkDataShard **shard)
{
  PetscFunctionBegin;
  PetscCheck(data->setup, data->comm, PETSC_ERR_ORDER, "call NtkDataSetUp before NtkDataGetShard");
  *shard = &data->shard;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataGetDescription(NtkData data, const char *desc[])
{
  PetscFunctionBegin;
  *desc = data->setup ? data->desc : data->source;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkDataDestroy(NtkData *data)
{
  PetscFunctionBegin;
  if (!*data) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscFree((*data)->shard.X));
  PetscCall(PetscFree((*data)->shard.Y));
  PetscCall(PetscFree((*data)->shard.labels));
  PetscCall(PetscFree((*data)->sel));
  PetscCall(PetscFree((*data)->source));
  PetscCall(PetscFree(*data));
  PetscFunctionReturn(PETSC_SUCCESS);
}
