/* Plots of tracked training values by gnuplot (apps/plot.c). */
#pragma once
#include "app.h"

typedef struct {
  const char *stem;   /* output path without extension (.png or .svg is added) */
  const char *title, *ylabel;
  int         column; /* 1-based CSV column of the y values; x is the step, column 1 */
  PetscBool   logx, logy;
  const char *xlabel; /* NULL: x is the step (shifted by 1 on a log scale); else x as it is */
} NtkPlot;

/* One curve per CSV file; drawn on rank 0, errors reach every rank. out: the image written. */
PetscErrorCode NtkPlotCurves(MPI_Comm, const NtkPlot *, PetscInt, const char *const[],
                             const char *const[], char[], size_t);
