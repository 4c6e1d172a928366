#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): per-kernel GPU times (Nsight Compute,
# one metric) of greedy decode steps at batch 1 and of the embedding benchmark, for finding where time goes.
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
ls -la "$out"
