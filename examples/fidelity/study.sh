#!/usr/bin/env bash
# The fidelity study (docs/fidelity.md) on one dataset: the ground truth (every child of the 125-child
# space trained stand-alone), then supernets of several seeds trained for each epoch count and
# scored with every metric on every child, then the report.
#
#   examples/fidelity/study.sh DATA OUT [SEEDS] [EPOCHS]
#   examples/fidelity/study.sh fashion-mnist runs/fidelity-fmnist "0 1 2" "1 5 10"
#
# PWSNAS names the binary (default target/release/pwsnas), JOBS the truth's worker processes
# (default 2), THREADS the threads of each truth worker and of each supernet (default: the
# cores shared out), EXTRA more flags for every supernet (docs/fidelity.md's fan-out rows:
# EXTRA="--init fan-out"). Every step resumes: rerun the same command after an interruption.
set -euo pipefail
DATA=${1:?usage: study.sh DATA OUT [SEEDS] [EPOCHS]}
OUT=${2:?usage: study.sh DATA OUT [SEEDS] [EPOCHS]}
SEEDS=${3:-0 1 2}
EPOCHS=${4:-1 5 10}
PWSNAS=${PWSNAS:-target/release/pwsnas}
JOBS=${JOBS:-2}
THREADS=${THREADS:-}
EXTRA=${EXTRA:-}
CONFIG=$(dirname "$0")/fidelity.toml

"$PWSNAS" fidelity truth --out "$OUT/truth" --config "$CONFIG" --data "$DATA" --jobs "$JOBS" ${THREADS:+--threads "$THREADS"}
if [ -n "$THREADS" ]; then export OMP_NUM_THREADS=$THREADS; fi
runs=()
for seed in $SEEDS; do
  for e in $EPOCHS; do
    run=$OUT/supernet-s$seed-e$e
    # shellcheck disable=SC2086
    "$PWSNAS" --quiet supernet --out "$run" --config "$CONFIG" --data "$DATA" --seed "$seed" --warmup-epochs "$e" $EXTRA
    "$PWSNAS" --quiet shrink --run "$run" --score-only --exhaustive
    runs+=("$run")
  done
done
"$PWSNAS" fidelity report --truth "$OUT/truth" --out "$OUT/report" "${runs[@]}"
