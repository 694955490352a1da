#!/usr/bin/env bash
# The NAS-Bench-201 fidelity study (docs/nb201.md): supernets of ABS's NB201 setting
# (study.toml) for each supernet epoch count, seed and initialisation, every child of the
# 15,625 scored with every metric, then one report per initialisation against the benchmark.
#
#   examples/nb201/study.sh DATA OUT TABLE [SEEDS] [EPOCHS] [INITS]
#   examples/nb201/study.sh $(cargo xtask cifar10-npm) runs/nb201-study \
#       nb201-cifar10-12e.csv#cifar10-test@12 "0 1" "2 6" "pytorch fan-out"
#
# SIZE overrides the supernet's size: docs/nb201.md's CPU figures use the proxy SIZE="--channels 8
# --cells 1" (30 s to 3.5 min an epoch on 2 cores, where ABS's C=16, N=5 took 29 min; the defaults
# below took 1 h 15 min in all); on a GPU leave it empty and pass EXTRA="--device cuda". PWSNAS names the binary (default
# target/release/pwsnas). Runs are trained epochs first, so the first reports come early; every
# step resumes: rerun the same command after an interruption.
set -euo pipefail
DATA=${1:?usage: study.sh DATA OUT TABLE [SEEDS] [EPOCHS] [INITS]}
OUT=${2:?usage: study.sh DATA OUT TABLE [SEEDS] [EPOCHS] [INITS]}
TABLE=${3:?usage: study.sh DATA OUT TABLE [SEEDS] [EPOCHS] [INITS]}
SEEDS=${4:-0 1}
EPOCHS=${5:-2 6}
INITS=${6:-pytorch fan-out}
PWSNAS=${PWSNAS:-target/release/pwsnas}
SIZE=${SIZE:-}
EXTRA=${EXTRA:-}
CONFIG=$(dirname "$0")/study.toml

for e in $EPOCHS; do
  for seed in $SEEDS; do
    for init in $INITS; do
      run=$OUT/$init-s$seed-e$e
      # shellcheck disable=SC2086
      "$PWSNAS" --quiet supernet --out "$run" --config "$CONFIG" --data "$DATA" --seed "$seed" \
        --warmup-epochs "$e" --init "$init" $SIZE $EXTRA
      # shellcheck disable=SC2086
      "$PWSNAS" --quiet shrink --run "$run" $EXTRA
    done
  done
done
for init in $INITS; do
  runs=()
  for e in $EPOCHS; do
    for seed in $SEEDS; do
      runs+=("$OUT/$init-s$seed-e$e")
    done
  done
  "$PWSNAS" fidelity report --truth "$TABLE" --out "$OUT/report-$init" "${runs[@]}"
done
