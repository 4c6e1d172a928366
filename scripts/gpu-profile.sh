#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): per-kernel GPU times (Nsight Compute,
# one metric) of greedy decode steps at batch 1, of the embedding benchmark and of one LoRA training step
# (8 × 1024; the last third of the file is the timed step), for finding where time goes.
# Writes CSV files to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
metric="--metrics gpu__time_duration.sum --csv"
# Whole decode-step graphs, then the kernels inside them (skipping the prefill and the first steps).
"$ncu" $metric --graph-profiling graph --launch-skip 1900 --launch-count 100 \
  "$build/wick" bench generate --device cuda --batch 1 --prefill 64 --new-tokens 32 >"$out/decode-graphs.csv" 2>&1
"$ncu" $metric --graph-profiling node --launch-skip 4000 --launch-count 700 \
  "$build/wick" bench generate --device cuda --batch 1 --prefill 64 --new-tokens 32 >"$out/decode-kernels.csv" 2>&1
"$ncu" $metric "$build/wick" bench embed --device cuda --dtype f16 --repeats 1 >"$out/embed-kernels.csv" 2>&1
timeout 300 "$ncu" $metric --graph-profiling node "$build/wick" bench train --device cuda --batch 8 \
  --tokens 1024 --steps 1 >"$out/train-kernels.csv" 2>&1
ls -la "$out"
