/* Spellings of newer PETSc releases, for the PETSc 3.18 that Debian 12 ships. */
#pragma once
#include <petscsys.h>

#if PETSC_VERSION_LT(3, 19, 0)
  #define PETSC_SUCCESS 0
#endif
