/*
  Set-up shared by every command: options, the network (from options or a safetensors file), the
  data shard of this rank and the kernel operator, and the pieces of the result document that
  every command writes (model, data, kernel, ranks, version, timings).
*/
#include "app.h"
#include <stdarg.h>

int NtkAppExitStatus = 0;

PetscErrorCode NtkAppCreate(MPI_Comm comm, const char command[], NtkApp *app)
{
  PetscFunctionBegin;
  PetscCall(PetscMemzero(app, sizeof(*app)));
  app->comm    = comm;
  app->command = command;
  app->t0   = MPI_Wtime();
  PetscOptionsBegin(comm, NULL, "Output options", "ntkspec");
  PetscCall(PetscOptionsString("-ntk_output", "Write the results as JSON to this file", "",
                               app->output, app->output, sizeof(app->output), NULL));
  PetscCall(PetscOptionsBool("-ntk_quiet", "Print nothing but errors", "", app->quiet, &app->quiet,
                             NULL));
  PetscOptionsEnd();
  PetscCall(NtkCheckWritable(comm, app->output, "-ntk_output"));

  PetscCall(NtkNetCreate(comm, &app->net));
  PetscCall(NtkNetSetFromOptions(app->net));
  PetscCall(NtkDataCreate(comm, &app->data));
  PetscCall(NtkDataSetFromOptions(app->data));
  PetscCall(NtkNetSetUp(app->net));
  PetscCall(NtkDataSetUp(app->data));
  PetscCall(NtkOpCreate(app->net, app->data, &app->op));
  PetscCall(NtkOpSetFromOptions(app->op));
  PetscCall(NtkOpSetUp(app->op));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkAppDestroy(NtkApp *app)
{
  PetscFunctionBegin;
  PetscCall(NtkOpDestroy(&app->op));
  PetscCall(NtkDataDestroy(&app->data));
  PetscCall(NtkNetDestroy(&app->net));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkAppPrintf(NtkApp *app, const char fmt[], ...)
{
  PetscMPIInt rank;
  va_list     ap;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(app->comm, &rank));
  if (app->quiet || rank) PetscFunctionReturn(PETSC_SUCCESS);
  va_start(ap, fmt);
  PetscCall(PetscVFPrintf(PETSC_STDOUT, fmt, ap));
  va_end(ap);
  (void)fflush(PETSC_STDOUT);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static json_object *ModelJSON(NtkNet net)
{
  json_object        *m = json_object_new_object(), *w = json_object_new_array();
  PetscInt            n, P;
  const PetscInt     *widths;
  NtkActivation       act;
  NtkParameterization par;
  const char         *file;
  PetscInt            seed;

  NtkNetGetWidths(net, &n, &widths);
  NtkNetGetNumParameters(net, &P);
  NtkNetGetActivation(net, &act);
  NtkNetGetParameterization(net, &par);
  NtkNetGetFile(net, &file);
  NtkNetGetSeed(net, &seed);
  for (PetscInt l = 0; l < n; l++) json_object_array_add(w, json_object_new_int64(widths[l]));
  json_object_object_add(m, "type", json_object_new_string("mlp"));
  json_object_object_add(m, "widths", w);
  json_object_object_add(m, "activation", json_object_new_string(NtkActivations[act]));
  json_object_object_add(m, "parameterization", json_object_new_string(NtkParameterizations[par]));
  json_object_object_add(m, "parameters", json_object_new_int64(P));
  json_object_object_add(m, "seed", json_object_new_int64(seed));
  if (file[0]) json_object_object_add(m, "file", json_object_new_string(file));
  return m;
}

PetscErrorCode NtkAppDescribe(NtkApp *app, json_object *doc)
{
  const NtkDataShard *sh;
  const char         *desc;
  NtkKernelVariant    v;
  PetscReal           scale;
  json_object        *data = json_object_new_object(), *kern = json_object_new_object();

  PetscFunctionBegin;
  PetscCall(NtkDataGetShard(app->data, &sh));
  PetscCall(NtkDataGetDescription(app->data, &desc));
  PetscCall(NtkOpGetKernel(app->op, &v));
  PetscCall(NtkOpGetScale(app->op, &scale));
  PetscCall(NtkJSONAddRunInfo(app->comm, doc, app->command));
  json_object_object_add(doc, "model", ModelJSON(app->net));
  json_object_object_add(data, "source", json_object_new_string(desc));
  json_object_object_add(data, "samples", json_object_new_int64(sh->N));
  json_object_object_add(data, "input_dim", json_object_new_int64(sh->d));
  json_object_object_add(data, "outputs", json_object_new_int64(sh->C));
  json_object_object_add(doc, "data", data);
  json_object_object_add(kern, "variant", json_object_new_string(NtkKernelVariants[v]));
  json_object_object_add(kern, "dimension",
                         json_object_new_int64(v == NTK_KERNEL_FULL ? sh->N * sh->C : sh->N));
  json_object_object_add(kern, "scale", json_object_new_double(scale));
  json_object_object_add(doc, "kernel", kern);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkAppWriteResult(NtkApp *app, json_object *doc)
{
  PetscFunctionBegin;
  json_object_object_add(doc, "seconds", json_object_new_double(MPI_Wtime() - app->t0));
  if (app->output[0]) {
    json_object *stop = NULL;
    PetscBool    partial;

    partial = json_object_object_get_ex(doc, "interrupted", &stop) && json_object_get_boolean(stop);
    PetscCall(NtkJSONWrite(app->comm, doc, app->output));
    PetscCall(NtkAppPrintf(app, "%s written to %s\n", partial ? "partial results of the "
                           "interrupted run (\"interrupted\": true)" : "results", app->output));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
