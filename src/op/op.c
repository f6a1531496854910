/*
  Matrix-free eNTK operators. The kernel K = J J^T is applied as one VJP over the local samples,
  one Allreduce of the P-vector J^T u, and one JVP over the local samples:
      K u = scale J (J^T u),  cost ~ 8 N P / ranks flops + Allreduce(P).
  The averaged kernel Kbar = (scale / C) sum_c J_c J_c^T needs one such pass per output c.
  Forward activations of the shard are cached (up to a limit) at SetUp and after every NtkOpUpdate,
  so that the hundreds of products an eigensolver asks for skip the forward pass.
*/
#include "opimpl.h"

const char *const NtkKernelVariants[] = {"full", "averaged", "NtkKernelVariant", "NTK_KERNEL_",
                                         NULL};

PetscLogEvent NTK_OpKernelMult, NTK_OpTrace, NTK_OpJacobianBlock;

PetscErrorCode NtkOpCreate(NtkNet net, NtkData data, NtkOp *op)
{
  NtkOp o;
  static PetscBool registered = PETSC_FALSE;

  PetscFunctionBegin;
  if (!registered) {
    registered = PETSC_TRUE;
    PetscCall(NtkInitializePackage());
    PetscCall(PetscLogEventRegister("NtkOpKernelMult", NTK_CLASSID, &NTK_OpKernelMult));
    PetscCall(PetscLogEventRegister("NtkOpTrace", NTK_CLASSID, &NTK_OpTrace));
    PetscCall(PetscLogEventRegister("NtkOpJacBlock", NTK_CLASSID, &NTK_OpJacobianBlock));
  }
  PetscCall(PetscNew(&o));
  o->net      = net;
  o->data     = data;
  o->comm     = net->comm;
  o->variant  = NTK_KERNEL_FULL;
  o->scale    = 1.0;
  o->mb       = 1024;
  o->cache_mb = 4096;
  o->factors  = PETSC_TRUE;
  *op         = o;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetKernel(NtkOp op, NtkKernelVariant v)
{
  PetscFunctionBegin;
  PetscCheck(!op->setup, op->comm, PETSC_ERR_ORDER, "set the kernel variant before NtkOpSetUp");
  op->variant = v;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetKernel(NtkOp op, NtkKernelVariant *v)
{
  PetscFunctionBegin;
  *v = op->variant;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetScale(NtkOp op, PetscReal s)
{
  PetscFunctionBegin;
  PetscCheck(s > 0 && PetscIsNormalReal(s), op->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_kernel_scale %g must be positive and finite", (double)s);
  op->scale = s;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetScale(NtkOp op, PetscReal *s)
{
  PetscFunctionBegin;
  *s = op->scale;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetMicroBatch(NtkOp op, PetscInt mb)
{
  PetscFunctionBegin;
  PetscCheck(mb >= 1, op->comm, PETSC_ERR_ARG_OUTOFRANGE, "-ntk_op_microbatch %" PetscInt_FMT
             " must be at least 1", mb);
  op->mb = mb;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetMicroBatch(NtkOp op, PetscInt *mb)
{
  PetscFunctionBegin;
  *mb = op->mb;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetCacheLimit(NtkOp op, PetscReal mib)
{
  PetscFunctionBegin;
  PetscCheck(mib >= 0, op->comm, PETSC_ERR_ARG_OUTOFRANGE, "-ntk_op_cache_mb %g must be >= 0",
             (double)mib);
  op->cache_mb = mib;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetCacheLimit(NtkOp op, PetscReal *mib)
{
  PetscFunctionBegin;
  *mib = op->cache_mb;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetFactors(NtkOp op, PetscBool flg)
{
  PetscFunctionBegin;
  PetscCheck(!op->setup, op->comm, PETSC_ERR_ORDER, "set the factor choice before NtkOpSetUp");
  op->factors = flg;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetFactors(NtkOp op, PetscBool *flg)
{
  PetscFunctionBegin;
  *flg = op->usefactors;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetCacheBytes(NtkOp op, PetscLogDouble *bytes)
{
  PetscLogDouble fb = 0;

  PetscFunctionBegin;
  PetscCall(NtkNetCacheBytes(op->net, op->ncached, bytes));
  if (op->usefactors) PetscCall(NtkNetCacheFactorBytes(op->net, op->ncached, &fb));
  *bytes += fb;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpPrepareFactors(NtkOp op)
{
  PetscFunctionBegin;
  if (op->usefactors) PetscCall(NtkNetCacheComputeFactors(op->net, op->cache));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetFromOptions(NtkOp op)
{
  PetscBool set;
  PetscReal scale = op->scale;
  char      scaletext[64] = "1";

  PetscFunctionBegin;
  PetscOptionsBegin(op->comm, NULL, "Kernel operator options", "NtkOp");
  PetscCall(PetscOptionsEnum(
      "-ntk_kernel", "Kernel: full J J^T (NC x NC) or output-averaged (N x N)", "NtkOpSetKernel",
      NtkKernelVariants, (PetscEnum)op->variant, (PetscEnum *)&op->variant, NULL));
  PetscCall(PetscOptionsString("-ntk_kernel_scale", "Scale of the kernel: a number, or 1/N",
                               "NtkOpSetScale", scaletext, scaletext, sizeof(scaletext), &set));
  if (set) {
    PetscBool isn;
    PetscCall(PetscStrcasecmp(scaletext, "1/N", &isn));
    if (isn) scale = -1;
    else {
      char *end;
      scale = strtod(scaletext, &end);
      PetscCheck(end != scaletext && *end == 0, op->comm, PETSC_ERR_ARG_WRONG,
                 "-ntk_kernel_scale '%s' is neither a number nor 1/N", scaletext);
      PetscCall(NtkOpSetScale(op, scale));
    }
  }
  PetscCall(PetscOptionsInt("-ntk_op_microbatch", "Samples per micro-batch in products",
                            "NtkOpSetMicroBatch", op->mb, &op->mb, NULL));
  PetscCall(PetscOptionsReal("-ntk_op_cache_mb", "Memory per rank for cached activations (MiB)",
                             "NtkOpSetCacheLimit", op->cache_mb, &op->cache_mb, NULL));
  PetscCall(PetscOptionsBool("-ntk_op_factors",
                             "Keep Jacobian factors of hidden layers in the cache to skip "
                             "backpropagation in products (when they fit and pay)",
                             "NtkOpSetFactors", op->factors, &op->factors, NULL));
  PetscOptionsEnd();
  PetscCall(NtkOpSetMicroBatch(op, op->mb));
  PetscCall(NtkOpSetCacheLimit(op, op->cache_mb));
  op->scale_by_n = scale < 0 ? PETSC_TRUE : PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Recompute the outputs and the cached forward state for the current parameters. */
PetscErrorCode NtkOpUpdate(NtkOp op)
{
  const PetscReal *X = op->shard->X;
  PetscInt         d = op->shard->d;

  PetscFunctionBegin;
  if (op->ncached > 0) PetscCall(NtkNetCacheForward(op->net, op->cache, op->work, X, op->F));
  for (PetscInt r0 = op->ncached; r0 < op->nloc; r0 += op->mb) {
    PetscInt nb = PetscMin(op->mb, op->nloc - r0);
    PetscCall(NtkNetForward(op->net, op->work, nb, X + r0 * d, op->F + r0 * op->C));
  }
  PetscCall(NtkOpCheckOutputs(op));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpSetUp(NtkOp op)
{
  PetscInt       d, rowsize;
  PetscLogDouble perrow, fbytes;
  int            use;

  PetscFunctionBegin;
  if (op->setup) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkNetSetUp(op->net));
  PetscCall(NtkDataSetUp(op->data));
  PetscCall(NtkDataGetShard(op->data, &op->shard));
  PetscCall(NtkNetGetInputSize(op->net, &d));
  PetscCall(NtkNetGetOutputSize(op->net, &op->C));
  PetscCall(NtkNetGetNumParameters(op->net, &op->P));
  PetscCheck(d == op->shard->d, op->comm, PETSC_ERR_ARG_SIZ,
             "the model's input width %" PetscInt_FMT " does not match the data's dimension %"
             PetscInt_FMT, d, op->shard->d);
  PetscCheck(op->C == op->shard->C, op->comm, PETSC_ERR_ARG_SIZ,
             "the model's output width %" PetscInt_FMT " does not match the data's %" PetscInt_FMT
             " targets", op->C, op->shard->C);
  op->nloc = op->shard->rend - op->shard->rstart;
  if (op->scale_by_n) op->scale = 1.0 / op->shard->N;
  op->mb   = PetscMax(1, PetscMin(op->mb, op->nloc));

  /*
    Cache as many local rows as the limit allows; the rest are recomputed per micro-batch. The
    factors are kept only if every local row of every rank fits with them: a full cache without
    factors beats a partial one with them.
  */
  PetscCall(NtkNetCacheBytes(op->net, 1, &perrow));
  PetscCall(NtkNetCacheFactorBytes(op->net, op->nloc, &fbytes));
  use = op->factors && fbytes > 0 && op->nloc * perrow + fbytes <= op->cache_mb * 1048576.0;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &use, 1, MPI_INT, MPI_LAND, op->comm));
  op->usefactors = use ? PETSC_TRUE : PETSC_FALSE; /* all ranks alike, so NtkOpView is true */
  rowsize     = (PetscInt)PetscMax(perrow, 1);
  op->ncached = (PetscInt)PetscMin((PetscLogDouble)op->nloc, op->cache_mb * 1048576.0 / rowsize);
  PetscCall(NtkNetCacheCreate(op->net, op->ncached, &op->cache));
  if (op->usefactors) PetscCall(NtkNetCacheEnableFactors(op->net, op->cache));
  PetscCall(NtkNetWorkCreate(op->net, op->mb, &op->work));
  PetscCall(PetscMalloc4(op->nloc * op->C, &op->F, op->P, &op->pbuf, op->P, &op->pbuf2,
                         op->nloc * op->C, &op->obuf));
  PetscCall(NtkOpUpdate(op));
  PetscCall(NtkOpCreateShells(op));
  PetscCall(PetscInfo(NULL, "NtkOp: %" PetscInt_FMT " local samples, %" PetscInt_FMT
                      " cached, micro-batch %" PetscInt_FMT ", factors %s\n", op->nloc,
                      op->ncached, op->mb, op->usefactors ? "kept" : "not kept"));
  op->setup = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetNet(NtkOp op, NtkNet *net)
{
  PetscFunctionBegin;
  *net = op->net;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetData(NtkOp op, NtkData *data)
{
  PetscFunctionBegin;
  *data = op->data;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpGetCounts(NtkOp op, PetscInt *nkernel, PetscInt *njac)
{
  PetscFunctionBegin;
  if (nkernel) *nkernel = op->nkernel;
  if (njac) *njac = op->njvp + op->nvjp;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpResetCounts(NtkOp op)
{
  PetscFunctionBegin;
  op->nkernel = op->njvp = op->nvjp = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpView(NtkOp op, PetscViewer viewer)
{
  PetscLogDouble state, factors = 0;
  PetscInt       N = op->shard->N;

  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(op->comm, &viewer));
  PetscCall(NtkNetCacheBytes(op->net, op->ncached, &state));
  if (op->usefactors) PetscCall(NtkNetCacheFactorBytes(op->net, op->ncached, &factors));
  PetscCall(
      PetscViewerASCIIPrintf(viewer, "kernel: %s, dimension %" PetscInt_FMT ", scale %g\n",
                             op->variant == NTK_KERNEL_FULL ? "full J J^T" : "output-averaged",
                             op->variant == NTK_KERNEL_FULL ? N * op->C : N, (double)op->scale));
  PetscCall(PetscViewerASCIIPrintf(viewer,
                                   "  micro-batch %" PetscInt_FMT
                                   ", cached rows on rank 0: %" PetscInt_FMT " (%.1f MiB)",
                                   op->mb, op->ncached, state / 1048576.0));
  if (op->usefactors)
    PetscCall(PetscViewerASCIIPrintf(viewer, ", Jacobian factors %.1f MiB\n",
                                     factors / 1048576.0));
  else PetscCall(PetscViewerASCIIPrintf(viewer, ", no Jacobian factors\n"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOpDestroy(NtkOp *op)
{
  PetscFunctionBegin;
  if (!*op) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkNetCacheDestroy(&(*op)->cache));
  PetscCall(NtkNetWorkDestroy(&(*op)->work));
  PetscCall(PetscFree4((*op)->F, (*op)->pbuf, (*op)->pbuf2, (*op)->obuf));
  PetscCall(MatDestroy(&(*op)->J));
  PetscCall(MatDestroy(&(*op)->K));
  PetscCall(MatDestroy(&(*op)->G));
  PetscCall(VecDestroy(&(*op)->pall));
  PetscCall(VecScatterDestroy(&(*op)->toall));
  PetscCall(PetscFree(*op));
  PetscFunctionReturn(PETSC_SUCCESS);
}
