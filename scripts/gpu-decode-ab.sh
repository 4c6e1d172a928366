#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda with wick and wick-before): the CUDA
# decode and attention tests, racecheck on the small attention cases, then greedy decoding at batch 1 and 8
# (Qwen2.5-0.5B shape) interleaved between the two binaries. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$build/tests/wick_cuda_tests" --gtest_brief=1 2>&1 | tee "$out/cuda-tests.log" | tail -n 8
compute-sanitizer --tool racecheck "$build/tests/wick_cuda_tests" --gtest_filter='*SanitizerSmall*' 2>&1 |
  tail -n 3 | tee "$out/racecheck.log"
for round in 1 2; do
  for binary in wick-before wick; do
    for batch in 1 8; do
      echo "$binary batch $batch: $("$build/$binary" bench generate --device cuda --batch "$batch" 2>&1 | grep -i decode | tail -n 1)"
    done
  done
done | tee "$out/decode-ab.log"
