/*
  Pointwise activations phi and their derivatives phi', evaluated together because every forward
  pass that feeds a JVP or VJP needs both. GELU is the exact erf form z Phi(z); softplus is
  evaluated as max(z, 0) + log1p(exp(-|z|)) so that it neither overflows nor loses the small tail.
*/
#include "netimpl.h"
#include <math.h>

const char *const NtkActivations[] = {"identity", "relu", "tanh", "gelu", "softplus", "sigmoid",
                                      "NtkActivation", "NTK_ACT_", NULL};

static inline PetscScalar Sigmoid(PetscScalar z)
{
  if (z >= 0) return 1.0 / (1.0 + exp(-z));
  PetscScalar e = exp(z);
  return e / (1.0 + e);
}

PetscScalar NtkActivationValue(NtkActivation act, PetscScalar z)
{
  switch (act) {
  case NTK_ACT_IDENTITY: return z;
  case NTK_ACT_RELU: return z > 0 ? z : 0;
  case NTK_ACT_TANH: return tanh(z);
  case NTK_ACT_GELU: return 0.5 * z * (1.0 + erf(z * 0.70710678118654752440));
  case NTK_ACT_SOFTPLUS: return (z > 0 ? z : 0) + log1p(exp(-fabs(z)));
  case NTK_ACT_SIGMOID: return Sigmoid(z);
  }
  return NAN;
}

/* relu'(0) is taken as 0, as PyTorch's autograd does. */
PetscScalar NtkActivationSlope(NtkActivation act, PetscScalar z)
{
  switch (act) {
  case NTK_ACT_IDENTITY: return 1;
  case NTK_ACT_RELU: return z > 0 ? 1 : 0;
  case NTK_ACT_TANH: {
    PetscScalar t = tanh(z);
    return 1 - t * t;
  }
  case NTK_ACT_GELU:
    return 0.5 * (1.0 + erf(z * 0.70710678118654752440)) +
           z * exp(-0.5 * z * z) / PetscSqrtReal(2 * PETSC_PI);
  case NTK_ACT_SOFTPLUS: return Sigmoid(z);
  case NTK_ACT_SIGMOID: {
    PetscScalar s = Sigmoid(z);
    return s * (1 - s);
  }
  }
  return NAN;
}

/* a = phi(z), d = phi'(z), n entries, overwritten; z may alias a. */
PetscErrorCode NtkActivationApply(NtkActivation act, PetscInt n, const PetscScalar *z,
                                  PetscScalar *a, PetscScalar *d)
{
  PetscFunctionBegin;
  switch (act) {
  case NTK_ACT_TANH:
    for (PetscInt k = 0; k < n; k++) {
      PetscScalar t = tanh(z[k]);
      a[k] = t;
      d[k] = 1 - t * t;
    }
    break;
  case NTK_ACT_SIGMOID:
    for (PetscInt k = 0; k < n; k++) {
      PetscScalar s = Sigmoid(z[k]);
      a[k] = s;
      d[k] = s * (1 - s);
    }
    break;
  default:
    for (PetscInt k = 0; k < n; k++) {
      PetscScalar zk = z[k];
      d[k] = NtkActivationSlope(act, zk);
      a[k] = NtkActivationValue(act, zk);
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
