#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry $BUILD/tests/wick_cuda_tests and $BUILD/lib): the
# flash attention tests, compute-sanitizer racecheck and memcheck on the small case, the attention timing table
# against PyTorch's scaled_dot_product_attention, then the rest of the CUDA suite. Logs go to $OUT (or
# ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-gpu-out}
mkdir -p "$out"
build=${BUILD:-build-cuda}
tests="$build/tests/wick_cuda_tests"
export PYTHONUNBUFFERED=1
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader; } |
  tee "$out/gpu.txt"
status=0
echo "== flash attention tests"
timeout 150 "$tests" --gtest_filter='Dtypes/FlashAttention.*' 2>&1 | tee "$out/flash-tests.log" |
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[       OK|Failure|error|Expected|Which is|out$|lse$|dq$|dk$|dv$|Trace|flash_attention_test' |
  head -n 80
[[ ${PIPESTATUS[0]} == 0 ]] || status=1
if [[ "${SANITIZE:-1}" == 1 ]]; then
  echo "== compute-sanitizer (Dtypes/FlashAttention.SanitizerSmall/bf16)"
  for tool in racecheck memcheck; do
    timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$tests" \
      --gtest_filter='Dtypes/FlashAttention.SanitizerSmall/bf16' > "$out/sanitizer-$tool.log" 2>&1
    echo "$tool exit code: $? ($(grep -c 'ERROR SUMMARY: 0' "$out/sanitizer-$tool.log") clean summaries)"
    grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard' "$out/sanitizer-$tool.log" | head -n 6
  done
fi
if [[ "${BENCH:-1}" == 1 ]]; then
  echo "== attention timing: wick"
  WICK_ATTENTION_BENCH=1 WICK_ATTENTION_BENCH_CSV="$out/wick-attention.csv" timeout 150 "$tests" \
    --gtest_filter='FlashAttentionBench.*' 2>&1 | tee "$out/wick-attention.txt" | grep -vE '^\[|^Note|^$'
  echo "== attention timing: torch"
  timeout 150 python3 bench/attention_torch.py --wick "$out/wick-attention.csv" 2>&1 |
    tee "$out/torch-attention.txt"
fi
if [[ "${FULL:-1}" == 1 ]]; then
  echo "== rest of the CUDA suite"
  timeout "${FULL_TIMEOUT:-120}" "$tests" --gtest_brief=1 --gtest_filter='-Dtypes/FlashAttention.*:FlashAttentionBench.*' \
    > "$out/cuda-tests.log" 2>&1 || status=1
  tail -n 12 "$out/cuda-tests.log"
fi
exit $status
