#!/bin/sh
# The main job on the built-in real data (Fashion-MNIST from Debian's dataset-fashion-mnist):
# install what is missing, build, then run it on two ranks. Results go to ./results.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
mkdir -p results
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mpiexec -n 2 build/apps/ntkspec info -ntk_net_widths 784,256,256,10 -ntk_net_activation tanh \
  -ntk_data fashion-mnist:train -ntk_data_samples 1000 -ntk_info_selfcheck \
  -ntk_output results/info.json
