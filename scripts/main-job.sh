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
# The kernel of that network at initialisation: its 20 leading eigenpairs (SLEPc, matrix-free),
# then trace, Frobenius norm, effective rank and entropy with error bars and the SLQ spectral
# density, and pictures of both (results/spectrum.png, results/density.png). About half a minute.
M="-ntk_net_widths 784,256,256,10 -ntk_net_activation tanh -ntk_data fashion-mnist:train
   -ntk_data_samples 1000"
mpiexec -n 2 build/apps/ntkspec spectrum $M -ntk_spectrum_nev 20 -ntk_output results/spectrum.json
mpiexec -n 2 build/apps/ntkspec estimate $M -ntk_estimate_density results/density.csv \
  -ntk_output results/estimate.json
build/apps/ntkspec plot -ntk_plot_input results/spectrum.json
build/apps/ntkspec plot -ntk_plot_input results/density.csv
# Spectral reach on real data: the same Adam training of 784-w-w-10 tanh networks at three widths,
# with the spectral position rho, the losses and Tr K tracked every 25 steps; per-width CSV and
# JSON, the summary (sweep.json, sweep.csv) and plots (rho.png, loss.png, trace.png) go to
# results/sweep. About a minute on two cores.
mpiexec -n 2 build/apps/ntkspec sweep -ntk_sweep_widths 32,128,512 -ntk_sweep_dir results/sweep \
  -ntk_net_activation tanh -ntk_data fashion-mnist:train -ntk_data_samples 2000 \
  -ntk_train_optimizer adam -ntk_train_lr 1e-3 -ntk_train_steps 300 -ntk_train_track_every 25 \
  -ntk_train_test_samples 2000
