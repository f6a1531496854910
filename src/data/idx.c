/*
  IDX reader (the MNIST family of files, e.g. Fashion-MNIST).

  Format (big-endian): two zero bytes, a type byte, the number of dimensions n, then n u32
  dimensions, then the payload in row-major order. Only the unsigned-byte type 0x08 occurs in the
  image and label files we read; the other IDX types are refused by name.

  Method: the file is opened through zlib, which reads gzip-compressed and raw files alike. A raw
  file is checked against its size on disk and then read row block by row block with seeks. A
  compressed file cannot be sized without decompressing it, so it is streamed once from the header
  to the end: the selected rows are copied on the way, and a short or overlong stream is reported
  with the byte counts. Values are converted to double unchanged; scaling belongs to NtkData.
*/
#include "dataimpl.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_BLOCK      65536 /* bytes decompressed per gzread when streaming */
#define IDX_MAX_RATIO  1032  /* deflate's largest expansion: output bytes per input byte */

static const char *IDXTypeName(int type)
{
  switch (type) {
  case 0x08: return "unsigned byte";
  case 0x09: return "signed byte";
  case 0x0B: return "short";
  case 0x0C: return "int";
  case 0x0D: return "float";
  case 0x0E: return "double";
  default: return "unknown";
  }
}

/* Read exactly len header bytes; a short header is a truncated file. */
static PetscErrorCode IDXReadBytes(gzFile gz, const char file[], unsigned char *buf, unsigned len)
{
  int got;

  PetscFunctionBegin;
  got = gzread(gz, buf, len);
  PetscCheck(got >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "%s: cannot read IDX header: %s", file,
             gzerror(gz, NULL));
  PetscCheck((unsigned)got == len, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file truncated inside the IDX header (%d of %u bytes)", file, got, len);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode IDXReadHeader(gzFile gz, const char file[], PetscInt *ndim, PetscInt dims[4],
                                    size_t *rowbytes, size_t *total)
{
  unsigned char magic[4], raw[16];
  uint64_t      shape[4];
  size_t        nbytes;

  PetscFunctionBegin;
  PetscCall(IDXReadBytes(gz, file, magic, 4));
  PetscCheck(magic[0] == 0 && magic[1] == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: not an IDX file (magic bytes %02x %02x %02x %02x, expected 00 00 08 <ndim>)",
             file, magic[0], magic[1], magic[2], magic[3]);
  PetscCheck(magic[2] == IDX_TYPE_UBYTE, PETSC_COMM_SELF, PETSC_ERR_SUP,
             "%s: IDX data type 0x%02x (%s) is not supported; only 0x08 (unsigned byte) is", file,
             magic[2], IDXTypeName(magic[2]));
  PetscCheck(magic[3] >= 1 && magic[3] <= 4, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: IDX header has %d dimensions; 1 to 4 are supported", file, magic[3]);
  *ndim = magic[3];
  PetscCall(IDXReadBytes(gz, file, raw, 4 * (unsigned)*ndim));
  for (PetscInt k = 0; k < *ndim; k++) {
    const unsigned char *b = raw + 4 * k;
    shape[k] = ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3];
  }
  PetscCall(NtkShapeCheck(file, *ndim, shape, 1, dims, &nbytes));
  *total    = nbytes;
  *rowbytes = nbytes / (size_t)dims[0];
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Convert rows [k0, k0 + nk) of the selection, held contiguously in buf, into out. */
static void IDXConvert(const unsigned char *buf, size_t rowbytes, PetscInt nk, PetscInt k0,
                       PetscReal *out)
{
  for (PetscInt k = 0; k < nk; k++) {
    const unsigned char *src = buf + (size_t)k * rowbytes;
    PetscReal           *dst = out + (size_t)(k0 + k) * rowbytes;
    for (size_t j = 0; j < rowbytes; j++) dst[j] = (PetscReal)src[j];
  }
}

/*
  The header is checked against the size on disk before any buffer is sized from it, so a header
  that lies cannot ask for memory the file could not fill. A raw file must match exactly. A
  compressed file can only be bounded: deflate expands at most IDX_MAX_RATIO-fold (RFC 1951: a
  258-byte match costs at least 2 bits), so more data than that is certainly a truncated file; the
  exact count is checked while streaming.
*/
static PetscErrorCode IDXCheckSize(gzFile gz, const char file[], size_t hdr, size_t total)
{
  struct stat st;
  size_t      fsize;

  PetscFunctionBegin;
  PetscCheck(stat(file, &st) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "%s: %s", file,
             strerror(errno));
  fsize = (size_t)st.st_size;
  if (!gzdirect(gz)) {
    PetscCheck(total / IDX_MAX_RATIO <= fsize, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "%s: file truncated: the header describes %zu bytes of data, more than a "
               "compressed file of %zu bytes can hold", file, total, fsize);
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCheck(fsize >= hdr + total, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file truncated: expected %zu bytes of data, found %zu", file, total,
             fsize - hdr);
  PetscCheck(fsize == hdr + total, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file size mismatch: header describes %zu bytes of data, file holds %zu", file,
             total, fsize - hdr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Raw file (size already checked): each run of rows is read after a seek. */
static PetscErrorCode IDXReadDirect(gzFile gz, const char file[], size_t hdr, size_t rowbytes,
                                    const NtkRowSel *sel, unsigned char *buf, PetscReal *out)
{
  PetscFunctionBegin;
  for (PetscInt k = 0, prev = -2; k < sel->n; k++) {
    PetscInt r = NtkRowSelGet(sel, k);
    int      got;

    if (r != prev + 1)
      PetscCheck(gzseek(gz, (z_off_t)(hdr + (size_t)r * rowbytes), SEEK_SET) >= 0, PETSC_COMM_SELF,
                 PETSC_ERR_FILE_READ, "%s: cannot seek to row %" PetscInt_FMT, file, r);
    got = gzread(gz, buf, (unsigned)rowbytes);
    PetscCheck(got == (int)rowbytes, PETSC_COMM_SELF, PETSC_ERR_FILE_READ,
               "%s: cannot read row %" PetscInt_FMT ": %s", file, r, gzerror(gz, NULL));
    IDXConvert(buf, rowbytes, 1, k, out);
    prev = r;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Compressed file: stream the whole payload, copying selected rows, and count what is there. */
static PetscErrorCode IDXReadStream(gzFile gz, const char file[], size_t rowbytes, size_t total,
                                    const NtkRowSel *sel, unsigned char *buf, size_t per,
                                    PetscReal *out)
{
  size_t        nrows = total / rowbytes, found = 0;
  unsigned char extra;
  PetscInt      k = 0;

  PetscFunctionBegin;
  for (size_t r0 = 0; r0 < nrows; r0 += per) {
    size_t nb   = PetscMin(per, nrows - r0);
    int    got  = gzread(gz, buf, (unsigned)(nb * rowbytes));
    int    zerr = Z_OK;

    if (got > 0) found += (size_t)got;
    if (got < 0 || (size_t)got < nb * rowbytes) {
      const char *why = gzerror(gz, &zerr);
      PetscCheck(zerr == Z_OK || zerr == Z_BUF_ERROR, PETSC_COMM_SELF, PETSC_ERR_FILE_READ,
                 "%s: corrupt compressed data after %zu bytes of data: %s", file, found, why);
      SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
              "%s: file truncated: expected %zu bytes of data, found %zu", file, total, found);
    }
    for (; k < sel->n && (size_t)NtkRowSelGet(sel, k) < r0 + nb; k++)
      IDXConvert(buf + ((size_t)NtkRowSelGet(sel, k) - r0) * rowbytes, rowbytes, 1, k, out);
  }
  PetscCheck(gzread(gz, &extra, 1) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
             "%s: file size mismatch: header describes %zu bytes of data, file holds more", file,
             total);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Header, size check, then the rows through one byte buffer, released on every path. */
static PetscErrorCode IDXReadOpen(gzFile gz, const char file[], PetscInt *ndim, PetscInt dims[4],
                                  NtkRowSel *sel, PetscReal **vals)
{
  size_t         rowbytes = 0, total = 0, hdr, per;
  unsigned char *buf;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(IDXReadHeader(gz, file, ndim, dims, &rowbytes, &total));
  PetscCall(NtkRowSelResolve(file, dims[0], sel));
  hdr = 4 + 4 * (size_t)*ndim;
  PetscCall(IDXCheckSize(gz, file, hdr, total));
  PetscCall(PetscMalloc1((size_t)sel->n * rowbytes, vals));
  per = gzdirect(gz) || rowbytes >= IDX_BLOCK ? 1 : IDX_BLOCK / rowbytes;
  PetscCall(PetscMalloc1(per * rowbytes, &buf));
  if (gzdirect(gz)) ierr = IDXReadDirect(gz, file, hdr, rowbytes, sel, buf, *vals);
  else ierr = IDXReadStream(gz, file, rowbytes, total, sel, buf, per, *vals);
  PetscCall(PetscFree(buf));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkReadIDXRows(const char file[], PetscInt *ndim, PetscInt dims[4], NtkRowSel *sel,
                              PetscReal **vals)
{
  gzFile         gz;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  *vals = NULL;
  *ndim = 0;
  for (int k = 0; k < 4; k++) dims[k] = 0;
  gz = gzopen(file, "rb");
  PetscCheck(gz, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "%s: cannot open: %s", file,
             errno ? strerror(errno) : "out of memory");
  /* the file is closed and the buffer released on every path, then the error is passed on */
  ierr = IDXReadOpen(gz, file, ndim, dims, sel, vals);
  (void)gzclose(gz);
  if (ierr) PetscCall(PetscFree(*vals));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkReadIDX(const char file[], PetscInt *ndim, PetscInt dims[4], PetscInt row0,
                          PetscInt nrows, PetscReal **vals)
{
  NtkRowSel sel = {row0, nrows, NULL};

  PetscFunctionBegin;
  PetscCall(NtkReadIDXRows(file, ndim, dims, &sel, vals));
  PetscFunctionReturn(PETSC_SUCCESS);
}
