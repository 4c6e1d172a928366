#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): the decode tests, the batch-1 decode
# benchmark under each WICK_DECODE_PREFETCH mode (interleaved, twice), and per-kernel times (Nsight Compute,
# one metric) of decode steps without and with prefetching and of one LoRA training step. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$build/tests/wick_cuda_tests" --gtest_brief=1 --gtest_filter='*CudaDecode*:*Generat*' 2>&1 | tail -n 4
echo "== decode batch 1 by prefetch mode"
for round in 1 2; do
  for mode in 0 1 2 3; do
    printf 'round %s mode %s: ' "$round" "$mode"
    WICK_DECODE_PREFETCH=$mode "$build/wick" bench generate --device cuda --batch 1 --prefill 256 2>&1 | grep decode
  done
done
for mode in ${MODES:-0 2}; do
  WICK_DECODE_PREFETCH=$mode "$build/wick" bench generate --device cuda --batch 8 --prefill 256 2>&1 | grep decode
done
if [[ "${PROFILE:-1}" == 1 ]]; then
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  metric="--clock-control none --metrics gpu__time_duration.sum --csv"
  for mode in 0 2; do
    WICK_DECODE_PREFETCH=$mode timeout 200 "$ncu" $metric --cache-control none --graph-profiling node \
      --launch-skip 3000 --launch-count 400 "$build/wick" bench generate --device cuda --batch 1 --prefill 64 \
      --new-tokens 64 >"$out/decode-kernels-$mode.csv" 2>&1
  done
  timeout 300 "$ncu" $metric --graph-profiling node "$build/wick" bench train --device cuda --batch 8 \
    --tokens 1024 --steps 1 >"$out/train-kernels.csv" 2>&1
  echo "ncu exit $?"
fi
ls -la "$out"
