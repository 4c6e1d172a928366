#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): the CUDA test suite, the self-check on
# the GPU, compute-sanitizer memcheck and racecheck on the CUDA tests, then the side-by-side op benchmark against
# PyTorch. Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
build=${BUILD:-build-cuda}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
status=0
echo "== CUDA tests"
"$build/tests/wick_cuda_tests" 2>&1 | tee "$out/cuda-tests.log" | tail -n 25 || status=1
echo "== CPU tests"
"$build/tests/wick_tests" --gtest_brief=1 2>&1 | tail -n 5
echo "== selfcheck on the GPU"
for dtype in f32 bf16; do "$build/wick" selfcheck --device cuda --dtype "$dtype" 2>&1 | tail -n 16 || status=1; done
if [[ "${SANITIZE:-1}" == 1 ]]; then
  echo "== compute-sanitizer"
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/tests/wick_cuda_tests" \
      --gtest_filter='Dtypes/Cuda.*/bf16:CudaRuntime.*' > "$out/sanitizer-$tool.log" 2>&1
    echo "$tool exit code: $? ($(grep -c 'ERROR SUMMARY: 0' "$out/sanitizer-$tool.log") clean summaries)"
    tail -n 3 "$out/sanitizer-$tool.log"
  done
fi
if [[ "${BENCH:-1}" == 1 ]]; then
  echo "== op benchmark: wick vs PyTorch"
  "$build/wick" bench ops --device cuda --repeats 50 --json "$out/wick-ops.jsonl" > "$out/wick-ops.txt" 2>&1
  python3 bench/ops_torch.py --repeats 50 --json "$out/torch-ops.jsonl" > "$out/torch-ops.txt" 2>&1
  python3 bench/compare_ops.py "$out/wick-ops.jsonl" "$out/torch-ops.jsonl" | tee "$out/ops-table.md"
fi
if [[ "${BENCH:-1}" == 1 ]]; then
  echo "== embedding benchmark: wick vs PyTorch (MiniLM shape, f16)"
  "$build/wick" bench embed --device cuda --dtype f16 --repeats 30 --json "$out/wick-embed.jsonl" 2>&1 | tail -n 3
  python3 bench/embed_torch.py --dtype f16 --repeats 30 --json "$out/torch-embed.jsonl" 2>&1 | tail -n 3
fi
exit $status
