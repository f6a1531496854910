/*
  Losses and their output-space gradients. Cross-entropy uses the shifted log-sum-exp
  log sum_c exp(z_c) = m + log sum_c exp(z_c - m), m = max_c z_c, so that large logits neither
  overflow nor lose the probabilities of the other classes. Sums are local, then one Allreduce.
*/
#include <ntk/loss.h>
#include <ntk/sys.h>

const char *const NtkLossTypes[] = {"mse", "xent", "NtkLossType", "NTK_LOSS_", NULL};

PetscErrorCode NtkLossGetFromOptions(MPI_Comm comm, NtkLossType *type)
{
  PetscFunctionBegin;
  PetscOptionsBegin(comm, NULL, "Loss options", "NtkLoss");
  PetscCall(PetscOptionsEnum("-ntk_loss", "Loss: mse (1/2N)|F-Y|^2 or xent (softmax cross-entropy)",
                             "NtkLossEvaluate", NtkLossTypes, (PetscEnum)*type, (PetscEnum *)type,
                             NULL));
  PetscOptionsEnd();
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Local loss sum and g rows for n samples: F, Y, G are n x C row-major; G overwritten. */
static PetscReal LocalLoss(NtkLossType type, PetscInt n, PetscInt C, PetscInt N,
                           const PetscScalar *F, const PetscReal *Y, const PetscInt *labels,
                           PetscScalar *G)
{
  PetscReal sum = 0;

  for (PetscInt i = 0; i < n; i++) {
    const PetscScalar *z = F + i * C;
    PetscScalar       *g = G + i * C;
    if (type == NTK_LOSS_MSE) {
      for (PetscInt c = 0; c < C; c++) {
        PetscReal r = z[c] - Y[i * C + c];
        sum += 0.5 * r * r;
        g[c] = r / N;
      }
    } else {
      PetscReal m = z[0], s = 0;
      for (PetscInt c = 1; c < C; c++) m = PetscMax(m, z[c]);
      for (PetscInt c = 0; c < C; c++) s += PetscExpReal(z[c] - m);
      sum += m + PetscLogReal(s) - z[labels[i]];
      for (PetscInt c = 0; c < C; c++) g[c] = (PetscExpReal(z[c] - m) / s - (c == labels[i])) / N;
    }
  }
  return sum;
}

PetscErrorCode NtkLossEvaluate(NtkOp op, NtkLossType type, PetscReal *loss, Vec g)
{
  NtkData             data;
  const NtkDataShard *sh;
  PetscScalar        *G, *F;
  PetscInt            n, C, nl;
  PetscReal           sum;
  MPI_Comm            comm;

  PetscFunctionBegin;
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(PetscObjectGetComm((PetscObject)g, &comm));
  n = sh->rend - sh->rstart;
  C = sh->C;
  PetscCall(VecGetLocalSize(g, &nl));
  PetscCheck(nl == n * C, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
             "gradient vector has %" PetscInt_FMT " local rows, expected %" PetscInt_FMT
             " (the full output space)",
             nl, n * C);
  /* a rank without samples has no labels array either: all ranks decide together */
  PetscCall(NtkCheckAll(
      comm, type != NTK_LOSS_XENT || sh->labels || n == 0 ? PETSC_TRUE : PETSC_FALSE, PETSC_ERR_SUP,
      "-ntk_loss xent needs class labels; these data have "
      "regression targets only (use -ntk_loss mse)"));
  PetscCall(PetscMalloc1(PetscMax(1, n * C), &F));
  PetscCall(NtkOpGetOutputs(op, g));
  PetscCall(VecGetArray(g, &G));
  PetscCall(PetscArraycpy(F, G, n * C));
  sum = LocalLoss(type, n, C, sh->N, F, sh->Y, sh->labels, G);
  PetscCall(VecRestoreArray(g, &G));
  PetscCall(PetscFree(F));
  PetscCallMPI(MPI_Allreduce(&sum, loss, 1, MPIU_REAL, MPIU_SUM, comm));
  *loss /= sh->N;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkLossAccuracy(NtkOp op, PetscReal *acc)
{
  NtkData             data;
  const NtkDataShard *sh;
  Vec                 f;
  Mat                 J;
  const PetscScalar  *F;
  PetscInt            n, C;
  PetscReal           hits = 0;
  MPI_Comm            comm;

  PetscFunctionBegin;
  PetscCall(NtkOpGetData(op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkOpGetJacobian(op, &J));
  PetscCall(PetscObjectGetComm((PetscObject)J, &comm));
  n = sh->rend - sh->rstart;
  C = sh->C;
  PetscCheck(sh->labels || n == 0, PETSC_COMM_SELF, PETSC_ERR_SUP, "accuracy needs class labels");
  PetscCall(MatCreateVecs(J, NULL, &f));
  PetscCall(NtkOpGetOutputs(op, f));
  PetscCall(VecGetArrayRead(f, &F));
  for (PetscInt i = 0; i < n; i++) {
    PetscInt best = 0;
    for (PetscInt c = 1; c < C; c++)
      if (F[i * C + c] > F[i * C + best]) best = c;
    hits += best == sh->labels[i];
  }
  PetscCall(VecRestoreArrayRead(f, &F));
  PetscCall(VecDestroy(&f));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &hits, 1, MPIU_REAL, MPIU_SUM, comm));
  *acc = hits / sh->N;
  PetscFunctionReturn(PETSC_SUCCESS);
}
