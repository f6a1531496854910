/*
  Deflation of the leading eigenpairs for SLQ. Most of the variance of a Hutchinson-type
  estimate of Tr f(K) comes from the few largest eigenvalues when the spectrum decays fast
  (variance 2 |f(K)|_F^2 for Gaussian probes). With the k largest eigenpairs (lambda_i, y_i),
      Tr f(K) = sum_{i<=k} f(lambda_i) + Tr (I - YY^T) f(K) (I - YY^T),
  the first term is exact and SLQ estimates only the second, with probes projected onto the
  complement of Y and Lanczos run on the projected kernel. The pairs come from one Lanczos run
  with full reorthogonalisation (deflate_steps steps from a probe of its own stream); the Ritz
  vectors y_i = Q_m z_i have residuals |K y_i - theta_i y_i| = beta_m |z_{m,i}|, reported as
  the worst one relative to theta_1. A poorly converged pair biases the estimate by about its
  residual squared over the spectral gap; raise the steps if the residual is not small. The k
  largest of m Ritz pairs need m well beyond k, so fewer than min(2k, n) steps are refused.
*/
#include "estimpl.h"

/* Steps of the deflation run: -ntk_estimate_deflate_steps, by default 2k + 20, at most n. */
PetscInt NtkEstimatorDeflationSteps(NtkEstimator e)
{
  if (e->deflate == 0) return 0;
  return PetscMin(e->deflate_steps > 0 ? e->deflate_steps : 2 * e->deflate + 20, e->n);
}

PetscErrorCode NtkEstimatorDeflate(NtkEstimator e)
{
  PetscInt   m, mm, k;
  Vec        z, *V;
  PetscReal *alpha, *beta, *theta, *Z;

  PetscFunctionBegin;
  if (e->Y) PetscCall(VecDestroyVecs(e->nd, &e->Y));
  PetscCall(PetscFree(e->ylam));
  e->nd = e->ymatvecs = 0;
  e->yres             = 0;
  if (e->deflate == 0) PetscFunctionReturn(PETSC_SUCCESS);
  m = NtkEstimatorDeflationSteps(e);
  PetscCall(MatCreateVecs(e->K, &z, NULL));
  PetscCall(VecDuplicateVecs(z, m + 1, &V));
  PetscCall(PetscMalloc4(m, &alpha, m, &beta, m, &theta, m * m, &Z));
  PetscCall(NtkEstimatorFillProbe(e, NTK_STREAM_DEFLATE, z));
  PetscCall(NtkLanczos(e->K, z, m, NTK_REORTH_FULL, e->breakdown_tol, 0, V, alpha, beta, &mm));
  PetscCall(NtkTridiagonalEig(mm, alpha, beta, theta, Z));
  e->ymatvecs = mm;

  /* the k largest Ritz pairs, largest first: y_i = Q z_i */
  k = PetscMin(e->deflate, mm);
  PetscCall(VecDuplicateVecs(z, k, &e->Y));
  PetscCall(PetscMalloc1(k, &e->ylam));
  for (PetscInt i = 0; i < k; i++) {
    PetscInt     c = mm - 1 - i;
    PetscScalar *coef;
    PetscCall(PetscMalloc1(mm, &coef));
    for (PetscInt j = 0; j < mm; j++) coef[j] = Z[c * mm + j];
    PetscCall(VecSet(e->Y[i], 0));
    PetscCall(VecMAXPY(e->Y[i], mm, coef, V));
    PetscCall(VecNormalize(e->Y[i], NULL));
    PetscCall(PetscFree(coef));
    e->ylam[i] = theta[c];
    e->yres    = PetscMax(e->yres, beta[mm - 1] * PetscAbsReal(Z[c * mm + mm - 1]) / theta[mm - 1]);
  }
  e->nd = k;
  if (e->monitor && k > 0) {
    NtkEstimate top = {theta[mm - 1], e->yres * theta[mm - 1], mm, 1, "lanczos"};
    PetscCall(e->monitor(e, "deflation: largest eigenvalue", mm, mm, &top, e->mctx));
  }
  PetscCall(PetscInfo(NULL,
                      "deflated %" PetscInt_FMT " eigenpairs in %" PetscInt_FMT
                      " products, worst relative residual %g\n",
                      k, mm, (double)e->yres));
  PetscCall(PetscFree4(alpha, beta, theta, Z));
  PetscCall(VecDestroyVecs(m + 1, &V));
  PetscCall(VecDestroy(&z));
  PetscFunctionReturn(PETSC_SUCCESS);
}
