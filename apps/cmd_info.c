/*
  ntkspec info: what the model, the data and the kernel are, what a dense kernel would cost and
  what the matrix-free path needs instead. With -ntk_info_selfcheck it also checks the products
  on the data: the adjoint identity <J v, u> = <v, J^T u> and the JVP against central finite
  differences of the forward pass, on probe vectors drawn from the seeded streams.
*/
#include "app.h"

/* theta += alpha v, then refresh the operator's cached forward state */
static PetscErrorCode Shift(NtkApp *app, PetscReal alpha, const PetscScalar *v)
{
  Vec          theta;
  PetscScalar *th;
  PetscInt     P;

  PetscFunctionBegin;
  PetscCall(NtkNetGetParameters(app->net, &theta));
  PetscCall(VecGetLocalSize(theta, &P));
  PetscCall(VecGetArray(theta, &th));
  for (PetscInt k = 0; k < P; k++) th[k] += alpha * v[k];
  PetscCall(VecRestoreArray(theta, &th));
  PetscCall(NtkOpUpdate(app->op));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  adj = |<J v, u> - <v, J^T u>| / (|J v| |u|)
  fd  = |(F(th + h v) - F(th - h v)) / 2h - J v| / |J v|
  The products are those of the shell matrix J, which eigensolvers and estimators use: with the
  operator's Jacobian factors when it keeps them.
*/
static PetscErrorCode SelfCheck(NtkApp *app, PetscReal *adj, PetscReal *fd)
{
  Mat          J;
  Vec          u, jv, fp, fm, pv, jtu;
  PetscInt     P, lo, hi;
  PetscScalar *v, *a, jvu, vjtu;
  PetscReal    nrm_jv, nrm_u, nrm_v = 0, h, nrm_d;

  PetscFunctionBegin;
  PetscCall(NtkNetGetNumParameters(app->net, &P));
  PetscCall(NtkOpGetJacobian(app->op, &J));
  PetscCall(PetscMalloc1(P, &v));
  for (PetscInt k = 0; k < P; k++) v[k] = NtkRandomNormal(7, 1, k);
  for (PetscInt k = 0; k < P; k++) nrm_v += v[k] * v[k];
  PetscCall(MatCreateVecs(J, &pv, &u));
  PetscCall(VecDuplicate(pv, &jtu));
  PetscCall(VecDuplicate(u, &jv));
  PetscCall(VecDuplicate(u, &fp));
  PetscCall(VecDuplicate(u, &fm));
  PetscCall(VecGetOwnershipRange(pv, &lo, &hi));
  PetscCall(VecGetArrayWrite(pv, &a));
  for (PetscInt k = lo; k < hi; k++) a[k - lo] = v[k];
  PetscCall(VecRestoreArrayWrite(pv, &a));
  PetscCall(VecGetOwnershipRange(u, &lo, &hi));
  PetscCall(VecGetArrayWrite(u, &a));
  for (PetscInt i = lo; i < hi; i++) a[i - lo] = NtkRandomNormal(7, 2, i);
  PetscCall(VecRestoreArrayWrite(u, &a));

  PetscCall(MatMult(J, pv, jv));
  PetscCall(MatMultTranspose(J, u, jtu));
  PetscCall(VecDot(jv, u, &jvu));
  PetscCall(VecDot(pv, jtu, &vjtu));
  PetscCall(VecNorm(jv, NORM_2, &nrm_jv));
  PetscCall(VecNorm(u, NORM_2, &nrm_u));
  *adj = PetscAbsScalar(jvu - vjtu) / (nrm_jv * nrm_u);

  /* step ~ eps^(1/3) relative to the parameters balances truncation against rounding */
  h = 1e-5 / PetscSqrtReal(nrm_v / P);
  PetscCall(Shift(app, h, v));
  PetscCall(NtkOpGetOutputs(app->op, fp));
  PetscCall(Shift(app, -2 * h, v));
  PetscCall(NtkOpGetOutputs(app->op, fm));
  PetscCall(Shift(app, h, v));
  PetscCall(VecAXPY(fp, -1.0, fm));
  PetscCall(VecScale(fp, 1.0 / (2 * h)));
  PetscCall(VecAXPY(fp, -1.0, jv));
  PetscCall(VecNorm(fp, NORM_2, &nrm_d));
  *fd = nrm_d / nrm_jv;

  PetscCall(VecDestroy(&u));
  PetscCall(VecDestroy(&jv));
  PetscCall(VecDestroy(&fp));
  PetscCall(VecDestroy(&fm));
  PetscCall(VecDestroy(&pv));
  PetscCall(VecDestroy(&jtu));
  PetscCall(PetscFree(v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Bytes the matrix-free path holds per rank: parameters and work vectors, micro-batch buffers, the
  outputs, and the cache (forward state and Jacobian factors) as the operator allocated it.
*/
static PetscErrorCode MatrixFreeBytes(NtkApp *app, PetscInt nloc, PetscReal *bytes)
{
  PetscInt        P, L, mb, n;
  const PetscInt *w;
  PetscLogDouble  cache;
  PetscReal       per = 0;
  MPI_Comm        comm;

  PetscFunctionBegin;
  PetscCall(NtkNetGetComm(app->net, &comm));
  PetscCall(NtkNetGetNumParameters(app->net, &P));
  PetscCall(NtkNetGetWidths(app->net, &n, &w));
  PetscCall(NtkNetGetNumLayers(app->net, &L));
  PetscCall(NtkOpGetMicroBatch(app->op, &mb));
  PetscCall(NtkOpGetCacheBytes(app->op, &cache));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &cache, 1, MPI_DOUBLE, MPI_MAX, comm));
  for (PetscInt l = 0; l < n; l++) per = PetscMax(per, (PetscReal)w[l]);
  *bytes = 8.0 * (6.0 * P + 4.0 * mb * per + 3.0 * nloc * w[L]) + cache;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkCmdInfo(MPI_Comm comm)
{
  NtkApp              app;
  const NtkDataShard *sh;
  PetscBool           check = PETSC_FALSE;
  PetscMPIInt         size;
  PetscInt            nmin, nmax, nloc, P;
  PetscReal           dense, mfree = 0, adj = 0, fd = 0;
  json_object        *doc = json_object_new_object(), *mem = json_object_new_object();

  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "ntkspec info", "ntkspec");
  PetscCall(PetscOptionsBool("-ntk_info_selfcheck", "Check J v against finite differences and "
                             "the adjoint identity", "", check, &check, NULL));
  PetscOptionsEnd();
  PetscCall(NtkAppCreate(comm, "info", &app));
  PetscCall(NtkDataGetShard(app.data, &sh));
  PetscCall(NtkNetGetNumParameters(app.net, &P));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  nloc = sh->rend - sh->rstart;
  PetscCallMPI(MPI_Allreduce(&nloc, &nmin, 1, MPIU_INT, MPI_MIN, comm));
  PetscCallMPI(MPI_Allreduce(&nloc, &nmax, 1, MPIU_INT, MPI_MAX, comm));
  dense = 8.0 * (PetscReal)(sh->N * sh->C) * (PetscReal)(sh->N * sh->C);
  PetscCall(MatrixFreeBytes(&app, nmax, &mfree));

  if (!app.quiet) PetscCall(NtkNetView(app.net, NULL));
  if (!app.quiet) PetscCall(NtkDataView(app.data, NULL));
  if (!app.quiet) PetscCall(NtkOpView(app.op, NULL));
  PetscCall(NtkAppPrintf(&app, "N = %" PetscInt_FMT ", C = %" PetscInt_FMT ", P = %" PetscInt_FMT
                         ", ranks = %d, samples per rank %" PetscInt_FMT "-%" PetscInt_FMT "\n",
                         sh->N, sh->C, P, size, nmin, nmax));
  PetscCall(NtkAppPrintf(&app,
                         "dense kernel (NC)^2 doubles: %.4g GB; matrix-free, per rank: %.4g GB\n",
                         dense / 1e9, mfree / 1e9));
  if (check) {
    PetscCall(SelfCheck(&app, &adj, &fd));
    PetscCall(NtkAppPrintf(&app, "self-check: adjoint defect %.3e, finite-difference defect %.3e\n",
                           (double)adj, (double)fd));
  }

  PetscCall(NtkAppDescribe(&app, doc));
  json_object_object_add(doc, "N", json_object_new_int64(sh->N));
  json_object_object_add(doc, "C", json_object_new_int64(sh->C));
  json_object_object_add(doc, "P", json_object_new_int64(P));
  json_object_object_add(doc, "samples_per_rank_min", json_object_new_int64(nmin));
  json_object_object_add(doc, "samples_per_rank_max", json_object_new_int64(nmax));
  json_object_object_add(mem, "dense_kernel_bytes", json_object_new_double(dense));
  json_object_object_add(mem, "matrix_free_bytes_per_rank", json_object_new_double(mfree));
  json_object_object_add(doc, "memory", mem);
  if (check) {
    json_object *sc = json_object_new_object();
    json_object_object_add(sc, "adjoint_defect", json_object_new_double(adj));
    json_object_object_add(sc, "fd_defect", json_object_new_double(fd));
    json_object_object_add(doc, "selfcheck", sc);
  }
  PetscCall(NtkAppWriteResult(&app, doc));
  json_object_put(doc);
  PetscCall(NtkAppDestroy(&app));
  PetscFunctionReturn(PETSC_SUCCESS);
}
