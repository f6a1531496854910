/*
  Unknown -ntk_* options are refused before any work starts: a misspelt option in a batch job would
  otherwise run hours on defaults. The known names are every -ntk_* literal of the sources,
  collected at build time (scripts/gen_known_options.py); the nearest known name by edit distance
  is suggested. Options that exist but that a command does not read are still only warned about
  at the end of the run.
*/
#include "app.h"
#include "ntk_known_options.h"
#include <string.h>

#define NKNOWN ((int)(sizeof(ntk_known_options) / sizeof(ntk_known_options[0])))
#define NBOOL  ((int)(sizeof(ntk_bool_options) / sizeof(ntk_bool_options[0])))

/* Levenshtein distance of two short strings (names longer than 63 characters count as far). */
static int EditDistance(const char *a, const char *b)
{
  int la = (int)strlen(a), lb = (int)strlen(b), row[64], prev, tmp;

  if (la > 63 || lb > 63) return 99;
  for (int j = 0; j <= lb; j++) row[j] = j;
  for (int i = 1; i <= la; i++) {
    prev   = row[0];
    row[0] = i;
    for (int j = 1; j <= lb; j++) {
      tmp    = row[j];
      row[j] = PetscMin(PetscMin(row[j] + 1, row[j - 1] + 1), prev + (a[i - 1] != b[j - 1]));
      prev   = tmp;
    }
  }
  return row[lb];
}

static const char *Nearest(const char *name)
{
  const char *best = NULL;
  int         dbest = 4;

  for (int k = 0; k < NKNOWN; k++) {
    int d = EditDistance(name, ntk_known_options[k]);
    if (d < dbest) dbest = d, best = ntk_known_options[k];
  }
  return best;
}

/*
  A boolean option given a value that is not one (PETSc's own message, "Unknown logical value",
  does not say which option): refused here with the option's name. An empty value means true.
*/
static PetscErrorCode CheckBooleans(MPI_Comm comm)
{
  static const char *const words[] = {"1", "0", "true", "false", "yes", "no", "on", "off"};

  PetscFunctionBegin;
  for (int k = 0; k < NBOOL; k++) {
    char      name[128], value[256] = "";
    PetscBool set, ok = PETSC_FALSE;

    PetscCall(PetscSNPrintf(name, sizeof(name), "-%s", ntk_bool_options[k]));
    PetscCall(PetscOptionsGetString(NULL, NULL, name, value, sizeof(value), &set));
    if (!set || !value[0]) continue;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]) && !ok; w++)
      PetscCall(PetscStrcasecmp(value, words[w], &ok));
    PetscCheck(ok, comm, PETSC_ERR_ARG_WRONG, "%s %s: not a boolean (use true or false)", name,
               value);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCheckKnownOptions(MPI_Comm comm)
{
  char *all, *tok, *save = NULL;

  PetscFunctionBegin;
  PetscCall(PetscOptionsGetAll(NULL, &all));
  for (tok = strtok_r(all, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    PetscBool known = PETSC_FALSE;

    if (strncmp(tok, "-ntk_", 5)) continue;
    for (int k = 0; k < NKNOWN && !known; k++)
      if (!strcmp(tok + 1, ntk_known_options[k])) known = PETSC_TRUE;
    if (!known) {
      const char *near = Nearest(tok + 1);
      char        name[256];

      PetscCall(PetscStrncpy(name, tok, sizeof(name)));
      PetscCall(PetscFree(all));
      SETERRQ(comm, PETSC_ERR_ARG_UNKNOWN_TYPE, "unknown option %s%s%s%s (ntkspec <command> -help "
              "lists the options)", name, near ? ": did you mean -" : "", near ? near : "",
              near ? "?" : "");
    }
  }
  PetscCall(PetscFree(all));
  PetscCall(CheckBooleans(comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}
