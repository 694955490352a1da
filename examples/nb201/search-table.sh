#!/usr/bin/env bash
# The paper's search table on NAS-Bench-201 (docs/nb201.md): writes OUT/plan.toml from search.toml
# with DATA and TABLE filled in, runs the sweep (JOBS at a time, default 2) and its report.
#
#   examples/nb201/search-table.sh DATA OUT TABLE
#   examples/nb201/search-table.sh $(cargo xtask cifar10-npm) runs/nb201-search \
#       nb201-cifar10-12e.csv#cifar10-test@12
#
# PWSNAS names the binary (default target/release/pwsnas). Resumable: rerun after an interruption.
set -euo pipefail
DATA=${1:?usage: search-table.sh DATA OUT TABLE}
OUT=${2:?usage: search-table.sh DATA OUT TABLE}
TABLE=${3:?usage: search-table.sh DATA OUT TABLE}
PWSNAS=${PWSNAS:-target/release/pwsnas}
JOBS=${JOBS:-2}
# The table's path is read by each run from its own folder: make it absolute.
case $TABLE in /*) ;; *) TABLE=$PWD/$TABLE ;; esac
mkdir -p "$OUT"
sed -e "s|\"DATA\"|\"$DATA\"|" -e "s|\"TABLE\"|\"$TABLE\"|" "$(dirname "$0")/search.toml" > "$OUT/plan.toml"
start=$(date +%s)
"$PWSNAS" sweep "$OUT/plan.toml" --out "$OUT/sweep" --jobs "$JOBS"
echo "wall time: $(($(date +%s) - start)) s" | tee "$OUT/wall_time.txt"
"$PWSNAS" sweep report "$OUT/sweep"
