/*
  libFuzzer harness of option parsing: the input is split at newlines into the values of a fixed
  list of options (-ntk_net_widths, -ntk_net_activation, ..., -ntk_data, -ntk_data_classes), which
  are set in PETSc's options database and read back by NtkNetSetFromOptions and
  NtkDataSetFromOptions; the width list also goes to NtkParseIntList directly. A data source is
  then set up when it cannot touch the machine: names with a '/' are skipped (no device or system
  file is ever opened), Fashion-MNIST is pointed at a folder that does not exist, and teacher sizes
  are bounded. Every input must parse or be refused with an error code.
*/
#include "fuzz_common.h"
#include <ntk/net.h>
#include <ntk/data.h>
#include <ntk/sys.h>

static const char *const fuzz_options[] = {
  "-ntk_net_widths",       "-ntk_net_activation",       "-ntk_net_param",
  "-ntk_net_sigma_w",      "-ntk_net_sigma_b",          "-ntk_data",
  "-ntk_data_samples",     "-ntk_data_classes",         "-ntk_data_subset_seed",
  "-ntk_data_teacher_dim", "-ntk_data_teacher_outputs", "-ntk_data_teacher_width",
};
#define NOPT ((int)(sizeof(fuzz_options) / sizeof(fuzz_options[0])))

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  if (setenv("NTK_FASHION_MNIST_DIR", "/nonexistent/ntk-fuzz", 1)) abort();
  if (FuzzPetscInitialize()) abort();
  return 0;
}

/* Teacher data cost ~ samples x width x (d + C): keep it small so each input stays fast. */
static PetscBool FuzzDataIsCheap(void)
{
  PetscInt   v, size[4] = {1000, 16, 1, 64}; /* samples, d, C, width: the defaults */
  PetscReal  cost;
  PetscBool  set;
  const char *name[4] = {"-ntk_data_samples", "-ntk_data_teacher_dim",
                         "-ntk_data_teacher_outputs", "-ntk_data_teacher_width"};
  char        src[256] = "";

  if (PetscOptionsGetString(NULL, NULL, "-ntk_data", src, sizeof(src), &set) || strchr(src, '/'))
    return PETSC_FALSE;
  for (int k = 0; k < 4; k++)
    if (!PetscOptionsGetInt(NULL, NULL, name[k], &v, &set) && set && v > 0) size[k] = v;
  cost = (PetscReal)size[0] * (PetscReal)size[3] * ((PetscReal)size[1] + (PetscReal)size[2]);
  return cost <= 1 << 22 ? PETSC_TRUE : PETSC_FALSE;
}

static void FuzzRun(const char *widths)
{
  PetscInt ints[64], n;
  NtkNet   net  = NULL;
  NtkData  ndat = NULL;

  if (widths) (void)NtkParseIntList(PETSC_COMM_SELF, "-ntk_net_widths", widths, 64, &n, ints);
  if (NtkNetCreate(PETSC_COMM_SELF, &net) || NtkDataCreate(PETSC_COMM_SELF, &ndat)) abort();
  if (!NtkNetSetFromOptions(net) && !NtkDataSetFromOptions(ndat) && FuzzDataIsCheap())
    (void)NtkDataSetUp(ndat);
  if (NtkNetDestroy(&net) || NtkDataDestroy(&ndat)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text, *line, *save = NULL, *widths = NULL;
  int   k = 0;

  if (size > 4096) return 0;
  if (PetscOptionsClear(NULL)) abort();
  text = (char *)calloc(size + 1, 1);
  if (!text) abort();
  memcpy(text, data, size);
  /* an embedded NUL ends the text, as it would end a command-line argument */
  for (line = strtok_r(text, "\n", &save); line && k < NOPT; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] != '.') (void)PetscOptionsSetValue(NULL, fuzz_options[k], line);
    if (k == 0) widths = line;
    k++;
  }
  FuzzRun(widths);
  free(text);
  return 0;
}
