/*
  ntkspec dense: the whole spectrum of the kernel from its dense form, assembled block by block
  from the Jacobian factors (src/spectrum/dense.c) and solved by ScaLAPACK (distributed) or LAPACK
  (rank 0, values only), with the trace, Frobenius norm, von Neumann entropy, effective rank and
  null space dimension. Refuses, before allocating, a kernel whose storage per rank would exceed
  -ntk_dense_max_gb (default: 80% of the machine's memory shared by the ranks).
*/
#include "app.h"
#include <ntk/spectrum.h>
#include <unistd.h>

/* 80% of physical memory divided among the ranks, in GB. */
static PetscReal DefaultMaxGB(MPI_Comm comm)
{
  long        pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  PetscMPIInt size;

  MPI_Comm_size(comm, &size);
  if (pages <= 0 || psize <= 0) return 8.0;
  return 0.8 * (PetscReal)pages * (PetscReal)psize / 1e9 / size;
}

PetscErrorCode NtkCmdDense(MPI_Comm comm)
{
  NtkApp             app;
  NtkDenseSolver     solver = NTK_DENSE_SCALAPACK;
  NtkSpectrumSummary sum;
  NtkKernelVariant   v;
  const NtkDataShard *sh;
  PetscReal          maxgb = DefaultMaxGB(comm), *eig, expect;
  PetscLogDouble     bytes;
  PetscMPIInt        size;
  PetscInt           n, show = 10, seed;
  PetscBool          help;
  json_object        *doc = json_object_new_object(), *arr = json_object_new_array();

  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "ntkspec dense", "ntkspec");
  PetscCall(PetscOptionsEnum("-ntk_dense_solver", "scalapack (distributed) or lapack (rank 0)", "",
                             NtkDenseSolvers, (PetscEnum)solver, (PetscEnum *)&solver, NULL));
  PetscCall(PetscOptionsReal("-ntk_dense_max_gb", "Refuse kernels needing more memory per rank "
                             "(GB); default 80% of physical memory / ranks", "", maxgb, &maxgb,
                             NULL));
  PetscCall(PetscOptionsInt("-ntk_dense_show", "Eigenvalues printed from each end", "", show, &show,
                            NULL));
  PetscOptionsEnd();
  PetscCheck(PetscIsNormalReal(maxgb) && maxgb > 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_dense_max_gb %g: must be a positive number of GB", (double)maxgb);
  PetscCheck(show >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_dense_show %" PetscInt_FMT ": must be >= 0", show);
  PetscCall(NtkAppCreate(comm, "dense", &app));
  PetscCall(PetscOptionsHasHelp(NULL, &help));
  if (help) { /* the options are listed; the dense kernel of the default data is large */
    json_object_put(doc), json_object_put(arr);
    PetscCall(NtkAppDestroy(&app));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(NtkDataGetShard(app.data, &sh));
  PetscCall(NtkOpGetKernel(app.op, &v));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  n = v == NTK_KERNEL_FULL ? sh->N * sh->C : sh->N;
  PetscCall(NtkDenseBytes(n, size, solver, &bytes));
  PetscCheck(bytes <= maxgb * 1e9, comm, PETSC_ERR_MEM,
             "the dense %s kernel of dimension %" PetscInt_FMT " needs %.3g GB per rank with %s on "
             "%d ranks, above -ntk_dense_max_gb %.3g GB: use fewer samples, more ranks, or the "
             "matrix-free commands", NtkKernelVariants[v], n, bytes / 1e9, NtkDenseSolvers[solver],
             size, (double)maxgb);
  PetscCall(NtkAppPrintf(&app, "dense %s kernel, dimension %" PetscInt_FMT ", %.3g GB per rank, "
                         "solver %s\n", NtkKernelVariants[v], n, bytes / 1e9,
                         NtkDenseSolvers[solver]));
  /* measured here at n = 2000: p?syev with vectors 8.8 s on one rank, dsyev values-only 0.6 s */
  expect = (solver == NTK_DENSE_SCALAPACK ? 8.8 / size : 0.6) * PetscPowReal(n / 2000.0, 3.0);
  PetscCall(NtkAppPrintf(&app, "assembling the kernel from the per-sample Jacobian factors "
                         "(always, whatever -ntk_op_factors says), then the full "
                         "eigendecomposition: about %.0f s on an idle machine (n^3 scaling)\n",
                         (double)PetscMax(expect, 1.0)));

  PetscCall(NtkDenseEigenvalues(app.op, solver, &n, &eig));
  PetscCall(NtkAppPrintf(&app, "done in %.1f s\n", MPI_Wtime() - app.t0));
  PetscCall(NtkSpectrumSummarize(n, eig, &sum));
  for (PetscInt k = 0; k < n; k++) { /* printed as lambda_1 >= lambda_2 >= ... */
    if (k < show || k >= n - show)
      PetscCall(NtkAppPrintf(&app, "  %6" PetscInt_FMT "  %.15e\n", k + 1, (double)eig[k]));
    json_object_array_add(arr, json_object_new_double(eig[k]));
  }
  PetscCall(NtkAppPrintf(&app, "trace %.10e  frobenius %.10e  entropy %.8f (normalised %.8f)  "
                         "effective rank %.6f  null space %" PetscInt_FMT " (below %.3e)\n",
                         (double)sum.trace, (double)sum.frobenius, (double)sum.entropy,
                         (double)sum.entropy_normalized, (double)sum.effective_rank,
                         sum.null_space_dim, (double)sum.threshold));

  PetscCall(NtkNetGetSeed(app.net, &seed));
  PetscCall(NtkAppDescribe(&app, doc));
  json_object_object_add(doc, "method", json_object_new_string(NtkDenseSolvers[solver]));
  json_object_object_add(doc, "seed", json_object_new_int64(seed));
  json_object_object_add(doc, "eigenvalues", arr);
  json_object_object_add(doc, "trace", json_object_new_double(sum.trace));
  json_object_object_add(doc, "frobenius", json_object_new_double(sum.frobenius));
  json_object_object_add(doc, "entropy", json_object_new_double(sum.entropy));
  json_object_object_add(doc, "entropy_normalized", json_object_new_double(sum.entropy_normalized));
  json_object_object_add(doc, "effective_rank", json_object_new_double(sum.effective_rank));
  json_object_object_add(doc, "null_space_dim", json_object_new_int64(sum.null_space_dim));
  json_object_object_add(doc, "null_space_threshold", json_object_new_double(sum.threshold));
  json_object_object_add(doc, "memory_bytes_per_rank", json_object_new_double(bytes));
  PetscCall(NtkAppWriteResult(&app, doc));
  json_object_put(doc);
  PetscCall(PetscFree(eig));
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}
