/*
  The NtkNet object: architecture, parameterisation, the layer table and the parameter buffer.

  The layer table is the single source of truth for where each layer's weights live. Parameters
  are ordered as a PyTorch nn.Sequential state dict: W_1 ([n_1, n_0], row-major), b_1, W_2, ...
  Initialisation is seeded and counter-based, so every rank draws identical parameters:
    standard:  W_l ~ N(0, sigma_w^2 / n_{l-1}),  forward scale s_l = 1
    ntk:       W_l ~ N(0, 1),                    forward scale s_l = sigma_w / sqrt(n_{l-1})
  and b_l ~ N(0, sigma_b^2) under both.
*/
#include "netimpl.h"
#include <ntk/io.h>

const char *const NtkParameterizations[] = {"standard", "ntk", "NtkParameterization", "NTK_PARAM_",
                                            NULL};

PetscLogEvent NTK_NetForward, NTK_NetJVP, NTK_NetVJP, NTK_NetFactors;

static PetscErrorCode NtkNetRegisterEvents(void)
{
  static PetscBool done = PETSC_FALSE;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(PETSC_SUCCESS);
  done = PETSC_TRUE;
  PetscCall(NtkInitializePackage());
  PetscCall(PetscLogEventRegister("NtkNetForward", NTK_CLASSID, &NTK_NetForward));
  PetscCall(PetscLogEventRegister("NtkNetJVP", NTK_CLASSID, &NTK_NetJVP));
  PetscCall(PetscLogEventRegister("NtkNetVJP", NTK_CLASSID, &NTK_NetVJP));
  PetscCall(PetscLogEventRegister("NtkNetFactors", NTK_CLASSID, &NTK_NetFactors));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCreate(MPI_Comm comm, NtkNet *net)
{
  NtkNet n;

  PetscFunctionBegin;
  PetscCall(NtkNetRegisterEvents());
  PetscCall(PetscNew(&n));
  n->comm    = comm;
  n->act     = NTK_ACT_TANH;
  n->param   = NTK_PARAM_STANDARD;
  n->sigma_w = 1.0;
  n->sigma_b = 0.1;
  n->seed    = 0;
  *net       = n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetComm(NtkNet net, MPI_Comm *comm)
{
  PetscFunctionBegin;
  *comm = net->comm;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetWidths(NtkNet net, PetscInt n, const PetscInt widths[])
{
  PetscFunctionBegin;
  PetscCheck(n >= 2 && n <= NTK_MAX_LAYERS + 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_net_widths: %" PetscInt_FMT " widths given; a network needs 2 to %d (input, "
             "hidden..., output)", n, NTK_MAX_LAYERS + 1);
  for (PetscInt l = 0; l < n; l++)
    PetscCheck(widths[l] >= 1 && widths[l] <= 1 << 24, net->comm, PETSC_ERR_ARG_OUTOFRANGE,
               "-ntk_net_widths: width %" PetscInt_FMT " at position %" PetscInt_FMT
               " is outside [1, 16777216]", widths[l], l);
  net->L = n - 1;
  for (PetscInt l = 0; l < n; l++) net->widths[l] = widths[l];
  net->setup = PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetWidths(NtkNet net, PetscInt *n, const PetscInt **widths)
{
  PetscFunctionBegin;
  if (n) *n = net->L + 1;
  if (widths) *widths = net->widths;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetActivation(NtkNet net, NtkActivation act)
{
  PetscFunctionBegin;
  net->act = act;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetActivation(NtkNet net, NtkActivation *act)
{
  PetscFunctionBegin;
  *act = net->act;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetParameterization(NtkNet net, NtkParameterization p)
{
  PetscFunctionBegin;
  net->param = p;
  net->setup = PETSC_FALSE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetParameterization(NtkNet net, NtkParameterization *p)
{
  PetscFunctionBegin;
  *p = net->param;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetSigmas(NtkNet net, PetscReal sw, PetscReal sb)
{
  PetscFunctionBegin;
  PetscCheck(PetscIsNormalReal(sw) && sw > 0, net->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_net_sigma_w %g: the weight scale must be a positive finite number", (double)sw);
  PetscCheck(!PetscIsInfOrNanReal(sb) && sb >= 0, net->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ntk_net_sigma_b %g: the bias scale must be a finite number >= 0", (double)sb);
  net->sigma_w = sw;
  net->sigma_b = sb;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetSigmas(NtkNet net, PetscReal *sw, PetscReal *sb)
{
  PetscFunctionBegin;
  if (sw) *sw = net->sigma_w;
  if (sb) *sb = net->sigma_b;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetSeed(NtkNet net, PetscInt seed)
{
  PetscFunctionBegin;
  net->seed = seed;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetSeed(NtkNet net, PetscInt *seed)
{
  PetscFunctionBegin;
  *seed = net->seed;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetFile(NtkNet net, const char file[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(net->file, file ? file : "", sizeof(net->file)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetFile(NtkNet net, const char *file[])
{
  PetscFunctionBegin;
  *file = net->file;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetFromOptions(NtkNet net)
{
  char      text[1024] = "784,256,256,10";
  PetscInt  widths[NTK_MAX_LAYERS + 1], n;
  PetscBool set;

  PetscFunctionBegin;
  PetscOptionsBegin(net->comm, NULL, "Network options", "NtkNet");
  PetscCall(PetscOptionsString("-ntk_net_widths", "Layer widths n_0,...,n_L (input first)",
                               "NtkNetSetWidths", text, text, sizeof(text), &set));
  if (set || net->L == 0) {
    PetscCall(NtkParseIntList(net->comm, "-ntk_net_widths", text, NTK_MAX_LAYERS + 1, &n, widths));
    PetscCall(NtkNetSetWidths(net, n, widths));
  }
  PetscCall(PetscOptionsEnum("-ntk_net_activation", "Hidden-layer activation",
                             "NtkNetSetActivation", NtkActivations, (PetscEnum)net->act,
                             (PetscEnum *)&net->act, NULL));
  PetscCall(PetscOptionsEnum("-ntk_net_param", "Parameterisation", "NtkNetSetParameterization",
                             NtkParameterizations, (PetscEnum)net->param, (PetscEnum *)&net->param,
                             NULL));
  PetscCall(PetscOptionsReal("-ntk_net_sigma_w", "Weight scale sigma_w", "NtkNetSetSigmas",
                             net->sigma_w, &net->sigma_w, NULL));
  PetscCall(PetscOptionsReal("-ntk_net_sigma_b", "Bias initialisation scale sigma_b",
                             "NtkNetSetSigmas", net->sigma_b, &net->sigma_b, NULL));
  PetscCall(PetscOptionsInt("-ntk_net_seed", "Seed of the initial parameters", "NtkNetSetSeed",
                            net->seed, &net->seed, NULL));
  PetscCall(PetscOptionsString("-ntk_net_file",
                               "Model file (safetensors) replacing the options above",
                               "NtkNetSetFile", net->file, net->file, sizeof(net->file), NULL));
  PetscOptionsEnd();
  PetscCall(NtkNetSetSigmas(net, net->sigma_w, net->sigma_b));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Fill the layer table from the widths and allocate the parameter buffer. */
static PetscErrorCode NtkNetBuildTable(NtkNet net)
{
  PetscInt64 off = 0;

  PetscFunctionBegin;
  net->maxwidth = 0;
  for (PetscInt l = 1; l <= net->L; l++) {
    NtkLayer *ly = &net->layers[l - 1];
    ly->in       = net->widths[l - 1];
    ly->out      = net->widths[l];
    ly->woff     = (PetscInt)off;
    off += (PetscInt64)ly->in * ly->out;
    ly->boff = (PetscInt)off;
    off += ly->out;
    ly->scale = net->param == NTK_PARAM_NTK ? net->sigma_w / PetscSqrtReal((PetscReal)ly->in) : 1.0;
    PetscCheck(off < PETSC_MAX_INT, net->comm, PETSC_ERR_ARG_OUTOFRANGE,
               "the network has more than %d parameters", (int)PETSC_MAX_INT);
    net->maxwidth = PetscMax(net->maxwidth, ly->out);
  }
  net->maxwidth = PetscMax(net->maxwidth, net->widths[0]);
  net->P        = (PetscInt)off;
  PetscCall(VecDestroy(&net->theta));
  PetscCall(VecCreateSeq(PETSC_COMM_SELF, net->P, &net->theta));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetInitialize(NtkNet net)
{
  PetscScalar *th;

  PetscFunctionBegin;
  PetscCall(VecGetArray(net->theta, &th));
  for (PetscInt l = 1; l <= net->L; l++) {
    const NtkLayer *ly = &net->layers[l - 1];
    PetscReal       sw = net->param == NTK_PARAM_NTK ? 1.0 : net->sigma_w / PetscSqrtReal(ly->in);
    for (PetscInt k = 0; k < ly->in * ly->out; k++)
      th[ly->woff + k] = sw * NtkRandomNormal(net->seed, 2 * l, k);
    for (PetscInt k = 0; k < ly->out; k++)
      th[ly->boff + k] = net->sigma_b * NtkRandomNormal(net->seed, 2 * l + 1, k);
  }
  PetscCall(VecRestoreArray(net->theta, &th));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetSetUp(NtkNet net)
{
  PetscFunctionBegin;
  if (net->setup) PetscFunctionReturn(PETSC_SUCCESS);
  if (net->loading) {
    PetscCall(NtkNetSetUpEmpty(net));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  if (net->file[0]) {
    /* the loader sets the architecture and calls back into NtkNetSetUp */
    net->loading = PETSC_TRUE;
    PetscCall(NtkNetLoadSafetensors(net, net->file));
    net->loading = PETSC_FALSE;
    net->setup   = PETSC_TRUE;
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCheck(net->L >= 1, net->comm, PETSC_ERR_ORDER, "set the widths before NtkNetSetUp");
  PetscCall(NtkNetBuildTable(net));
  PetscCall(NtkNetInitialize(net));
  net->setup = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* For loaders: build the table for the widths already set, leaving the parameters to the caller. */
PetscErrorCode NtkNetSetUpEmpty(NtkNet net)
{
  PetscFunctionBegin;
  PetscCall(NtkNetBuildTable(net));
  PetscCall(VecZeroEntries(net->theta));
  net->setup = PETSC_TRUE;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetCheckFinite(NtkNet net)
{
  const PetscScalar *th;
  PetscInt           bad = -1;

  PetscFunctionBegin;
  PetscCall(VecGetArrayRead(net->theta, &th));
  for (PetscInt k = 0; k < net->P && bad < 0; k++)
    if (PetscIsInfOrNanReal(th[k])) bad = k;
  PetscCall(VecRestoreArrayRead(net->theta, &th));
  if (bad >= 0) {
    PetscInt l = 0;
    while (l + 1 < net->L && net->layers[l + 1].woff <= bad) l++;
    SETERRQ(net->comm, PETSC_ERR_FP, "%s%sparameter %" PetscInt_FMT " (layer %" PetscInt_FMT
            ") is not finite", net->file[0] ? net->file : "", net->file[0] ? ": " : "", bad, l + 1);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetNumLayers(NtkNet net, PetscInt *L)
{
  PetscFunctionBegin;
  *L = net->L;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetLayer(NtkNet net, PetscInt l, const NtkLayer **layer)
{
  PetscFunctionBegin;
  PetscCheck(l >= 1 && l <= net->L, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "layer %" PetscInt_FMT " not in [1, %" PetscInt_FMT "]", l, net->L);
  *layer = &net->layers[l - 1];
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetNumParameters(NtkNet net, PetscInt *P)
{
  PetscFunctionBegin;
  *P = net->P;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetInputSize(NtkNet net, PetscInt *n)
{
  PetscFunctionBegin;
  *n = net->widths[0];
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetOutputSize(NtkNet net, PetscInt *n)
{
  PetscFunctionBegin;
  *n = net->widths[net->L];
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetGetParameters(NtkNet net, Vec *theta)
{
  PetscFunctionBegin;
  PetscCheck(net->setup, net->comm, PETSC_ERR_ORDER, "call NtkNetSetUp first");
  *theta = net->theta;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetView(NtkNet net, PetscViewer viewer)
{
  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(net->comm, &viewer));
  PetscCall(PetscViewerASCIIPrintf(viewer, "model: MLP "));
  for (PetscInt l = 0; l <= net->L; l++)
    PetscCall(PetscViewerASCIIPrintf(viewer, "%s%" PetscInt_FMT, l ? "-" : "", net->widths[l]));
  PetscCall(PetscViewerASCIIPrintf(viewer, ", %s, %s parameterisation%s%s\n",
                                   NtkActivations[net->act], NtkParameterizations[net->param],
                                   net->file[0] ? ", from " : "", net->file));
  PetscCall(PetscViewerASCIIPrintf(viewer, "  parameters P = %" PetscInt_FMT "\n", net->P));
  for (PetscInt l = 1; l <= net->L; l++) {
    const NtkLayer *ly = &net->layers[l - 1];
    PetscCall(PetscViewerASCIIPrintf(viewer, "  layer %" PetscInt_FMT ": %" PetscInt_FMT " -> %"
                                     PetscInt_FMT ", scale %g, %s\n", l, ly->in, ly->out,
                                     (double)ly->scale, l < net->L ? NtkActivations[net->act] :
                                     "linear output"));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkNetDestroy(NtkNet *net)
{
  PetscFunctionBegin;
  if (!*net) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(VecDestroy(&(*net)->theta));
  PetscCall(PetscFree(*net));
  PetscFunctionReturn(PETSC_SUCCESS);
}
