/*
  Plain-loop reference twins of the forward, JVP and VJP kernels. They share no code with the
  BLAS path beyond the activation functions, keep the whole forward state of one sample at a
  time, and exist only so that tests can hold the optimised kernels to them.
  Shapes as in kernels.c: X is nb x n_0, outputs nb x n_L, theta of length P.
*/
#include "netimpl.h"

typedef struct {
  PetscScalar *z[NTK_MAX_LAYERS + 1]; /* pre-activations z_l of one sample, l = 1..L */
  PetscScalar *a[NTK_MAX_LAYERS + 1]; /* a_0 = x, a_l = phi(z_l) */
  PetscScalar *buf;
} RefState;

static PetscErrorCode RefStateCreate(NtkNet net, RefState *s)
{
  PetscInt total = 0;

  PetscFunctionBegin;
  for (PetscInt l = 0; l <= net->L; l++) total += 2 * net->widths[l];
  PetscCall(PetscCalloc1(total, &s->buf));
  for (PetscInt l = 0, off = 0; l <= net->L; l++) {
    s->z[l] = s->buf + off;
    s->a[l] = s->buf + off + net->widths[l];
    off += 2 * net->widths[l];
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* z_l[o] = s sum_i W[o,i] a_{l-1}[i] + b[o],  a_l = phi(z_l) */
static void RefForwardOne(NtkNet net, const PetscScalar *th, const PetscScalar *x, RefState *s)
{
  for (PetscInt i = 0; i < net->widths[0]; i++) s->a[0][i] = x[i];
  for (PetscInt l = 1; l <= net->L; l++) {
    const NtkLayer *ly = &net->layers[l - 1];
    for (PetscInt o = 0; o < ly->out; o++) {
      PetscScalar acc = 0;
      for (PetscInt i = 0; i < ly->in; i++) acc += th[ly->woff + o * ly->in + i] * s->a[l - 1][i];
      s->z[l][o] = ly->scale * acc + th[ly->boff + o];
      s->a[l][o] = l < net->L ? NtkActivationValue(net->act, s->z[l][o]) : s->z[l][o];
    }
  }
}

PetscErrorCode NtkNetForwardRef(NtkNet net, PetscInt nb, const PetscScalar *X, PetscScalar *F)
{
  const PetscScalar *th;
  RefState           s;
  PetscInt           d = net->widths[0], C = net->widths[net->L];

  PetscFunctionBegin;
  PetscCall(RefStateCreate(net, &s));
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt r = 0; r < nb; r++) {
    RefForwardOne(net, th, X + r * d, &s);
    for (PetscInt c = 0; c < C; c++) F[r * C + c] = s.a[net->L][c];
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscFree(s.buf));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Forward-mode chain rule, one sample at a time: tz_l = s (tW a + W ta) + tb, ta_l = phi' tz_l. */
PetscErrorCode NtkNetJVPRef(NtkNet net, PetscInt nb, const PetscScalar *X, const PetscScalar *tth,
                            PetscScalar *tF)
{
  const PetscScalar *th;
  RefState           s, t;
  PetscInt           d = net->widths[0], C = net->widths[net->L];

  PetscFunctionBegin;
  PetscCall(RefStateCreate(net, &s));
  PetscCall(RefStateCreate(net, &t));
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt r = 0; r < nb; r++) {
    RefForwardOne(net, th, X + r * d, &s);
    for (PetscInt i = 0; i < d; i++) t.a[0][i] = 0;
    for (PetscInt l = 1; l <= net->L; l++) {
      const NtkLayer *ly = &net->layers[l - 1];
      for (PetscInt o = 0; o < ly->out; o++) {
        PetscScalar acc = 0;
        for (PetscInt i = 0; i < ly->in; i++) {
          PetscInt k = o * ly->in + i;
          acc += tth[ly->woff + k] * s.a[l - 1][i] + th[ly->woff + k] * t.a[l - 1][i];
        }
        t.z[l][o] = ly->scale * acc + tth[ly->boff + o];
        t.a[l][o] = l < net->L ? NtkActivationSlope(net->act, s.z[l][o]) * t.z[l][o] : t.z[l][o];
      }
    }
    for (PetscInt c = 0; c < C; c++) tF[r * C + c] = t.a[net->L][c];
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscFree(s.buf));
  PetscCall(PetscFree(t.buf));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Reverse-mode chain rule, one sample at a time; dth is accumulated. */
PetscErrorCode NtkNetVJPRef(NtkNet net, PetscInt nb, const PetscScalar *X, const PetscScalar *dF,
                            PetscScalar *dth)
{
  const PetscScalar *th;
  RefState           s, g;
  PetscInt           d = net->widths[0], C = net->widths[net->L];

  PetscFunctionBegin;
  PetscCall(RefStateCreate(net, &s));
  PetscCall(RefStateCreate(net, &g));
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt r = 0; r < nb; r++) {
    RefForwardOne(net, th, X + r * d, &s);
    for (PetscInt c = 0; c < C; c++) g.z[net->L][c] = dF[r * C + c];
    for (PetscInt l = net->L; l >= 1; l--) {
      const NtkLayer *ly = &net->layers[l - 1];
      for (PetscInt i = 0; i < ly->in; i++) g.a[l - 1][i] = 0;
      for (PetscInt o = 0; o < ly->out; o++) {
        dth[ly->boff + o] += g.z[l][o];
        for (PetscInt i = 0; i < ly->in; i++) {
          PetscInt k = o * ly->in + i;
          dth[ly->woff + k] += ly->scale * g.z[l][o] * s.a[l - 1][i];
          g.a[l - 1][i] += ly->scale * th[ly->woff + k] * g.z[l][o];
        }
      }
      if (l > 1)
        for (PetscInt i = 0; i < ly->in; i++)
          g.z[l - 1][i] = NtkActivationSlope(net->act, s.z[l - 1][i]) * g.a[l - 1][i];
    }
  }
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  PetscCall(PetscFree(s.buf));
  PetscCall(PetscFree(g.buf));
  PetscFunctionReturn(PETSC_SUCCESS);
}
