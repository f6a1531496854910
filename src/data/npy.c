/*
  NumPy .npy reader.

  Format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic string "\x93NUMPY", two version
  bytes, the header length (u16 little-endian in version 1, u32 in versions 2 and 3), then a Python
  dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), } padded
  with spaces and a newline, then the array data.

  Method: the dict is a Python literal, not JSON, so it is parsed by hand with a small recursive
  reader that accepts exactly the three keys, single- or double-quoted strings, True/False and
  tuples of integers. The file size must equal the header plus the product of the shape times the
  item size. Rows are read with fseeko to their offset and decoded from little-endian bytes
  explicitly, so the reader does not depend on the host's byte order.
*/
#include "dataimpl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { NPY_U1, NPY_I1, NPY_I4, NPY_I8, NPY_F4, NPY_F8 } NPYType;

static const struct {
  const char *descr;
  NPYType     type;
  size_t      size;
} NPYTypes[] = {
  {"|u1", NPY_U1, 1}, {"<u1", NPY_U1, 1}, {"|i1", NPY_I1, 1}, {"<i1", NPY_I1, 1},
  {"<i4", NPY_I4, 4}, {"<i8", NPY_I8, 8}, {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8},
};

typedef struct {
  const char *file;
  const char *p; /* cursor in the NUL-terminated header text */
} NPYLexer;

static void NPYSkipSpace(NPYLexer *lx)
{
  while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r') lx->p++;
}

static PetscErrorCode NPYExpect(NPYLexer *lx, char c)
{
  PetscFunctionBegin;
  NPYSkipSpace(lx);
  PetscCheck(*lx->p == c, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: malformed .npy header: expected '%c' at \"%.20s\"", lx->file, c, lx->p);
  lx->p++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A quoted Python string without escapes (dtype strings and key names never contain any). */
static PetscErrorCode NPYString(NPYLexer *lx, char *buf, size_t size)
{
  char   quote;
  size_t n = 0;

  PetscFunctionBegin;
  NPYSkipSpace(lx);
  quote = *lx->p;
  PetscCheck(quote == '\'' || quote == '"', PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: malformed .npy header: expected a quoted string at \"%.20s\"", lx->file, lx->p);
  for (lx->p++; *lx->p && *lx->p != quote; lx->p++) {
    PetscCheck(*lx->p != '\\' && n + 1 < size, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: malformed .npy header: unexpected string", lx->file);
    buf[n++] = *lx->p;
  }
  PetscCheck(*lx->p == quote, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: malformed .npy header: unterminated string", lx->file);
  lx->p++;
  buf[n] = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode NPYBool(NPYLexer *lx, PetscBool *b)
{
  PetscFunctionBegin;
  NPYSkipSpace(lx);
  if (!strncmp(lx->p, "True", 4)) *b = PETSC_TRUE;
  else if (!strncmp(lx->p, "False", 5)) *b = PETSC_FALSE;
  else SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: malformed .npy header: expected True or False at \"%.20s\"", lx->file, lx->p);
  lx->p += *b ? 4 : 5;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A tuple of non-negative integers: (), (n,), (n, m), ...; Python 2 files may add an L suffix. */
static PetscErrorCode NPYShape(NPYLexer *lx, PetscInt *ndim, uint64_t shape[4])
{
  PetscFunctionBegin;
  *ndim = 0;
  PetscCall(NPYExpect(lx, '('));
  for (;;) {
    char              *end;
    unsigned long long v;

    NPYSkipSpace(lx);
    if (*lx->p == ')') break;
    PetscCheck(*lx->p >= '0' && *lx->p <= '9', PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: malformed .npy header: bad shape entry at \"%.20s\"", lx->file, lx->p);
    errno = 0;
    v     = strtoull(lx->p, &end, 10);
    PetscCheck(errno != ERANGE, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: .npy shape entry %.*s overflows", lx->file, (int)strspn(lx->p, "0123456789"),
               lx->p);
    PetscCheck(*ndim < 4, PETSC_COMM_SELF, PETSC_ERR_SUP,
               "%s: .npy arrays with more than 4 dimensions are not supported", lx->file);
    shape[(*ndim)++] = (uint64_t)v;
    lx->p            = end;
    if (*lx->p == 'L') lx->p++;
    NPYSkipSpace(lx);
    if (*lx->p == ',') lx->p++;
    else PetscCheck(*lx->p == ')', PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
                    "%s: malformed .npy header: bad shape at \"%.20s\"", lx->file, lx->p);
  }
  lx->p++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode NPYDescr(NPYLexer *lx, NPYType *type, size_t *size)
{
  char descr[32];

  PetscFunctionBegin;
  NPYSkipSpace(lx);
  PetscCheck(*lx->p != '[', PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: structured .npy dtypes are not supported; store a plain numeric array", lx->file);
  PetscCall(NPYString(lx, descr, sizeof(descr)));
  for (size_t k = 0; k < sizeof(NPYTypes) / sizeof(NPYTypes[0]); k++) {
    if (strcmp(descr, NPYTypes[k].descr)) continue;
    *type = NPYTypes[k].type;
    *size = NPYTypes[k].size;
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCheck(descr[0] != '>', PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: big-endian dtype '%s' is not supported; save as little-endian ('<')", lx->file,
             descr);
  SETERRQ(PETSC_COMM_SELF, PETSC_ERR_SUP,
          "%s: dtype '%s' is not supported (supported: <f4, <f8, |u1, |i1, <i4, <i8)", lx->file,
          descr);
}

/* The header dict: each of 'descr', 'fortran_order' and 'shape' exactly once, nothing else. */
static PetscErrorCode NPYParseHeader(const char file[], const char *text, NPYType *type,
                                     size_t *size, PetscInt *ndim, uint64_t shape[4])
{
  NPYLexer  lx   = {file, text};
  PetscBool seen[3] = {PETSC_FALSE, PETSC_FALSE, PETSC_FALSE}, fortran = PETSC_FALSE;
  char      key[32];

  PetscFunctionBegin;
  PetscCall(NPYExpect(&lx, '{'));
  for (;;) {
    NPYSkipSpace(&lx);
    if (*lx.p == '}') break;
    PetscCall(NPYString(&lx, key, sizeof(key)));
    PetscCall(NPYExpect(&lx, ':'));
    if (!strcmp(key, "descr") && !seen[0]) {
      PetscCall(NPYDescr(&lx, type, size));
      seen[0] = PETSC_TRUE;
    } else if (!strcmp(key, "fortran_order") && !seen[1]) {
      PetscCall(NPYBool(&lx, &fortran));
      seen[1] = PETSC_TRUE;
    } else if (!strcmp(key, "shape") && !seen[2]) {
      PetscCall(NPYShape(&lx, ndim, shape));
      seen[2] = PETSC_TRUE;
    } else SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
                   "%s: malformed .npy header: unexpected or repeated key '%s'", file, key);
    NPYSkipSpace(&lx);
    if (*lx.p == ',') lx.p++;
    else PetscCheck(*lx.p == '}', PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
                    "%s: malformed .npy header: expected ',' or '}' at \"%.20s\"", file, lx.p);
  }
  lx.p++;
  NPYSkipSpace(&lx);
  PetscCheck(*lx.p == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: malformed .npy header: trailing text \"%.20s\"", file, lx.p);
  PetscCheck(seen[0] && seen[1] && seen[2], PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: .npy header lacks '%s'", file,
             !seen[0] ? "descr" : (!seen[1] ? "fortran_order" : "shape"));
  PetscCheck(!fortran, PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: Fortran-ordered arrays are not supported; save with numpy.ascontiguousarray",
             file);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode NPYParseText(FILE *fp, const char file[], char *text, size_t hlen,
                                   NPYType *type, size_t *size, PetscInt *ndim, uint64_t shape[4])
{
  PetscFunctionBegin;
  PetscCheck(fread(text, 1, hlen, fp) == hlen, PETSC_COMM_SELF, PETSC_ERR_FILE_READ,
             "%s: cannot read the .npy header", file);
  PetscCheck(strlen(text) == hlen, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: malformed .npy header: it contains a NUL byte", file);
  PetscCall(NPYParseHeader(file, text, type, size, ndim, shape));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Preamble and header dict; *offset is where the data starts. */
static PetscErrorCode NPYReadHeader(FILE *fp, const char file[], size_t fsize, NPYType *type,
                                    size_t *size, PetscInt *ndim, uint64_t shape[4],
                                    size_t *offset)
{
  unsigned char pre[12];
  size_t        lenbytes, hlen;
  char         *text;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCheck(fread(pre, 1, 8, fp) == 8 && !memcmp(pre, "\x93NUMPY", 6), PETSC_COMM_SELF,
             PETSC_ERR_FILE_UNEXPECTED, "%s: not a .npy file (no \\x93NUMPY magic)", file);
  PetscCheck(pre[6] >= 1 && pre[6] <= 3, PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: .npy format version %d.%d is not supported (1.0 to 3.0 are)", file, pre[6],
             pre[7]);
  lenbytes = pre[6] == 1 ? 2 : 4;
  PetscCheck(fread(pre + 8, 1, lenbytes, fp) == lenbytes, PETSC_COMM_SELF,
             PETSC_ERR_FILE_UNEXPECTED, "%s: file truncated inside the .npy preamble", file);
  hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
  if (lenbytes == 4) hlen |= ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
  *offset = 8 + lenbytes + hlen;
  PetscCheck(*offset <= fsize, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: .npy header length %zu exceeds the file size %zu", file, hlen, fsize);
  PetscCall(PetscMalloc1(hlen + 1, &text));
  text[hlen] = 0;
  ierr       = NPYParseText(fp, file, text, hlen, type, size, ndim, shape);
  PetscCall(PetscFree(text));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscReal NPYDecode(NPYType type, const unsigned char *b)
{
  uint64_t u = 0;
  float    f;
  double   d;
  uint32_t u32;

  switch (type) {
  case NPY_U1: return (PetscReal)b[0];
  case NPY_I1: return (PetscReal)(int8_t)b[0];
  case NPY_I4:
    u32 = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return (PetscReal)(int32_t)u32;
  case NPY_F4:
    u32 = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    memcpy(&f, &u32, sizeof(f));
    return (PetscReal)f;
  case NPY_I8:
  case NPY_F8:
    for (int k = 7; k >= 0; k--) u = (u << 8) | b[k];
    if (type == NPY_I8) return (PetscReal)(int64_t)u;
    memcpy(&d, &u, sizeof(d));
    return (PetscReal)d;
  }
  return 0;
}

static PetscErrorCode NPYReadOpen(FILE *fp, const char file[], PetscInt *ndim, PetscInt dims[4],
                                  NtkRowSel *sel, PetscReal **vals)
{
  struct stat    st;
  NPYType        type = NPY_F8;
  size_t         isize = 8, offset, nbytes, rowbytes, rowlen;
  uint64_t       shape[4];
  unsigned char *buf;

  PetscFunctionBegin;
  PetscCheck(fstat(fileno(fp), &st) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "%s: %s", file,
             strerror(errno));
  PetscCall(NPYReadHeader(fp, file, (size_t)st.st_size, &type, &isize, ndim, shape, &offset));
  PetscCall(NtkShapeCheck(file, *ndim, shape, isize, dims, &nbytes));
  PetscCheck((size_t)st.st_size == offset + nbytes, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file size mismatch: header and shape need %zu bytes, file has %zu%s", file,
             offset + nbytes, (size_t)st.st_size,
             (size_t)st.st_size < offset + nbytes ? " (file truncated)" : "");
  PetscCall(NtkRowSelResolve(file, dims[0], sel));
  rowbytes = nbytes / (size_t)dims[0];
  rowlen   = rowbytes / isize;
  PetscCall(PetscMalloc1((size_t)sel->n * rowlen, vals));
  PetscCall(PetscMalloc1(rowbytes, &buf));
  for (PetscInt k = 0, prev = -2; k < sel->n; k++) {
    PetscInt   r   = NtkRowSelGet(sel, k);
    PetscReal *dst = *vals + (size_t)k * rowlen;

    if (r != prev + 1)
      PetscCheck(!fseeko(fp, (off_t)(offset + (size_t)r * rowbytes), SEEK_SET), PETSC_COMM_SELF,
                 PETSC_ERR_FILE_READ, "%s: cannot seek to row %" PetscInt_FMT ": %s", file, r,
                 strerror(errno));
    PetscCheck(fread(buf, 1, rowbytes, fp) == rowbytes, PETSC_COMM_SELF, PETSC_ERR_FILE_READ,
               "%s: cannot read row %" PetscInt_FMT, file, r);
    for (size_t j = 0; j < rowlen; j++) dst[j] = NPYDecode(type, buf + j * isize);
    prev = r;
  }
  PetscCall(PetscFree(buf));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkReadNPYRows(const char file[], PetscInt *ndim, PetscInt dims[4], NtkRowSel *sel,
                              PetscReal **vals)
{
  FILE          *fp;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  *vals = NULL;
  *ndim = 0;
  for (int k = 0; k < 4; k++) dims[k] = 0;
  fp = fopen(file, "rb");
  PetscCheck(fp, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "%s: cannot open: %s", file,
             strerror(errno));
  /* the file is closed and the buffer released on every path, then the error is passed on */
  ierr = NPYReadOpen(fp, file, ndim, dims, sel, vals);
  (void)fclose(fp);
  if (ierr) PetscCall(PetscFree(*vals));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkReadNPY(const char file[], PetscInt *ndim, PetscInt dims[4], PetscInt row0,
                          PetscInt nrows, PetscReal **vals)
{
  NtkRowSel sel = {row0, nrows, NULL};

  PetscFunctionBegin;
  PetscCall(NtkReadNPYRows(file, ndim, dims, &sel, vals));
  PetscFunctionReturn(PETSC_SUCCESS);
}
