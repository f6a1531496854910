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
  PetscFunctionReturn(PETSC_SUCCESS);
}
