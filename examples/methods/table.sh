#!/usr/bin/env bash
# Every search method with and without shrinking (the table of docs/search-methods.md):
#
#   examples/methods/table.sh [PWSNAS_BINARY] [OUT]      (defaults: target/release/pwsnas, runs/methods)
#
# For each of spos, fairnas, darts, pdarts, proxyless: `pwsnas search` from its example config with
# `--shrink none` (the method on the full space) and with the angle (the SPOS supernet and shrinking of
# `spos.toml`: the configs that have `[shrink] metric = "none"` get spos.toml's `[supernet]` and
# `[shrink]` sections, written to OUT/cfg/), then `pwsnas export`, one run at a time, seed 0; a
# finished run is skipped. Prints a markdown table from the runs' report.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/pwsnas}
out=${2:-runs/methods}
mkdir -p "$out/cfg"
python3 - "$out/cfg" <<'PY'
import re, sys
spos = open("examples/methods/spos.toml").read()
shrink = re.search(r"\[supernet\].*?(?=\n\[search\])", spos, re.S).group(0) + "\n"
for m in ["darts", "pdarts", "proxyless"]:
    text = open(f"examples/methods/{m}.toml").read()
    angle, n = re.subn(r'\[shrink\]\nmetric = "none"\n', shrink, text)
    assert n == 1, m
    open(f"{sys.argv[1]}/{m}-angle.toml", "w").write(angle)
PY
for m in spos fairnas darts pdarts proxyless; do
  for shrink in none angle; do
    run=$out/$m-$shrink
    [ -f "$run/report.json" ] && continue
    case $m-$shrink in
      spos-angle | fairnas-angle | *-none) cfg=(--config examples/methods/$m.toml --shrink "$shrink") ;;
      *) cfg=(--config "$out/cfg/$m-angle.toml") ;;
    esac
    start=$(date +%s)
    "$bin" search "${cfg[@]}" --out "$run" --device cpu --seed 0 --quiet
    echo $(($(date +%s) - start)) > "$run/search_seconds"
    "$bin" export "$run" --threads 1 --latency-runs 300 --quiet
  done
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| method | shrink | derived child | test acc. ORT (%) | libtorch (%) | params | ORT p50 batch 1 (ms) | `pwsnas search` wall (s) | parity |")
print("|---|---|---|---|---|---|---|---|---|")
for m in ["spos", "fairnas", "darts", "pdarts", "proxyless"]:
    for shrink in ["none", "angle"]:
        d = f"{out}/{m}-{shrink}"
        r = json.load(open(f"{d}/report.json"))
        a, arch = r["accuracy"], r["arch"].replace("|", "\\|")
        secs = float(open(f"{d}/search_seconds").read())
        print(f"| {m} | {shrink} | `{arch}` | {a['ort'] * 100:.2f} | {a['libtorch'] * 100:.2f} | {int(r['params']):,} | "
              f"{r['latency']['ort']['batch1']['p50_ms']:.4f} | {secs:.0f} | {'passed' if r['parity']['passed'] else 'FAILED'} |")
PY
