/*
  Settings of NtkSpectrum: setters, getters and the -ntk_spectrum_* options (see eigen.c for the
  methods they steer).
*/
#include "spectrumimpl.h"

const char *const NtkSpectrumSides[]   = {"auto", "output", "parameter", "NtkSpectrumSide",
                                          "NTK_SIDE_", NULL};
const char *const NtkSpectrumMethods[] = {"eps", "svd", "NtkSpectrumMethod", "NTK_SPECTRUM_", NULL};

PetscErrorCode NtkSpectrumSetNev(NtkSpectrum sp, PetscInt k)
{
  PetscFunctionBegin;
  PetscCheck(k >= 0, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_nev %" PetscInt_FMT " must be >= 0", k);
  sp->nev = k;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetNev(NtkSpectrum sp, PetscInt *k)
{
  PetscFunctionBegin;
  *k = sp->nev;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetTail(NtkSpectrum sp, PetscInt k)
{
  PetscFunctionBegin;
  PetscCheck(k >= 0, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_tail %" PetscInt_FMT " must be >= 0", k);
  sp->ntail = k;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetTail(NtkSpectrum sp, PetscInt *k)
{
  PetscFunctionBegin;
  *k = sp->ntail;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetTolerance(NtkSpectrum sp, PetscReal tol)
{
  PetscFunctionBegin;
  PetscCheck(tol > 0 && tol < 1, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_tol %g must lie in (0, 1)", (double)tol);
  sp->tol = tol;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetTolerance(NtkSpectrum sp, PetscReal *tol)
{
  PetscFunctionBegin;
  *tol = sp->tol;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetMaxIt(NtkSpectrum sp, PetscInt it)
{
  PetscFunctionBegin;
  PetscCheck(it == PETSC_DEFAULT || it >= 1, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_max_it %" PetscInt_FMT " must be >= 1", it);
  sp->max_it = it;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetMaxIt(NtkSpectrum sp, PetscInt *it)
{
  PetscFunctionBegin;
  *it = sp->max_it;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetSide(NtkSpectrum sp, NtkSpectrumSide side)
{
  PetscFunctionBegin;
  sp->side = side;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetSide(NtkSpectrum sp, NtkSpectrumSide *side)
{
  PetscFunctionBegin;
  *side = sp->side;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetMethod(NtkSpectrum sp, NtkSpectrumMethod m)
{
  PetscFunctionBegin;
  sp->method = m;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetMethod(NtkSpectrum sp, NtkSpectrumMethod *m)
{
  PetscFunctionBegin;
  *m = sp->method;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetTailNcv(NtkSpectrum sp, PetscInt ncv)
{
  PetscFunctionBegin;
  PetscCheck(ncv == PETSC_DEFAULT || ncv >= 2, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_tail_ncv %" PetscInt_FMT " must be >= 2", ncv);
  sp->tail_ncv = ncv;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetTailNcv(NtkSpectrum sp, PetscInt *ncv)
{
  PetscFunctionBegin;
  *ncv = sp->tail_ncv;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetVectorsFile(NtkSpectrum sp, const char file[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(sp->vecfile, file ? file : "", sizeof(sp->vecfile)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetVectorsFile(NtkSpectrum sp, const char *file[])
{
  PetscFunctionBegin;
  *file = sp->vecfile;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetMonitor(NtkSpectrum sp, PetscBool flg)
{
  PetscFunctionBegin;
  sp->monitor = flg;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetMonitor(NtkSpectrum sp, PetscBool *flg)
{
  PetscFunctionBegin;
  *flg = sp->monitor;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetCheckpoint(NtkSpectrum sp, const char file[], PetscInt every)
{
  PetscFunctionBegin;
  PetscCheck(every >= 0, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_checkpoint_every %" PetscInt_FMT " must be >= 0 (0: only on a signal)",
             every);
  if (file != sp->ckfile) PetscCall(PetscStrncpy(sp->ckfile, file ? file : "", sizeof(sp->ckfile)));
  sp->ck_every = every;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetCheckpoint(NtkSpectrum sp, const char *file[], PetscInt *every)
{
  PetscFunctionBegin;
  if (file) *file = sp->ckfile;
  if (every) *every = sp->ck_every;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetStopAfter(NtkSpectrum sp, PetscInt products)
{
  PetscFunctionBegin;
  PetscCheck(products >= 0, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_stop_after %" PetscInt_FMT " must be >= 0", products);
  sp->stop_after = products;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetInterrupted(NtkSpectrum sp, PetscBool *flg)
{
  PetscFunctionBegin;
  *flg = sp->interrupted;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumGetResumeInfo(NtkSpectrum sp, PetscBool *read, PetscInt *products,
                                        PetscInt *writes)
{
  PetscFunctionBegin;
  if (read) *read = sp->ckread;
  if (products) *products = sp->pthis;
  if (writes) *writes = sp->ckwrites;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSpectrumSetFromOptions(NtkSpectrum sp)
{
  PetscFunctionBegin;
  PetscOptionsBegin(sp->comm, NULL, "Eigenpairs of the kernel", "NtkSpectrum");
  PetscCall(PetscOptionsInt("-ntk_spectrum_nev", "Leading (largest) eigenpairs",
                            "NtkSpectrumSetNev",
                            sp->nev, &sp->nev, NULL));
  PetscCall(PetscOptionsInt("-ntk_spectrum_tail", "Tail (smallest nonzero) eigenpairs",
                            "NtkSpectrumSetTail", sp->ntail, &sp->ntail, NULL));
  PetscCall(PetscOptionsReal("-ntk_spectrum_tol", "Tolerance: |r| <= tol |lambda| (leading), "
                             "|r| <= tol lambda_max (tail)", "NtkSpectrumSetTolerance", sp->tol,
                             &sp->tol, NULL));
  PetscCall(PetscOptionsInt("-ntk_spectrum_max_it", "Maximum restarts of each solve",
                            "NtkSpectrumSetMaxIt", sp->max_it, &sp->max_it, NULL));
  PetscCall(PetscOptionsEnum("-ntk_spectrum_side", "Operator: auto (smaller of NC and P), output "
                             "(K), parameter (G = J^T J)", "NtkSpectrumSetSide", NtkSpectrumSides,
                             (PetscEnum)sp->side, (PetscEnum *)&sp->side, NULL));
  PetscCall(PetscOptionsEnum("-ntk_spectrum_method", "eps (eigensolver on K or G) or svd (Lanczos "
                             "SVD of J)", "NtkSpectrumSetMethod", NtkSpectrumMethods,
                             (PetscEnum)sp->method, (PetscEnum *)&sp->method, NULL));
  PetscCall(PetscOptionsInt("-ntk_spectrum_tail_ncv", "Basis size of the tail solve "
                            "(default: the dimension up to 4096, else 2048; at most 2 GB per rank)",
                            "NtkSpectrumSetTailNcv", sp->tail_ncv, &sp->tail_ncv, NULL));
  PetscCall(PetscOptionsString("-ntk_spectrum_vectors", "Write the eigenvectors (PETSc binary, "
                               "leading then tail) to this file", "NtkSpectrumSetVectorsFile",
                               sp->vecfile, sp->vecfile, sizeof(sp->vecfile), NULL));
  PetscCall(PetscOptionsString("-ntk_spectrum_checkpoint", "Checkpoint file (JSON, vectors in "
                               "<file>.<0|1>.vec): written on SIGTERM/SIGUSR1, read back when "
                               "present", "NtkSpectrumSetCheckpoint", sp->ckfile, sp->ckfile,
                               sizeof(sp->ckfile), NULL));
  PetscCall(PetscOptionsInt("-ntk_spectrum_checkpoint_every", "Also write the checkpoint, and go "
                            "on, after every this many kernel products (0: only on signals)",
                            "NtkSpectrumSetCheckpoint", sp->ck_every, &sp->ck_every, NULL));
  PetscCall(PetscOptionsInt("-ntk_spectrum_stop_after", "Test hook: stop as on SIGTERM once this "
                            "run has spent this many kernel products (0: never)",
                            "NtkSpectrumSetStopAfter", sp->stop_after, &sp->stop_after, NULL));
  PetscOptionsEnd();
  PetscCall(NtkSpectrumSetNev(sp, sp->nev));
  PetscCall(NtkSpectrumSetTail(sp, sp->ntail));
  PetscCall(NtkSpectrumSetTolerance(sp, sp->tol));
  PetscCall(NtkSpectrumSetMaxIt(sp, sp->max_it));
  PetscCall(NtkSpectrumSetTailNcv(sp, sp->tail_ncv));
  PetscCall(NtkSpectrumSetStopAfter(sp, sp->stop_after));
  PetscCall(NtkSpectrumSetCheckpoint(sp, sp->ckfile, sp->ck_every));
  PetscCheck(sp->ckfile[0] || (!sp->stop_after && !sp->ck_every), sp->comm, PETSC_ERR_ARG_WRONG,
             "%s needs a checkpoint file (-ntk_spectrum_checkpoint)",
             sp->ck_every ? "-ntk_spectrum_checkpoint_every" : "-ntk_spectrum_stop_after");
  PetscCheck(sp->nev > 0 || sp->ntail > 0, sp->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_spectrum_nev 0 with -ntk_spectrum_tail 0 asks for no eigenpairs: set either "
             "to at least 1");
  PetscFunctionReturn(PETSC_SUCCESS);
}
