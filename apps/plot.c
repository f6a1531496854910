/*
  Plots for people who would rather look than read: one curve per CSV file of tracked values,
  drawn by gnuplot (Debian package gnuplot-nox) on rank 0. The terminal is pngcairo, else png,
  else svg. The script goes to a temporary file, gnuplot draws to a temporary image name, and the
  image is renamed into place, so an existing plot is never left half-written.
*/
#include "plot.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The best terminal this gnuplot has, or NULL when gnuplot cannot be run. */
static const char *Terminal(const char **ext)
{
  static const char *const term[] = {"pngcairo", "png", "svg"};
  static const char *const exts[] = {"png", "png", "svg"};
  char cmd[128];

  if (system("command -v gnuplot >/dev/null 2>&1")) return NULL;
  for (int k = 0; k < 3; k++) {
    (void)snprintf(cmd, sizeof(cmd), "gnuplot -e 'set terminal %s' >/dev/null 2>&1", term[k]);
    if (!system(cmd)) {
      *ext = exts[k];
      return term[k];
    }
  }
  return NULL;
}

/* Rank 0 part of NtkPlotCurves; returns 0 on success, else a message in msg. */
static int PlotRoot(const NtkPlot *p, PetscInt n, const char *const csv[],
                    const char *const label[], char *out, size_t outlen, char *msg, size_t msglen)
{
  const char *ext = NULL, *term = Terminal(&ext);
  char        script[PETSC_MAX_PATH_LEN + 16], tmp[PETSC_MAX_PATH_LEN + 16];
  char        cmd[3 * PETSC_MAX_PATH_LEN + 64];
  FILE       *f;

  if (!term) {
    (void)snprintf(msg, msglen, "cannot run gnuplot for the plots: install the Debian package "
                   "gnuplot-nox (or turn plots off)");
    return 1;
  }
  (void)snprintf(out, outlen, "%s.%s", p->stem, ext);
  (void)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%s", p->stem, (long)getpid(), ext);
  (void)snprintf(script, sizeof(script), "%s.tmp.%ld.gp", p->stem, (long)getpid());
  f = fopen(script, "w");
  if (!f) {
    (void)snprintf(msg, msglen, "cannot write the gnuplot script %s", script);
    return 1;
  }
  (void)fprintf(f, "set terminal %s size 900,600\nset output '%s'\n", term, tmp);
  (void)fprintf(f, "set datafile separator ','\nset datafile missing ''\nset grid\n");
  (void)fprintf(f, "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\nset key outside right\n",
                p->title, p->xlabel ? p->xlabel : p->logx ? "step + 1" : "step", p->ylabel);
  if (p->logx) (void)fprintf(f, "set logscale x\n");
  if (p->logy) (void)fprintf(f, "set logscale y\nset format y '10^{%%L}'\n");
  (void)fprintf(f, "plot ");
  for (PetscInt k = 0; k < n; k++)
    (void)fprintf(f, "%s'%s' skip 1 using ($1%s):%d with linespoints pt 7 ps 0.5 title '%s'",
                  k ? ", \\\n     " : "", csv[k], p->logx && !p->xlabel ? "+1" : "", p->column,
                  label[k]);
  (void)fprintf(f, "\n");
  if (fclose(f)) {
    (void)snprintf(msg, msglen, "cannot write the gnuplot script %s", script);
    return 1;
  }
  (void)snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>'%s.err'", script, script);
  if (system(cmd) || rename(tmp, out)) {
    (void)remove(tmp); /* a partial image never stays behind */
    (void)snprintf(msg, msglen, "gnuplot failed on %s (messages in %s.err)", script, script);
    return 1;
  }
  (void)snprintf(cmd, sizeof(cmd), "%s.err", script);
  (void)remove(cmd);
  (void)remove(script);
  return 0;
}

PetscErrorCode NtkPlotCurves(MPI_Comm comm, const NtkPlot *p, PetscInt n, const char *const csv[],
                             const char *const label[], char out[], size_t outlen)
{
  PetscMPIInt rank;
  int         err = 0;
  char        msg[3 * PETSC_MAX_PATH_LEN] = "";

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) err = PlotRoot(p, n, csv, label, out, outlen, msg, sizeof(msg));
  PetscCallMPI(MPI_Bcast(out, (PetscMPIInt)outlen, MPI_CHAR, 0, comm));
  PetscCall(NtkCheckAll(comm, err ? PETSC_FALSE : PETSC_TRUE, PETSC_ERR_SYS, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}
