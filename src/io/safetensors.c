/*
  Safetensors model files for dense networks.

  Format (huggingface/safetensors): an 8-byte little-endian u64 header length n, n bytes of JSON
  (an object mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an
  optional "__metadata__" object of strings), then the data section the offsets point into,
  little-endian and row-major. The header may be padded with spaces.

  Layers are named as a PyTorch nn.Sequential state dict names its nn.Linear modules: "<k>.weight"
  [out, in] and "<k>.bias" [out], where k counts activation modules too (0, 2, 4, ...). Layers are
  ordered by k numerically and must chain. The metadata carry "activation" (required),
  "parameterization" (standard by default) and, in files we write, "widths" as a check.

  Method: rank 0 reads and validates the whole file and decodes it into one buffer ordered
  W_1, b_1, W_2, b_2, ...; every rank then learns the outcome, so a bad file fails all ranks
  together, and receives the architecture and values by broadcast. Files are saved as F64.
*/
#include <ntk/io.h>
#include <ntk/sys.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER 100000000 /* the format's own bound on the header length */

typedef struct {
  long      k;            /* nn.Sequential index */
  PetscBool has_w, has_b;
  PetscInt  out, in, bout;
  size_t    wsize, bsize; /* item sizes: 4 (F32) or 8 (F64) */
  size_t    woff, boff;   /* offsets in the data section */
} STLayer;

typedef struct {
  size_t begin, end;
} STRange;

typedef struct {
  PetscInt   nl, *widths;  /* nl layers, nl + 1 widths */
  PetscInt   act, par;
  PetscInt   P;
  PetscReal *theta;        /* W_1, b_1, W_2, b_2, ... */
} STModel;

static uint64_t STGetU64(const unsigned char *b)
{
  uint64_t u = 0;
  for (int k = 7; k >= 0; k--) u = (u << 8) | b[k];
  return u;
}

static void STPutU64(unsigned char *b, uint64_t u)
{
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)(u >> (8 * k));
}

static PetscReal STGetValue(const unsigned char *b, size_t isize)
{
  uint64_t u = 0;

  for (int k = (int)isize - 1; k >= 0; k--) u = (u << 8) | b[k];
  if (isize == 4) {
    uint32_t u32 = (uint32_t)u;
    float    f;
    memcpy(&f, &u32, sizeof(f));
    return (PetscReal)f;
  } else {
    double d;
    memcpy(&d, &u, sizeof(d));
    return (PetscReal)d;
  }
}

static PetscErrorCode STReadFile(const char file[], unsigned char **buf, size_t *size)
{
  FILE       *fp = fopen(file, "rb");
  struct stat st;
  size_t      got;

  PetscFunctionBegin;
  PetscCheck(fp, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "%s: cannot open: %s", file,
             strerror(errno));
  if (fstat(fileno(fp), &st)) {
    (void)fclose(fp);
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "%s: %s", file, strerror(errno));
  }
  *size = (size_t)st.st_size;
  PetscCall(PetscMalloc1(*size + 1, buf));
  got = fread(*buf, 1, *size, fp);
  (void)fclose(fp);
  if (got != *size) PetscCall(PetscFree(*buf));
  PetscCheck(got == *size, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "%s: read %zu of %zu bytes", file,
             got, *size);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* "<k>.weight" or "<k>.bias" -> k and which; anything else is not a dense layer tensor. */
static PetscErrorCode STParseName(const char file[], const char *name, long *k, PetscBool *weight)
{
  char *end;

  PetscFunctionBegin;
  errno = 0;
  *k    = strtol(name, &end, 10);
  PetscCheck(end != name && name[0] >= '0' && name[0] <= '9' && !errno && *end == '.' &&
               (!strcmp(end, ".weight") || !strcmp(end, ".bias")),
             PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: tensor '%s' is not a dense layer (expected names <k>.weight and <k>.bias)", file,
             name);
  *weight = !strcmp(end, ".weight") ? PETSC_TRUE : PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* One tensor entry: dtype, shape of the expected rank, offsets agreeing with dtype x shape. */
static PetscErrorCode STParseTensor(const char file[], const char *name, json_object *t,
                                    size_t datasize, int rank, PetscInt shape[2], size_t *isize,
                                    STRange *range)
{
  json_object *dt, *sh, *off;
  const char  *dtype;
  size_t       n = 1, bytes;

  PetscFunctionBegin;
  PetscCheck(json_object_is_type(t, json_type_object) &&
               json_object_object_get_ex(t, "dtype", &dt) &&
               json_object_object_get_ex(t, "shape", &sh) &&
               json_object_object_get_ex(t, "data_offsets", &off) &&
               json_object_is_type(dt, json_type_string) &&
               json_object_is_type(sh, json_type_array) &&
               json_object_is_type(off, json_type_array) && json_object_array_length(off) == 2,
             PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: tensor '%s' needs a dtype string, a shape list and two data_offsets", file, name);
  dtype = json_object_get_string(dt);
  if (!strcmp(dtype, "F32")) *isize = 4;
  else if (!strcmp(dtype, "F64")) *isize = 8;
  else SETERRQ(PETSC_COMM_SELF, PETSC_ERR_SUP,
               "%s: tensor '%s' has dtype %s; only F32 and F64 are supported", file, name, dtype);
  PetscCheck((int)json_object_array_length(sh) == rank, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: tensor '%s' has %d dimensions, expected %d", file, name,
             (int)json_object_array_length(sh), rank);
  for (int k = 0; k < rank; k++) {
    json_object *v = json_object_array_get_idx(sh, (size_t)k);
    int64_t      e = json_object_get_int64(v);
    PetscCheck(json_object_is_type(v, json_type_int) && e > 0 && e <= PETSC_MAX_INT &&
                 !__builtin_mul_overflow(n, (size_t)e, &n) && n <= (size_t)PETSC_MAX_INT,
               PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: tensor '%s': shape entry %d (%s) is not positive or the size overflows", file,
               name, k, json_object_to_json_string(v));
    shape[k] = (PetscInt)e;
  }
  for (int k = 0; k < 2; k++) {
    json_object *v = json_object_array_get_idx(off, (size_t)k);
    PetscCheck(json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0,
               PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s: tensor '%s': bad data_offsets",
               file, name);
  }
  range->begin = (size_t)json_object_get_int64(json_object_array_get_idx(off, 0));
  range->end   = (size_t)json_object_get_int64(json_object_array_get_idx(off, 1));
  PetscCheck(range->begin <= range->end && range->end <= datasize, PETSC_COMM_SELF,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: tensor '%s': data_offsets [%zu, %zu] lie outside the %zu-byte data section%s",
             file, name, range->begin, range->end, datasize,
             range->begin <= range->end ? " (the file is truncated or its header is wrong)" : "");
  bytes = n * *isize;
  PetscCheck(range->end - range->begin == bytes, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: tensor '%s': data_offsets span %zu bytes but %s x shape needs %zu", file, name,
             range->end - range->begin, dtype, bytes);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static int STCompareLayer(const void *a, const void *b)
{
  long ka = ((const STLayer *)a)->k, kb = ((const STLayer *)b)->k;
  return (ka > kb) - (ka < kb);
}

static int STCompareRange(const void *a, const void *b)
{
  size_t x = ((const STRange *)a)->begin, y = ((const STRange *)b)->begin;
  return (x > y) - (x < y);
}

/* Find or add the layer with index k. */
static STLayer *STLayerFor(STLayer *layers, PetscInt *nl, long k)
{
  for (PetscInt l = 0; l < *nl; l++)
    if (layers[l].k == k) return &layers[l];
  memset(&layers[*nl], 0, sizeof(STLayer));
  layers[*nl].k = k;
  return &layers[(*nl)++];
}

/* Index of `name` in a PETSc enum name list of n entries, or -1. */
static PetscInt STLookup(const char *const list[], PetscInt n, const char *name)
{
  for (PetscInt k = 0; k < n; k++)
    if (!strcmp(list[k], name)) return k;
  return -1;
}

static PetscErrorCode STParseMetadata(const char file[], json_object *meta, STModel *m)
{
  json_object *v;
  const char  *s;
  char         names[128] = "";

  PetscFunctionBegin;
  PetscCheck(meta && json_object_is_type(meta, json_type_object), PETSC_COMM_SELF,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: no __metadata__ object; the activation must be given there", file);
  PetscCheck(json_object_object_get_ex(meta, "activation", &v) &&
               json_object_is_type(v, json_type_string),
             PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: __metadata__ lacks the string key 'activation'", file);
  s      = json_object_get_string(v);
  m->act = STLookup(NtkActivations, NTK_ACT_SIGMOID + 1, s);
  for (PetscInt k = 0; k <= NTK_ACT_SIGMOID; k++) {
    PetscCall(PetscStrlcat(names, k ? ", " : "", sizeof(names)));
    PetscCall(PetscStrlcat(names, NtkActivations[k], sizeof(names)));
  }
  PetscCheck(m->act >= 0, PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: activation '%s' is not supported (use one of %s)", file, s, names);
  m->par = NTK_PARAM_STANDARD;
  if (json_object_object_get_ex(meta, "parameterization", &v)) {
    PetscCheck(json_object_is_type(v, json_type_string), PETSC_COMM_SELF,
               PETSC_ERR_FILE_UNEXPECTED, "%s: __metadata__ 'parameterization' must be a string",
               file);
    s      = json_object_get_string(v);
    m->par = STLookup(NtkParameterizations, NTK_PARAM_NTK + 1, s);
    PetscCheck(m->par >= 0, PETSC_COMM_SELF, PETSC_ERR_SUP,
               "%s: parameterization '%s' is not supported (use standard or ntk)", file, s);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Layers sorted by k, complete, chaining, and agreeing with the optional "widths" metadata. */
static PetscErrorCode STCheckLayers(const char file[], STLayer *layers, PetscInt nl,
                                    json_object *meta, STModel *m)
{
  json_object *v;

  PetscFunctionBegin;
  PetscCheck(nl > 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s: no tensors", file);
  qsort(layers, (size_t)nl, sizeof(STLayer), STCompareLayer);
  PetscCall(PetscMalloc1(nl + 1, &m->widths));
  m->nl = nl;
  m->P  = 0;
  for (PetscInt l = 0; l < nl; l++) {
    STLayer *L = &layers[l];
    PetscCheck(L->has_w && L->has_b, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: layer %ld has a %s but no %s", file, L->k, L->has_w ? "weight" : "bias",
               L->has_w ? "bias" : "weight");
    PetscCheck(L->bout == L->out, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: %ld.bias has %" PetscInt_FMT " entries but %ld.weight has %" PetscInt_FMT
               " rows", file, L->k, L->bout, L->k, L->out);
    PetscCheck(l == 0 || L->in == layers[l - 1].out, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: layers do not chain: %ld.weight has %" PetscInt_FMT " outputs but %ld.weight"
               " takes %" PetscInt_FMT " inputs", file, l ? layers[l - 1].k : 0L,
               l ? layers[l - 1].out : 0, L->k, L->in);
    if (l == 0) m->widths[0] = L->in;
    m->widths[l + 1] = L->out;
    PetscCheck(!__builtin_add_overflow(m->P, L->out * L->in, &m->P) &&
                 !__builtin_add_overflow(m->P, L->out, &m->P),
               PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s: parameter count overflows", file);
  }
  if (json_object_object_get_ex(meta, "widths", &v)) {
    const char *s = json_object_get_string(v), *p = s;
    PetscInt    k = 0;
    char       *end;

    PetscCheck(json_object_is_type(v, json_type_string), PETSC_COMM_SELF,
               PETSC_ERR_FILE_UNEXPECTED, "%s: __metadata__ 'widths' must be a string", file);
    for (; k <= nl; k++, p = *end == ',' ? end + 1 : end) {
      if (strtol(p, &end, 10) != m->widths[k] || end == p) break;
    }
    PetscCheck(k == nl + 1 && *p == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: metadata widths '%s' disagree with the tensor shapes", file, s);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Every tensor of the header: validate, then check that no two byte ranges overlap. */
static PetscErrorCode STParseRanges(const char file[], json_object *root, size_t datasize,
                                    STLayer *layers, PetscInt *nl, STRange *ranges)
{
  PetscInt nr = 0;

  PetscFunctionBegin;
  *nl = 0;
  json_object_object_foreach(root, name, t)
  {
    STLayer  *L;
    long      k;
    PetscBool weight;
    PetscInt  shape[2];

    if (!strcmp(name, "__metadata__")) continue;
    PetscCall(STParseName(file, name, &k, &weight));
    L = STLayerFor(layers, nl, k);
    PetscCheck(weight ? !L->has_w : !L->has_b, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: tensor '%s' appears twice", file, name);
    if (weight) {
      PetscCall(STParseTensor(file, name, t, datasize, 2, shape, &L->wsize, &ranges[nr]));
      L->out   = shape[0];
      L->in    = shape[1];
      L->woff  = ranges[nr++].begin;
      L->has_w = PETSC_TRUE;
    } else {
      PetscCall(STParseTensor(file, name, t, datasize, 1, shape, &L->bsize, &ranges[nr]));
      L->bout  = shape[0];
      L->boff  = ranges[nr++].begin;
      L->has_b = PETSC_TRUE;
    }
  }
  qsort(ranges, (size_t)nr, sizeof(STRange), STCompareRange);
  for (PetscInt r = 1; r < nr; r++)
    PetscCheck(ranges[r].begin >= ranges[r - 1].end, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: tensor data ranges [%zu, %zu) and [%zu, %zu) overlap", file,
               ranges[r - 1].begin, ranges[r - 1].end, ranges[r].begin, ranges[r].end);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The range table is released on every path, then the error is passed on. */
static PetscErrorCode STParseTensors(const char file[], json_object *root, size_t datasize,
                                     STLayer *layers, PetscInt *nl)
{
  STRange       *ranges;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(json_object_object_length(root) + 1, &ranges));
  ierr = STParseRanges(file, root, datasize, layers, nl, ranges);
  PetscCall(PetscFree(ranges));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Values of one tensor; NaN or Inf is refused here, where the tensor can still be named. */
static PetscErrorCode STDecodeTensor(const char file[], const unsigned char *src, size_t n,
                                     size_t isize, long k, const char *which, PetscReal *dst)
{
  PetscFunctionBegin;
  for (size_t i = 0; i < n; i++) {
    dst[i] = STGetValue(src + i * isize, isize);
    PetscCheck(!PetscIsInfOrNanReal(dst[i]), PETSC_COMM_SELF, PETSC_ERR_FP,
               "%s: tensor '%ld.%s' entry %zu is %s", file, k, which, i,
               PetscIsNanReal(dst[i]) ? "NaN" : "infinite");
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode STDecode(const char file[], const unsigned char *data,
                               const STLayer *layers, STModel *m)
{
  PetscReal *p;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(m->P, &m->theta));
  p = m->theta;
  for (PetscInt l = 0; l < m->nl; l++) {
    const STLayer *L = &layers[l];
    size_t         n = (size_t)L->out * L->in;

    PetscCall(STDecodeTensor(file, data + L->woff, n, L->wsize, L->k, "weight", p));
    PetscCall(STDecodeTensor(file, data + L->boff, (size_t)L->out, L->bsize, L->k, "bias", p + n));
    p += n + L->out;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Header JSON: one object, optionally padded with spaces, nothing else. */
static PetscErrorCode STParseHeader(const char file[], const char *text, size_t hlen,
                                    json_object **root)
{
  json_tokener *tok = json_tokener_new();
  size_t        end;

  PetscFunctionBegin;
  PetscCheck(tok, PETSC_COMM_SELF, PETSC_ERR_MEM, "json_tokener_new failed");
  *root = json_tokener_parse_ex(tok, text, (int)hlen);
  end   = json_tokener_get_parse_end(tok);
  if (json_tokener_get_error(tok) != json_tokener_success || !*root) {
    enum json_tokener_error e   = json_tokener_get_error(tok);
    const char             *why = e == json_tokener_continue ? "it ends early"
                                                             : json_tokener_error_desc(e);
    json_tokener_free(tok);
    json_object_put(*root);
    *root = NULL;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s: the safetensors header is not valid "
            "JSON (%s at byte %zu of %zu)", file, why, end, hlen);
  }
  json_tokener_free(tok);
  while (end < hlen && text[end] == ' ') end++;
  PetscCheck(json_object_is_type(*root, json_type_object) && end == hlen, PETSC_COMM_SELF,
             PETSC_ERR_FILE_UNEXPECTED, "%s: the safetensors header must be one JSON object%s",
             file, end == hlen ? "" : " followed only by spaces");
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Validate the header of the file held in buf and decode its tensors into m. */
static PetscErrorCode STLoadBuffer(const char file[], const unsigned char *buf, size_t size,
                                   json_object **root, STLayer **layers, STModel *m)
{
  json_object *meta = NULL;
  uint64_t     hlen;
  PetscInt     nl = 0;

  PetscFunctionBegin;
  PetscCheck(size >= 8, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file truncated: %zu bytes, too short for a safetensors header", file, size);
  hlen = STGetU64(buf);
  PetscCheck(hlen <= size - 8, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: header length %llu exceeds the file size %zu", file, (unsigned long long)hlen,
             size);
  PetscCheck(hlen <= ST_MAX_HEADER, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: header length %llu exceeds the safetensors limit of %d bytes", file,
             (unsigned long long)hlen, ST_MAX_HEADER);
  PetscCall(STParseHeader(file, (const char *)buf + 8, (size_t)hlen, root));
  (void)json_object_object_get_ex(*root, "__metadata__", &meta);
  PetscCall(PetscMalloc1(json_object_object_length(*root) + 1, layers));
  PetscCall(STParseTensors(file, *root, size - 8 - hlen, *layers, &nl));
  PetscCall(STParseMetadata(file, meta, m));
  PetscCall(STCheckLayers(file, *layers, nl, meta, m));
  PetscCall(STDecode(file, buf + 8 + hlen, *layers, m));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Rank 0: the whole file, validated and decoded into m; buffers are released on every path. */
static PetscErrorCode STLoadRoot(const char file[], STModel *m)
{
  unsigned char *buf    = NULL;
  json_object   *root   = NULL;
  STLayer       *layers = NULL;
  size_t         size;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(STReadFile(file, &buf, &size));
  ierr = STLoadBuffer(file, buf, size, &root, &layers, m);
  PetscCall(PetscFree(layers));
  json_object_put(root);
  PetscCall(PetscFree(buf));
  if (ierr) PetscCall(PetscFree(m->widths));
  if (ierr) PetscCall(PetscFree(m->theta));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Run fn on rank 0 only and make every rank of comm fail if it failed. */
static PetscErrorCode STOnRoot(MPI_Comm comm, PetscErrorCode (*fn)(void *), void *ctx)
{
  PetscMPIInt    rank;
  PetscErrorCode ierr = PETSC_SUCCESS;
  int            code;
  char          *msg  = NULL;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
    ierr = fn(ctx);
    PetscCall(PetscPopErrorHandler());
    if (ierr) PetscCall(PetscErrorMessage(ierr, NULL, &msg));
  }
  /* NtkCheckAll shares the message only, so rank 0's error code is sent along first */
  code = (int)ierr;
  PetscCallMPI(MPI_Bcast(&code, 1, MPI_INT, 0, comm));
  PetscCall(NtkCheckAll(comm, ierr ? PETSC_FALSE : PETSC_TRUE, code, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

typedef struct {
  NtkNet      net;
  const char *file;
  STModel     m;
} STContext;

static PetscErrorCode STLoadRootCtx(void *ctx)
{
  STContext *c = (STContext *)ctx;
  return STLoadRoot(c->file, &c->m);
}

/* Copy the decoded values into the network's parameter Vec through its layer table. */
static PetscErrorCode STScatter(NtkNet net, const STModel *m)
{
  Vec                params;
  PetscScalar       *theta;
  const PetscReal   *p = m->theta;
  PetscInt           P;

  PetscFunctionBegin;
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCheck(P == m->P, PETSC_COMM_SELF, PETSC_ERR_PLIB, "network has %" PetscInt_FMT
             " parameters, the file %" PetscInt_FMT, P, m->P);
  PetscCall(NtkNetGetParameters(net, &params));
  PetscCall(VecGetArray(params, &theta));
  for (PetscInt l = 0; l < m->nl; l++) {
    const NtkLayer *L;
    PetscCall(NtkNetGetLayer(net, l + 1, &L));
    PetscCall(PetscArraycpy(theta + L->woff, p, (size_t)L->out * L->in));
    p += (size_t)L->out * L->in;
    PetscCall(PetscArraycpy(theta + L->boff, p, L->out));
    p += L->out;
  }
  PetscCall(VecRestoreArray(params, &theta));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetLoadSafetensors(NtkNet net, const char file[])
{
  MPI_Comm    comm;
  STContext   c = {net, file, {0}};
  PetscInt    head[4];
  PetscMPIInt rank, count;

  PetscFunctionBegin;
  PetscCall(NtkNetGetComm(net, &comm));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(STOnRoot(comm, STLoadRootCtx, &c));

  /* architecture, then values, from rank 0 */
  head[0] = c.m.nl, head[1] = c.m.act, head[2] = c.m.par, head[3] = c.m.P;
  PetscCallMPI(MPI_Bcast(head, 4, MPIU_INT, 0, comm));
  if (rank) {
    c.m.nl = head[0], c.m.act = head[1], c.m.par = head[2], c.m.P = head[3];
    PetscCall(PetscMalloc1(c.m.nl + 1, &c.m.widths));
    PetscCall(PetscMalloc1(c.m.P, &c.m.theta));
  }
  PetscCall(PetscMPIIntCast(c.m.nl + 1, &count));
  PetscCallMPI(MPI_Bcast(c.m.widths, count, MPIU_INT, 0, comm));
  PetscCall(PetscMPIIntCast(c.m.P, &count));
  PetscCallMPI(MPI_Bcast(c.m.theta, count, MPIU_REAL, 0, comm));

  PetscCall(NtkNetSetWidths(net, c.m.nl + 1, c.m.widths));
  PetscCall(NtkNetSetActivation(net, (NtkActivation)c.m.act));
  PetscCall(NtkNetSetParameterization(net, (NtkParameterization)c.m.par));
  PetscCall(NtkNetSetUp(net));
  PetscCall(STScatter(net, &c.m));
  PetscCall(PetscFree(c.m.widths));
  PetscCall(PetscFree(c.m.theta));
  PetscCall(NtkNetCheckFinite(net));
  PetscCall(PetscInfo(NULL, "loaded %s: %" PetscInt_FMT " layers, %" PetscInt_FMT " parameters\n",
                      file, c.m.nl, c.m.P));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The JSON header: F64 tensors at consecutive offsets, named 2l.weight and 2l.bias. */
static PetscErrorCode STHeader(NtkNet net, json_object **root)
{
  PetscInt            nw, nl;
  const PetscInt     *w;
  NtkActivation       act;
  NtkParameterization par;
  json_object        *meta = json_object_new_object();
  char                widths[1024] = "", name[64];
  size_t              off = 0, len;

  PetscFunctionBegin;
  PetscCall(NtkNetGetWidths(net, &nw, &w));
  PetscCall(NtkNetGetActivation(net, &act));
  PetscCall(NtkNetGetParameterization(net, &par));
  nl    = nw - 1;
  *root = json_object_new_object();
  for (PetscInt k = 0; k < nw; k++) {
    PetscCall(PetscStrlen(widths, &len));
    PetscCall(PetscSNPrintf(widths + len, sizeof(widths) - len, "%s%" PetscInt_FMT, k ? "," : "",
                            w[k]));
  }
  json_object_object_add(meta, "format", json_object_new_string("pt"));
  json_object_object_add(meta, "activation", json_object_new_string(NtkActivations[act]));
  json_object_object_add(meta, "parameterization",
                         json_object_new_string(NtkParameterizations[par]));
  json_object_object_add(meta, "widths", json_object_new_string(widths));
  json_object_object_add(*root, "__metadata__", meta);
  for (PetscInt l = 0; l < nl; l++) {
    for (int b = 0; b < 2; b++) {
      json_object *t = json_object_new_object(), *shape = json_object_new_array();
      json_object *range = json_object_new_array();
      size_t       n     = b ? (size_t)w[l + 1] : (size_t)w[l + 1] * w[l];

      json_object_array_add(shape, json_object_new_int64(w[l + 1]));
      if (!b) json_object_array_add(shape, json_object_new_int64(w[l]));
      json_object_array_add(range, json_object_new_int64((int64_t)off));
      json_object_array_add(range, json_object_new_int64((int64_t)(off + 8 * n)));
      off += 8 * n;
      json_object_object_add(t, "dtype", json_object_new_string("F64"));
      json_object_object_add(t, "shape", shape);
      json_object_object_add(t, "data_offsets", range);
      PetscCall(PetscSNPrintf(name, sizeof(name), "%" PetscInt_FMT ".%s", 2 * l,
                              b ? "bias" : "weight"));
      json_object_object_add(*root, name, t);
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Rank 0: header padded with spaces to a multiple of 8 bytes so the data stay aligned. */
static PetscErrorCode STSaveRoot(void *ctx)
{
  STContext         *c = (STContext *)ctx;
  json_object       *root = NULL;
  const char        *text;
  size_t             hlen, tlen, size;
  unsigned char     *buf, *p;
  Vec                params;
  const PetscScalar *theta;
  PetscInt           nl, P;
  PetscErrorCode     ierr;

  PetscFunctionBegin;
  PetscCall(STHeader(c->net, &root));
  text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  tlen = strlen(text);
  hlen = (tlen + 7) / 8 * 8;
  PetscCall(NtkNetGetNumLayers(c->net, &nl));
  PetscCall(NtkNetGetNumParameters(c->net, &P));
  size = 8 + hlen + 8 * (size_t)P;
  PetscCall(PetscMalloc1(size, &buf));
  STPutU64(buf, hlen);
  memcpy(buf + 8, text, tlen);
  memset(buf + 8 + tlen, ' ', hlen - tlen);
  json_object_put(root);
  p = buf + 8 + hlen;
  PetscCall(NtkNetGetParameters(c->net, &params));
  PetscCall(VecGetArrayRead(params, &theta));
  for (PetscInt l = 0; l < nl; l++) {
    const NtkLayer *L;
    uint64_t        u;
    PetscInt        nw;

    PetscCall(NtkNetGetLayer(c->net, l + 1, &L));
    nw = L->out * L->in;
    for (PetscInt i = 0; i < nw + L->out; i++, p += 8) {
      double v = (double)(i < nw ? theta[L->woff + i] : theta[L->boff + i - nw]);
      memcpy(&u, &v, sizeof(u));
      STPutU64(p, u);
    }
  }
  PetscCall(VecRestoreArrayRead(params, &theta));
  ierr = NtkWriteFileAtomic(c->file, buf, size);
  PetscCall(PetscFree(buf));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSaveSafetensors(NtkNet net, const char file[])
{
  MPI_Comm  comm;
  STContext c = {net, file, {0}};

  PetscFunctionBegin;
  PetscCall(NtkNetGetComm(net, &comm));
  PetscCall(STOnRoot(comm, STSaveRoot, &c));
  PetscFunctionReturn(PETSC_SUCCESS);
}
