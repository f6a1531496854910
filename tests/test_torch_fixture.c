/*
  test_torch_fixture: a model exported from PyTorch gives, through ntkspec's safetensors loader
  and kernel operator, the same outputs, the same K v and the same exact trace as PyTorch itself
  (float64, functorch vjp then jvp), to 1e-12 relative in norm, on any number of ranks. It also
  checks that saving the loaded model with NtkNetSaveSafetensors and loading it back reproduces
  the architecture and every parameter bit for bit.

  The fixture (a JSON file in tests/fixtures, written once by make_torch_fixtures.py there) holds
  the outputs f_c(x_i) and K v at global rows k = i*C + c for v_k = sin(0.37 k + 0.1), and Tr K.
  Options: -fixture FILE.json plus the usual -ntk_net_file, -ntk_data and -ntk_data_samples.
*/
#include <ntk/op.h>
#include <ntk/io.h>
#include <ntk/sys.h>
#include <math.h>
#include <stdio.h>

#define TOL 1e-12

typedef struct {
  PetscInt failures;
} Tally;

static PetscErrorCode Expect(Tally *t, const char *what, PetscReal err, PetscReal tol)
{
  PetscFunctionBegin;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "  %-44s %.3e (tolerance %.0e)%s\n", what, (double)err,
                        (double)tol, err <= tol ? "" : "  FAIL"));
  if (!(err <= tol)) t->failures++;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A float array of the fixture document, with its expected length. */
static PetscErrorCode FixtureArray(json_object *doc, const char *key, PetscInt n, json_object **a)
{
  PetscFunctionBegin;
  PetscCheck(json_object_object_get_ex(doc, key, a) && json_object_is_type(*a, json_type_array) &&
               (PetscInt)json_object_array_length(*a) == n,
             PETSC_COMM_WORLD, PETSC_ERR_FILE_UNEXPECTED,
             "fixture: '%s' must be an array of %" PetscInt_FMT " numbers", key, n);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* |x - ref| / |ref| over all ranks; x holds global entries [lo, hi) of the array ref. */
static PetscErrorCode RelativeError(Vec x, json_object *ref, PetscReal *err)
{
  PetscInt           lo, hi;
  const PetscScalar *a;
  PetscReal          s[2] = {0, 0}, g[2];

  PetscFunctionBegin;
  PetscCall(VecGetOwnershipRange(x, &lo, &hi));
  PetscCall(VecGetArrayRead(x, &a));
  for (PetscInt k = lo; k < hi; k++) {
    PetscReal r = json_object_get_double(json_object_array_get_idx(ref, (size_t)k));
    s[0] += (a[k - lo] - r) * (a[k - lo] - r);
    s[1] += r * r;
  }
  PetscCall(VecRestoreArrayRead(x, &a));
  PetscCallMPI(MPI_Allreduce(s, g, 2, MPIU_REAL, MPIU_SUM, PETSC_COMM_WORLD));
  *err = PetscSqrtReal(g[0] / g[1]);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The architecture read from the file is the one the fixture describes. */
static PetscErrorCode CheckArchitecture(NtkNet net, json_object *doc, Tally *t)
{
  json_object        *v;
  NtkActivation       act;
  NtkParameterization par;
  PetscInt            nw;
  const PetscInt     *w;
  PetscBool           same;

  PetscFunctionBegin;
  PetscCall(NtkNetGetActivation(net, &act));
  PetscCall(NtkNetGetParameterization(net, &par));
  PetscCall(NtkNetGetWidths(net, &nw, &w));
  same = json_object_object_get_ex(doc, "widths", &v) && (PetscInt)json_object_array_length(v) == nw
           ? PETSC_TRUE : PETSC_FALSE;
  for (PetscInt k = 0; same && k < nw; k++)
    if (json_object_get_int64(json_object_array_get_idx(v, (size_t)k)) != w[k]) same = PETSC_FALSE;
  if (!json_object_object_get_ex(doc, "activation", &v) ||
      strcmp(json_object_get_string(v), NtkActivations[act]))
    same = PETSC_FALSE;
  if (!json_object_object_get_ex(doc, "parameterization", &v) ||
      strcmp(json_object_get_string(v), NtkParameterizations[par]))
    same = PETSC_FALSE;
  PetscCall(Expect(t, "architecture mismatch (0: none)", same ? 0 : 1, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Outputs, K v and Tr K of the loaded model against the PyTorch values. */
static PetscErrorCode CheckProducts(NtkOp op, json_object *doc, Tally *t)
{
  Mat          K;
  Vec          f, v, y;
  PetscInt     lo, hi, n;
  PetscScalar *a;
  PetscReal    err, trace, ref;
  json_object *arr, *tr;

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernelMat(op, &K));
  PetscCall(NtkOpCreateKernelVec(op, &f));
  PetscCall(VecDuplicate(f, &v));
  PetscCall(VecDuplicate(f, &y));
  PetscCall(VecGetSize(f, &n));

  PetscCall(NtkOpGetOutputs(op, f));
  PetscCall(FixtureArray(doc, "outputs", n, &arr));
  PetscCall(RelativeError(f, arr, &err));
  PetscCall(Expect(t, "outputs: |f - f_torch| / |f_torch|", err, TOL));

  PetscCall(VecGetOwnershipRange(v, &lo, &hi));
  PetscCall(VecGetArrayWrite(v, &a));
  for (PetscInt k = lo; k < hi; k++) a[k - lo] = PetscSinReal(0.37 * k + 0.1);
  PetscCall(VecRestoreArrayWrite(v, &a));
  PetscCall(MatMult(K, v, y));
  PetscCall(FixtureArray(doc, "kv", n, &arr));
  PetscCall(RelativeError(y, arr, &err));
  PetscCall(Expect(t, "K v: |Kv - Kv_torch| / |Kv_torch|", err, TOL));

  PetscCall(NtkOpTrace(op, &trace));
  PetscCheck(json_object_object_get_ex(doc, "trace", &tr), PETSC_COMM_WORLD,
             PETSC_ERR_FILE_UNEXPECTED, "fixture: no 'trace'");
  ref = json_object_get_double(tr);
  PetscCall(Expect(t, "trace: |Tr K - torch| / torch", PetscAbsReal(trace - ref) / ref, TOL));
  PetscCall(VecDestroy(&f));
  PetscCall(VecDestroy(&v));
  PetscCall(VecDestroy(&y));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Save the network, load the file into a fresh network: same widths, same parameters exactly. */
static PetscErrorCode CheckRoundTrip(NtkNet net, Tally *t)
{
  NtkNet             back;
  Vec                p0, p1;
  PetscMPIInt        size;
  PetscBool          same;
  char               path[PETSC_MAX_PATH_LEN];
  NtkActivation      a0, a1;
  NtkParameterization r0, r1;
  const char        *file;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(NtkNetGetFile(net, &file));
  PetscCall(PetscSNPrintf(path, sizeof(path), "roundtrip_np%d_%s", (int)size,
                          strrchr(file, '/') ? strrchr(file, '/') + 1 : file));
  PetscCall(NtkNetSaveSafetensors(net, path));
  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &back));
  PetscCall(NtkNetSetFile(back, path));
  PetscCall(NtkNetSetUp(back));
  PetscCall(NtkNetGetParameters(net, &p0));
  PetscCall(NtkNetGetParameters(back, &p1));
  PetscCall(VecEqual(p0, p1, &same));
  PetscCall(NtkNetGetActivation(net, &a0));
  PetscCall(NtkNetGetActivation(back, &a1));
  PetscCall(NtkNetGetParameterization(net, &r0));
  PetscCall(NtkNetGetParameterization(back, &r1));
  if (a0 != a1 || r0 != r1) same = PETSC_FALSE;
  PetscCall(Expect(t, "save/load round-trip mismatch (0: none)", same ? 0 : 1, 0));
  PetscCall(NtkNetDestroy(&back));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  if (!PetscGlobalRank) (void)remove(path);
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  Tally        t = {0};
  NtkNet       net;
  NtkData      data;
  NtkOp        op;
  json_object *doc;
  char         fixture[PETSC_MAX_PATH_LEN] = "";
  PetscBool    factors;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(PetscOptionsGetString(NULL, NULL, "-fixture", fixture, sizeof(fixture), NULL));
  doc = json_object_from_file(fixture);
  PetscCheck(doc, PETSC_COMM_WORLD, PETSC_ERR_FILE_OPEN, "cannot read the fixture '%s' (-fixture)",
             fixture);
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%s\n", fixture));

  PetscCall(NtkNetCreate(PETSC_COMM_WORLD, &net));
  PetscCall(NtkNetSetFromOptions(net));
  PetscCall(NtkNetSetUp(net));
  PetscCall(NtkDataCreate(PETSC_COMM_WORLD, &data));
  PetscCall(NtkDataSetFromOptions(data));
  PetscCall(NtkOpCreate(net, data, &op));
  PetscCall(NtkOpSetFromOptions(op));
  PetscCall(NtkOpSetUp(op));
  PetscCall(NtkOpGetFactors(op, &factors));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "  products %s Jacobian factors\n",
                        factors ? "with" : "without"));

  PetscCall(CheckArchitecture(net, doc, &t));
  PetscCall(CheckProducts(op, doc, &t));
  PetscCall(CheckRoundTrip(net, &t));

  json_object_put(doc);
  PetscCall(NtkOpDestroy(&op));
  PetscCall(NtkDataDestroy(&data));
  PetscCall(NtkNetDestroy(&net));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%" PetscInt_FMT " failures\n", t.failures));
  PetscCall(PetscFinalize());
  return t.failures ? 1 : 0;
}
