/*
  libFuzzer harness of the NumPy reader (NtkReadNPY): arbitrary bytes as a .npy file. The header
  dict is parsed by hand, so this is where malformed text (unterminated strings, huge or negative
  shapes, repeated keys) is exercised. Every input must read or be refused with an error code.
*/
#include "fuzz_common.h"
#include <ntk/data.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  if (FuzzInitialize("data.npy")) abort();
  (void)atexit(FuzzCleanup);
  return 0;
}

/* Header only (no rows), all rows, then the last row alone (the seek path). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  PetscInt   ndim, dims[4];
  PetscReal *vals = NULL;

  FuzzWriteFile(data, size);
  if (NtkReadNPY(fuzz_file, &ndim, dims, 0, 0, &vals)) return 0;
  (void)PetscFree(vals);
  if (!NtkReadNPY(fuzz_file, &ndim, dims, 0, PETSC_DETERMINE, &vals)) (void)PetscFree(vals);
  if (!NtkReadNPY(fuzz_file, &ndim, dims, dims[0] - 1, 1, &vals)) (void)PetscFree(vals);
  return 0;
}
