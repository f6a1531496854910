/*
  bench_kproduct: the speed of one full-kernel product K v = J (J^T v) against this machine's own
  DGEMM rate, measured in the same run.

  The model and data come from the usual options (-ntk_net_widths or -ntk_net_file, -ntk_data,
  -ntk_data_samples, -ntk_op_*). The probe is v_k = sin(0.37 k + 0.1) over the global output rows
  k = i*C + c, so a peer tool can form the same K v and compare |K v|. Reported:
    - median and best wall time of -bench_reps products (after one untimed warm-up), each product
      between barriers, so the time is the slowest rank's;
    - the flops of one product: PETSc's logged count (the BLAS calls and the bias and Hadamard
      loops, as the kernels log them) summed over ranks, and the analytic 8 N P for reference;
    - achieved GFLOP/s = logged flops / median time;
    - the DGEMM rate: cblas_dgemm with n = -bench_dgemm_n on every rank at once, summed over
      ranks, with whatever BLAS threads the environment gives each rank, run right after every
      timed product; fraction_of_dgemm is the median over products of (product GFLOP/s) /
      (DGEMM GFLOP/s measured next to it), robust to slow drifts of other work on the machine;
      fraction_of_dgemm_cpu is the same ratio with rates per CPU second (getrusage, all threads),
      which time slices lost to other processes do not dilute (busy-waiting BLAS threads and MPI
      polling count against the product);
    - peak resident memory (getrusage ru_maxrss) after one product, max over ranks; the DGEMM
      matrices are allocated only after this reading.
    - first_s: the wall time of the untimed first product, which also computes the Jacobian
      factors the operator keeps (-ntk_op_factors; "factors=yes"), a cost paid once per
      parameter update and shared by all later products.
  -bench_save FILE writes the model as safetensors so that bench/peer_pytorch.py uses the same
  weights. Output lines are key=value pairs, one "kproduct" line and one "dgemm" line.
*/
#include <ntk/op.h>
#include <ntk/io.h>
#include <ntk/sys.h>
#include <cblas.h>
#include <sys/resource.h>

static int CompareReal(const void *a, const void *b)
{
  PetscReal x = *(const PetscReal *)a, y = *(const PetscReal *)b;
  return (x > y) - (x < y);
}

typedef struct {
  PetscInt     n;       /* DGEMM size, 0 for none */
  PetscScalar *A, *B, *C;
} Dgemm;

static PetscErrorCode DgemmCreate(PetscInt n, Dgemm *g)
{
  PetscFunctionBegin;
  g->n = n;
  if (!n) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscMalloc3(n * n, &g->A, n * n, &g->B, n * n, &g->C));
  for (PetscInt k = 0; k < n * n; k++) {
    g->A[k] = PetscSinReal(0.001 * k);
    g->B[k] = PetscCosReal(0.002 * k);
    g->C[k] = 0;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* CPU seconds (user + system, all threads) this process has used so far. */
static PetscErrorCode CpuTime(PetscReal *t)
{
  struct rusage ru;

  PetscFunctionBegin;
  PetscCheck(!getrusage(RUSAGE_SELF, &ru), PETSC_COMM_SELF, PETSC_ERR_SYS, "getrusage failed");
  *t = (PetscReal)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
       1e-6 * (PetscReal)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  C = A B (n x n) on every rank at once. gflops[0]: wall-clock rate summed over ranks; gflops[1]:
  GFLOP per CPU second (all ranks' flops over all ranks' CPU time), which time slices taken by
  other work on the machine do not dilute.
*/
static PetscErrorCode DgemmRate(Dgemm *g, PetscReal gflops[2])
{
  PetscBLASInt   bn;
  PetscMPIInt    size;
  PetscLogDouble t0, t1;
  PetscReal      c0 = 0, c1 = 0, s[2];

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(g->n, &bn));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&t0));
  PetscCall(CpuTime(&c0));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, bn, bn, 1.0, g->A, bn, g->B, bn, 0.0,
              g->C, bn);
  PetscCall(CpuTime(&c1));
  PetscCall(PetscTime(&t1));
  s[0] = 2.0 * g->n * g->n * g->n / (t1 - t0) * 1e-9;
  s[1] = c1 - c0;
  PetscCallMPI(MPI_Allreduce(s, gflops, 2, MPIU_REAL, MPIU_SUM, PETSC_COMM_WORLD));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  gflops[1] = size * 2.0 * g->n * g->n * g->n / gflops[1] * 1e-9;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode DgemmDestroy(Dgemm *g)
{
  PetscFunctionBegin;
  if (g->n) PetscCall(PetscFree3(g->A, g->B, g->C));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  reps products K v, each followed by one DGEMM on every rank, so that each product time has a
  ceiling measured under the same machine load. times[r] is the slowest rank's time of product r,
  cpu[r] its CPU seconds summed over ranks, rates[2r], rates[2r+1] the DGEMM rates after it (see
  DgemmRate); flops of one product on this rank.
*/
static PetscErrorCode TimeProducts(Mat K, Vec v, Vec y, Dgemm *g, PetscInt reps,
                                   PetscReal times[], PetscReal cpu[], PetscReal rates[],
                                   PetscLogDouble *flops)
{
  PetscLogDouble t0, t1, f0, f1, fsum = 0;
  PetscReal      tmax, c0 = 0, c1 = 0;

  PetscFunctionBegin;
  for (PetscInt r = 0; r < reps; r++) {
    PetscCall(PetscGetFlops(&f0));
    PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
    PetscCall(PetscTime(&t0));
    PetscCall(CpuTime(&c0));
    PetscCall(MatMult(K, v, y));
    PetscCall(CpuTime(&c1));
    PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
    PetscCall(PetscTime(&t1));
    PetscCall(PetscGetFlops(&f1));
    fsum += f1 - f0;
    tmax = (PetscReal)(t1 - t0);
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &tmax, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
    times[r] = tmax;
    cpu[r]   = c1 - c0;
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &cpu[r], 1, MPIU_REAL, MPIU_SUM, PETSC_COMM_WORLD));
    rates[2 * r] = rates[2 * r + 1] = 0;
    if (g->n) PetscCall(DgemmRate(g, &rates[2 * r]));
  }
  *flops = fsum / reps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscReal Median(PetscInt n, PetscReal x[])
{
  qsort(x, (size_t)n, sizeof(PetscReal), CompareReal);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static PetscErrorCode FillProbe(Vec v)
{
  PetscInt     lo, hi;
  PetscScalar *a;

  PetscFunctionBegin;
  PetscCall(VecGetOwnershipRange(v, &lo, &hi));
  PetscCall(VecGetArrayWrite(v, &a));
  for (PetscInt k = lo; k < hi; k++) a[k - lo] = PetscSinReal(0.37 * k + 0.1);
  PetscCall(VecRestoreArrayWrite(v, &a));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Peak resident set of this process in MiB, max over ranks. */
static PetscErrorCode PeakMemory(PetscReal *mb)
{
  struct rusage ru;

  PetscFunctionBegin;
  PetscCheck(!getrusage(RUSAGE_SELF, &ru), PETSC_COMM_SELF, PETSC_ERR_SYS, "getrusage failed");
  *mb = (PetscReal)ru.ru_maxrss / 1024.0;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, mb, 1, MPIU_REAL, MPIU_MAX, PETSC_COMM_WORLD));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  NtkNet         net;
  NtkData        data;
  NtkOp          op;
  Mat            K;
  Vec            v, y;
  Dgemm          g;
  PetscInt       reps = 10, ndgemm = 2000, P, N, C, mb;
  PetscReal     *times, *cpu, *rates, *frac, *fcpu, *rwall;
  PetscReal      tmed, tbest, cmed, rmed, rbest, peak, kvnorm;
  PetscLogDouble flops, tsetup0, tsetup1, tfirst0, tfirst1;
  PetscBool      factors;
  PetscMPIInt    size;
  char           save[PETSC_MAX_PATH_LEN] = "";
  const char    *threads;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscOptionsBegin(PETSC_COMM_WORLD, NULL, "K-product benchmark", NULL);
  PetscCall(PetscOptionsInt("-bench_reps", "Timed products", NULL, reps, &reps, NULL));
  PetscCall(PetscOptionsInt("-bench_dgemm_n", "DGEMM size of the ceiling (0: skip)", NULL, ndgemm,
                            &ndgemm, NULL));
  PetscCall(PetscOptionsString("-bench_save", "Write the model to this safetensors file", NULL,
                               save, save, sizeof(save), NULL));
  PetscOptionsEnd();
  PetscCheck(reps >= 1 && ndgemm >= 0, PETSC_COMM_WORLD, PETSC_ERR_ARG_OUTOFRANGE,
             "-bench_reps %" PetscInt_FMT " must be at least 1 and -bench_dgemm_n %" PetscInt_FMT
             " non-negative", reps, ndgemm);

  /* model, data and operator, forward cache filled at set-up */
  PetscCall(PetscTime(&tsetup0));
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkNetSetUp(net));
  if (save[0]) PetscCall(NtkNetSaveSafetensors(net, save));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetUp(op));
  PetscCall(PetscTime(&tsetup1));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkNetGetOutputSize(net, &C));
  PetscCall(NtkDataGetSamples(data, &N));
  PetscCall(NtkOpGetMicroBatch(op, &mb));

  /* one untimed product; its high-water mark is the product's memory, read before DGEMM's */
  PetscCall(NtkOpGetKernelMat(op, &K));
  PetscCall(NtkOpCreateKernelVec(op, &v));
  PetscCall(VecDuplicate(v, &y));
  PetscCall(FillProbe(v));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&tfirst0));
  PetscCall(MatMult(K, v, y));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&tfirst1));
  PetscCall(PeakMemory(&peak));
  PetscCall(NtkOpGetFactors(op, &factors));

  /* the products, interleaved with the ceiling */
  PetscCall(DgemmCreate(ndgemm, &g));
  PetscCall(PetscMalloc6(reps, &times, reps, &cpu, 2 * reps, &rates, reps, &frac, reps, &fcpu, reps,
                         &rwall));
  PetscCall(TimeProducts(K, v, y, &g, reps, times, cpu, rates, &flops));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &flops, 1, MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD));
  PetscCall(VecNorm(y, NORM_2, &kvnorm));
  for (PetscInt r = 0; r < reps; r++) {
    frac[r]  = flops / times[r] * 1e-9 / rates[2 * r];
    fcpu[r]  = flops / cpu[r] * 1e-9 / rates[2 * r + 1];
    rwall[r] = rates[2 * r];
  }
  tmed = Median(reps, times), tbest = times[0], cmed = Median(reps, cpu);
  rmed = Median(reps, rwall), rbest = rwall[reps - 1];

  threads = getenv("OPENBLAS_NUM_THREADS");
  if (ndgemm)
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, "dgemm n=%" PetscInt_FMT " ranks=%d median_gflops=%.2f"
                          " best_gflops=%.2f\n", ndgemm, (int)size, (double)rmed, (double)rbest));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "kproduct N=%" PetscInt_FMT " C=%" PetscInt_FMT " P=%" PetscInt_FMT
                        " ranks=%d blas_threads=%s microbatch=%" PetscInt_FMT " factors=%s"
                        " reps=%" PetscInt_FMT " setup_s=%.3f first_s=%.3f median_s=%.6e"
                        " best_s=%.6e cpu_median_s=%.6e"
                        " flops_logged=%.4e flops_8NP=%.4e"
                        " gflops=%.2f fraction_of_dgemm=%.3f fraction_of_dgemm_cpu=%.3f"
                        " peak_mb=%.1f kv_norm=%.12e\n",
                        N, C, P, (int)size, threads ? threads : "default", mb,
                        factors ? "yes" : "no", reps, (double)(tsetup1 - tsetup0),
                        (double)(tfirst1 - tfirst0), (double)tmed, (double)tbest, (double)cmed,
                        flops,
                        8.0 * N * P, flops / tmed * 1e-9, ndgemm ? (double)Median(reps, frac) : NAN,
                        ndgemm ? (double)Median(reps, fcpu) : NAN, (double)peak, (double)kvnorm));

  PetscCall(PetscFree6(times, cpu, rates, frac, fcpu, rwall));
  PetscCall(DgemmDestroy(&g));
  PetscCall(VecDestroy(&v));
  PetscCall(VecDestroy(&y));
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
