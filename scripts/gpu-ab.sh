#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda with wick, wick-before and the CUDA
# tests): the CUDA suite (or the tests named by TESTS, a gtest filter), then one benchmark interleaved twice
# between the two binaries:
#   decode  greedy decoding at batch 1 and 8 (Qwen2.5-0.5B shape), after racecheck on the small attention cases
#   train   LoRA training steps at 8 × 1024 and 4 × 512 (Qwen2.5-0.5B shape, r = 16, all 7 projections)
# Usage: bash scripts/gpu-ab.sh decode|train. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mode=${1:?usage: gpu-ab.sh decode|train}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$build/tests/wick_cuda_tests" --gtest_brief=1 ${TESTS:+--gtest_filter="$TESTS"} 2>&1 | tee "$out/cuda-tests.log" |
  tail -n 8
case $mode in
  decode)
    compute-sanitizer --tool racecheck "$build/tests/wick_cuda_tests" --gtest_filter='*SanitizerSmall*' 2>&1 |
      tail -n 3 | tee "$out/racecheck.log"
    cases=("generate --batch 1" "generate --batch 8") ;;
  train) cases=("train --batch 8 --tokens 1024" "train --batch 4 --tokens 512") ;;
  *) echo "unknown mode '$mode' (expected decode or train)" >&2; exit 2 ;;
esac
for round in 1 2; do
  for binary in wick-before wick; do
    for c in "${cases[@]}"; do
      # shellcheck disable=SC2086  # the case holds its own arguments
      echo "$binary $c: $("$build/$binary" bench $c --device cuda 2>&1 | grep -E 'decode batch|train lora' | tail -n 1)"
    done
  done
done | tee "$out/ab-$mode.log"
