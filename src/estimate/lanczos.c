/*
  Lanczos tridiagonalisation and Gauss quadrature.

  From a unit q_1, K Q_m = Q_m T_m + beta_m q_{m+1} e_m^T with T_m = tridiag(beta, alpha, beta):
      w = K q_j - alpha_j q_j - beta_{j-1} q_{j-1},  alpha_j = q_j^T K q_j,  beta_j = |w|,
  reorthogonalised against all previous q (full: classical Gram-Schmidt twice), the two latest
  (local) or not at all (none). Without reorthogonalisation rounding makes converged Ritz values
  reappear as copies; full reorthogonalisation keeps Q_m orthonormal at O(n m^2) extra flops.
  The recurrence stops early when beta_j < tol |T| (an invariant subspace: Q_j spans it and the
  quadrature is exact). With T_m = Z diag(theta) Z^T, the Gauss rule for the measure
  sum_k (v_k^T q_1)^2 delta(lambda - lambda_k) has nodes theta_k and weights tau_k^2 = Z_{1k}^2
  (Golub and Welsch 1969); it integrates polynomials of degree up to 2m - 1 exactly.
*/
#include "estimpl.h"
#include <petscblaslapack.h>

/* Remove the components of w along V[0..nv) (two passes when full). */
static PetscErrorCode Reorth(Vec w, PetscInt nv, Vec *V, PetscInt passes, PetscScalar *h)
{
  PetscFunctionBegin;
  for (PetscInt p = 0; p < passes && nv > 0; p++) {
    PetscCall(VecMDot(w, nv, V, h));
    for (PetscInt i = 0; i < nv; i++) h[i] = -h[i];
    PetscCall(VecMAXPY(w, nv, h, V));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  V: nd + m + 1 vectors; V[0..nd) are fixed orthonormal deflation vectors (v0 must be orthogonal
  to them) and the Lanczos basis is V[nd], V[nd+1], ... with V[nd] = v0 / |v0|. Every step
  projects the deflation vectors out again, so the recurrence runs on (I - YY^T) K (I - YY^T).
  alpha[0..mm), beta[0..mm) overwritten (beta[mm-1] is the residual norm of the last step);
  *mm: steps done (= products with K).
*/
PetscErrorCode NtkLanczos(Mat K, Vec v0, PetscInt m, NtkReorthType reorth, PetscReal tol,
                          PetscInt nd, Vec *V, PetscReal *alpha, PetscReal *beta, PetscInt *mm)
{
  PetscReal    nrm, tnorm = 0;
  PetscScalar *h, a;
  Vec         *Q = V + nd;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(nd + m + 1, &h));
  PetscCall(VecNorm(v0, NORM_2, &nrm));
  PetscCall(VecAXPBY(Q[0], 1.0 / nrm, 0.0, v0));
  *mm = 0;
  for (PetscInt j = 0; j < m; j++) {
    PetscCall(MatMult(K, Q[j], Q[j + 1]));
    PetscCall(VecDot(Q[j + 1], Q[j], &a));
    alpha[j] = PetscRealPart(a);
    PetscCall(VecAXPY(Q[j + 1], -alpha[j], Q[j]));
    if (j > 0) PetscCall(VecAXPY(Q[j + 1], -beta[j - 1], Q[j - 1]));
    if (reorth == NTK_REORTH_FULL)
      PetscCall(Reorth(Q[j + 1], nd + j + 1, V, 2, h));
    else {
      PetscCall(Reorth(Q[j + 1], nd, V, 1, h));
      if (reorth == NTK_REORTH_LOCAL)
        PetscCall(Reorth(Q[j + 1], PetscMin(j + 1, 2), Q + PetscMax(0, j - 1), 1, h));
    }
    PetscCall(VecNorm(Q[j + 1], NORM_2, &beta[j]));
    tnorm = PetscMax(tnorm, PetscAbsReal(alpha[j]) + beta[j] + (j > 0 ? beta[j - 1] : 0));
    *mm   = j + 1;
    if (beta[j] <= tol * tnorm) break;
    if (j + 1 < m) PetscCall(VecScale(Q[j + 1], 1.0 / beta[j]));
  }
  PetscCall(PetscFree(h));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Eigenvalues (ascending) and eigenvectors Z (m x m column-major) of tridiag(beta, alpha, beta). */
PetscErrorCode NtkTridiagonalEig(PetscInt m, const PetscReal *alpha, const PetscReal *beta,
                                 PetscReal *theta, PetscReal *Z)
{
  PetscBLASInt n, info;
  PetscReal   *e, *work;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(m, &n));
  PetscCall(PetscMalloc2(m, &e, PetscMax(1, 2 * m - 2), &work));
  PetscCall(PetscArraycpy(theta, alpha, m));
  if (m > 1) PetscCall(PetscArraycpy(e, beta, m - 1));
  PetscCallBLAS("LAPACKsteqr", LAPACKREALsteqr_("I", &n, theta, e, Z, &n, work, &info));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "LAPACK steqr failed: info %d", (int)info);
  PetscCall(PetscFree2(e, work));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Gauss rule of tridiag(beta, alpha, beta), m x m: nodes and tau^2 (length m, overwritten). */
PetscErrorCode NtkTridiagonalGauss(PetscInt m, const PetscReal *alpha, const PetscReal *beta,
                                   PetscReal *nodes, PetscReal *tau2)
{
  PetscReal *Z;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(m * m, &Z));
  PetscCall(NtkTridiagonalEig(m, alpha, beta, nodes, Z));
  /* column k of Z is the eigenvector of nodes[k]; tau_k is its first entry */
  for (PetscInt k = 0; k < m; k++) tau2[k] = Z[k * m] * Z[k * m];
  PetscCall(PetscFree(Z));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkLanczosQuadrature(NtkOp op, Vec u, PetscInt m, PetscReal *nodes,
                                    PetscReal *weights, PetscInt *nq)
{
  Mat        K;
  Vec       *V;
  PetscReal *alpha, *beta, nrm;

  PetscFunctionBegin;
  PetscCall(NtkOpGetKernelMat(op, &K));
  PetscCall(VecNorm(u, NORM_2, &nrm));
  *nq = 0;
  if (nrm == 0) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(VecDuplicateVecs(u, m + 1, &V));
  PetscCall(PetscMalloc2(m, &alpha, m, &beta));
  PetscCall(NtkLanczos(K, u, m, NTK_REORTH_FULL, 1e-12, 0, V, alpha, beta, nq));
  PetscCall(NtkTridiagonalGauss(*nq, alpha, beta, nodes, weights));
  for (PetscInt k = 0; k < *nq; k++) weights[k] *= nrm * nrm;
  PetscCall(PetscFree2(alpha, beta));
  PetscCall(VecDestroyVecs(m + 1, &V));
  PetscFunctionReturn(PETSC_SUCCESS);
}
