/*
  Shared pieces of the libFuzzer harnesses of ntkspec's readers and option parsing.

  PETSc (and so MPI, as a singleton) is initialised once per fuzzing process in
  LLVMFuzzerInitialize, and the return-only error handler is pushed so that a rejected input comes
  back as an error code without printing: for a harness, an error return is a correct answer and
  only a crash, a leak or undefined behaviour is a finding. The readers take file names, so each
  input is written to one scratch file per process and read back from there; that is the path a
  user's file takes too.
*/
#pragma once
#include <ntk/compat.h>
#include <petscsys.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__has_feature)
  #if __has_feature(address_sanitizer)
    #include <sanitizer/lsan_interface.h>
    #define FUZZ_LSAN 1
  #endif
#endif

/*
  MPI initialisation (inside PETSc's) allocates memory it keeps for the life of the process, some
  of it in plug-ins it later unloads; the leak checker is told to ignore what it allocates here so
  that the per-input leak check sees ntkspec's allocations only.
*/
static inline int FuzzPetscInitialize(void)
{
  int err;

#if defined(FUZZ_LSAN)
  __lsan_disable();
#endif
  /* PETSc's signal handler would turn a crash into an MPI abort; the sanitisers must see it */
  err = PetscInitializeNoArguments() || PetscPushErrorHandler(PetscReturnErrorHandler, NULL) ||
        PetscPopSignalHandler();
#if defined(FUZZ_LSAN)
  __lsan_enable();
#endif
  return err;
}

static char fuzz_dir[200], fuzz_file[256];

/* Start PETSc and make this process's scratch folder; the file in it is named `name`. */
static inline int FuzzInitialize(const char name[])
{
  const char *tmp = getenv("TMPDIR");

  if (FuzzPetscInitialize()) return 1;
  (void)snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/ntk-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(fuzz_dir)) {
    (void)fprintf(stderr, "fuzz: cannot create a scratch folder: %s\n", strerror(errno));
    abort();
  }
  (void)snprintf(fuzz_file, sizeof(fuzz_file), "%s/%s", fuzz_dir, name);
  return 0;
}

/* Replace the scratch file's contents by the input; a failure here is the machine's, not ours. */
static inline void FuzzWriteFile(const uint8_t *data, size_t size)
{
  FILE *fp = fopen(fuzz_file, "wb");

  if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp)) {
    (void)fprintf(stderr, "fuzz: cannot write %s\n", fuzz_file);
    abort();
  }
}

/* Remove the scratch file and folder when the fuzzer exits. */
static inline void FuzzCleanup(void)
{
  (void)unlink(fuzz_file);
  (void)rmdir(fuzz_dir);
}
