#!/usr/bin/env bash
# The GPU checks of pwsnas's export, as one script for a machine with an NVIDIA GPU:
# the CUDA execution provider of ONNX Runtime's GPU build against libtorch on CUDA, in fp32 and fp16.
#
#   benches/gpu_check.sh PWSNAS_BINARY RUN_DIR [ORT_GPU_LIB]
#
# PWSNAS_BINARY: a release build (`cargo build --release`); RUN_DIR: a finished search (e.g. the
# demo's runs/demo, copied); ORT_GPU_LIB: the onnxruntime-gpu wheel's libonnxruntime.so.1.31.1
# (default: the one `cargo xtask setup --gpu` recorded in the binary). Prints the card, the parity,
# the accuracy and ORT CUDA against libtorch CUDA at batch 1 and 64, for fp32 and fp16, then the
# export benchmark on the CUDA provider. Writes into copies of RUN_DIR under ${OUT:-/tmp}.
set -euo pipefail
bin=$1 run=$2
lib=()
if [ $# -ge 3 ]; then lib=(--ort-lib "$3"); fi
out=${OUT:-/tmp}
nvidia-smi -L
"$bin" doctor | grep -E '"(nvidia_gpus|cuda_available|source|providers)"|Execution' || true
for precision in fp32 fp16; do
  dir=$out/gpu-check-$precision
  rm -rf "$dir" && cp -r "$run" "$dir"
  "$bin" export "$dir" --ep cuda --precision "$precision" "${lib[@]}"
  python3 - "$dir/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l, p, a = r["latency"], r["parity"], r["accuracy"]
print(f'{r["onnx"]["precision"]} on {l.get("gpu")}: parity {p["scaled_diff"]:.2e} of the logit scale (tolerance {p["tolerance"]:.0e}, {"passed" if p["passed"] else "FAILED"}), '
      f'accuracy ORT {a["ort"]*100:.2f}% vs libtorch {a["libtorch"]*100:.2f}%')
for b in ("batch1", "batch64"):
    print(f'  {b}: ORT CUDA p50 {l["ort"][b]["p50_ms"]:.4f} ms, libtorch CUDA p50 {l["libtorch"][b]["p50_ms"]:.4f} ms')
PY
done
"$bin" bench export --ep cuda "${lib[@]}" --out "$out/gpu-check-bench"
