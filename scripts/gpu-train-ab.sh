#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda with wick, wick-before and the CUDA
# tests): the CUDA suite, then LoRA training steps (Qwen2.5-0.5B shape, 8 × 1024 and 4 × 512) interleaved
# between the two binaries. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$build/tests/wick_cuda_tests" --gtest_brief=1 ${TESTS:+--gtest_filter="$TESTS"} 2>&1 | tee "$out/cuda-tests.log" | tail -n 8
for round in 1 2; do
  for binary in wick-before wick; do
    for shape in "8 1024" "4 512"; do
      set -- $shape
      echo "$binary $1 x $2: $("$build/$binary" bench train --device cuda --batch "$1" --tokens "$2" 2>&1 | tail -n 1)"
    done
  done
done | tee "$out/train-ab.log"
