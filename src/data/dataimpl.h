/*
  Private declarations shared by the data readers and the NtkData object.

  The public readers take a contiguous block of rows; NtkData also needs scattered rows (a class
  filter or a random subset), so the readers are built on a row selection: either the block
  [row0, row0 + n) or a sorted list of row indices. Reading a sorted list in one pass keeps a
  compressed file to a single decompression per rank.
*/
#pragma once
#include <ntk/data.h>

typedef struct {
  PetscInt        row0; /* first row of a block (ignored when rows != NULL) */
  PetscInt        n;    /* rows selected; PETSC_DETERMINE means "to the end" for a block */
  const PetscInt *rows; /* strictly increasing row indices, or NULL for a block */
} NtkRowSel;

static inline PetscInt NtkRowSelGet(const NtkRowSel *sel, PetscInt k)
{
  return sel->rows ? sel->rows[k] : sel->row0 + k;
}

/* Resolve PETSC_DETERMINE against the row count of `file` and check the selection is in range. */
PETSC_INTERN PetscErrorCode NtkRowSelResolve(const char[], PetscInt, NtkRowSel *);

PETSC_INTERN PetscErrorCode NtkReadIDXRows(const char[], PetscInt *, PetscInt[4], NtkRowSel *,
                                           PetscReal **);
PETSC_INTERN PetscErrorCode NtkReadNPYRows(const char[], PetscInt *, PetscInt[4], NtkRowSel *,
                                           PetscReal **);

/*
  Check a file's shape: 1 <= ndim <= 4, every dimension positive, and the element count and byte
  count representable (PetscInt and size_t). On success dims[] holds the shape (unused entries 0)
  and *nbytes = product * itemsize.
*/
PETSC_INTERN PetscErrorCode NtkShapeCheck(const char[], PetscInt, const uint64_t[], size_t,
                                          PetscInt[4], size_t *);
