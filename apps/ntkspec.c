/*
  ntkspec: the spectrum of the empirical neural tangent kernel, without forming the kernel.

    ntkspec <command> [options]       commands: info (more arrive with each release)
    ntkspec <command> -help           every option of that command, with its default
*/
#include <slepcsys.h>
#include "app.h"
#include "ntk_config.h"

static const char help[] =
  "ntkspec " NTK_VERSION ": spectra of the empirical neural tangent kernel K = J J^T.\n"
  "usage: ntkspec <command> [options]; ntkspec <command> -help lists the command's options.\n";

typedef struct {
  const char *name;
  PetscErrorCode (*run)(MPI_Comm);
  const char *summary;
} NtkCommand;

static const NtkCommand commands[] = {
  {"info", NtkCmdInfo, "model, data, kernel size and memory; -ntk_info_selfcheck tests JVP/VJP"},
  {"estimate", NtkCmdEstimate, "trace, Frobenius norm, effective rank, entropy with error bars"},
  {"position", NtkCmdPosition, "spectral position rho of the loss gradient, mu, alignment"},
  {"spectrum", NtkCmdSpectrum, "leading and tail (smallest nonzero) eigenpairs, matrix-free (SLEPc)"},
  {"dense", NtkCmdDense, "whole spectrum of the assembled kernel (ScaLAPACK or LAPACK)"},
  {"train", NtkCmdTrain, "train with rho, Tr K, losses tracked; checkpoints; exit 3 = resumable"},
  {"sweep", NtkCmdSweep, "train at several widths: spectral reach summary, CSV/JSON and plots"},
};
static const int ncommands = (int)(sizeof(commands) / sizeof(commands[0]));

static void Usage(FILE *f)
{
  (void)fprintf(f, "%s\ncommands:\n", help);
  for (int k = 0; k < ncommands; k++) (void)fprintf(f, "  %-10s %s\n", commands[k].name, commands[k].summary);
}

/*
  A misspelt option (-ntk_net_widht) is otherwise ignored without a word, and the run goes on with
  the default; after a successful run, rank 0 names every -ntk_ option that nothing read.
*/
static void WarnUnusedOptions(const char command[])
{
  PetscInt  n = 0;
  char    **names = NULL, **values = NULL;
  PetscBool left = PETSC_FALSE;

  (void)PetscOptionsGetBool(NULL, NULL, "-options_left", &left, NULL);
  if (left || PetscOptionsLeftGet(NULL, &n, &names, &values)) return;
  for (PetscInt k = 0; k < n; k++)
    if (!strncmp(names[k], "ntk_", 4))
      (void)fprintf(stderr, "ntkspec: warning: option -%s was not used by '%s' (misspelt?)\n",
                    names[k], command);
  (void)PetscOptionsLeftRestore(NULL, &n, &names, &values);
}

int main(int argc, char **argv)
{
  const NtkCommand *cmd = NULL;
  PetscErrorCode    ierr;
  PetscMPIInt       rank;

  /* The command is the first argument; everything after it is PETSc-style options. */
  if (argc > 1 && argv[1][0] != '-')
    for (int k = 0; k < ncommands; k++)
      if (!strcmp(argv[1], commands[k].name)) cmd = &commands[k];
  ierr = SlepcInitialize(&argc, &argv, NULL, help);
  if (ierr) return (int)ierr;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  if (!cmd) {
    if (!rank) {
      if (argc > 1 && argv[1][0] != '-') (void)fprintf(stderr, "ntkspec: unknown command '%s'\n\n", argv[1]);
      Usage(argc > 1 && argv[1][0] != '-' ? stderr : stdout);
    }
    (void)SlepcFinalize();
    return argc > 1 && argv[1][0] != '-' ? 2 : 0;
  }
  PetscCallMPI(NtkErrorHandlerPush());
  ierr = cmd->run(PETSC_COMM_WORLD);
  if (ierr) {
    /* A collective error reached every rank and may finalise; a local one must take the job down. */
    if (!NtkErrorWasCollective()) {
      int size;
      MPI_Comm_size(PETSC_COMM_WORLD, &size);
      if (size > 1) MPI_Abort(PETSC_COMM_WORLD, 1);
    }
    (void)SlepcFinalize();
    return 1;
  }
  if (!rank) WarnUnusedOptions(cmd->name);
  ierr = SlepcFinalize();
  return ierr ? 1 : NtkAppExitStatus;
}
