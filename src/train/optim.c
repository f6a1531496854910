/*
  Optimisers on replicated parameter arrays, and their state on disk.

  SGD with heavy-ball momentum (PyTorch's convention, dampening 0):
      m <- beta m + grad,   theta <- theta - lr m.
  Adam (Kingma and Ba 2015) with bias correction at step t (1-based):
      m <- b1 m + (1 - b1) grad,   v <- b2 v + (1 - b2) grad^2,
      theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
  Every rank applies the same update to the same replicated arrays (grad comes from one
  Allreduce), so the parameters stay identical on every rank without further communication.

  The state file is a safetensors document: F64 tensors "m" and "v" of shape [P] and the
  metadata "optimizer", "step" and "parameters". Rank 0 reads the bytes, every rank receives
  them and parses them identically, so a damaged file fails all ranks together.
*/
#include "trainimpl.h"
#include <ntk/io.h>
#include <ntk/sys.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const NtkOptimizerTypes[] = {"sgd", "adam", "NtkOptimizerType", "NTK_OPTIM_", NULL};

PetscErrorCode NtkOptimStateCreate(NtkOptimizerType type, PetscInt P, NtkOptimState *s)
{
  PetscFunctionBegin;
  PetscCall(PetscMemzero(s, sizeof(*s)));
  s->type     = type;
  s->P        = P;
  s->lr       = 1e-3;
  s->momentum = 0.9;
  s->beta1    = 0.9;
  s->beta2    = 0.999;
  s->eps      = 1e-8;
  PetscCall(PetscCalloc2(P, &s->m, P, &s->v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOptimStateDestroy(NtkOptimState *s)
{
  PetscFunctionBegin;
  PetscCall(PetscFree2(s->m, s->v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* theta <- theta - update(grad); grad and theta have length P, the state advances one step. */
PetscErrorCode NtkOptimStep(NtkOptimState *s, const PetscScalar *grad, PetscScalar *theta)
{
  PetscFunctionBegin;
  s->t++;
  if (s->type == NTK_OPTIM_SGD) {
    for (PetscInt k = 0; k < s->P; k++) {
      s->m[k] = s->momentum * s->m[k] + grad[k]; /* m <- beta m + grad */
      theta[k] -= s->lr * s->m[k];
    }
  } else {
    PetscReal c1 = 1.0 - PetscPowReal(s->beta1, (PetscReal)s->t);
    PetscReal c2 = 1.0 - PetscPowReal(s->beta2, (PetscReal)s->t);
    for (PetscInt k = 0; k < s->P; k++) {
      s->m[k] = s->beta1 * s->m[k] + (1 - s->beta1) * grad[k];
      s->v[k] = s->beta2 * s->v[k] + (1 - s->beta2) * grad[k] * grad[k];
      theta[k] -= s->lr * (s->m[k] / c1) / (PetscSqrtReal(s->v[k] / c2) + s->eps);
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static void PutU64(unsigned char *b, uint64_t u)
{
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)(u >> (8 * k));
}

static uint64_t GetU64(const unsigned char *b)
{
  uint64_t u = 0;
  for (int k = 7; k >= 0; k--) u = (u << 8) | b[k];
  return u;
}

static json_object *TensorHeader(PetscInt P, size_t begin)
{
  json_object *t = json_object_new_object(), *shape = json_object_new_array();
  json_object *off = json_object_new_array();

  json_object_array_add(shape, json_object_new_int64(P));
  json_object_array_add(off, json_object_new_int64((int64_t)begin));
  json_object_array_add(off, json_object_new_int64((int64_t)(begin + 8 * (size_t)P)));
  json_object_object_add(t, "dtype", json_object_new_string("F64"));
  json_object_object_add(t, "shape", shape);
  json_object_object_add(t, "data_offsets", off);
  return t;
}

PetscErrorCode NtkOptimStateSave(MPI_Comm comm, const NtkOptimState *s, const char path[])
{
  json_object   *root = json_object_new_object(), *meta = json_object_new_object();
  const char    *text;
  char           num[32];
  size_t         tlen, hlen, size;
  unsigned char *buf, *p;
  PetscMPIInt    rank;
  PetscErrorCode ierr = PETSC_SUCCESS;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  json_object_object_add(meta, "optimizer", json_object_new_string(NtkOptimizerTypes[s->type]));
  PetscCall(PetscSNPrintf(num, sizeof(num), "%" PetscInt_FMT, s->t));
  json_object_object_add(meta, "step", json_object_new_string(num));
  PetscCall(PetscSNPrintf(num, sizeof(num), "%" PetscInt_FMT, s->P));
  json_object_object_add(meta, "parameters", json_object_new_string(num));
  json_object_object_add(root, "__metadata__", meta);
  json_object_object_add(root, "m", TensorHeader(s->P, 0));
  json_object_object_add(root, "v", TensorHeader(s->P, 8 * (size_t)s->P));
  text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  tlen = strlen(text);
  hlen = (tlen + 7) / 8 * 8;
  size = 8 + hlen + 16 * (size_t)s->P;
  if (rank == 0) {
    PetscCall(PetscMalloc1(size, &buf));
    PutU64(buf, hlen);
    memcpy(buf + 8, text, tlen);
    memset(buf + 8 + tlen, ' ', hlen - tlen);
    p = buf + 8 + hlen;
    for (PetscInt k = 0; k < 2 * s->P; k++, p += 8) {
      double   d = (double)(k < s->P ? s->m[k] : s->v[k - s->P]);
      uint64_t u;
      memcpy(&u, &d, sizeof(u));
      PutU64(p, u);
    }
    PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
    ierr = NtkWriteFileAtomic(path, buf, size);
    PetscCall(PetscPopErrorHandler());
    PetscCall(PetscFree(buf));
  }
  json_object_put(root);
  PetscCall(NtkCheckAll(comm, ierr ? PETSC_FALSE : PETSC_TRUE, PETSC_ERR_FILE_WRITE,
                        "cannot write the optimiser state file"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Check tensor `name` is F64 [P] at [off, off + 8P) inside a data section of `dsize` bytes. */
static PetscErrorCode CheckTensor(MPI_Comm comm, const char path[], json_object *root,
                                  const char name[], PetscInt P, size_t dsize, size_t *off)
{
  json_object *t, *dt = NULL, *sh = NULL, *of = NULL;
  int64_t      b = -1, e = -1, n = -1;
  PetscBool    ok;

  PetscFunctionBegin;
  ok = json_object_object_get_ex(root, name, &t) && json_object_is_type(t, json_type_object) &&
       json_object_object_get_ex(t, "dtype", &dt) && json_object_is_type(dt, json_type_string) &&
       json_object_object_get_ex(t, "shape", &sh) && json_object_is_type(sh, json_type_array) &&
       json_object_object_get_ex(t, "data_offsets", &of) &&
       json_object_is_type(of, json_type_array) &&
       json_object_array_length(sh) == 1 && json_object_array_length(of) == 2
         ? PETSC_TRUE : PETSC_FALSE;
  if (ok) {
    json_object *jn = json_object_array_get_idx(sh, 0), *jb = json_object_array_get_idx(of, 0);
    json_object *je = json_object_array_get_idx(of, 1);
    ok = json_object_is_type(jn, json_type_int) && json_object_is_type(jb, json_type_int) &&
         json_object_is_type(je, json_type_int) ? PETSC_TRUE : PETSC_FALSE;
    n = json_object_get_int64(jn), b = json_object_get_int64(jb), e = json_object_get_int64(je);
  }
  PetscCheck(ok, comm, PETSC_ERR_FILE_UNEXPECTED, "%s: tensor '%s' missing or malformed", path,
             name);
  PetscCheck(!strcmp(json_object_get_string(dt), "F64") && n == P && b >= 0 &&
               e - b == 8 * (int64_t)P && (size_t)e <= dsize,
             comm, PETSC_ERR_FILE_UNEXPECTED, "%s: tensor '%s' is not F64 [%" PetscInt_FMT
             "] inside the file", path, name, P);
  *off = (size_t)b;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The metadata "step": a string of decimal digits (safetensors metadata values are strings). */
static PetscErrorCode ParseStep(MPI_Comm comm, const char path[], json_object *o, PetscInt *t)
{
  const char *text = json_object_get_string(o);
  char       *end  = NULL;
  long long   v    = -1;

  PetscFunctionBegin;
  if (json_object_is_type(o, json_type_string) && text[0] >= '0' && text[0] <= '9')
    v = strtoll(text, &end, 10);
  PetscCheck(v >= 0 && end && !*end, comm, PETSC_ERR_FILE_UNEXPECTED, "%s: the step in the "
             "metadata must be a string of digits, not %s", path, text);
  *t = (PetscInt)v;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkOptimStateLoad(MPI_Comm comm, NtkOptimState *s, const char path[])
{
  unsigned char *buf;
  size_t         size, hlen, moff, voff;
  json_object   *root, *meta, *o;
  char          *text;

  PetscFunctionBegin;
  PetscCall(NtkReadFileShared(comm, path, &buf, &size));
  PetscCheck(size > 8, comm, PETSC_ERR_FILE_UNEXPECTED, "%s: too short for a state file", path);
  hlen = (size_t)GetU64(buf);
  PetscCheck(hlen <= size - 8, comm, PETSC_ERR_FILE_UNEXPECTED, "%s: header length %zu exceeds the "
             "file size %zu", path, hlen, size);
  PetscCall(PetscMalloc1(hlen + 1, &text));
  memcpy(text, buf + 8, hlen);
  text[hlen] = 0;
  root = json_tokener_parse(text);
  PetscCall(PetscFree(text));
  PetscCheck(root && json_object_is_type(root, json_type_object) &&
               json_object_object_get_ex(root, "__metadata__", &meta) &&
               json_object_is_type(meta, json_type_object) &&
               json_object_object_get_ex(meta, "optimizer", &o) &&
               json_object_is_type(o, json_type_string) &&
               !strcmp(json_object_get_string(o), NtkOptimizerTypes[s->type]) &&
               json_object_object_get_ex(meta, "step", &o),
             comm, PETSC_ERR_FILE_UNEXPECTED, "%s: not a %s optimiser state", path,
             NtkOptimizerTypes[s->type]);
  PetscCall(ParseStep(comm, path, o, &s->t));
  PetscCall(CheckTensor(comm, path, root, "m", s->P, size - 8 - hlen, &moff));
  PetscCall(CheckTensor(comm, path, root, "v", s->P, size - 8 - hlen, &voff));
  json_object_put(root);
  for (PetscInt k = 0; k < s->P; k++) {
    uint64_t um = GetU64(buf + 8 + hlen + moff + 8 * (size_t)k);
    uint64_t uv = GetU64(buf + 8 + hlen + voff + 8 * (size_t)k);
    double   dm, dv;
    memcpy(&dm, &um, sizeof(dm));
    memcpy(&dv, &uv, sizeof(dv));
    /* a state that is not finite would turn theta into NaN at the first step after the resume */
    PetscCheck(isfinite(dm) && isfinite(dv), comm, PETSC_ERR_FILE_UNEXPECTED, "the optimiser "
               "state in %s is not finite (entry %" PetscInt_FMT " of its tensor '%s')", path, k,
               isfinite(dm) ? "v" : "m");
    PetscCheck(s->type != NTK_OPTIM_ADAM || dv >= 0, comm, PETSC_ERR_FILE_UNEXPECTED, "the "
               "optimiser state in %s has a negative second moment v[%" PetscInt_FMT "] = %g",
               path, k, dv);
    s->m[k] = dm, s->v[k] = dv;
  }
  PetscCall(PetscFree(buf));
  PetscFunctionReturn(PETSC_SUCCESS);
}
