/*
  ntkspec: the spectrum of the empirical neural tangent kernel, without forming the kernel.

    ntkspec <command> [options]       commands: info (more arrive with each release)
    ntkspec <command> -help           every option of that command, with its default
    ntkspec <command> -help all       the same, followed by PETSc's and SLEPc's own options

  PETSc prints help through the function pointer PetscHelpPrintf: its banners and generic options
  come first and run to hundreds of lines. Unless -help all (or -help_all) is given, HelpFilter
  below collects the help text into sections (PETSc separates them by a line of dashes) and passes
  on only the sections that list an -ntk_ option, so that a command's own options are what is seen.
*/
#include <slepcsys.h>
#include "app.h"
#include "ntk_config.h"
#include <stdarg.h>

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
    {"spectrum", NtkCmdSpectrum,
     "leading and tail (smallest nonzero) eigenpairs, matrix-free (SLEPc)"},
    {"dense", NtkCmdDense, "whole spectrum of the assembled kernel (ScaLAPACK or LAPACK)"},
    {"train", NtkCmdTrain, "train with rho, Tr K, losses tracked; checkpoints; exit 3 = resumable"},
    {"plot", NtkCmdPlot, "PNG pictures of spectra, densities, rho curves from result files"},
    {"sweep", NtkCmdSweep, "train at several widths: spectral reach summary, CSV/JSON and plots"},
};
static const int ncommands = (int)(sizeof(commands) / sizeof(commands[0]));

static void Usage(FILE *f, int intro)
{
  if (intro) (void)fprintf(f, "%s\n", help);
  (void)fprintf(f, "commands:\n");
  for (int k = 0; k < ncommands; k++)
    (void)fprintf(f, "  %-10s %s\n", commands[k].name, commands[k].summary);
}

#define HELP_SECTION_MAX 65536
static char   help_line[4096], help_section[HELP_SECTION_MAX];
static size_t help_line_len, help_section_len;
static int    help_section_ours, help_started, help_root;

/* Print the collected section if it lists one of ntkspec's options, then start a new one. */
static void HelpSectionEnd(void)
{
  if (help_root && help_section_ours) (void)fputs(help_section, stdout);
  help_section[0] = 0, help_section_len = 0, help_section_ours = 0;
}

/* One complete line of PETSc's help text: a separator starts a section, other lines join it. */
static void HelpLine(const char *line)
{
  size_t n = strlen(line);

  if (!strncmp(line, "-----", 5)) { /* the text before the first separator is PETSc's banner */
    if (help_started) HelpSectionEnd();
    help_started = 1;
  }
  if (!help_started) return;
  if (strstr(line, "-ntk_")) help_section_ours = 1;
  if (help_section_len + n + 1 >= HELP_SECTION_MAX) HelpSectionEnd();
  if (n + 1 >= HELP_SECTION_MAX) return;
  (void)memcpy(help_section + help_section_len, line, n + 1);
  help_section_len += n;
}

static PetscErrorCode HelpFilter(MPI_Comm comm, const char fmt[], ...)
{
  char        text[4096];
  va_list     ap;
  PetscMPIInt rank = 0;

  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank);
  help_root = rank == 0;
  va_start(ap, fmt);
  (void)vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  for (const char *c = text; *c; c++) {
    if (help_line_len + 2 < sizeof(help_line)) help_line[help_line_len++] = *c;
    if (*c == '\n') {
      help_line[help_line_len] = 0;
      HelpLine(help_line);
      help_line_len = 0;
    }
  }
  return PETSC_SUCCESS;
}

/*
  -help all / -help_all: PETSc's complete help; -help: the filtered one. PETSc reads the word after
  -help as a truth value, so "all" is taken out of argv and -help_all becomes -help.
*/
static int HelpRequested(int *argc, char **argv, int *all)
{
  static char plain[] = "-help";
  int         help = 0;

  *all = 0;
  for (int k = 1; k < *argc; k++) {
    if (!strcmp(argv[k], "-help_all")) argv[k] = plain, *all = 1;
    if (strcmp(argv[k], "-help") && strcmp(argv[k], "--help")) continue;
    help = 1;
    if (k + 1 < *argc && !strcmp(argv[k + 1], "all")) {
      *all = 1;
      for (int j = k + 1; j + 1 < *argc; j++) argv[j] = argv[j + 1];
      (*argc)--;
    }
  }
  return help;
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
      (void)fprintf(stderr, "ntkspec: warning: option -%s is not read by '%s'\n",
                    names[k], command);
  (void)PetscOptionsLeftRestore(NULL, &n, &names, &values);
}

int main(int argc, char **argv)
{
  const NtkCommand *cmd = NULL;
  PetscErrorCode    ierr;
  PetscMPIInt       rank;
  int               want_help, help_all;

  /* The command is the first argument; everything after it is PETSc-style options. */
  if (argc > 1 && argv[1][0] != '-')
    for (int k = 0; k < ncommands; k++)
      if (!strcmp(argv[1], commands[k].name)) cmd = &commands[k];
  want_help = HelpRequested(&argc, argv, &help_all);
  if (want_help && !help_all) PetscHelpPrintf = HelpFilter;
  ierr = SlepcInitialize(&argc, &argv, NULL, help);
  if (ierr) return (int)ierr;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  if (want_help && !help_all && !rank && cmd)
    (void)printf("ntkspec %s: %s\noptions shown as <now VALUE : formerly DEFAULT>, i.e. the "
                 "value in effect, then the built-in default\n", cmd->name,
                 cmd->summary);
  if (!cmd) { /* -help lists the commands (status 0); no command or an unknown one is misuse */
    if (!rank) {
      if (argc > 1 && argv[1][0] != '-')
        (void)fprintf(stderr, "ntkspec: unknown command '%s'\n\n", argv[1]);
      else if (!want_help) (void)fprintf(stderr, "ntkspec: no command given\n\n");
      Usage(want_help ? stdout : stderr, !want_help);
      if (want_help && !help_all) (void)printf("\nPETSc/SLEPc options: ntkspec -help all\n");
    }
    (void)SlepcFinalize();
    return want_help && !(argc > 1 && argv[1][0] != '-') ? 0 : 2;
  }
  PetscCallMPI(NtkErrorHandlerPush());
  ierr = NtkCheckKnownOptions(PETSC_COMM_WORLD);
  if (!ierr) ierr = cmd->run(PETSC_COMM_WORLD);
  if (ierr) {
    /* A collective error reached every rank and may finalise; a local one takes the job down. */
    if (!NtkErrorWasCollective()) {
      int size;
      MPI_Comm_size(PETSC_COMM_WORLD, &size);
      if (size > 1) MPI_Abort(PETSC_COMM_WORLD, 1);
    }
    (void)SlepcFinalize();
    return 1;
  }
  if (want_help && !help_all) {
    HelpSectionEnd();
    if (!rank) (void)printf("\nPETSc/SLEPc options: ntkspec %s -help all\n", cmd->name);
  }
  if (!rank) WarnUnusedOptions(cmd->name);
  ierr = SlepcFinalize();
  return ierr ? 1 : NtkAppExitStatus;
}
