/*
  libFuzzer harness of the IDX reader (NtkReadIDX): arbitrary bytes as an IDX file, raw or gzip
  (zlib tells them apart by the magic bytes). Every input must either read or be refused with an
  error code; values read must be bytes 0..255 and the shape must match the header.
*/
#include "fuzz_common.h"
#include <ntk/data.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  if (FuzzInitialize("data-images-idx3-ubyte")) abort();
  (void)atexit(FuzzCleanup);
  return 0;
}

/* Read all rows, and a block in the middle, which takes the seek path of a raw file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  PetscInt   ndim, dims[4];
  PetscReal *vals = NULL;

  FuzzWriteFile(data, size);
  if (!NtkReadIDX(fuzz_file, &ndim, dims, 0, PETSC_DETERMINE, &vals)) {
    size_t n = 1;
    for (PetscInt k = 0; k < ndim; k++) n *= (size_t)dims[k];
    for (size_t k = 0; k < n; k++)
      if (!(vals[k] >= 0 && vals[k] <= 255)) abort();
    (void)PetscFree(vals);
    if (dims[0] > 2 && !NtkReadIDX(fuzz_file, &ndim, dims, 1, dims[0] - 2, &vals))
      (void)PetscFree(vals);
  }
  return 0;
}
