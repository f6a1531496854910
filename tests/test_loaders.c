/*
  Loader tests: every reader accepts well-formed files and returns their exact values, and refuses
  each kind of malformed file (wrong magic, unsupported type, truncated or overlong data, headers
  whose sizes lie, dimension products that overflow) with an error naming the file. The files are
  generated here, into a fresh temporary folder, so the test needs no fixtures. Runs on any number
  of ranks: rank 0 writes the files, every rank reads them, collective loaders must fail on all
  ranks together.
*/
#include <ntk/data.h>
#include <ntk/io.h>
#include <ntk/net.h>
#include <ntk/sys.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char help[] = "Tests the IDX, NPY and safetensors readers, NtkData and JSON output.\n";

static char        dir[PETSC_MAX_PATH_LEN / 2];
static PetscInt    nfail = 0, npass = 0;
static PetscMPIInt rank;
static PetscBool   verbose = PETSC_FALSE; /* -verbose: print every caught error message */

static PetscErrorCode Report(PetscBool ok, const char what[], const char detail[])
{
  PetscFunctionBegin;
  if (ok)
    npass++;
  else {
    nfail++;
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "[%d] FAIL %s%s%s\n", rank, what, detail ? ": " : "",
                          detail ? detail : ""));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* An error must have the expected code and a message that names the file. */
static PetscErrorCode CheckFailure(const char what[], PetscErrorCode ierr, PetscErrorCode code,
                                   const char file[])
{
  char *msg = NULL, detail[1200];

  PetscFunctionBegin;
  if (ierr) PetscCall(PetscErrorMessage(ierr, NULL, &msg));
  PetscCall(PetscSNPrintf(detail, sizeof(detail), "error %d (expected %d), message \"%s\"",
                          (int)ierr, (int)code, msg ? msg : ""));
  if (verbose && !rank) PetscCall(PetscPrintf(PETSC_COMM_SELF, "caught: %s\n", msg ? msg : ""));
  PetscCall(
    Report(ierr && (!code || ierr == code) && (!file || (msg && strstr(msg, file))), what, detail));
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define EXPECT_FAIL(code, file, call)                                \
  do {                                                               \
    PetscErrorCode e_;                                               \
    PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL)); \
    e_ = (call);                                                     \
    PetscCall(PetscPopErrorHandler());                               \
    PetscCall(CheckFailure(#call, e_, code, file));                  \
  } while (0)

static void Path(char out[], const char name[])
{
  (void)snprintf(out, PETSC_MAX_PATH_LEN, "%s/%s", dir, name);
}

/* Files are written by rank 0 only; callers synchronise before reading. */
static PetscErrorCode WriteFile(const char name[], const void *a, size_t na, const void *b,
                                size_t nb, PetscBool gz)
{
  char path[PETSC_MAX_PATH_LEN];

  PetscFunctionBegin;
  if (rank) PetscFunctionReturn(PETSC_SUCCESS);
  Path(path, name);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    PetscCheck(f, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create %s", path);
    PetscCheck(gzwrite(f, a, (unsigned)na) == (int)na, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "%s",
               path);
    if (nb)
      PetscCheck(gzwrite(f, b, (unsigned)nb) == (int)nb, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE,
                 "%s", path);
    PetscCheck(gzclose(f) == Z_OK, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "%s", path);
  } else {
    FILE *f = fopen(path, "wb");
    PetscCheck(f, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create %s", path);
    PetscCheck(fwrite(a, 1, na, f) == na && (!nb || fwrite(b, 1, nb, f) == nb), PETSC_COMM_SELF,
               PETSC_ERR_FILE_WRITE, "%s", path);
    PetscCheck(fclose(f) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "%s", path);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* IDX header: 00 00 type ndim, then big-endian u32 dimensions. */
static size_t IDXHeader(unsigned char *h, int type, int ndim, const uint32_t dims[])
{
  h[0] = 0, h[1] = 0, h[2] = (unsigned char)type, h[3] = (unsigned char)ndim;
  for (int k = 0; k < ndim; k++)
    for (int b = 0; b < 4; b++)
      h[4 + 4 * k + b] = (unsigned char)(dims[k] >> (24 - 8 * b));
  return 4 + 4 * (size_t)ndim;
}

/* .npy: magic, version, header length, dict padded with spaces to a multiple of 64, newline. */
static PetscErrorCode WriteNPY(const char name[], int major, const char dict[], const void *data,
                               size_t n)
{
  unsigned char buf[512];
  size_t pre = major == 1 ? 10 : 12, len = strlen(dict), total = (pre + len + 1 + 63) / 64 * 64;
  size_t hlen = total - pre;

  PetscFunctionBegin;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major, buf[7] = 0;
  for (size_t b = 0; b < pre - 8; b++)
    buf[8 + b] = (unsigned char)(hlen >> (8 * b));
  memset(buf + pre, ' ', hlen);
  memcpy(buf + pre, dict, len);
  buf[total - 1] = '\n';
  PetscCall(WriteFile(name, buf, total, data, n, PETSC_FALSE));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode Sync(void)
{
  PetscFunctionBegin;
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* IDX files (raw and gzip) read back exactly, whole and by row range. */
static PetscErrorCode TestIDXValid(void)
{
  const uint32_t dims[3] = {5, 3, 2};
  unsigned char  h[16], pay[30];
  size_t         nh       = IDXHeader(h, 0x08, 3, dims);
  const char    *names[2] = {"ok-raw.idx", "ok.idx.gz"};

  PetscFunctionBegin;
  for (int i = 0; i < 30; i++)
    pay[i] = (unsigned char)(i * 37 % 256);
  PetscCall(WriteFile(names[0], h, nh, pay, 30, PETSC_FALSE));
  PetscCall(WriteFile(names[1], h, nh, pay, 30, PETSC_TRUE));
  PetscCall(Sync());
  for (int f = 0; f < 2; f++) {
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, d[4];
    PetscReal *v;
    PetscBool  ok;

    Path(path, names[f]);
    PetscCall(NtkReadIDX(path, &nd, d, 0, PETSC_DETERMINE, &v));
    ok = nd == 3 && d[0] == 5 && d[1] == 3 && d[2] == 2 && d[3] == 0;
    for (int i = 0; ok && i < 30; i++)
      ok = v[i] == pay[i];
    PetscCall(Report(ok, "IDX whole file", names[f]));
    PetscCall(PetscFree(v));
    PetscCall(NtkReadIDX(path, &nd, d, 2, 2, &v));
    ok = PETSC_TRUE;
    for (int i = 0; i < 12; i++)
      ok = ok && v[i] == pay[12 + i];
    PetscCall(Report(ok, "IDX rows 2..3", names[f]));
    PetscCall(PetscFree(v));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Each malformed IDX file is refused with the right error code and a message naming it. */
static PetscErrorCode TestIDXMalformed(void)
{
  const uint32_t ok3[3] = {4, 2, 2}, zero[2] = {3, 0}, big[3] = {65536, 65536, 2};
  const uint32_t huge[5] = {4000000000u, 4000000000u, 4000000000u, 4000000000u, 4000000000u};
  unsigned char  h[24], pay[16] = {0};
  size_t         nh;
  struct {
    const char    *name;
    PetscErrorCode code;
  } cases[] = {
    {"bad-magic.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"float-type.idx", PETSC_ERR_SUP},
    {"zero-ndim.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"five-ndim.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"zero-dim.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"overflow.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"overflow4.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"truncated.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"truncated.idx.gz", PETSC_ERR_FILE_UNEXPECTED},
    {"overlong.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"overlong.idx.gz", PETSC_ERR_FILE_UNEXPECTED},
    {"short-header.idx", PETSC_ERR_FILE_UNEXPECTED},
    {"missing.idx", PETSC_ERR_FILE_OPEN},
  };

  PetscFunctionBegin;
  nh   = IDXHeader(h, 0x08, 3, ok3);
  h[0] = 1;
  PetscCall(WriteFile("bad-magic.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x0D, 3, ok3);
  PetscCall(WriteFile("float-type.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 0, ok3);
  PetscCall(WriteFile("zero-ndim.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 5, huge);
  PetscCall(WriteFile("five-ndim.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 2, zero);
  PetscCall(WriteFile("zero-dim.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 3, big);
  PetscCall(WriteFile("overflow.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 4, huge);
  PetscCall(WriteFile("overflow4.idx", h, nh, pay, 16, PETSC_FALSE));
  nh = IDXHeader(h, 0x08, 3, ok3);
  PetscCall(WriteFile("truncated.idx", h, nh, pay, 15, PETSC_FALSE));
  PetscCall(WriteFile("truncated.idx.gz", h, nh, pay, 9, PETSC_TRUE));
  PetscCall(WriteFile("overlong.idx", h, nh, pay, 16, PETSC_FALSE));
  PetscCall(WriteFile("short-header.idx", h, 9, NULL, 0, PETSC_FALSE));
  if (!rank) { /* one byte more than the header describes */
    char   path[PETSC_MAX_PATH_LEN];
    gzFile f;
    Path(path, "overlong.idx.gz");
    f = gzopen(path, "wb");
    (void)gzwrite(f, h, (unsigned)nh), (void)gzwrite(f, pay, 16), (void)gzwrite(f, pay, 1);
    (void)gzclose(f);
    Path(path, "overlong.idx");
    FILE *g = fopen(path, "ab");
    (void)fputc(0, g), (void)fclose(g);
  }
  PetscCall(Sync());
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, d[4];
    PetscReal *v = NULL;

    Path(path, cases[c].name);
    EXPECT_FAIL(cases[c].code, cases[c].name, NtkReadIDX(path, &nd, d, 0, PETSC_DETERMINE, &v));
    PetscCall(Report(v == NULL, "no buffer left after a failed read", cases[c].name));
  }
  {
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, d[4];
    PetscReal *v;

    Path(path, "ok-raw.idx");
    EXPECT_FAIL(PETSC_ERR_ARG_OUTOFRANGE, "ok-raw.idx", NtkReadIDX(path, &nd, d, 4, 2, &v));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* .npy files of each supported dtype and header version read back exactly. */
static PetscErrorCode TestNPYValid(void)
{
  float         f4[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.5f, 2.0f};
  double        f8[6] = {0.1, -2.0, 1.0 / 3.0, 1e300, -1e-300, 6.0};
  unsigned char u1[4] = {0, 9, 200, 255};
  int64_t       i8[3] = {3, -1, 1234567890123LL};
  struct {
    const char *name;
    PetscInt    nd, d0, d1;
    double      first, last;
  } cases[] = {
    {"f4.npy", 2, 3, 2, 0.5, 2.0},    {"f8-v2.npy", 2, 2, 3, 0.1, 6.0},
    {"u1.npy", 1, 4, 0, 0, 255},      {"i8.npy", 1, 3, 0, 3, 1234567890123.0},
    {"f4-dq.npy", 2, 3, 2, 0.5, 2.0},
  };

  PetscFunctionBegin;
  PetscCall(WriteNPY("f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4,
                     sizeof(f4)));
  PetscCall(WriteNPY("f8-v2.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
                     f8, sizeof(f8)));
  PetscCall(WriteNPY("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", u1,
                     sizeof(u1)));
  PetscCall(WriteNPY("i8.npy", 3, "{'shape': (3,), 'fortran_order': False, 'descr': '<i8'}", i8,
                     sizeof(i8)));
  PetscCall(WriteNPY("f4-dq.npy", 1, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(3,2)}",
                     f4, sizeof(f4)));
  PetscCall(Sync());
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, d[4], n;
    PetscReal *v;

    Path(path, cases[c].name);
    PetscCall(NtkReadNPY(path, &nd, d, 0, PETSC_DETERMINE, &v));
    n = d[0] * (nd > 1 ? d[1] : 1);
    PetscCall(Report(nd == cases[c].nd && d[0] == cases[c].d0 && d[1] == cases[c].d1 &&
                       v[0] == cases[c].first && v[n - 1] == cases[c].last,
                     "NPY values", cases[c].name));
    PetscCall(PetscFree(v));
  }
  {
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, d[4];
    PetscReal *v;
    PetscBool  ok = PETSC_TRUE;

    Path(path, "f8-v2.npy");
    PetscCall(NtkReadNPY(path, &nd, d, 1, 1, &v));
    for (int j = 0; j < 3; j++)
      ok = ok && v[j] == f8[3 + j];
    PetscCall(Report(ok, "NPY row 1", "f8-v2.npy"));
    PetscCall(PetscFree(v));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Each malformed .npy file is refused with the right error code and a message naming it. */
static PetscErrorCode TestNPYMalformed(void)
{
  double d[4] = {0};
  struct {
    const char    *name, *dict;
    size_t         n;
    PetscErrorCode code;
  } cases[] = {
    {"fortran.npy", "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", 32,
     PETSC_ERR_SUP},
    {"big-endian.npy", "{'descr': '>f8', 'fortran_order': False, 'shape': (4,), }", 32,
     PETSC_ERR_SUP},
    {"complex.npy", "{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", 32,
     PETSC_ERR_SUP},
    {"overflow.npy",
     "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"huge-entry.npy",
     "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"truncated.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"overlong.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"no-shape.npy", "{'descr': '<f8', 'fortran_order': False, }", 32, PETSC_ERR_FILE_UNEXPECTED},
    {"extra-key.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), 'x': 1}", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"not-a-dict.npy", "[1, 2, 3]", 32, PETSC_ERR_FILE_UNEXPECTED},
    {"zero-dim.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", 0,
     PETSC_ERR_FILE_UNEXPECTED},
    {"five-dim.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,4), }", 32,
     PETSC_ERR_SUP},
  };
  const unsigned char lying[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f};

  PetscFunctionBegin;
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
    PetscCall(WriteNPY(cases[c].name, 1, cases[c].dict, d, cases[c].n));
  PetscCall(WriteFile("bad-magic.npy", "\x93NUMPX\x01\x00", 8, d, 32, PETSC_FALSE));
  PetscCall(WriteFile("header-too-long.npy", lying, 10, d, 32, PETSC_FALSE));
  PetscCall(Sync());
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]) + 2; c++) {
    const char *name =
      c < sizeof(cases) / sizeof(cases[0])
        ? cases[c].name
        : (c == sizeof(cases) / sizeof(cases[0]) ? "bad-magic.npy" : "header-too-long.npy");
    PetscErrorCode code =
      c < sizeof(cases) / sizeof(cases[0]) ? cases[c].code : PETSC_ERR_FILE_UNEXPECTED;
    char       path[PETSC_MAX_PATH_LEN];
    PetscInt   nd, dims[4];
    PetscReal *v = NULL;

    Path(path, name);
    EXPECT_FAIL(code, name, NtkReadNPY(path, &nd, dims, 0, PETSC_DETERMINE, &v));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode CreateNet(PetscInt n, const PetscInt w[], NtkActivation act,
                                NtkParameterization par, NtkNet *net)
{
  PetscFunctionBegin;
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, net));
  PetscCall(NtkNetSetWidths(*net, n, w));
  PetscCall(NtkNetSetActivation(*net, act));
  PetscCall(NtkNetSetParameterization(*net, par));
  PetscCall(NtkNetSetSeed(*net, 7));
  PetscCall(NtkNetSetUp(*net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Save then load gives the same architecture and bit-identical parameters on every rank. */
static PetscErrorCode TestSafetensorsRoundTrip(void)
{
  const PetscInt      w[4] = {4, 5, 3, 2};
  char                path[PETSC_MAX_PATH_LEN];
  NtkNet              a, b;
  Vec                 ta, tb;
  PetscInt            nw;
  const PetscInt     *wb;
  NtkActivation       act;
  NtkParameterization par;
  PetscBool           eq;

  PetscFunctionBegin;
  Path(path, "net.safetensors");
  PetscCall(CreateNet(4, w, NTK_ACT_TANH, NTK_PARAM_NTK, &a));
  PetscCall(NtkNetSaveSafetensors(a, path));
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &b));
  PetscCall(NtkNetLoadSafetensors(b, path));
  PetscCall(NtkNetGetWidths(b, &nw, &wb));
  PetscCall(NtkNetGetActivation(b, &act));
  PetscCall(NtkNetGetParameterization(b, &par));
  PetscCall(NtkNetGetParameters(a, &ta));
  PetscCall(NtkNetGetParameters(b, &tb));
  PetscCall(VecEqual(ta, tb, &eq));
  PetscCall(Report(nw == 4 && wb[0] == 4 && wb[1] == 5 && wb[2] == 3 && wb[3] == 2 &&
                     act == NTK_ACT_TANH && par == NTK_PARAM_NTK && eq,
                   "safetensors round trip", NULL));
  PetscCall(NtkNetDestroy(&a));
  PetscCall(NtkNetDestroy(&b));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A safetensors file: u64 header length, the header, then the data bytes. */
static PetscErrorCode WriteST(const char name[], const char header[], const void *data, size_t n)
{
  unsigned char buf[2048];
  size_t        hl = strlen(header);

  PetscFunctionBegin;
  for (int k = 0; k < 8; k++)
    buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
  memcpy(buf + 8, header, hl);
  PetscCall(WriteFile(name, buf, 8 + hl, data, n, PETSC_FALSE));
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define ST_META "\"__metadata__\":{\"activation\":\"relu\"}"

/* F32 tensors with gaps in the Sequential index (0, 2, 10) load in numeric order of the index. */
static PetscErrorCode TestSafetensorsF32(void)
{
  /* layers 1x2 (0), 2x1 (2) and 1x1 (10): W0 = [1 2], b0 = 3, W2 = [4; 5], b2 = [6 7],
     W10 = [8 9], b10 = 10; the file lists "10" before "2" and stores the data out of order. */
  float v[10] = {8, 9, 10, 4, 5, 6, 7, 1, 2, 3};
#define F32(name, shape, b, e) \
  "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"
  const char *header = "{" ST_META "," F32("10.weight", "[1,2]", "0", "8") "," F32(
    "10.bias", "[1]", "8", "12") "," F32("2.weight", "[2,1]", "12",
                                         "20") "," F32("2.bias", "[2]", "20",
                                                       "28") "," F32("0.weight", "[1,2]", "28",
                                                                     "36") "," F32("0.bias", "[1]",
                                                                                   "36", "40") "}";
#undef F32
  const double       want[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  char               path[PETSC_MAX_PATH_LEN];
  NtkNet             net;
  Vec                theta;
  const PetscScalar *t;
  PetscInt           P, nw;
  const PetscInt    *w;
  PetscBool          ok;

  PetscFunctionBegin;
  PetscCall(WriteST("f32.safetensors", header, v, sizeof(v)));
  PetscCall(Sync());
  Path(path, "f32.safetensors");
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetLoadSafetensors(net, path));
  PetscCall(NtkNetGetWidths(net, &nw, &w));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(VecGetArrayRead(theta, &t));
  ok = nw == 4 && w[0] == 2 && w[1] == 1 && w[2] == 2 && w[3] == 1 && P == 10;
  for (PetscInt i = 0; ok && i < 10; i++)
    ok = t[i] == want[i];
  PetscCall(VecRestoreArrayRead(theta, &t));
  PetscCall(Report(ok, "safetensors F32 with indices 0, 2, 10", NULL));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Each malformed safetensors file fails the load on every rank, with a message naming it. */
static PetscErrorCode TestSafetensorsMalformed(void)
{
  double zeros[16] = {0};
#define W0(dt, sh, off) \
  "\"0.weight\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":" off "}"
#define B0(off) "\"0.bias\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":" off "}"
  struct {
    const char    *name, *header;
    size_t         n;
    PetscErrorCode code;
  } cases[] = {
    {"not-object.safetensors", "[1, 2, 3]", 48, PETSC_ERR_FILE_UNEXPECTED},
    {"not-json.safetensors", "{\"0.weight\": ", 48, PETSC_ERR_FILE_UNEXPECTED},
    {"int-dtype.safetensors", "{" ST_META "," W0("I32", "[2,2]", "[0,16]") "," B0("[16,32]") "}",
     48, PETSC_ERR_SUP},
    {"out-of-range.safetensors", "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "," B0("[32,64]") "}",
     48, PETSC_ERR_FILE_UNEXPECTED},
    {"overlap.safetensors", "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "," B0("[16,32]") "}", 48,
     PETSC_ERR_FILE_UNEXPECTED},
    {"size-mismatch.safetensors",
     "{" ST_META "," W0("F64", "[2,2]", "[0,24]") "," B0("[24,40]") "}", 48,
     PETSC_ERR_FILE_UNEXPECTED},
    {"shape-overflow.safetensors",
     "{" ST_META "," W0("F64", "[4294967296,4294967296]", "[0,32]") "," B0("[32,48]") "}", 48,
     PETSC_ERR_FILE_UNEXPECTED},
    {"no-activation.safetensors", "{" W0("F64", "[2,2]", "[0,32]") "," B0("[32,48]") "}", 48,
     PETSC_ERR_FILE_UNEXPECTED},
    {"bad-activation.safetensors",
     "{\"__metadata__\":{\"activation\":\"swish\"}," W0("F64", "[2,2]",
                                                        "[0,32]") "," B0("[32,48]") "}",
     48, PETSC_ERR_SUP},
    {"no-chain.safetensors",
     "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "," B0(
       "[32,48]") ","
                  "\"2.weight\":{\"dtype\":\"F64\",\"shape\":[1,3],\"data_offsets\":[48,72]},"
                  "\"2.bias\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[72,80]}}",
     80, PETSC_ERR_FILE_UNEXPECTED},
    {"no-bias.safetensors", "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "}", 32,
     PETSC_ERR_FILE_UNEXPECTED},
    {"stray-tensor.safetensors",
     "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "," B0(
       "[32,48]") ",\"embed\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[48,56]}}",
     56, PETSC_ERR_FILE_UNEXPECTED},
    {"nan.safetensors", "{" ST_META "," W0("F64", "[2,2]", "[0,32]") "," B0("[32,48]") "}", 48,
     PETSC_ERR_FP},
  };

  PetscFunctionBegin;
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    if (!strcmp(cases[c].name, "nan.safetensors")) zeros[2] = NAN;
    PetscCall(WriteST(cases[c].name, cases[c].header, zeros, cases[c].n));
  }
  if (!rank) { /* a header length larger than the whole file */
    unsigned char lie[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    PetscCall(WriteFile("header-too-long.safetensors", lie, 10, NULL, 0, PETSC_FALSE));
    PetscCall(WriteFile("tiny.safetensors", lie, 5, NULL, 0, PETSC_FALSE));
  }
  PetscCall(Sync());
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]) + 2; c++) {
    const char    *name = c < sizeof(cases) / sizeof(cases[0])
                            ? cases[c].name
                            : (c == sizeof(cases) / sizeof(cases[0]) ? "header-too-long.safetensors"
                                                                     : "tiny.safetensors");
    PetscErrorCode code =
      c < sizeof(cases) / sizeof(cases[0]) ? cases[c].code : PETSC_ERR_FILE_UNEXPECTED;
    char   path[PETSC_MAX_PATH_LEN];
    NtkNet net;

    Path(path, name);
    PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
    EXPECT_FAIL(code, name, NtkNetLoadSafetensors(net, path));
    PetscCall(NtkNetDestroy(&net));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* NPY data through NtkData: each rank holds its block of the selected file rows, one-hot targets,
   relabelled classes, and the same seeded subset whatever the number of ranks. */
static PetscErrorCode TestDataNPY(void)
{
  double      x[12 * 3];
  int64_t     y[12];
  char        src[3 * PETSC_MAX_PATH_LEN], px[PETSC_MAX_PATH_LEN], py[PETSC_MAX_PATH_LEN];
  PetscMPIInt size;

  PetscFunctionBegin;
  for (int i = 0; i < 12; i++) {
    y[i] = i % 4;
    for (int j = 0; j < 3; j++)
      x[3 * i + j] = i + 0.25 * j; /* the row index is recoverable */
  }
  PetscCall(WriteNPY("x.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 3), }", x,
                     sizeof(x)));
  PetscCall(WriteNPY("y.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (12,), }", y,
                     sizeof(y)));
  x[3 * 7 + 1] = NAN;
  PetscCall(WriteNPY("xnan.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 3), }",
                     x, sizeof(x)));
  PetscCall(Sync());
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  Path(px, "x.npy");
  Path(py, "y.npy");
  PetscCall(PetscSNPrintf(src, sizeof(src), "npy:%s,%s", px, py));
  for (int variant = 0; variant < 3; variant++) {
    NtkData             data;
    const NtkDataShard *s;
    const PetscInt      classes[2] = {3, 1};
    PetscInt            n, Nsum, prev = -1;
    PetscBool           ok = PETSC_TRUE;

    PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
    PetscCall(NtkDataSetSource(data, src));
    if (variant >= 1) PetscCall(NtkDataSetClasses(data, 2, classes));
    if (variant == 2) {
      PetscCall(NtkDataSetSamples(data, 4));
      PetscCall(NtkDataSetSubsetSeed(data, 5));
    }
    PetscCall(NtkDataSetUp(data));
    PetscCall(NtkDataGetShard(data, &s));
    n = s->rend - s->rstart;
    PetscCallMPI(MPI_Allreduce(&n, &Nsum, 1, MPIU_INT, MPI_SUM, PETSC_COMM_WORLD));
    ok = Nsum == s->N && s->d == 3 && s->C == (variant ? 2 : 4) &&
         s->N == (variant == 2 ? 4
                  : variant    ? 6
                               : 12);
    for (PetscInt k = 0; ok && k < n; k++) {
      PetscInt row = (PetscInt)s->X[3 * k], lab = row % 4;
      ok = s->X[3 * k + 2] == row + 0.5 && row > prev &&
           s->labels[k] == (variant ? (lab == 3   ? 0
                                       : lab == 1 ? 1
                                                  : -1)
                                    : lab) &&
           s->Y[k * s->C + s->labels[k]] == 1.0;
      if (!variant) ok = ok && row == s->rstart + k;
      prev = row;
    }
    PetscCall(Report(ok, "NtkData npy shards",
                     variant == 0   ? "all"
                     : variant == 1 ? "classes 3,1"
                                    : "random 4"));
    PetscCall(NtkDataDestroy(&data));
  }
  {
    NtkData data;
    Path(px, "xnan.npy");
    PetscCall(PetscSNPrintf(src, sizeof(src), "npy:%s,%s", px, py));
    PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
    PetscCall(NtkDataSetSource(data, src));
    EXPECT_FAIL(PETSC_ERR_FP, "xnan.npy", NtkDataSetUp(data));
    PetscCall(NtkDataDestroy(&data));
    PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
    PetscCall(NtkDataSetSource(data, "teacher"));
    PetscCall(NtkDataSetSamples(data, 1));
    if (size > 1) EXPECT_FAIL(PETSC_ERR_ARG_OUTOFRANGE, "ranks", NtkDataSetUp(data));
    PetscCall(NtkDataDestroy(&data));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* IDX data through a path prefix: pixels scaled by 1/255, a truncated image file fails on all
 * ranks. */
static PetscErrorCode TestDataIDX(void)
{
  const uint32_t      di[3] = {6, 2, 2}, dl[1] = {6};
  unsigned char       hi[16], hl[8], img[24], lab[6] = {0, 1, 2, 0, 1, 2};
  size_t              ni = IDXHeader(hi, 0x08, 3, di), nl = IDXHeader(hl, 0x08, 1, dl);
  char                prefix[PETSC_MAX_PATH_LEN];
  NtkData             data;
  const NtkDataShard *s;
  const char         *desc;
  PetscBool           ok = PETSC_TRUE;

  PetscFunctionBegin;
  for (int i = 0; i < 24; i++)
    img[i] = (unsigned char)(10 * i);
  PetscCall(WriteFile("small-images-idx3-ubyte.gz", hi, ni, img, 24, PETSC_TRUE));
  PetscCall(WriteFile("small-labels-idx1-ubyte", hl, nl, lab, 6, PETSC_FALSE));
  PetscCall(WriteFile("cut-images-idx3-ubyte.gz", hi, ni, img, 23, PETSC_TRUE));
  PetscCall(WriteFile("cut-labels-idx1-ubyte", hl, nl, lab, 6, PETSC_FALSE));
  PetscCall(Sync());
  Path(prefix, "small");
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetSource(data, prefix));
  PetscCall(NtkDataSetSamples(data, 5));
  PetscCall(NtkDataSetUp(data));
  PetscCall(NtkDataGetShard(data, &s));
  PetscCall(NtkDataGetDescription(data, &desc));
  for (PetscInt k = 0; k < s->rend - s->rstart; k++)
    for (int j = 0; j < 4; j++)
      ok = ok && PetscAbsReal(s->X[4 * k + j] - 10.0 * (4 * (s->rstart + k) + j) / 255.0) < 1e-15;
  PetscCall(Report(ok && s->N == 5 && s->d == 4 && s->C == 3 && strstr(desc, "first 5 of 6"),
                   "NtkData IDX prefix", desc));
  PetscCall(NtkDataDestroy(&data));
  Path(prefix, "cut");
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetSource(data, prefix));
  EXPECT_FAIL(PETSC_ERR_FILE_UNEXPECTED, "cut-images-idx3-ubyte.gz", NtkDataSetUp(data));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetSource(data, "no/such/prefix"));
  EXPECT_FAIL(PETSC_ERR_FILE_OPEN, "no/such/prefix", NtkDataSetUp(data));
  PetscCall(NtkDataDestroy(&data));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* JSON results keep every double exactly, write null for NaN, and a failed write leaves no file. */
static PetscErrorCode TestJSON(void)
{
  char         path[PETSC_MAX_PATH_LEN], bad[PETSC_MAX_PATH_LEN];
  json_object *obj = json_object_new_object(), *back, *est, *v;
  const double x = 0.1 + 1e-17 * 3, y = 1.0 / 3.0;
  PetscBool    ok = PETSC_FALSE;

  PetscFunctionBegin;
  json_object_object_add(obj, "trace", NtkJSONEstimate(x, NAN, "hutch++", 12));
  json_object_object_add(obj, "y", json_object_new_double(y));
  PetscCall(NtkJSONAddRunInfo(PETSC_COMM_WORLD, obj, "ntkspec test"));
  Path(path, "result.json");
  PetscCall(NtkJSONWrite(PETSC_COMM_WORLD, obj, path));
  back = json_object_from_file(path);
  if (back && json_object_object_get_ex(back, "trace", &est) &&
      json_object_object_get_ex(est, "value", &v) && json_object_get_double(v) == x &&
      json_object_object_get_ex(est, "stderr", &v) && v == NULL &&
      json_object_object_get_ex(back, "y", &v) && json_object_get_double(v) == y &&
      json_object_object_get_ex(back, "ranks", &v) && json_object_object_get_ex(back, "date", &v))
    ok = PETSC_TRUE;
  PetscCall(Report(ok, "JSON round trip at full precision", NULL));
  json_object_put(back);
  PetscCall(PetscSNPrintf(bad, sizeof(bad), "%s/no-such-folder/result.json", dir));
  EXPECT_FAIL(PETSC_ERR_FILE_OPEN, "no-such-folder/result.json",
              NtkJSONWrite(PETSC_COMM_WORLD, obj, bad));
  json_object_put(obj);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode RemoveFolder(void)
{
  DIR           *d;
  struct dirent *e;
  char           path[PETSC_MAX_PATH_LEN];

  PetscFunctionBegin;
  if (rank || !(d = opendir(dir))) PetscFunctionReturn(PETSC_SUCCESS);
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      Path(path, e->d_name);
      (void)unlink(path);
    }
  (void)closedir(d);
  (void)rmdir(dir);
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  PetscInt total[2], local[2];

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCall(PetscOptionsGetBool(NULL, NULL, "-verbose", &verbose, NULL));
  if (!rank) {
    const char *tmp = getenv("TMPDIR");
    (void)snprintf(dir, sizeof(dir), "%s/ntk-loaders-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    PetscCheck(mkdtemp(dir), PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create %s", dir);
  }
  PetscCallMPI(MPI_Bcast(dir, (PetscMPIInt)sizeof(dir), MPI_CHAR, 0, PETSC_COMM_WORLD));

  PetscCall(TestIDXValid());
  PetscCall(TestIDXMalformed());
  PetscCall(TestNPYValid());
  PetscCall(TestNPYMalformed());
  PetscCall(TestSafetensorsRoundTrip());
  PetscCall(TestSafetensorsF32());
  PetscCall(TestSafetensorsMalformed());
  PetscCall(TestDataNPY());
  PetscCall(TestDataIDX());
  PetscCall(TestJSON());

  PetscCall(Sync());
  PetscCall(RemoveFolder());
  local[0] = npass, local[1] = nfail;
  PetscCallMPI(MPI_Allreduce(local, total, 2, MPIU_INT, MPI_SUM, PETSC_COMM_WORLD));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "test_loaders: %" PetscInt_FMT " checks passed, %" PetscInt_FMT " failed\n",
                        total[0], total[1]));
  PetscCall(PetscFinalize());
  return total[1] ? 1 : 0;
}
