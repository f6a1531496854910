/*
  Training checkpoints: a checkpoint is either complete or absent.

  A checkpoint at step s is three files in the checkpoint folder:
      model-<s>.safetensors   the parameters theta_s (NtkNetSaveSafetensors, atomic)
      optim-<s>.safetensors   the optimiser state after s steps (moments and step count, atomic)
      manifest.json           written last and atomically: the step, the two file names, the
                              settings a resume must match, and the tracked history so far.
  Files are named by step, so a crash between them leaves the previous manifest pointing at the
  previous, intact files; only after the new manifest is in place are the old files removed.
  The mini-batch order is a function of (seed, step), so no random-number position needs saving.
*/
#include "trainimpl.h"
#include <stdio.h>

#define MANIFEST_FORMAT "ntkspec-train-checkpoint-1"

static PetscErrorCode CheckpointPath(NtkTrainer tr, const char kind[], PetscInt step, char *path,
                                     size_t len, char *name, size_t nlen)
{
  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(name, nlen, "%s-%08" PetscInt_FMT ".safetensors", kind, step));
  PetscCall(PetscSNPrintf(path, len, "%s/%s", tr->ckdir, name));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode ManifestPath(NtkTrainer tr, char *path, size_t len)
{
  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(path, len, "%s/manifest.json", tr->ckdir));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Create the folder on rank 0 if needed; every rank learns whether that worked. */
static PetscErrorCode EnsureFolder(NtkTrainer tr)
{
  PetscMPIInt rank;
  PetscBool   ok = PETSC_TRUE;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(tr->comm, &rank));
  if (rank == 0) {
    PetscCall(PetscTestDirectory(tr->ckdir, 'w', &ok));
    if (!ok) {
      PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
      ok = PetscMkdir(tr->ckdir) ? PETSC_FALSE : PETSC_TRUE;
      PetscCall(PetscPopErrorHandler());
      if (ok) PetscCall(PetscTestDirectory(tr->ckdir, 'w', &ok));
    }
  }
  PetscCall(NtkCheckAll(tr->comm, ok, PETSC_ERR_FILE_OPEN,
                        "-ntk_train_checkpoint: cannot create or write the checkpoint folder"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerCheckpointWrite(NtkTrainer tr)
{
  char         mpath[PETSC_MAX_PATH_LEN], opath[PETSC_MAX_PATH_LEN], man[PETSC_MAX_PATH_LEN];
  char         mname[64], oname[64];
  json_object *doc = json_object_new_object(), *hist = json_object_new_array();
  PetscMPIInt  rank;
  PetscInt     prev = tr->ckprev;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_TrainCheckpoint, 0, 0, 0, 0));
  PetscCall(EnsureFolder(tr));
  PetscCall(CheckpointPath(tr, "model", tr->step, mpath, sizeof(mpath), mname, sizeof(mname)));
  PetscCall(CheckpointPath(tr, "optim", tr->step, opath, sizeof(opath), oname, sizeof(oname)));
  if (tr->linearized) PetscCall(NtkTrainerLinearSwap(tr, PETSC_TRUE));
  PetscCall(NtkNetSaveSafetensors(tr->net, mpath));
  if (tr->linearized) PetscCall(NtkTrainerLinearSwap(tr, PETSC_FALSE));
  PetscCall(NtkOptimStateSave(tr->comm, &tr->opt, opath));

  json_object_object_add(doc, "format", json_object_new_string(MANIFEST_FORMAT));
  json_object_object_add(doc, "step", json_object_new_int64(tr->step));
  json_object_object_add(doc, "model", json_object_new_string(mname));
  json_object_object_add(doc, "optimizer_state", json_object_new_string(oname));
  json_object_object_add(doc, "optimizer", json_object_new_string(NtkOptimizerTypes[tr->otype]));
  json_object_object_add(doc, "loss", json_object_new_string(NtkLossTypes[tr->loss]));
  json_object_object_add(doc, "parameters", json_object_new_int64(tr->P));
  json_object_object_add(doc, "samples", json_object_new_int64(tr->N));
  json_object_object_add(doc, "batch", json_object_new_int64(tr->batch));
  json_object_object_add(doc, "seed", json_object_new_int64(tr->seed));
  json_object_object_add(doc, "frozen", json_object_new_boolean(tr->frozen));
  json_object_object_add(doc, "linearized", json_object_new_boolean(tr->linearized));
  for (PetscInt k = 0; k < tr->nhist; k++)
    json_object_array_add(hist, NtkTrackPointJSON(&tr->hist[k], tr->neigs));
  json_object_object_add(doc, "history", hist);
  PetscCall(ManifestPath(tr, man, sizeof(man)));
  PetscCall(NtkJSONWrite(tr->comm, doc, man));
  json_object_put(doc);

  /* the new checkpoint is complete: the files of the previous one may go */
  PetscCallMPI(MPI_Comm_rank(tr->comm, &rank));
  if (rank == 0 && prev >= 0 && prev != tr->step) {
    PetscCall(CheckpointPath(tr, "model", prev, mpath, sizeof(mpath), mname, sizeof(mname)));
    PetscCall(CheckpointPath(tr, "optim", prev, opath, sizeof(opath), oname, sizeof(oname)));
    (void)remove(mpath);
    (void)remove(opath);
  }
  tr->ckprev = tr->step;
  PetscCall(PetscLogEventEnd(NTK_TrainCheckpoint, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerCheckpointExists(NtkTrainer tr, PetscBool *exists)
{
  char        man[PETSC_MAX_PATH_LEN];
  PetscMPIInt rank;

  PetscFunctionBegin;
  *exists = PETSC_FALSE;
  PetscCallMPI(MPI_Comm_rank(tr->comm, &rank));
  if (tr->ckdir[0] && rank == 0) {
    PetscCall(ManifestPath(tr, man, sizeof(man)));
    PetscCall(PetscTestFile(man, 'r', exists));
  }
  PetscCallMPI(MPI_Bcast(exists, 1, MPIU_BOOL, 0, tr->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* A manifest field that must equal what this run asks for. */
static PetscErrorCode ExpectInt(NtkTrainer tr, json_object *doc, const char key[], PetscInt want,
                                const char option[])
{
  json_object *v;
  PetscInt     got;

  PetscFunctionBegin;
  PetscCheck(json_object_object_get_ex(doc, key, &v), tr->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s/manifest.json has no '%s'", tr->ckdir, key);
  got = (PetscInt)json_object_get_int64(v);
  PetscCheck(got == want, tr->comm, PETSC_ERR_ARG_INCOMP, "the checkpoint in %s has %s = %"
             PetscInt_FMT " but this run has %" PetscInt_FMT " (%s); use another folder or "
             "-ntk_train_resume 0", tr->ckdir, key, got, want, option);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Copy the parameters of a model file into the trainer's network (same architecture). */
static PetscErrorCode LoadModel(NtkTrainer tr, const char path[])
{
  NtkNet tmp;
  Vec    src, dst;
  PetscInt P;

  PetscFunctionBegin;
  PetscCall(NtkNetCreate(tr->comm, &tmp));
  PetscCall(NtkNetLoadSafetensors(tmp, path));
  PetscCall(NtkNetGetNumParameters(tmp, &P));
  PetscCheck(P == tr->P, tr->comm, PETSC_ERR_ARG_INCOMP, "%s has %" PetscInt_FMT " parameters, the "
             "network of this run %" PetscInt_FMT, path, P, tr->P);
  PetscCall(NtkNetGetParameters(tmp, &src));
  PetscCall(NtkNetGetParameters(tr->net, &dst));
  PetscCall(VecCopy(src, dst));
  PetscCall(NtkNetDestroy(&tmp));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode ReadHistory(NtkTrainer tr, json_object *doc)
{
  json_object *h;

  PetscFunctionBegin;
  tr->nhist = 0;
  if (!json_object_object_get_ex(doc, "history", &h)) PetscFunctionReturn(PETSC_SUCCESS);
  for (size_t k = 0; k < json_object_array_length(h); k++) {
    NtkTrackPoint p;
    PetscCall(NtkTrackPointFromJSON(json_object_array_get_idx(h, k), &p));
    if (p.step <= tr->step) PetscCall(NtkTrainerTrackAppend(tr, &p, PETSC_FALSE));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerCheckpointRead(NtkTrainer tr, PetscBool *found)
{
  char           man[PETSC_MAX_PATH_LEN], path[PETSC_MAX_PATH_LEN];
  unsigned char *text;
  size_t         size;
  json_object   *doc, *v, *o;

  PetscFunctionBegin;
  PetscCall(NtkTrainerCheckpointExists(tr, found));
  if (!*found) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(ManifestPath(tr, man, sizeof(man)));
  PetscCall(NtkReadFileShared(tr->comm, man, &text, &size));
  doc = json_tokener_parse((const char *)text);
  PetscCall(PetscFree(text));
  PetscCheck(doc && json_object_object_get_ex(doc, "format", &v) &&
               !strcmp(json_object_get_string(v), MANIFEST_FORMAT) &&
               json_object_object_get_ex(doc, "model", &v) &&
               json_object_object_get_ex(doc, "optimizer_state", &o) &&
               json_object_object_get_ex(doc, "optimizer", &o),
             tr->comm, PETSC_ERR_FILE_UNEXPECTED, "%s is not an ntkspec training checkpoint "
             "manifest", man);
  PetscCheck(!strcmp(json_object_get_string(o), NtkOptimizerTypes[tr->otype]), tr->comm,
             PETSC_ERR_ARG_INCOMP, "the checkpoint in %s was written by %s, this run asks for %s "
             "(-ntk_train_optimizer)", tr->ckdir, json_object_get_string(o),
             NtkOptimizerTypes[tr->otype]);
  PetscCall(ExpectInt(tr, doc, "parameters", tr->P, "the model's parameter count"));
  PetscCall(ExpectInt(tr, doc, "samples", tr->N, "-ntk_data_samples"));
  PetscCall(ExpectInt(tr, doc, "batch", tr->batch, "-ntk_train_batch"));
  PetscCall(ExpectInt(tr, doc, "seed", tr->seed, "-ntk_train_seed"));
  PetscCall(ExpectInt(tr, doc, "frozen", tr->frozen, "-ntk_train_frozen"));
  PetscCall(ExpectInt(tr, doc, "linearized", tr->linearized, "-ntk_train_linearized"));
  PetscCheck(json_object_object_get_ex(doc, "step", &v), tr->comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s has no step", man);
  tr->step = (PetscInt)json_object_get_int64(v);
  PetscCheck(tr->step >= 0 && tr->step <= tr->steps, tr->comm, PETSC_ERR_ARG_INCOMP,
             "the checkpoint in %s is at step %" PetscInt_FMT ", beyond -ntk_train_steps %"
             PetscInt_FMT, tr->ckdir, tr->step, tr->steps);

  (void)json_object_object_get_ex(doc, "model", &v);
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", tr->ckdir, json_object_get_string(v)));
  PetscCall(LoadModel(tr, path));
  (void)json_object_object_get_ex(doc, "optimizer_state", &v);
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", tr->ckdir, json_object_get_string(v)));
  PetscCall(NtkOptimStateLoad(tr->comm, &tr->opt, path));
  PetscCheck(tr->opt.t == tr->step, tr->comm, PETSC_ERR_FILE_UNEXPECTED, "%s is at step %"
             PetscInt_FMT ", the manifest at %" PetscInt_FMT, path, tr->opt.t, tr->step);
  PetscCall(ReadHistory(tr, doc));
  json_object_put(doc);
  tr->resumed_from = tr->ckprev = tr->step;
  PetscCall(PetscInfo(NULL, "resumed from %s at step %" PetscInt_FMT "\n", man, tr->step));
  PetscFunctionReturn(PETSC_SUCCESS);
}
