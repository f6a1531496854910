/*
  Error reporting for a tool run on many ranks. PETSc's default handler prints a traceback on
  every rank that fails; a user wants one line that names the file or option at fault. The
  handler here prints the initial message once: on rank 0 of the communicator for collective
  errors (every rank fails the same check), on the failing rank otherwise.

  PETSc's own option parsers (an unknown enum value, text where a number belongs) raise their errors
  on PETSC_COMM_SELF, yet every rank holds the same options and fails the same way at the same
  point; such errors are treated as collective on PETSC_COMM_WORLD, so they print once and the job
  ends without an abort.
*/
#include <ntk/sys.h>
#include <errno.h>
#include <string.h>

PetscClassId  NTK_CLASSID;
static PetscBool ntk_collective = PETSC_FALSE;
static PetscBool ntk_package_initialized = PETSC_FALSE;

/*
  PETSc's value parsers say "Input string abc has no integer value" or "Unknown logical value: abc"
  without the option's name; the option holding that value is looked up so the message names it.
  Best effort: on any failure the message is printed as it is.
*/
static void NtkErrorOptionName(const char *mess, char name[], size_t size)
{
  static const struct {
    const char *tag;
    char        end; /* the value runs up to this character, or to the end of the message */
  } forms[] = {{"Input string ", ' '}, {"Unknown logical value: ", 0}};
  const char *v0 = NULL, *v1 = NULL;
  char       *all = NULL, *p, *prev = NULL;
  size_t      vlen;

  name[0] = 0;
  for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]) && !v0; f++)
    if (!strncmp(mess, forms[f].tag, strlen(forms[f].tag))) {
      v0 = mess + strlen(forms[f].tag);
      v1 = strchr(v0, forms[f].end);
    }
  if (!v0 || !v1 || PetscOptionsGetAll(NULL, &all) || !all) return;
  vlen = (size_t)(v1 - v0);
  for (p = strtok(all, " "); p; prev = p, p = strtok(NULL, " ")) {
    if (prev && prev[0] == '-' && strlen(p) == vlen && !strncmp(p, v0, vlen)) {
      (void)PetscSNPrintf(name, size, "%s %s: ", prev, p);
      break;
    }
  }
  (void)PetscFree(all);
}

static PetscErrorCode NtkErrorHandler(MPI_Comm comm, int line, const char *fun, const char *file,
                                      PetscErrorCode n, PetscErrorType p, const char *mess,
                                      void *ctx)
{
  PetscMPIInt size = 1, rank = 0, wrank = 0;

  if (p != PETSC_ERROR_INITIAL) return n;
  if (fun && !strncmp(fun, "PetscOptions", 12)) comm = PETSC_COMM_WORLD;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  ntk_collective = size > 1 ? PETSC_TRUE : PETSC_FALSE;
  if (rank != 0) return n;
  if (mess && mess[0]) {
    char opt[256] = "";

    if (fun && !strncmp(fun, "PetscOptionsStringTo", 20))
      NtkErrorOptionName(mess, opt, sizeof(opt));
    if (size > 1 || wrank == 0)
      (void)PetscFPrintf(PETSC_COMM_SELF, PETSC_STDERR, "ntkspec: error: %s%s\n", opt, mess);
    else
      (void)PetscFPrintf(PETSC_COMM_SELF, PETSC_STDERR, "ntkspec: error on rank %d: %s%s\n", wrank,
                         opt, mess);
  } else {
    const char *text = NULL;
    PetscErrorMessage(n, &text, NULL);
    (void)PetscFPrintf(PETSC_COMM_SELF, PETSC_STDERR, "ntkspec: error: %s (in %s, %s:%d)\n",
                       text ? text : "unknown", fun, file, line);
  }
  (void)fflush(PETSC_STDERR);
  return n;
}

PetscErrorCode NtkErrorHandlerPush(void)
{
  PetscFunctionBegin;
  PetscCall(PetscPushErrorHandler(NtkErrorHandler, NULL));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscBool NtkErrorWasCollective(void) { return ntk_collective; }

/*
  All ranks agree on failure. The lowest failing rank's message is broadcast so that every rank
  raises the same collective error and the handler prints it once.
*/
PetscErrorCode NtkCheckAll(MPI_Comm comm, PetscBool ok, PetscErrorCode code, const char msg[])
{
  PetscMPIInt rank, size, bad, first;
  char        text[1024] = {0};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  bad = ok ? size : rank;
  PetscCallMPI(MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == size) PetscFunctionReturn(PETSC_SUCCESS);
  if (rank == first && msg) PetscCall(PetscStrncpy(text, msg, sizeof(text)));
  PetscCallMPI(MPI_Bcast(text, (PetscMPIInt)sizeof(text), MPI_CHAR, first, comm));
  PetscCallMPI(MPI_Bcast(&code, 1, MPI_INT, first, comm));
  SETERRQ(comm, code ? code : PETSC_ERR_FILE_UNEXPECTED, "%s", text);
}

PetscErrorCode NtkParseIntList(MPI_Comm comm, const char option[], const char text[], PetscInt max,
                               PetscInt *n, PetscInt vals[])
{
  const char *p = text;

  PetscFunctionBegin;
  *n = 0;
  while (*p) {
    char *end;
    long  v;

    errno = 0;
    v     = strtol(p, &end, 10);
    PetscCheck(end != p, comm, PETSC_ERR_ARG_WRONG,
               "%s: '%s' is not a comma-separated list of integers", option, text);
    PetscCheck(errno != ERANGE && v >= PETSC_MIN_INT && v <= PETSC_MAX_INT, comm,
               PETSC_ERR_ARG_OUTOFRANGE, "%s: entry %" PetscInt_FMT " of '%s' is too large to be "
               "an integer here", option, *n + 1, text);
    PetscCheck(*n < max, comm, PETSC_ERR_ARG_OUTOFRANGE, "%s: more than %" PetscInt_FMT
               " entries in '%s'", option, max, text);
    vals[(*n)++] = (PetscInt)v;
    p = end;
    if (*p == ',') p++;
    else PetscCheck(*p == 0, comm, PETSC_ERR_ARG_WRONG,
                    "%s: unexpected '%c' in '%s' (expected e.g. 784,256,10)", option, *p, text);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkInitializePackage(void)
{
  PetscFunctionBegin;
  if (ntk_package_initialized) PetscFunctionReturn(PETSC_SUCCESS);
  ntk_package_initialized = PETSC_TRUE;
  PetscCall(PetscClassIdRegister("ntkspec", &NTK_CLASSID));
  PetscFunctionReturn(PETSC_SUCCESS);
}
