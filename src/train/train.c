/*
  NtkTrainer: data-parallel training with the spectral position tracked (see ntk/train.h).

  Method per step s (theta_s -> theta_{s+1}):
      g      = dL/dF at theta_s                     (NtkLossEvaluate on the training operator)
      g_B    = (N / |B_s|) 1_{B_s} . g              (mini-batch: rows outside B_s zeroed)
      grad   = J^T g_B                              (NtkOpVJPAll: local VJP + one Allreduce)
      grad   = 0 outside the last layer             (frozen features)
      theta  = optimiser(theta, grad);  NtkOpUpdate (fresh outputs and cached activations)
  The mini-batch B_s is block s mod ceil(N/B) of a permutation of the N global sample indices
  drawn for epoch floor(s / ceil(N/B)) by sorting the keys NtkRandomUniform(seed, epoch, i): it
  depends on (seed, s) only, never on the number of ranks or on where a run was resumed.

  Signals (when there is a checkpoint folder): SIGTERM and SIGUSR1 only set a flag. After each
  step the ranks agree on it (one Allreduce of an int), write a checkpoint and return with the
  trainer marked interrupted;
  `ntkspec train` then exits with NTK_TRAIN_EXIT_INTERRUPTED (3): resubmit to resume.
*/
#include "trainimpl.h"

PetscLogEvent NTK_TrainStep, NTK_TrainTrack, NTK_TrainCheckpoint;

PetscErrorCode NtkTrainerCreate(NtkOp op, NtkOp test, NtkTrainer *trainer)
{
  NtkTrainer       tr;
  static PetscBool registered = PETSC_FALSE;

  PetscFunctionBegin;
  if (!registered) {
    registered = PETSC_TRUE;
    PetscCall(NtkInitializePackage());
    PetscCall(PetscLogEventRegister("NtkTrainStep", NTK_CLASSID, &NTK_TrainStep));
    PetscCall(PetscLogEventRegister("NtkTrainTrack", NTK_CLASSID, &NTK_TrainTrack));
    PetscCall(PetscLogEventRegister("NtkTrainCheckpt", NTK_CLASSID, &NTK_TrainCheckpoint));
  }
  PetscCall(PetscNew(&tr));
  tr->op           = op;
  tr->test         = test;
  PetscCall(NtkOpGetNet(op, &tr->net));
  PetscCall(NtkNetGetComm(tr->net, &tr->comm));
  tr->loss         = NTK_LOSS_XENT;
  tr->otype        = NTK_OPTIM_ADAM;
  tr->lr           = 1e-3;
  tr->momentum     = 0.9;
  tr->beta1        = 0.9;
  tr->beta2        = 0.999;
  tr->eps          = 1e-8;
  tr->steps        = 100;
  tr->track_every  = 10;
  tr->resume       = PETSC_TRUE;
  tr->perm_epoch   = -1;
  tr->resumed_from = -1;
  tr->ckprev       = -1;
  *trainer         = tr;
  PetscFunctionReturn(PETSC_SUCCESS);
}

#define NTK_TRAINER_ACCESSORS(Name, type, field)                                      \
  PetscErrorCode NtkTrainerSet##Name(NtkTrainer tr, type v)                           \
  {                                                                                   \
    PetscFunctionBegin;                                                               \
    PetscCheck(!tr->setup, tr->comm, PETSC_ERR_ORDER, "set options before SetUp");    \
    tr->field = v;                                                                    \
    PetscFunctionReturn(PETSC_SUCCESS);                                               \
  }                                                                                   \
  PetscErrorCode NtkTrainerGet##Name(NtkTrainer tr, type *v)                          \
  {                                                                                   \
    PetscFunctionBegin;                                                               \
    *v = tr->field;                                                                   \
    PetscFunctionReturn(PETSC_SUCCESS);                                               \
  }

NTK_TRAINER_ACCESSORS(Optimizer, NtkOptimizerType, otype)
NTK_TRAINER_ACCESSORS(Loss, NtkLossType, loss)
NTK_TRAINER_ACCESSORS(Steps, PetscInt, steps)
NTK_TRAINER_ACCESSORS(LearningRate, PetscReal, lr)
NTK_TRAINER_ACCESSORS(Momentum, PetscReal, momentum)
NTK_TRAINER_ACCESSORS(Batch, PetscInt, batch)
NTK_TRAINER_ACCESSORS(Seed, PetscInt, seed)
NTK_TRAINER_ACCESSORS(Frozen, PetscBool, frozen)
NTK_TRAINER_ACCESSORS(Linearized, PetscBool, linearized)
NTK_TRAINER_ACCESSORS(TrackEigenvalues, PetscInt, neigs)
NTK_TRAINER_ACCESSORS(StopAfter, PetscInt, stop_after)

PetscErrorCode NtkTrainerSetResume(NtkTrainer tr, PetscBool resume)
{
  PetscFunctionBegin;
  tr->resume     = resume;
  tr->resume_set = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetResume(NtkTrainer tr, PetscBool *resume)
{
  PetscFunctionBegin;
  *resume = tr->resume;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetTracking(NtkTrainer tr, PetscInt every, PetscInt npoints)
{
  PetscFunctionBegin;
  PetscCheck(every >= 0 && npoints >= 0, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_track_every %" PetscInt_FMT " and -ntk_train_track_log %" PetscInt_FMT
             " must be >= 0", every, npoints);
  tr->track_every = every;
  tr->track_log   = npoints;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetTracking(NtkTrainer tr, PetscInt *every, PetscInt *npoints)
{
  PetscFunctionBegin;
  if (every) *every = tr->track_every;
  if (npoints) *npoints = tr->track_log;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetCSV(NtkTrainer tr, const char file[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(tr->csv, file ? file : "", sizeof(tr->csv)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetCSV(NtkTrainer tr, const char *file[])
{
  PetscFunctionBegin;
  *file = tr->csv;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetCheckpoint(NtkTrainer tr, const char dir[], PetscInt every)
{
  PetscFunctionBegin;
  PetscCheck(every >= 0, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_checkpoint_every %" PetscInt_FMT " must be >= 0", every);
  if (dir != tr->ckdir) PetscCall(PetscStrncpy(tr->ckdir, dir ? dir : "", sizeof(tr->ckdir)));
  tr->ckevery = every;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetCheckpoint(NtkTrainer tr, const char *dir[], PetscInt *every)
{
  PetscFunctionBegin;
  if (dir) *dir = tr->ckdir;
  if (every) *every = tr->ckevery;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetMonitor(NtkTrainer tr, NtkTrainerMonitorFn fn, void *ctx)
{
  PetscFunctionBegin;
  tr->monitor = fn;
  tr->monctx  = ctx;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetFromOptions(NtkTrainer tr)
{
  PetscInt every = tr->track_every, nlog = tr->track_log, ckevery = tr->ckevery;
  PetscBool set;

  PetscFunctionBegin;
  PetscCall(NtkLossGetFromOptions(tr->comm, &tr->loss));
  PetscOptionsBegin(tr->comm, NULL, "Training options", "NtkTrainer");
  PetscCall(PetscOptionsInt("-ntk_train_steps", "Optimiser steps", "NtkTrainerSetSteps",
                            tr->steps, &tr->steps, NULL));
  PetscCall(PetscOptionsEnum("-ntk_train_optimizer", "Optimiser", "NtkTrainerSetOptimizer",
                             NtkOptimizerTypes, (PetscEnum)tr->otype, (PetscEnum *)&tr->otype,
                             NULL));
  PetscCall(PetscOptionsReal("-ntk_train_lr", "Learning rate", "NtkTrainerSetLearningRate",
                             tr->lr, &tr->lr, NULL));
  PetscCall(PetscOptionsReal("-ntk_train_momentum", "SGD momentum beta", "NtkTrainerSetMomentum",
                             tr->momentum, &tr->momentum, NULL));
  PetscCall(PetscOptionsReal("-ntk_train_beta1", "Adam beta1", "", tr->beta1, &tr->beta1, NULL));
  PetscCall(PetscOptionsReal("-ntk_train_beta2", "Adam beta2", "", tr->beta2, &tr->beta2, NULL));
  PetscCall(PetscOptionsReal("-ntk_train_eps", "Adam epsilon", "", tr->eps, &tr->eps, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_batch", "Mini-batch size (0: full batch)",
                            "NtkTrainerSetBatch", tr->batch, &tr->batch, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_seed", "Seed of the mini-batch order", "NtkTrainerSetSeed",
                            tr->seed, &tr->seed, NULL));
  PetscCall(PetscOptionsBool("-ntk_train_frozen", "Train the last layer only (random features)",
                             "NtkTrainerSetFrozen", tr->frozen, &tr->frozen, NULL));
  PetscCall(PetscOptionsBool("-ntk_train_linearized", "Train the linearisation around the initial "
                             "parameters (kernel regime)", "NtkTrainerSetLinearized",
                             tr->linearized, &tr->linearized, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_track_every", "Track every k steps (0: off)",
                            "NtkTrainerSetTracking", every, &every, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_track_log", "Track at this many log-spaced steps (0: off)",
                            "NtkTrainerSetTracking", nlog, &nlog, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_track_eigs", "Leading eigenvalues of K tracked (0-3)",
                            "NtkTrainerSetTrackEigenvalues", tr->neigs, &tr->neigs, NULL));
  PetscCall(PetscOptionsBool("-ntk_train_track_slq", "Track the entropy and rank position by SLQ "
                             "(-ntk_estimate_* options)", "", tr->slq, &tr->slq, NULL));
  PetscCall(PetscOptionsString("-ntk_train_csv", "Append tracked values to this CSV file",
                               "NtkTrainerSetCSV", tr->csv, tr->csv, sizeof(tr->csv), NULL));
  PetscCall(PetscOptionsString("-ntk_train_checkpoint", "Checkpoint folder (resumed from if it "
                               "holds a checkpoint)", "NtkTrainerSetCheckpoint", tr->ckdir,
                               tr->ckdir, sizeof(tr->ckdir), NULL));
  PetscCall(PetscOptionsInt("-ntk_train_checkpoint_every", "Checkpoint every k steps (0: at the "
                            "end and on signals only)", "NtkTrainerSetCheckpoint", ckevery,
                            &ckevery, NULL));
  PetscCall(PetscOptionsInt("-ntk_train_stop_after", "Stop with a checkpoint after this many "
                            "steps, as after SIGTERM (0: never)", "NtkTrainerSetStopAfter",
                            tr->stop_after, &tr->stop_after, NULL));
  PetscCall(PetscOptionsBool("-ntk_train_resume", "Resume from the checkpoint folder if it holds "
                             "a checkpoint", "NtkTrainerSetResume", tr->resume, &tr->resume, &set));
  PetscOptionsEnd();
  if (set) tr->resume_set = PETSC_TRUE;
  PetscCall(NtkTrainerSetTracking(tr, every, nlog));
  PetscCall(NtkTrainerSetCheckpoint(tr, tr->ckdir, ckevery));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Steps round(steps^(j/(n-1))), j = 0..n-1, sorted without repeats. */
static PetscErrorCode BuildLogSteps(NtkTrainer tr)
{
  PetscInt n = tr->track_log;

  PetscFunctionBegin;
  PetscCall(PetscFree(tr->logsteps));
  tr->nlogsteps = 0;
  if (n <= 0 || tr->steps <= 0) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscMalloc1(n, &tr->logsteps));
  for (PetscInt j = 0; j < n; j++) {
    PetscReal e = n > 1 ? (PetscReal)j / (n - 1) : 1;
    tr->logsteps[j] = (PetscInt)PetscFloorReal(PetscPowReal((PetscReal)tr->steps, e) + 0.5);
  }
  PetscCall(PetscSortRemoveDupsInt(&n, tr->logsteps));
  tr->nlogsteps = n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscBool IsTrackStep(NtkTrainer tr, PetscInt s)
{
  PetscInt loc = -1;

  if (s == 0 || s == tr->steps) return PETSC_TRUE;
  if (tr->track_every > 0 && s % tr->track_every == 0) return PETSC_TRUE;
  if (tr->nlogsteps) (void)PetscFindInt(s, tr->nlogsteps, tr->logsteps, &loc);
  return loc >= 0 ? PETSC_TRUE : PETSC_FALSE;
}

static PetscErrorCode CheckSettings(NtkTrainer tr)
{
  PetscFunctionBegin;
  PetscCheck(tr->steps >= 0, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_steps %" PetscInt_FMT " must be >= 0", tr->steps);
  PetscCheck(tr->lr > 0 && PetscIsNormalReal(tr->lr), tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_lr %g must be positive and finite", (double)tr->lr);
  PetscCheck(tr->momentum >= 0 && tr->momentum < 1, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_momentum %g must be in [0, 1)", (double)tr->momentum);
  PetscCheck(tr->beta1 >= 0 && tr->beta1 < 1 && tr->beta2 >= 0 && tr->beta2 < 1 && tr->eps > 0,
             tr->comm, PETSC_ERR_ARG_OUTOFRANGE, "Adam needs beta1, beta2 in [0, 1) and eps > 0 "
             "(got %g, %g, %g)", (double)tr->beta1, (double)tr->beta2, (double)tr->eps);
  PetscCheck(tr->batch >= 0 && tr->batch <= tr->N, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_batch %" PetscInt_FMT " must be in [0, %" PetscInt_FMT "] (0: full batch)",
             tr->batch, tr->N);
  PetscCheck(tr->neigs >= 0 && tr->neigs <= 3, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_track_eigs %" PetscInt_FMT " must be in [0, 3]", tr->neigs);
  PetscCheck(tr->stop_after >= 0, tr->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_train_stop_after %" PetscInt_FMT " must be >= 0", tr->stop_after);
  PetscCheck(!tr->stop_after || tr->ckdir[0], tr->comm, PETSC_ERR_ARG_WRONG,
             "-ntk_train_stop_after needs a checkpoint folder (-ntk_train_checkpoint)");
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerSetUp(NtkTrainer tr)
{
  NtkData             data;
  const NtkDataShard *sh;
  const NtkLayer     *last;
  Mat                 J;
  PetscInt            L, lab;
  PetscBool           found = PETSC_FALSE;

  PetscFunctionBegin;
  if (tr->setup) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(NtkOpGetData(tr->op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  PetscCall(NtkNetGetNumParameters(tr->net, &tr->P));
  PetscCall(NtkNetGetNumLayers(tr->net, &L));
  PetscCall(NtkNetGetLayer(tr->net, L, &last));
  tr->N = sh->N, tr->C = sh->C, tr->nloc = sh->rend - sh->rstart;
  tr->first_trained = tr->frozen ? last->woff : 0;
  PetscCall(CheckSettings(tr));
  lab = sh->labels || !tr->nloc;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &lab, 1, MPIU_INT, MPI_MIN, tr->comm));
  tr->labels = lab ? PETSC_TRUE : PETSC_FALSE;
  PetscCheck(tr->labels || tr->loss == NTK_LOSS_MSE, tr->comm, PETSC_ERR_SUP, "-ntk_loss xent "
             "needs class labels; these data have regression targets (use -ntk_loss mse)");
  PetscCall(BuildLogSteps(tr));

  PetscCall(NtkOpGetJacobian(tr->op, &J));
  PetscCall(MatCreateVecs(J, NULL, &tr->g));
  if (tr->test) {
    PetscCall(NtkOpGetData(tr->test, &data));
    PetscCall(NtkDataGetShard(data, &sh));
    lab = sh->labels || sh->rend == sh->rstart;
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &lab, 1, MPIU_INT, MPI_MIN, tr->comm));
    tr->test_labels = lab ? PETSC_TRUE : PETSC_FALSE;
    PetscCall(NtkOpGetJacobian(tr->test, &J));
    PetscCall(MatCreateVecs(J, NULL, &tr->gtest));
  }
  PetscCall(PetscMalloc3(tr->P, &tr->grad, tr->N, &tr->perm, PetscMax(1, tr->nloc),
                         &tr->inbatch));
  PetscCall(NtkOptimStateCreate(tr->otype, tr->P, &tr->opt));
  tr->opt.lr = tr->lr, tr->opt.momentum = tr->momentum;
  tr->opt.beta1 = tr->beta1, tr->opt.beta2 = tr->beta2, tr->opt.eps = tr->eps;

  /* resume from the checkpoint folder when it holds a checkpoint and resuming is not refused */
  if (tr->linearized) PetscCall(NtkTrainerLinearSetUp(tr));
  if (tr->ckdir[0] && tr->resume) PetscCall(NtkTrainerCheckpointRead(tr, &found));
  if (found && tr->linearized) PetscCall(NtkTrainerLinearSwap(tr, PETSC_FALSE));
  else if (found) PetscCall(NtkOpUpdate(tr->op));
  if (tr->linearized) PetscCall(NtkTrainerLinearUpdate(tr));
  PetscCall(NtkTrainerCSVStart(tr));
  tr->setup = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Mark the local samples of the mini-batch of step s; *B is the batch's global size. */
static PetscErrorCode SelectBatch(NtkTrainer tr, PetscInt s, PetscInt *B)
{
  PetscInt  nb = (tr->N + tr->batch - 1) / tr->batch, epoch = s / nb, j = s % nb, b0, b1;
  PetscInt  rstart = 0;
  NtkData   data;
  PetscReal *keys;
  const NtkDataShard *sh;

  PetscFunctionBegin;
  PetscCall(NtkOpGetData(tr->op, &data));
  PetscCall(NtkDataGetShard(data, &sh));
  rstart = sh->rstart;
  if (epoch != tr->perm_epoch) {
    PetscCall(PetscMalloc1(tr->N, &keys));
    for (PetscInt i = 0; i < tr->N; i++) {
      keys[i]     = NtkRandomUniform(tr->seed, 1000 + epoch, i);
      tr->perm[i] = i;
    }
    PetscCall(PetscSortRealWithPermutation(tr->N, keys, tr->perm));
    PetscCall(PetscFree(keys));
    tr->perm_epoch = epoch;
  }
  b0 = j * tr->batch;
  b1 = PetscMin(b0 + tr->batch, tr->N);
  for (PetscInt i = 0; i < tr->nloc; i++) tr->inbatch[i] = PETSC_FALSE;
  for (PetscInt k = b0; k < b1; k++) {
    PetscInt i = tr->perm[k] - rstart;
    if (i >= 0 && i < tr->nloc) tr->inbatch[i] = PETSC_TRUE;
  }
  *B = b1 - b0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* theta_{s+1} from theta_s: see the header of this file. */
static PetscErrorCode Step(NtkTrainer tr)
{
  PetscReal    loss;
  PetscScalar *G, *th;
  Vec          theta;
  PetscInt     B = tr->N;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(NTK_TrainStep, 0, 0, 0, 0));
  PetscCall(NtkLossEvaluate(tr->op, tr->loss, &loss, tr->g));
  if (tr->batch > 0 && tr->batch < tr->N) {
    PetscCall(SelectBatch(tr, tr->step, &B));
    PetscCall(VecGetArray(tr->g, &G));
    for (PetscInt i = 0; i < tr->nloc; i++)
      for (PetscInt c = 0; c < tr->C; c++)
        G[i * tr->C + c] = tr->inbatch[i] ? G[i * tr->C + c] * ((PetscReal)tr->N / B) : 0;
    PetscCall(VecRestoreArray(tr->g, &G));
  }
  PetscCall(NtkOpVJPAll(tr->op, tr->g, tr->grad));
  for (PetscInt k = 0; k < tr->first_trained; k++) tr->grad[k] = 0;
  if (tr->linearized) {
    PetscCall(NtkOptimStep(&tr->opt, tr->grad, tr->lin_theta));
    PetscCall(NtkTrainerLinearUpdate(tr));
  } else {
    PetscCall(NtkNetGetParameters(tr->net, &theta));
    PetscCall(VecGetArray(theta, &th));
    PetscCall(NtkOptimStep(&tr->opt, tr->grad, th));
    PetscCall(VecRestoreArray(theta, &th));
    PetscCall(NtkOpUpdate(tr->op));
  }
  tr->step++;
  PetscCall(PetscLogEventEnd(NTK_TrainStep, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  All ranks agree whether to stop now: a signal on any rank (caught only when there is a checkpoint
  folder to save to), or the stop-after step.
*/
static PetscErrorCode ShouldStop(NtkTrainer tr, PetscBool *stop)
{
  PetscBool sig = PETSC_FALSE;

  PetscFunctionBegin;
  if (tr->ckdir[0]) PetscCall(NtkSignalPending(tr->comm, &sig));
  *stop = sig || (tr->stop_after > 0 && tr->step == tr->stop_after) ? PETSC_TRUE : PETSC_FALSE;
  /* after the last step the run finishes normally: final tracking and checkpoint */
  if (tr->step >= tr->steps) *stop = PETSC_FALSE;
  if (*stop) tr->stopped_by = sig ? "a signal" : "-ntk_train_stop_after";
  if (sig) PetscCall(PetscInfo(NULL, "signal received: checkpoint and stop at step %" PetscInt_FMT
                               "\n", tr->step));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerTrain(NtkTrainer tr)
{
  PetscBool      stop = PETSC_FALSE, ckpt_now = PETSC_FALSE;
  PetscLogDouble t;

  PetscFunctionBegin;
  PetscCall(NtkTrainerSetUp(tr));
  tr->interrupted = PETSC_FALSE;
  tr->stopped_by  = NULL;
  tr->t0          = MPI_Wtime();
  /* without a checkpoint folder there is nothing to save: signals keep their usual effect */
  if (tr->ckdir[0]) PetscCall(NtkSignalInstall());

  for (;;) {
    /* record theta_step, unless a resumed history already holds it */
    if (IsTrackStep(tr, tr->step) && (!tr->nhist || tr->hist[tr->nhist - 1].step < tr->step)) {
      NtkTrackPoint pt;
      PetscCall(NtkTrainerTrack(tr, &pt));
      PetscCall(NtkTrainerTrackAppend(tr, &pt, PETSC_TRUE));
      if (tr->monitor) PetscCall(tr->monitor(tr, tr->step, &pt, tr->monctx));
    }
    if (tr->step >= tr->steps) break;

    t = MPI_Wtime();
    PetscCall(Step(tr));
    tr->tsteps += MPI_Wtime() - t;
    tr->nsteps_run++;
    if (tr->monitor) PetscCall(tr->monitor(tr, tr->step, NULL, tr->monctx));

    PetscCall(ShouldStop(tr, &stop));
    ckpt_now = tr->ckevery > 0 && tr->step % tr->ckevery == 0 ? PETSC_TRUE : PETSC_FALSE;
    if (tr->ckdir[0] && (stop || ckpt_now) && tr->step < tr->steps)
      PetscCall(NtkTrainerCheckpointWrite(tr, stop ? tr->stopped_by :
                                                     "-ntk_train_checkpoint_every"));
    if (stop) {
      tr->interrupted = PETSC_TRUE;
      break;
    }
  }
  if (!tr->interrupted && tr->ckdir[0])
    PetscCall(NtkTrainerCheckpointWrite(tr, "the end of training"));
  if (tr->ckdir[0]) PetscCall(NtkSignalRestore());
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetInterrupted(NtkTrainer tr, PetscBool *interrupted)
{
  PetscFunctionBegin;
  *interrupted = tr->interrupted;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetStep(NtkTrainer tr, PetscInt *step)
{
  PetscFunctionBegin;
  *step = tr->step;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerGetHistory(NtkTrainer tr, PetscInt *n, const NtkTrackPoint **hist)
{
  PetscFunctionBegin;
  *n    = tr->nhist;
  *hist = tr->hist;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerView(NtkTrainer tr, PetscViewer viewer)
{
  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(tr->comm, &viewer));
  PetscCall(PetscViewerASCIIPrintf(viewer, "training: %s, lr %g, %s loss, %" PetscInt_FMT
                                   " steps, batch %" PetscInt_FMT "%s%s\n",
                                   NtkOptimizerTypes[tr->otype], (double)tr->lr,
                                   NtkLossTypes[tr->loss], tr->steps, tr->batch,
                                   tr->batch ? "" : " (full)",
                                   tr->frozen ? ", frozen features (last layer trained)" : ""));
  if (tr->linearized)
    PetscCall(PetscViewerASCIIPrintf(viewer, "  linearised around the initial parameters\n"));
  if (tr->resumed_from >= 0)
    PetscCall(PetscViewerASCIIPrintf(viewer, "  resumed from the checkpoint at step %" PetscInt_FMT
                                     " in %s (written because of %s)\n", tr->resumed_from,
                                     tr->ckdir, tr->resumed_reason));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkTrainerDestroy(NtkTrainer *trainer)
{
  NtkTrainer tr = *trainer;

  PetscFunctionBegin;
  if (!tr) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(VecDestroy(&tr->g));
  PetscCall(VecDestroy(&tr->gtest));
  if (tr->setup) PetscCall(NtkOptimStateDestroy(&tr->opt));
  if (tr->setup && tr->linearized) PetscCall(NtkTrainerLinearDestroy(tr));
  PetscCall(PetscFree3(tr->grad, tr->perm, tr->inbatch));
  PetscCall(PetscFree(tr->logsteps));
  PetscCall(PetscFree(tr->hist));
  PetscCall(PetscFree(*trainer));
  PetscFunctionReturn(PETSC_SUCCESS);
}
