/*
  libFuzzer harness of the safetensors model loader: arbitrary bytes as a model file, loaded
  through the same path as -ntk_net_file (NtkNetSetFile, NtkNetSetUp). The JSON header comes from
  the file, so null, nested or mistyped values and lying offsets are exercised here. Every input
  must load or be refused with an error code.
*/
#include "fuzz_common.h"
#include <ntk/net.h>
#include <ntk/io.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  if (FuzzInitialize("model.safetensors")) abort();
  (void)atexit(FuzzCleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  NtkNet net = NULL;

  FuzzWriteFile(data, size);
  if (NtkNetCreate(PETSC_COMM_SELF, &net)) abort();
  if (NtkNetSetFile(net, fuzz_file)) abort();
  (void)NtkNetSetUp(net);
  if (NtkNetDestroy(&net)) abort();
  return 0;
}
