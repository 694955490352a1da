#!/usr/bin/env bash
# How far ONNX Runtime latencies agree (docs/latency.md, "One protocol for every ONNX Runtime
# latency"): three exports of one run at the default threads, three with --threads 1, then one while
# a busy loop keeps one core busy (stopped by its pid afterwards). Prints, per export, the latency at
# batch 1 and 64, each session's median, the spread, the CPU used elsewhere and the warnings; the
# busy export's warnings follow. Keep the machine otherwise idle while it runs.
#
#   examples/latency/three_exports.sh [RUN]     (default runs/demo, from `cargo xtask demo`)
# PWSNAS names the binary (default target/release/pwsnas). The run is exported again each time, so
# its report ends up as the last (busy) export's: export it once more afterwards.
set -eu
RUN=${1:-runs/demo}
BIN=${PWSNAS:-target/release/pwsnas}
OUT=$(mktemp -d)
summary() {
  python3 - "$1" "$RUN/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
for b in ("batch1", "batch64"):
    s = r["latency"]["ort"][b]; n = s["noise"]
    print(sys.argv[1], b, "latency %.4f ms" % s["p50_ms"],
          "sessions", " ".join("%.4f" % x for x in n["session_p50_ms"]),
          "spread %.1f%%" % (100 * n["spread"]), "busy %.0f%%" % (100 * (n["busy_elsewhere"] or 0)),
          "warnings", len(n["warnings"]))
PY
}
for t in default 1; do
  for i in 1 2 3; do
    args=(); [ "$t" = 1 ] && args=(--threads 1)
    "$BIN" --quiet export "$RUN" "${args[@]}"
    summary "threads=$t #$i"
  done
done
sh -c 'while :; do :; done' & busy=$!
trap 'kill $busy 2>/dev/null' EXIT
"$BIN" export "$RUN" 2> "$OUT/busy.err" > /dev/null
kill $busy; wait $busy 2>/dev/null || true
summary "busy loop"
grep -h "^warning" "$OUT/busy.err" || echo "no warning"
rm -rf "$OUT"
