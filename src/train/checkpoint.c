/*
  Training checkpoints: a checkpoint is either complete or absent.

  A checkpoint at step s is three files in the checkpoint folder:
      model-<s>.safetensors   the parameters theta_s (NtkNetSaveSafetensors, atomic)
      optim-<s>.safetensors   the optimiser state after s steps (moments and step count, atomic)
      manifest.json           written last and atomically: the step, the two file names, why it
                              was written, the settings of the run and the tracked history so far.
  Files are named by step, so a crash between them leaves the previous manifest pointing at the
  previous, intact files; only after the new manifest is in place are the old files removed.
  The mini-batch order is a function of (seed, step), so no random-number position needs saving.

  The settings are everything that decides theta_s and the tracked values: the model (widths,
  activation, parameterisation, sigma_w, sigma_b, initial seed or model file), the training and
  test data (their descriptions name source, classes, samples and subset seed), the loss, the
  kernel variant and scale, the optimiser and the hyperparameters it uses, the step count, the
  mini-batch size and order, frozen or linearised training and the tracking schedule. Resuming
  under any other value would continue theta_s of one run as another run, so the resume is
  refused with every difference named, old value against new.
  Every field of the manifest is type-checked before it is used: all ranks read the same text, so
  a malformed manifest is refused alike on every rank.
*/
#include "trainimpl.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define MANIFEST_FORMAT "ntkspec-train-checkpoint-2"

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

/* The option that sets each key of the settings, for the message of a refused resume. */
static const char *const setting_options[][2] = {
  {"widths", "-ntk_net_widths"},
  {"parameters", "the model's parameter count"},
  {"activation", "-ntk_net_activation"},
  {"parameterization", "-ntk_net_param"},
  {"sigma_w", "-ntk_net_sigma_w"},
  {"sigma_b", "-ntk_net_sigma_b"},
  {"initial_parameters", "-ntk_net_seed or -ntk_net_file"},
  {"data", "-ntk_data, -ntk_data_samples, -ntk_data_subset_seed, -ntk_data_classes"},
  {"samples", "-ntk_data_samples"},
  {"test_data", "-ntk_train_test, -ntk_train_test_samples"},
  {"loss", "-ntk_loss"},
  {"kernel", "-ntk_kernel"},
  {"kernel_scale", "-ntk_kernel_scale"},
  {"optimizer", "-ntk_train_optimizer"},
  {"lr", "-ntk_train_lr"},
  {"momentum", "-ntk_train_momentum"},
  {"beta1", "-ntk_train_beta1"},
  {"beta2", "-ntk_train_beta2"},
  {"eps", "-ntk_train_eps"},
  {"steps", "-ntk_train_steps"},
  {"batch", "-ntk_train_batch"},
  {"seed", "-ntk_train_seed"},
  {"frozen", "-ntk_train_frozen"},
  {"linearized", "-ntk_train_linearized"},
  {"track_every", "-ntk_train_track_every"},
  {"track_log", "-ntk_train_track_log"},
  {"track_eigs", "-ntk_train_track_eigs"},
  {"track_slq", "-ntk_train_track_slq"},
};

static const char *SettingOption(const char key[])
{
  for (size_t k = 0; k < sizeof(setting_options) / sizeof(setting_options[0]); k++)
    if (!strcmp(key, setting_options[k][0])) return setting_options[k][1];
  return "?";
}

/* The model's part of the settings. */
static PetscErrorCode ModelSettings(NtkTrainer tr, json_object *s)
{
  const PetscInt     *w;
  const char         *file;
  PetscInt            nw, seed;
  NtkActivation       act;
  NtkParameterization par;
  PetscReal           sw, sb;
  char                text[1024], init[PETSC_MAX_PATH_LEN + 8];
  size_t              len = 0;

  PetscFunctionBegin;
  PetscCall(NtkNetGetWidths(tr->net, &nw, &w));
  text[0] = 0;
  for (PetscInt l = 0; l < nw && len < sizeof(text); l++)
    len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%" PetscInt_FMT, l ? "," : "", w[l]);
  PetscCall(NtkNetGetActivation(tr->net, &act));
  PetscCall(NtkNetGetParameterization(tr->net, &par));
  PetscCall(NtkNetGetSigmas(tr->net, &sw, &sb));
  PetscCall(NtkNetGetSeed(tr->net, &seed));
  PetscCall(NtkNetGetFile(tr->net, &file));
  if (file && file[0]) PetscCall(PetscSNPrintf(init, sizeof(init), "file %s", file));
  else PetscCall(PetscSNPrintf(init, sizeof(init), "seed %" PetscInt_FMT, seed));
  json_object_object_add(s, "widths", json_object_new_string(text));
  json_object_object_add(s, "parameters", json_object_new_int64(tr->P));
  json_object_object_add(s, "activation", json_object_new_string(NtkActivations[act]));
  json_object_object_add(s, "parameterization", json_object_new_string(NtkParameterizations[par]));
  json_object_object_add(s, "sigma_w", json_object_new_double(sw));
  json_object_object_add(s, "sigma_b", json_object_new_double(sb));
  json_object_object_add(s, "initial_parameters", json_object_new_string(init));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Everything that decides the run (see the header of this file), as a JSON object. */
static PetscErrorCode RunSettings(NtkTrainer tr, json_object **settings)
{
  json_object     *s = json_object_new_object();
  NtkData          data;
  const char      *desc = "none";
  NtkKernelVariant kv;
  PetscReal        scale;

  PetscFunctionBegin;
  PetscCall(ModelSettings(tr, s));
  PetscCall(NtkOpGetData(tr->op, &data));
  PetscCall(NtkDataGetDescription(data, &desc));
  json_object_object_add(s, "data", json_object_new_string(desc));
  json_object_object_add(s, "samples", json_object_new_int64(tr->N));
  desc = "none";
  if (tr->test) PetscCall(NtkOpGetData(tr->test, &data));
  if (tr->test) PetscCall(NtkDataGetDescription(data, &desc));
  json_object_object_add(s, "test_data", json_object_new_string(desc));
  json_object_object_add(s, "loss", json_object_new_string(NtkLossTypes[tr->loss]));
  PetscCall(NtkOpGetKernel(tr->op, &kv));
  PetscCall(NtkOpGetScale(tr->op, &scale));
  json_object_object_add(s, "kernel", json_object_new_string(NtkKernelVariants[kv]));
  json_object_object_add(s, "kernel_scale", json_object_new_double(scale));
  json_object_object_add(s, "optimizer", json_object_new_string(NtkOptimizerTypes[tr->otype]));
  json_object_object_add(s, "lr", json_object_new_double(tr->lr));
  json_object_object_add(s, "momentum", json_object_new_double(tr->momentum));
  json_object_object_add(s, "beta1", json_object_new_double(tr->beta1));
  json_object_object_add(s, "beta2", json_object_new_double(tr->beta2));
  json_object_object_add(s, "eps", json_object_new_double(tr->eps));
  json_object_object_add(s, "steps", json_object_new_int64(tr->steps));
  json_object_object_add(s, "batch", json_object_new_int64(tr->batch));
  json_object_object_add(s, "seed", json_object_new_int64(tr->seed));
  json_object_object_add(s, "frozen", json_object_new_boolean(tr->frozen));
  json_object_object_add(s, "linearized", json_object_new_boolean(tr->linearized));
  json_object_object_add(s, "track_every", json_object_new_int64(tr->track_every));
  json_object_object_add(s, "track_log", json_object_new_int64(tr->track_log));
  json_object_object_add(s, "track_eigs", json_object_new_int64(tr->neigs));
  json_object_object_add(s, "track_slq", json_object_new_boolean(tr->slq));
  *settings = s;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerCheckpointWrite(NtkTrainer tr, const char reason[])
{
  char         mpath[PETSC_MAX_PATH_LEN], opath[PETSC_MAX_PATH_LEN], man[PETSC_MAX_PATH_LEN];
  char         mname[64], oname[64];
  json_object *doc = json_object_new_object(), *hist = json_object_new_array(), *settings;
  PetscMPIInt  rank;
  PetscInt     prev = tr->ckprev;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_TrainCheckpoint, 0, 0, 0, 0));
  PetscCall(NtkEnsureFolder(tr->comm, "-ntk_train_checkpoint", tr->ckdir));
  PetscCall(CheckpointPath(tr, "model", tr->step, mpath, sizeof(mpath), mname, sizeof(mname)));
  PetscCall(CheckpointPath(tr, "optim", tr->step, opath, sizeof(opath), oname, sizeof(oname)));
  if (tr->linearized) PetscCall(NtkTrainerLinearSwap(tr, PETSC_TRUE));
  PetscCall(NtkNetSaveSafetensors(tr->net, mpath));
  if (tr->linearized) PetscCall(NtkTrainerLinearSwap(tr, PETSC_FALSE));
  PetscCall(NtkOptimStateSave(tr->comm, &tr->opt, opath));

  PetscCall(RunSettings(tr, &settings));
  json_object_object_add(doc, "format", json_object_new_string(MANIFEST_FORMAT));
  json_object_object_add(doc, "step", json_object_new_int64(tr->step));
  json_object_object_add(doc, "written_after", json_object_new_string(reason));
  json_object_object_add(doc, "model", json_object_new_string(mname));
  json_object_object_add(doc, "optimizer_state", json_object_new_string(oname));
  json_object_object_add(doc, "settings", settings);
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

/* Hyperparameters the optimiser of this run does not use, which may differ on a resume. */
static PetscBool Unused(NtkTrainer tr, const char key[])
{
  if (tr->otype == NTK_OPTIM_SGD)
    return !strcmp(key, "beta1") || !strcmp(key, "beta2") || !strcmp(key, "eps") ? PETSC_TRUE
                                                                                : PETSC_FALSE;
  return !strcmp(key, "momentum") ? PETSC_TRUE : PETSC_FALSE;
}

static PetscBool SameValue(json_object *a, json_object *b)
{
  switch (json_object_get_type(b)) {
  case json_type_string: return !strcmp(json_object_get_string(a), json_object_get_string(b))
                                  ? PETSC_TRUE : PETSC_FALSE;
  case json_type_double: return json_object_get_double(a) == json_object_get_double(b)
                                  ? PETSC_TRUE : PETSC_FALSE;
  case json_type_boolean: return json_object_get_boolean(a) == json_object_get_boolean(b)
                                   ? PETSC_TRUE : PETSC_FALSE;
  default: return json_object_get_int64(a) == json_object_get_int64(b) ? PETSC_TRUE : PETSC_FALSE;
  }
}

/* A setting as text for a message: numbers with the fewest digits that give back the double. */
static const char *SettingText(json_object *v, char *buf, size_t len)
{
  double x = json_object_get_double(v);

  if (!json_object_is_type(v, json_type_double)) return json_object_get_string(v);
  for (int digits = 6; digits <= 17; digits++) {
    (void)snprintf(buf, len, "%.*g", digits, x);
    if (strtod(buf, NULL) == x) break;
  }
  return buf;
}

/*
  Refuse to resume under other settings than those of the checkpoint, naming every difference.
  A stored value of another JSON type than this run's makes the manifest malformed. All
  optimiser hyperparameters are recorded, but only those the optimiser uses are compared (a
  change of optimiser is itself a difference).
*/
static PetscErrorCode CheckSettings(NtkTrainer tr, const char man[], json_object *stored)
{
  json_object *now, *old;
  char         diff[4096] = "", a[32], b[32];
  size_t       len = 0;

  PetscFunctionBegin;
  PetscCall(RunSettings(tr, &now));
  json_object_object_foreach(now, key, val) {
    json_type t = json_object_get_type(val);
    PetscCall(NtkJSONGetMember(tr->comm, "train checkpoint", man, stored, "settings.", key, t,
                               PETSC_FALSE, &old));
    if (SameValue(old, val) || Unused(tr, key) || len >= sizeof(diff)) continue;
    len += (size_t)snprintf(diff + len, sizeof(diff) - len, "\n  %s: %s in the checkpoint, %s in "
                            "this run (%s)", key, SettingText(old, a, sizeof(a)),
                            SettingText(val, b, sizeof(b)), SettingOption(key));
  }
  json_object_put(now);
  PetscCheck(!len, tr->comm, PETSC_ERR_ARG_INCOMP, "the checkpoint in %s belongs to a run with "
             "other settings:%s\nresume with the settings of the checkpoint, or use another "
             "folder or -ntk_train_resume 0", tr->ckdir, diff);
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

/* The tracked points up to the checkpoint's step, in increasing step order. */
static PetscErrorCode ReadHistory(NtkTrainer tr, const char man[], json_object *doc)
{
  json_object *h;
  PetscInt     last = -1;

  PetscFunctionBegin;
  tr->nhist = 0;
  PetscCall(NtkJSONGetMember(tr->comm, "train checkpoint", man, doc, "", "history", json_type_array,
                             PETSC_FALSE, &h));
  for (size_t k = 0; k < json_object_array_length(h); k++) {
    NtkTrackPoint p;
    PetscCall(NtkTrackPointFromJSON(tr->comm, man, k, json_object_array_get_idx(h, k), &p));
    PetscCheck(p.step > last && p.step <= tr->step, tr->comm, PETSC_ERR_FILE_UNEXPECTED,
               "the train checkpoint %s is malformed: history[%zu].step %" PetscInt_FMT " must "
               "follow %" PetscInt_FMT " and be at most the step %" PetscInt_FMT, man, k, p.step,
               last, tr->step);
    last = p.step;
    PetscCall(NtkTrainerTrackAppend(tr, &p, PETSC_FALSE));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The manifest as a JSON object of the current format. */
static PetscErrorCode ReadManifest(NtkTrainer tr, const char man[], json_object **doc)
{
  unsigned char *text;
  size_t         size;
  json_object   *v;

  PetscFunctionBegin;
  PetscCall(NtkReadFileShared(tr->comm, man, &text, &size));
  *doc = json_tokener_parse((const char *)text);
  PetscCall(PetscFree(text));
  PetscCheck(*doc && json_object_is_type(*doc, json_type_object), tr->comm,
             PETSC_ERR_FILE_UNEXPECTED, "%s is not an ntkspec training checkpoint manifest (not a "
             "JSON object)", man);
  PetscCall(NtkJSONGetMember(tr->comm, "train checkpoint", man, *doc, "", "format",
                             json_type_string, PETSC_FALSE, &v));
  PetscCheck(!strcmp(json_object_get_string(v), MANIFEST_FORMAT), tr->comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "the train checkpoint %s has format '%s', this ntkspec "
             "reads '%s' only (earlier formats do not record every setting of the run, so a "
             "resume cannot be checked); use another folder or -ntk_train_resume 0",
             man, json_object_get_string(v), MANIFEST_FORMAT);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The step of the checkpoint: a non-negative integer within -ntk_train_steps. */
static PetscErrorCode ReadStep(NtkTrainer tr, const char man[], json_object *doc)
{
  json_object *v;
  int64_t      step;

  PetscFunctionBegin;
  PetscCall(NtkJSONGetMember(tr->comm, "train checkpoint", man, doc, "", "step", json_type_int,
                             PETSC_FALSE, &v));
  step = json_object_get_int64(v);
  PetscCheck(step >= 0, tr->comm, PETSC_ERR_FILE_UNEXPECTED, "the train checkpoint %s is "
             "malformed: step %" PRId64 " must be >= 0", man, step);
  PetscCheck(step <= tr->steps, tr->comm, PETSC_ERR_ARG_INCOMP, "the checkpoint in %s is at step "
             "%" PRId64 ", beyond -ntk_train_steps %" PetscInt_FMT, tr->ckdir, step, tr->steps);
  tr->step = (PetscInt)step;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerCheckpointRead(NtkTrainer tr, PetscBool *found)
{
  char         man[PETSC_MAX_PATH_LEN], path[PETSC_MAX_PATH_LEN];
  json_object *doc = NULL, *v;
  MPI_Comm     comm = tr->comm;

  PetscFunctionBegin;
  PetscCall(NtkTrainerCheckpointExists(tr, found));
  if (!*found) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(ManifestPath(tr, man, sizeof(man)));
  PetscCall(ReadManifest(tr, man, &doc));
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, doc, "", "settings", json_type_object,
                             PETSC_FALSE, &v));
  PetscCall(CheckSettings(tr, man, v));
  PetscCall(ReadStep(tr, man, doc));
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, doc, "", "written_after",
                             json_type_string, PETSC_FALSE, &v));
  PetscCall(PetscStrncpy(tr->resumed_reason, json_object_get_string(v),
                         sizeof(tr->resumed_reason)));

  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, doc, "", "model", json_type_string,
                             PETSC_FALSE, &v));
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", tr->ckdir, json_object_get_string(v)));
  PetscCall(LoadModel(tr, path));
  PetscCall(NtkJSONGetMember(comm, "train checkpoint", man, doc, "", "optimizer_state",
                             json_type_string, PETSC_FALSE, &v));
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", tr->ckdir, json_object_get_string(v)));
  PetscCall(NtkOptimStateLoad(comm, &tr->opt, path));
  PetscCheck(tr->opt.t == tr->step, comm, PETSC_ERR_FILE_UNEXPECTED, "%s is at step %"
             PetscInt_FMT ", the manifest at %" PetscInt_FMT, path, tr->opt.t, tr->step);
  PetscCall(ReadHistory(tr, man, doc));
  json_object_put(doc);
  tr->resumed_from = tr->ckprev = tr->step;
  PetscCall(PetscInfo(NULL, "resumed from %s at step %" PetscInt_FMT "\n", man, tr->step));
  PetscFunctionReturn(PETSC_SUCCESS);
}
