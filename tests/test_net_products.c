/*
  test_net_products: the BLAS forward, JVP and VJP kernels of every activation and both
  parameterisations agree with their plain-loop twins, the JVP agrees with central finite
  differences of the forward pass, and <J v, u> = <v, J^T u> holds, on a small random MLP.
  Checks are relative to the norms involved; the exit status is the verdict.
*/
#include <ntk/net.h>
#include <ntk/sys.h>

#define NB 13

static PetscReal RelDiff(PetscInt n, const PetscScalar *a, const PetscScalar *b)
{
  PetscReal d = 0, s = 0;
  for (PetscInt k = 0; k < n; k++) {
    d += (a[k] - b[k]) * (a[k] - b[k]);
    s += b[k] * b[k];
  }
  return PetscSqrtReal(d / PetscMax(s, 1e-300));
}

static PetscErrorCode CheckOne(NtkActivation act, NtkParameterization par, PetscInt *failures)
{
  const PetscInt widths[] = {9, 7, 6, 3};
  NtkNet         net;
  NtkNetWork     w;
  Vec            theta;
  PetscInt       P, d = 9, C = 3;
  PetscScalar   *X, *F, *Fr, *tth, *tF, *tFr, *dF, *dth, *dthr, *th, *Fp, *Fm;
  PetscReal      h = 1e-6, e_fwd, e_jvp, e_vjp, e_fd, e_adj, jvu = 0, vjtu = 0, nj = 0, nu = 0;

  PetscFunctionBegin;
  PetscCall(NtkNetCreate(PETSC_COMM_SELF, &net));
  PetscCall(NtkNetSetWidths(net, 4, widths));
  PetscCall(NtkNetSetActivation(net, act));
  PetscCall(NtkNetSetParameterization(net, par));
  PetscCall(NtkNetSetSigmas(net, 1.3, 0.4));
  PetscCall(NtkNetSetSeed(net, 11));
  PetscCall(NtkNetSetUp(net));
  PetscCall(NtkNetGetNumParameters(net, &P));
  PetscCall(NtkNetGetParameters(net, &theta));
  PetscCall(NtkNetWorkCreate(net, NB, &w));
  PetscCall(PetscMalloc6(NB * d, &X, NB * C, &F, NB * C, &Fr, P, &tth, NB * C, &tF, NB * C, &tFr));
  PetscCall(PetscMalloc5(NB * C, &dF, P, &dth, P, &dthr, NB * C, &Fp, NB * C, &Fm));
  for (PetscInt k = 0; k < NB * d; k++) X[k] = NtkRandomNormal(3, 0, k);
  for (PetscInt k = 0; k < P; k++) tth[k] = NtkRandomNormal(3, 1, k);
  for (PetscInt k = 0; k < NB * C; k++) dF[k] = NtkRandomNormal(3, 2, k);

  PetscCall(NtkNetForward(net, w, NB, X, F));
  PetscCall(NtkNetForwardRef(net, NB, X, Fr));
  e_fwd = RelDiff(NB * C, F, Fr);
  PetscCall(NtkNetJVP(net, w, NB, X, tth, tF));
  PetscCall(NtkNetJVPRef(net, NB, X, tth, tFr));
  e_jvp = RelDiff(NB * C, tF, tFr);
  PetscCall(PetscArrayzero(dth, P));
  PetscCall(PetscArrayzero(dthr, P));
  PetscCall(NtkNetVJP(net, w, NB, X, dF, dth));
  PetscCall(NtkNetVJPRef(net, NB, X, dF, dthr));
  e_vjp = RelDiff(P, dth, dthr);
  for (PetscInt k = 0; k < NB * C; k++)
    jvu += tF[k] * dF[k], nj += tF[k] * tF[k], nu += dF[k] * dF[k];
  for (PetscInt k = 0; k < P; k++) vjtu += tth[k] * dth[k];
  e_adj = PetscAbsReal(jvu - vjtu) / PetscSqrtReal(nj * nu);

  PetscCall(VecGetArray(theta, &th));
  for (PetscInt k = 0; k < P; k++) th[k] += h * tth[k];
  PetscCall(VecRestoreArray(theta, &th));
  PetscCall(NtkNetForward(net, w, NB, X, Fp));
  PetscCall(VecGetArray(theta, &th));
  for (PetscInt k = 0; k < P; k++) th[k] -= 2 * h * tth[k];
  PetscCall(VecRestoreArray(theta, &th));
  PetscCall(NtkNetForward(net, w, NB, X, Fm));
  for (PetscInt k = 0; k < NB * C; k++) Fp[k] = (Fp[k] - Fm[k]) / (2 * h);
  e_fd = RelDiff(NB * C, Fp, tF);

  /* relu's kink makes finite differences exact only away from z = 0; random data keep us there */
  if (e_fwd > 1e-13 || e_jvp > 1e-13 || e_vjp > 1e-13 || e_adj > 1e-13 || e_fd > 1e-7) {
    (*failures)++;
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "FAIL "));
  }
  PetscCall(PetscPrintf(PETSC_COMM_SELF,
                        "%-8s %-8s fwd %.1e jvp %.1e vjp %.1e adjoint %.1e fd %.1e\n",
                        NtkActivations[act], NtkParameterizations[par], (double)e_fwd,
                        (double)e_jvp, (double)e_vjp, (double)e_adj, (double)e_fd));
  PetscCall(PetscFree6(X, F, Fr, tth, tF, tFr));
  PetscCall(PetscFree5(dF, dth, dthr, Fp, Fm));
  PetscCall(NtkNetWorkDestroy(&w));
  PetscCall(NtkNetDestroy(&net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int main(int argc, char **argv)
{
  PetscInt failures = 0;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  for (int a = NTK_ACT_IDENTITY; a <= NTK_ACT_SIGMOID; a++)
    for (int p = NTK_PARAM_STANDARD; p <= NTK_PARAM_NTK; p++)
      PetscCall(CheckOne((NtkActivation)a, (NtkParameterization)p, &failures));
  PetscCall(PetscPrintf(PETSC_COMM_SELF, "%" PetscInt_FMT " failures\n", failures));
  PetscCall(PetscFinalize());
  return failures ? 1 : 0;
}
